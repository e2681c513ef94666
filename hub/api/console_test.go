package api

import (
	"strings"
	"testing"

	"github.com/redforge/controltower/console"
)

// TestConsoleRoutes: the console's pages are served outside the API, and
// an unknown API path still gets the API's JSON 404.
func TestConsoleRoutes(t *testing.T) {
	s := newTestServer()
	cases := []struct {
		method, path string
		status       int
		contains     string
	}{
		{"GET", "/", 200, "<"},
		{"GET", "/instances/some-id", 200, "<"},
		{"GET", "/api/no-such-route", 404, `"code":"not_found"`},
		{"GET", "/api", 404, `"code":"not_found"`},
		{"GET", "/metrics/nope", 404, `"code":"not_found"`},
		{"POST", "/somewhere", 404, `"code":"not_found"`},
		{"GET", "/no-such-file.js", 404, `"code":"not_found"`},
	}
	for _, c := range cases {
		rec := do(s, c.method, c.path, nil)
		if rec.Code != c.status || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("%s %s = %d %.200s, want %d containing %q", c.method, c.path, rec.Code, rec.Body.String(), c.status, c.contains)
		}
	}
	if !console.Built() {
		if rec := do(s, "GET", "/", nil); !strings.Contains(rec.Body.String(), "make console") {
			t.Errorf("unbuilt console page does not say how to build it: %s", rec.Body.String())
		}
		return
	}
	if rec := do(s, "GET", "/assets/no-such-asset.js", nil); rec.Code != 404 {
		t.Errorf("missing asset = %d, want 404", rec.Code)
	}
	if rec := do(s, "GET", "/", nil); rec.Header().Get("Content-Security-Policy") == "" {
		t.Error("console page lacks the security headers")
	}
}
