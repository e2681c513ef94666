package api

import (
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/metrics"
)

// TestGrafanaFrameSrc: with --grafana-url the console may frame that
// origin (and nothing else); without it, nothing.
func TestGrafanaFrameSrc(t *testing.T) {
	s := New(Config{Metrics: metrics.New("t", "r"), Observability: Observability{GrafanaURL: "http://127.0.0.1:3300/grafana/"}})
	csp := do(s, "GET", "/api/health", nil).Header().Get("Content-Security-Policy")
	if !strings.HasSuffix(csp, "; frame-src 'self' http://127.0.0.1:3300") {
		t.Fatalf("CSP = %q", csp)
	}
	for _, bad := range []string{"", "javascript:alert(1)", "http://a b", "ftp://x"} {
		if o := grafanaOrigin(bad); o != "" {
			t.Errorf("grafanaOrigin(%q) = %q", bad, o)
		}
	}
	s = New(Config{Metrics: metrics.New("t", "r")})
	if csp := do(s, "GET", "/api/health", nil).Header().Get("Content-Security-Policy"); csp == "" || strings.Contains(csp, "frame-src") {
		t.Fatalf("CSP without Grafana = %q", csp)
	}
}
