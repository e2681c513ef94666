package metrics

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/benchinfo"
)

// fillFleet gives m n instances with their gauges and, each, a runtime
// reporting flows flows and 3 models.
func fillFleet(m *Metrics, n, flows int) {
	for i := range n {
		id, name := fmt.Sprintf("inst-%04d-6f1c2a", i), fmt.Sprintf("agent-%04d", i)
		l := RuntimeLabels(id, name, 0)
		m.InstanceUp.With(l).Set(1)
		m.InstanceCPU.With(l).Set(12.5)
		m.InstanceMemory.With(l).Set(180 << 20)
		m.InstanceNetRx.With(l).Set(1 << 20)
		m.InstanceNetTx.With(l).Set(1 << 20)
		m.InstanceCrashLoop.With(l).Set(0)
		u := Usage{Flows: map[string]*FlowUsage{}, Models: map[string]*ModelUsage{}}
		for f := range flows {
			u.Flows[fmt.Sprintf("flow-%02d", f)] = &FlowUsage{Count: 1000, Errors: 12, Sum: 420, Active: 2,
				Buckets: []float64{100, 400, 700, 900, 980, 995, 1000, 1000, 1000}}
		}
		for _, model := range []string{"gpt-4o", "claude-3-5-sonnet", "llama3"} {
			u.Models[model] = &ModelUsage{PromptTokens: 1e6, CompletionTokens: 2e5, Requests: 900, CostUSD: 4.5}
		}
		m.Runtimes.Observe(fmt.Sprintf("alloc-%04d", i), l, u, time.Now())
	}
}

func scrapeOnce(b *testing.B, url string, gz bool) (time.Duration, int) {
	req, _ := http.NewRequest("GET", url, nil)
	if gz {
		req.Header.Set("Accept-Encoding", "gzip")
	} else {
		req.Header.Set("Accept-Encoding", "identity")
	}
	start := time.Now()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return time.Since(start), int(n)
}

// BenchmarkMetricsScrape measures GET /metrics of a hub running 1,000
// instances with 10 flows each (and 3 LLM models each): the goal
// is < 50 ms. Medians of three rounds of 10 scrapes (also asking for gzip,
// as Prometheus does), against a reference measured in the same run:
// serving the same bytes pre-rendered.
func BenchmarkMetricsScrape(b *testing.B) {
	for range b.N {
		m := New("bench", "local")
		fillFleet(m, 1000, 10)
		srv := httptest.NewServer(m.Handler())
		_, size := scrapeOnce(b, srv.URL, false)
		var pre bytes.Buffer
		resp, _ := http.Get(srv.URL)
		io.Copy(&pre, resp.Body)
		resp.Body.Close()
		ref := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(pre.Bytes())
		}))
		measure := func(url string, gz bool) time.Duration {
			var rounds []time.Duration
			for range 3 {
				var ds []time.Duration
				for range 10 {
					d, _ := scrapeOnce(b, url, gz)
					ds = append(ds, d)
				}
				rounds = append(rounds, benchinfo.Median(ds))
			}
			return benchinfo.Median(rounds)
		}
		plain, gz, refd := measure(srv.URL, false), measure(srv.URL, true), measure(ref.URL, false)
		srv.Close()
		ref.Close()
		b.ReportMetric(float64(plain.Microseconds())/1000, "scrape-ms")
		fmt.Printf("/metrics with 1,000 instances × 10 flows (%d lines, %.1f MB): %s (goal < 50 ms; asked for gzip: %s, served plain); "+
			"reference, the same bytes pre-rendered: %s, ratio %.2f; %s\n",
			bytes.Count(pre.Bytes(), []byte("\n")), float64(size)/1e6, plain.Round(100*time.Microsecond), gz.Round(100*time.Microsecond),
			refd.Round(100*time.Microsecond), float64(plain)/float64(refd), benchinfo.This())
	}
}
