package consoletest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/console"
	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestObservabilityConsole drives the Analytics and Alerts pages
// (console/e2e/observability.mjs) against a real hub whose instance runs
// the agent flow: fleet numbers and charts, the four dashboards embedded
// from --grafana-url (a stand-in page: Grafana itself is not installable
// here), a refused and an accepted rule, the rule firing live with its
// notifications delivered to a webhook, VIEWER limits and phone width.
func TestObservabilityConsole(t *testing.T) {
	if !console.Built() {
		t.Fatal("the console is not built into this binary: run `make console` (make test does)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "console")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed: run `make console` (npm ci in console/)")
	}
	grafana := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><body style="background:#111217;color:#ccc;font:16px sans-serif;padding:2em">Grafana stand-in: %s</body>`, r.URL.Path)
	}))
	defer grafana.Close()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
	}))
	defer receiver.Close()
	h := hubtest.Start(t, func(c *hub.Config) {
		c.MetricsInterval = time.Second
		c.GrafanaURL = grafana.URL
	})
	h.CreateUser(t, "victor", "VIEWER")
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "agents", "resources": map[string]any{"memory_mb": 256}}, 201, nil)
	flows, err := os.ReadFile(filepath.Join(root, "packaging", "nodered", "flows", "agent-metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	h.JSON(t, "PUT", "/api/instances/agents/flows", flows, 200, nil)
	c := &http.Client{Timeout: 10 * time.Second}
	testenv.WaitFor(t, 120*time.Second, "agents serves /work", func() error {
		resp, err := c.Get(h.URL + "/i/agents/work?ms=1")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET /work = %d", resp.StatusCode)
		}
		return nil
	})
	for i := range 40 {
		model := []string{"gpt-4o", "llama3"}[i%2]
		resp, err := c.Get(fmt.Sprintf("%s/i/agents/work?ms=%d&model=%s&prompt=900&completion=300", h.URL, 20+i*5, model))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	testenv.WaitFor(t, 30*time.Second, "fleet analytics", func() error {
		var s struct {
			Workflows struct {
				Runs float64 `json:"runs"`
			} `json:"workflows"`
		}
		h.JSON(t, "GET", "/api/metrics/fleet", nil, 200, &s)
		if s.Workflows.Runs < 40 {
			return fmt.Errorf("%v runs", s.Workflows.Runs)
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/observability.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HUB_URL="+h.URL, "RECEIVER_URL="+receiver.URL, "INSTANCE_NAME=agents",
		"ADMIN_USER=admin", "ADMIN_PASSWORD="+hubtest.AdminPassword,
		"VIEWER_USER=victor", "VIEWER_PASSWORD=password-of-victor",
		"CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+filepath.Join(root, "artifacts", "screenshots"),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("observability browser tests failed (%v):\n%s", err, out)
	}
	if !strings.Contains(string(out), "PASS") {
		t.Fatalf("no PASS:\n%s", out)
	}
	t.Logf("observability browser tests:\n%s", out)
}
