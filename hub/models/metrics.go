package models

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Meter counts routed calls for Prometheus.
type Meter interface {
	// Call counts one answered call of model.
	Call(model string, u Usage, costUSD float64)
	// Failure counts one failed attempt on model.
	Failure(model string)
}

// promMeter registers the gateway's series on a registry. The token and
// cost families are the roadmap's agent_llm_* names, labelled by model
// and, for tokens, type (prompt, completion), with source="gateway" so
// they add up with the runtimes' own series where both exist.
type promMeter struct {
	tokens, requests, cost, failures *prometheus.CounterVec
}

// NewPromMeter registers the gateway's counters on reg (a counter another
// part of the hub registered under the same name and labels is reused).
func NewPromMeter(reg prometheus.Registerer) (Meter, error) {
	m := &promMeter{
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agent_llm_tokens_used_total",
			Help: "LLM tokens used, by model and type (prompt, completion)."}, []string{"model", "type", "source"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agent_llm_requests_total",
			Help: "LLM calls answered, by model."}, []string{"model", "source"}),
		cost: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agent_llm_cost_usd_total",
			Help: "Estimated LLM cost in US dollars, by model."}, []string{"model", "source"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "controltower_llm_gateway_failures_total",
			Help: "Failed LLM gateway attempts (each fallback counts), by model."}, []string{"model"}),
	}
	for _, c := range []**prometheus.CounterVec{&m.tokens, &m.requests, &m.cost, &m.failures} {
		if err := reg.Register(*c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			*c = are.ExistingCollector.(*prometheus.CounterVec)
		}
	}
	return m, nil
}

func (m *promMeter) Call(model string, u Usage, costUSD float64) {
	m.tokens.WithLabelValues(model, "prompt", "gateway").Add(float64(u.InputTokens))
	m.tokens.WithLabelValues(model, "completion", "gateway").Add(float64(u.OutputTokens))
	m.requests.WithLabelValues(model, "gateway").Inc()
	m.cost.WithLabelValues(model, "gateway").Add(costUSD)
}

func (m *promMeter) Failure(model string) { m.failures.WithLabelValues(model).Inc() }

type noMeter struct{}

func (noMeter) Call(string, Usage, float64) {}
func (noMeter) Failure(string)              {}
