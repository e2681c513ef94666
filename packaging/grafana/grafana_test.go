package grafana

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestDashboardsAreCurrent: the committed JSON is what the generator makes
// (run make dashboards after changing dashboards.go), every dashboard has
// the roadmap's panels and uses the datasource variable.
func TestDashboardsAreCurrent(t *testing.T) {
	specs := Specs()
	if len(specs) != 4 {
		t.Fatalf("%d dashboards, want 4", len(specs))
	}
	for _, s := range specs {
		want, err := JSON(s)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(FileName(s))
		if err != nil {
			t.Fatalf("%v (run make dashboards)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s is not what cmd/dashboards makes: run make dashboards", FileName(s))
		}
		var d struct {
			UID    string `json:"uid"`
			Panels []struct {
				Type    string `json:"type"`
				Title   string `json:"title"`
				Targets []struct {
					Expr       string `json:"expr"`
					Datasource struct {
						UID string `json:"uid"`
					} `json:"datasource"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(got, &d); err != nil || d.UID != s.UID || len(d.Panels) != len(s.Panels) {
			t.Fatalf("%s: %v %+v", FileName(s), err, d)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.Datasource.UID != "${datasource}" {
					t.Errorf("%s / %s: target %+v", s.UID, p.Title, tg)
				}
			}
		}
	}
}

// grafanaVars stands in for what Grafana puts in place of its variables.
var grafanaVars = strings.NewReplacer("$__rate_interval", "30s", "$__range", "10m")

type promResult struct {
	Status string `json:"status"`
	Error  string `json:"error"`
	Data   struct {
		Result []json.RawMessage `json:"result"`
	} `json:"data"`
}

func promQuery(prom, expr string, instant bool) (promResult, error) {
	v := url.Values{"query": {grafanaVars.Replace(expr)}}
	path := "/api/v1/query"
	if !instant {
		now := time.Now()
		v.Set("start", fmt.Sprint(now.Add(-3*time.Minute).Unix()))
		v.Set("end", fmt.Sprint(now.Unix()))
		v.Set("step", "5")
		path = "/api/v1/query_range"
	}
	resp, err := http.Get(prom + path + "?" + v.Encode())
	if err != nil {
		return promResult{}, err
	}
	defer resp.Body.Close()
	var r promResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return r, err
	}
	if r.Status != "success" {
		return r, fmt.Errorf("%s", r.Error)
	}
	return r, nil
}

// load calls the agent flow until stop is closed: every fifth call fails,
// models alternate.
func load(t *testing.T, base, name string, stop <-chan struct{}, wg *sync.WaitGroup) {
	defer wg.Done()
	c := &http.Client{Timeout: 10 * time.Second}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond): // a steady request rate, not a wait for state
		}
		model := []string{"gpt-4o-mini", "claude-3-5-sonnet-20241022", "llama3"}[i%3]
		fail := map[bool]string{true: "1", false: "0"}[i%5 == 4]
		resp, err := c.Get(fmt.Sprintf("%s/i/%s/work?ms=%d&model=%s&prompt=800&completion=200&fail=%s", base, name, 10+i%90, model, fail))
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// TestDashboardQueriesAgainstPrometheus runs a real hub with a real
// Node-RED runtime doing work (and a blue-green deployment), a real
// Prometheus (Debian's) that finds the hub and the runtime through the
// hub's service discovery with a metrics token, and evaluates every
// dashboard query: each must be valid PromQL, and each key panel's query
// must return data.
func TestDashboardQueriesAgainstPrometheus(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.MetricsInterval = time.Second })
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "agents", "resources": map[string]any{"memory_mb": 256}}, 201, &inst)
	flows, err := os.ReadFile(filepath.Join("..", "nodered", "flows", "agent-metrics.json"))
	if err != nil {
		t.Fatal(err)
	}
	h.JSON(t, "PUT", "/api/instances/agents/flows", flows, 200, nil)
	testenv.WaitFor(t, 120*time.Second, "agents serves /work", func() error {
		resp, err := http.Get(h.URL + "/i/agents/work?ms=1")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET /work = %d", resp.StatusCode)
		}
		return nil
	})
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "prometheus", "role": "VIEWER", "scope": "metrics"}, 201, &tok)
	rules, _ := filepath.Abs(filepath.Join("..", "prometheus", "alerts.yml"))
	prom := testenv.Prometheus(t, func(dir string) string {
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok.Token), 0o600); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: redforge
    authorization: {credentials_file: %q}
    http_sd_configs:
      - url: %s/api/prometheus/targets
        refresh_interval: 1s
        authorization: {credentials_file: %q}
`, rules, filepath.Join(dir, "token"), h.URL, filepath.Join(dir, "token"))
	})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go load(t, h.URL, "agents", stop, &wg)
	defer func() { close(stop); wg.Wait() }()

	// A blue-green deployment of the same flows (the example flow does
	// not speak the drain contract: a short drain timeout, no MQTT smoke
	// test), for the deployment panels.
	var dep struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	h.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "agents", "flows": json.RawMessage(flows),
		"drain_timeout": "1s", "rollback_window": "0s", "smoke": map[string]any{"mqtt": false}}, 201, &dep)
	testenv.WaitFor(t, 3*time.Minute, "the deployment to finish", func() error {
		h.JSON(t, "GET", "/api/deployments/"+dep.ID, nil, 200, &dep)
		switch dep.Status {
		case "succeeded", "rolled_back", "failed":
			return nil
		}
		return fmt.Errorf("status %s", dep.Status)
	})
	t.Logf("deployment %s: %s", dep.ID, dep.Status)

	testenv.WaitFor(t, 60*time.Second, "Prometheus scraping the hub and the runtime", func() error {
		for _, q := range []string{`up{job="redforge-hub"} == 1`, `up{job="redforge-runtime"} == 1`,
			`agent_workflow_duration_seconds_count{job="redforge-hub"}`, `controltower_deployment_finished_timestamp_seconds`} {
			r, err := promQuery(prom, q, true)
			if err != nil || len(r.Data.Result) == 0 {
				return fmt.Errorf("%s: %v (no result)", q, err)
			}
		}
		return nil
	})
	// Let rate() windows fill with the load.
	testenv.WaitFor(t, 60*time.Second, "rates over the load", func() error {
		r, err := promQuery(prom, `sum(rate(agent_workflow_duration_seconds_count{job="redforge-hub"}[30s])) > 0`, true)
		if err != nil || len(r.Data.Result) == 0 {
			return fmt.Errorf("no rate yet: %v", err)
		}
		return nil
	})
	n := 0
	for _, s := range Specs() {
		for _, p := range s.Panels {
			for _, q := range p.Queries {
				n++
				var r promResult
				var err error
				testenv.WaitFor(t, 30*time.Second, s.Title+" / "+p.Title, func() error {
					r, err = promQuery(prom, q.Expr, q.Instant)
					if err != nil {
						return nil // a bad query does not get better: reported below
					}
					if q.Key && len(r.Data.Result) == 0 {
						return fmt.Errorf("%s: no data", q.Expr)
					}
					return nil
				})
				if err != nil {
					t.Errorf("%s / %s: %s: %v", s.Title, p.Title, q.Expr, err)
				}
			}
		}
	}
	t.Logf("%d dashboard queries checked against Prometheus", n)
}
