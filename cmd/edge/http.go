package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Health check outcomes.
const (
	statusOK   = "ok"
	statusFail = "fail"
)

// healthTimeout bounds one /healthz probe.
const healthTimeout = 5 * time.Second

// healthResponse is the /healthz body: status is "ok" only if every
// component is; a failed component is named with "fail" (details go to the
// log, not to the caller).
type healthResponse struct {
	Status     string            `json:"status"`
	Components map[string]string `json:"components"`
	// Warnings name insecure settings the edge runs with (the MQTT open
	// mode); they do not make it unhealthy.
	Warnings []string `json:"warnings,omitempty"`
}

func (m *Main) routes() http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newEdgeCollector(m.Outbox, m.Broker, m.Syncer),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "redforge_edge_mqtt_anonymous",
			Help: "1 when the MQTT broker admits clients without credentials (--mqtt-allow-anonymous), else 0."},
			func() float64 {
				if m.mqttOpen {
					return 1
				}
				return 0
			}),
	)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", m.handleHealthz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))
	if m.Config.DebugPprof {
		pprofRoutes(mux)
	}
	return mux
}

// pprofRoutes serves the Go profiles (--debug-pprof, loopback only): the
// index and the named profiles (heap, goroutine, allocs, block, mutex,
// threadcreate; an unknown name is a 404), the CPU profile, the
// execution trace, symbols and the command line with --token hidden.
func pprofRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(strings.Join(redactArgs(os.Args), "\x00")))
	})
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}

// redactArgs returns args with the value of --token (the edge's hub
// credential, which may be given as a flag) replaced by "[redacted]".
func redactArgs(args []string) []string {
	out := slices.Clone(args)
	for i, a := range out {
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "token" {
			continue
		}
		if hasValue {
			out[i] = a[:strings.Index(a, "=")+1] + "[redacted]"
		} else if i+1 < len(out) {
			out[i+1] = "[redacted]"
		}
	}
	return out
}

func (m *Main) handleHealthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	resp := healthResponse{Status: statusOK, Components: map[string]string{}}
	check := func(name string, err error) {
		resp.Components[name] = statusOK
		if err != nil {
			resp.Status, resp.Components[name] = statusFail, statusFail
			m.Logger.Warn("health check failed", logKeyComponent, name, logKeyError, err)
		}
	}
	check("broker", m.Broker.Health())
	check("outbox", m.Outbox.Health(ctx))
	if m.mqttOpen {
		resp.Warnings = append(resp.Warnings, warnAnonymous)
	}
	code := http.StatusOK
	if resp.Status != statusOK {
		code = http.StatusServiceUnavailable
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(resp)
}
