package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/metrics"
)

type pinger func(context.Context) error

func (p pinger) Ping(ctx context.Context) error { return p(ctx) }

func newTestServer(comps ...Component) *Server {
	return New(Config{Version: "t", Region: "r", NodeID: "n", Components: comps, Metrics: metrics.New("t", "r")})
}

func do(s *Server, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	return rec
}

func TestHealthStatusAndFailedComponents(t *testing.T) {
	ok := pinger(func(context.Context) error { return nil })
	down := pinger(func(context.Context) error { return errors.New("dial tcp: connection refused") })
	hang := pinger(func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })

	cases := []struct {
		name   string
		comps  []Component
		status int
		failed []string
	}{
		{"all ok", []Component{{"raft", ok}, {"store", ok}}, 200, nil},
		{"store down", []Component{{"raft", ok}, {"store", down}}, 503, []string{"store"}},
		{"hanging coord times out", []Component{{"coord", hang}, {"store", ok}}, 503, []string{"coord"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(newTestServer(c.comps...), "GET", "/api/health", nil)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			var h HealthResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &h); err != nil {
				t.Fatal(err)
			}
			if strings.Join(h.Failed, ",") != strings.Join(c.failed, ",") {
				t.Fatalf("failed = %v, want %v", h.Failed, c.failed)
			}
			for _, f := range c.failed {
				if h.Components[f].Error == "" {
					t.Errorf("component %s has no error text", f)
				}
			}
		})
	}
}

func TestRequestIDAndHeaders(t *testing.T) {
	s := newTestServer()
	rec := do(s, "GET", "/api/health", map[string]string{"X-Request-Id": "abc-123"})
	if got := rec.Header().Get("X-Request-Id"); got != "abc-123" {
		t.Errorf("well-formed request id not echoed: %q", got)
	}
	rec = do(s, "GET", "/api/health", map[string]string{"X-Request-Id": "bad id\nwith newline"})
	if got := rec.Header().Get("X-Request-Id"); got == "" || strings.ContainsAny(got, " \n") {
		t.Errorf("malformed request id not replaced: %q", got)
	}
	for _, h := range []string{"X-Content-Type-Options", "X-Frame-Options", "Content-Security-Policy"} {
		if rec.Header().Get(h) == "" {
			t.Errorf("missing security header %s", h)
		}
	}
}

func TestErrorsAreJSONAndPanicsDoNotEscape(t *testing.T) {
	s := newTestServer()
	s.engine.GET("/api/boom", func(*gin.Context) { panic("boom") })
	rec := do(s, "GET", "/api/boom", nil)
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), `"code":"internal"`) || strings.Contains(rec.Body.String(), "boom") {
		t.Errorf("panic → %d %s; want 500 internal without the panic text", rec.Code, rec.Body)
	}
	rec = do(s, "DELETE", "/api/health", nil)
	if rec.Code != http.StatusMethodNotAllowed || !strings.Contains(rec.Body.String(), "method_not_allowed") {
		t.Errorf("DELETE /api/health → %d %s", rec.Code, rec.Body)
	}
	s.engine.GET("/api/invalid", func(c *gin.Context) { abort(c, Invalid("memory_mb", "memory_mb must be at least 128")) })
	rec = do(s, "GET", "/api/invalid", nil)
	if rec.Code != 400 || !strings.Contains(rec.Body.String(), `"field":"memory_mb"`) {
		t.Errorf("invalid → %d %s", rec.Code, rec.Body)
	}
}

func TestCORSAllowList(t *testing.T) {
	s := New(Config{CORSOrigins: []string{"https://console.example.com"}})
	rec := do(s, "GET", "/api/health", map[string]string{"Origin": "https://console.example.com"})
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://console.example.com" {
		t.Errorf("allowed origin not echoed: %v", rec.Header())
	}
	rec = do(s, "GET", "/api/health", map[string]string{"Origin": "https://evil.example"})
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unlisted origin allowed: %v", rec.Header())
	}
	rec = do(s, "OPTIONS", "/api/instances", map[string]string{"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
	if rec.Code != http.StatusForbidden {
		t.Errorf("preflight from unlisted origin = %d", rec.Code)
	}
	rec = do(s, "OPTIONS", "/api/instances", map[string]string{"Origin": "https://console.example.com", "Access-Control-Request-Method": "POST"})
	if rec.Code != http.StatusNoContent || !strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight from allowed origin = %d %v", rec.Code, rec.Header())
	}
}
