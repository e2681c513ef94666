package metrics

import (
	"bytes"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// runtimeProcessFamilies are the runtime's own unlabelled families that
// RuntimeExposition passes on.
var runtimeProcessFamilies = map[string]prometheus.ValueType{
	"process_cpu_seconds_total":          prometheus.CounterValue,
	"process_resident_memory_bytes":      prometheus.GaugeValue,
	"nodejs_heap_used_bytes":             prometheus.GaugeValue,
	"nodejs_eventloop_delay_p99_seconds": prometheus.GaugeValue,
	"agent_runtime_inflight_workflows":   prometheus.GaugeValue,
}

// RuntimeExposition re-encodes what a runtime served at RuntimePath for a
// Prometheus that scrapes the runtime through the hub: the agent_*
// families as ParseUsage reads them (sanitized, capped) with their flow
// and model labels only (the target labels of service discovery name the
// runtime), and the runtime's unlabelled process metrics; nothing else.
func RuntimeExposition(body []byte) ([]byte, error) {
	u, err := ParseUsage(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewPedanticRegistry()
	one := &singleRuntime{d: unlabelledDescs(), u: u, fams: fams}
	if err := reg.Register(one); err != nil {
		return nil, err
	}
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&out, mf); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}

// runtimeDescs describe one runtime's agent families, without runtime
// labels.
type runtimeDescs struct {
	duration, errors, active, tokens, requests, cost *prometheus.Desc
}

func unlabelledDescs() runtimeDescs {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return runtimeDescs{
		duration: d(famWorkflowDuration, "Duration of finished workflows, by flow.", "flow"),
		errors:   d(famWorkflowErrors, "Workflows that ended in error or timed out, by flow.", "flow"),
		active:   d(famWorkflowActive, "Workflows started and not yet ended, by flow.", "flow"),
		tokens:   d(famLLMTokens, "LLM tokens used, by model and type (prompt, completion).", "model", "type"),
		requests: d(famLLMRequests, "LLM calls recorded, by model.", "model"),
		cost:     d(famLLMCost, "Estimated LLM cost in US dollars, by model.", "model"),
	}
}

type singleRuntime struct {
	d    runtimeDescs
	u    Usage
	fams map[string]*dto.MetricFamily
}

func (s *singleRuntime) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }

func (s *singleRuntime) Collect(ch chan<- prometheus.Metric) {
	r := s.d
	for flow, f := range s.u.Flows {
		buckets := make(map[float64]uint64, len(WorkflowBuckets))
		for i, b := range WorkflowBuckets {
			buckets[b] = uint64(f.Buckets[i])
		}
		ch <- prometheus.MustNewConstHistogram(r.duration, uint64(f.Count), f.Sum, buckets, flow)
		ch <- prometheus.MustNewConstMetric(r.errors, prometheus.CounterValue, f.Errors, flow)
		ch <- prometheus.MustNewConstMetric(r.active, prometheus.GaugeValue, f.Active, flow)
	}
	for model, m := range s.u.Models {
		ch <- prometheus.MustNewConstMetric(r.tokens, prometheus.CounterValue, m.PromptTokens, model, "prompt")
		ch <- prometheus.MustNewConstMetric(r.tokens, prometheus.CounterValue, m.CompletionTokens, model, "completion")
		ch <- prometheus.MustNewConstMetric(r.requests, prometheus.CounterValue, m.Requests, model)
		ch <- prometheus.MustNewConstMetric(r.cost, prometheus.CounterValue, m.CostUSD, model)
	}
	for name, typ := range runtimeProcessFamilies {
		mf := s.fams[name]
		if mf == nil || len(mf.GetMetric()) != 1 || len(mf.GetMetric()[0].GetLabel()) != 0 {
			continue
		}
		desc := prometheus.NewDesc(name, "The runtime's "+name+".", nil, nil)
		ch <- prometheus.MustNewConstMetric(desc, typ, valueOf(mf.GetMetric()[0]))
	}
}
