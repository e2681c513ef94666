package hub_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// bgFlows reads an example flows document from packaging/nodered/flows.
func bgFlows(t testing.TB, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("../packaging/nodered/flows/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type bgDeployment struct {
	ID       string          `json:"id"`
	Phase    string          `json:"phase"`
	Status   string          `json:"status"`
	Progress int             `json:"progress"`
	Error    string          `json:"error"`
	Held     int64           `json:"held"`
	Smoke    json.RawMessage `json:"smoke"`
	History  []struct {
		Phase   string    `json:"phase"`
		Status  string    `json:"status"`
		At      time.Time `json:"at"`
		Message string    `json:"message"`
	} `json:"history"`
}

// bgDeploy starts a deployment and waits until it ends.
func bgDeploy(t testing.TB, h *hubtest.Hub, body map[string]any) bgDeployment {
	t.Helper()
	var d bgDeployment
	h.JSON(t, "POST", "/api/deployments", body, 201, &d)
	testenv.WaitFor(t, 3*time.Minute, "deployment "+d.ID+" to finish", func() error {
		h.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		switch d.Status {
		case "succeeded", "rolled_back", "failed":
			return nil
		}
		return fmt.Errorf("%s %s %d%%", d.Status, d.Phase, d.Progress)
	})
	var phases []string
	for i, r := range d.History {
		end := time.Now()
		if i+1 < len(d.History) {
			end = d.History[i+1].At
		}
		phases = append(phases, fmt.Sprintf("%s/%s %s %q", r.Phase, r.Status, end.Sub(r.At).Round(time.Millisecond), r.Message))
	}
	t.Logf("deployment %s: %s (%s)\n  %s\n  smoke %s", d.ID, d.Status, d.Error, strings.Join(phases, "\n  "), d.Smoke)
	return d
}

// bgLoad sends HTTP requests through /i/{name}/hello and MQTT messages to
// redforge/in/{name}/load (hubtest.SeqLoad), each at rate per second, until
// stop is called (or a minute passes), and records what came back.
type bgLoad struct {
	*hubtest.SeqLoad
	h        *hubtest.Hub
	name     string
	stop     chan struct{}
	done     sync.WaitGroup
	mu       sync.Mutex
	http     []bgReq
	stopOnce sync.Once
	// from, to bound the deployment, for latency during it vs steady state.
	from, to time.Time
}

type bgReq struct {
	start   time.Time
	latency time.Duration
	status  int
	version string
	err     error
}

func startLoad(t testing.TB, h *hubtest.Hub, name string, rate int) *bgLoad {
	l := &bgLoad{h: h, name: name, stop: make(chan struct{}), SeqLoad: hubtest.StartSeqLoad(t, h, name, rate, time.Minute)}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	deadline := time.After(time.Minute)
	l.done.Add(1)
	go func() { // HTTP
		defer l.done.Done()
		tk := time.NewTicker(time.Second / time.Duration(rate))
		defer tk.Stop()
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			select {
			case <-l.stop:
				return
			case <-deadline:
				return
			case <-tk.C:
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := bgReq{start: time.Now()}
				resp, err := client.Get(h.URL + "/i/" + name + "/hello")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					r.status = resp.StatusCode
					var v struct {
						Version string `json:"version"`
					}
					_ = json.Unmarshal(b, &v)
					r.version = v.Version
				}
				r.err, r.latency = err, time.Since(r.start)
				l.mu.Lock()
				l.http = append(l.http, r)
				l.mu.Unlock()
			}()
		}
	}()
	t.Cleanup(l.finish)
	return l
}

func (l *bgLoad) finish() {
	l.stopOnce.Do(func() { close(l.stop); l.done.Wait(); l.StopSending() })
}

// loadStats are the figures of one load run.
type loadStats struct {
	sent, replies, lost, duplicated int
	requests, failed                int
	p99Steady, p99During            time.Duration
}

// settle waits until n more HTTP requests of the load have been answered
// (a steady state to compare the deployment's latency with, or a tail
// after it).
func (l *bgLoad) settle(t testing.TB, n int) {
	t.Helper()
	l.mu.Lock()
	want := len(l.http) + n
	l.mu.Unlock()
	testenv.WaitFor(t, 30*time.Second, fmt.Sprintf("%d more answers under load", n), func() error {
		l.mu.Lock()
		defer l.mu.Unlock()
		if len(l.http) < want {
			return fmt.Errorf("%d of %d", len(l.http), want)
		}
		return nil
	})
}

// check stops the load, waits for every reply and checks: no failed
// request, every message processed exactly once and in order
// (hubtest.CheckSeqReplies), and the reply versions go from `from` to
// `to` (equal when nothing switched).
func (l *bgLoad) check(t testing.TB, from, to string) loadStats {
	t.Helper()
	l.finish()
	outs, sent := l.Finish(t, 30*time.Second)
	st := loadStats{sent: int(sent), replies: len(outs)}
	st.lost, st.duplicated = hubtest.CheckSeqReplies(t, outs, sent, from, to)
	l.mu.Lock()
	defer l.mu.Unlock()
	st.requests = len(l.http)
	// HTTP: no failure, replies switch.
	sort.Slice(l.http, func(i, j int) bool { return l.http[i].start.Before(l.http[j].start) })
	failed := 0
	var lat, steady, during []time.Duration
	for _, r := range l.http {
		if !l.from.IsZero() && !r.start.Before(l.from) && r.start.Before(l.to) {
			during = append(during, r.latency)
		} else {
			steady = append(steady, r.latency)
		}
		if r.err != nil || r.status != 200 {
			failed++
			if failed <= 5 {
				t.Errorf("request at %s failed: %d %v", r.start.Format("15:04:05.000"), r.status, r.err)
			}
		}
		lat = append(lat, r.latency)
	}
	if n := len(l.http); n > 0 && (l.http[0].version != from || l.http[n-1].version != to) {
		t.Errorf("HTTP replies went from %s to %s, want %s to %s", l.http[0].version, l.http[n-1].version, from, to)
	}
	p := func(lat []time.Duration, q float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[int(float64(len(lat)-1)*q)].Round(100 * time.Microsecond)
	}
	t.Logf("load: %d messages sent, %d replies; %d HTTP requests, %d failed; latency p50 %s p99 %s max %s; "+
		"p99 steady state %s (%d requests) vs during the deployment %s (%d requests)",
		sent, len(outs), len(l.http), failed, p(lat, 0.5), p(lat, 0.99), p(lat, 1),
		p(steady, 0.99), len(steady), p(during, 0.99), len(during))
	if failed > 0 {
		t.Errorf("%d of %d HTTP requests failed", failed, len(l.http))
	}
	st.failed, st.p99Steady, st.p99During = failed, p(steady, 0.99), p(during, 0.99)
	return st
}

// TestBlueGreenDeploy deploys v1 then, under load of 100 HTTP requests/s
// through /i/bg/ and 100 MQTT messages/s to redforge/in/bg/, v2, then a
// build whose smoke test fails (rolled back), then rolls v2 back by hand:
// no request fails, no message is lost, duplicated or reordered. Run with
// the process and the docker driver.
func TestBlueGreenDeploy(t *testing.T) {
	for _, driver := range bgDrivers {
		t.Run(driver, func(t *testing.T) { testBlueGreenDeploy(t, driver) })
	}
}

func testBlueGreenDeploy(t *testing.T, driver string) {
	h := hubtest.Start(t, withDriver(t, driver))
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "bg"}, 201, &inst)

	// v1 onto the fresh instance: it has no flows, so drain times out.
	d1 := bgDeploy(t, h, map[string]any{"instance": "bg", "flows": bgFlows(t, "bluegreen-v1.json"),
		"drain_timeout": "1s", "rollback_window": "0s",
		"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v1"`}}})
	if d1.Status != "succeeded" {
		t.Fatalf("v1 deployment: %s %s", d1.Status, d1.Error)
	}

	evs := watchDeployments(t, h)
	load := startLoad(t, h, "bg", 100)
	load.settle(t, 200)
	load.from = time.Now()
	d2 := bgDeploy(t, h, map[string]any{"instance": "bg", "flows": bgFlows(t, "bluegreen-v2.json"),
		"drain_timeout": "30s", "rollback_window": "5m",
		"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v2"`}}})
	if d2.Status != "succeeded" {
		t.Fatalf("v2 deployment: %s %s", d2.Status, d2.Error)
	}
	load.to = time.Now()
	evs.check(t, d2.ID, "DRAIN/running", "DEPLOY/running", "VERIFY/running", "RESUME/running", "AUDIT/running", "CLEANUP/running", "CLEANUP/succeeded")
	if !strings.Contains(fmt.Sprint(d2.History), "blue acknowledged drain") {
		t.Errorf("blue running the example flows did not ack the drain: %+v", d2.History)
	}
	load.settle(t, 200)
	load.check(t, "v1", "v2")
	code, body := h.Do(t, "GET", "/api/audit?action=DEPLOYMENT_COMPLETED", h.AdminToken, nil)
	for _, want := range []string{d2.ID, `"username":"admin"`, "phase_durations", "from_flows_version", "replayed_messages"} {
		if code != 200 || !strings.Contains(string(body), want) {
			t.Errorf("DEPLOYMENT_COMPLETED records lack %s: %d %s", want, code, body)
		}
	}

	t.Run("smoke failure rolls back", func(t *testing.T) {
		load := startLoad(t, h, "bg", 100)
		load.settle(t, 200)
		load.from = time.Now()
		d3 := bgDeploy(t, h, map[string]any{"instance": "bg", "flows": bgFlows(t, "bluegreen-broken.json"),
			"drain_timeout": "30s",
			"smoke":         map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v3"`}}})
		evs.check(t, d3.ID, "DRAIN/running", "DEPLOY/running", "VERIFY/running", "VERIFY/rolled_back")
		if d3.Status != "rolled_back" || !strings.Contains(d3.Error, "smoke test http") {
			t.Errorf("broken deployment: %s %q, want rolled_back by the http smoke test", d3.Status, d3.Error)
		}
		load.to = time.Now()
		load.settle(t, 100)
		load.check(t, "v2", "v2")
	})

	t.Run("manual rollback", func(t *testing.T) {
		load := startLoad(t, h, "bg", 100)
		load.settle(t, 200)
		var d bgDeployment
		load.from = time.Now()
		h.JSON(t, "POST", "/api/deployments/"+d2.ID+"/rollback", nil, 200, &d)
		load.to = time.Now()
		if d.Status != "rolled_back" {
			t.Errorf("after rollback: %s", d.Status)
		}
		load.settle(t, 200)
		load.check(t, "v2", "v1")
		code, body := h.Do(t, "GET", "/api/audit?action=DEPLOYMENT_ROLLED_BACK", h.AdminToken, nil)
		if code != 200 || !strings.Contains(string(body), d2.ID) || !strings.Contains(string(body), "rolled back by admin") {
			t.Errorf("no DEPLOYMENT_ROLLED_BACK record of the manual rollback: %d %s", code, body)
		}
		// A second rollback is refused.
		if code, body := h.Do(t, "POST", "/api/deployments/"+d2.ID+"/rollback", h.AdminToken, nil); code != 409 {
			t.Errorf("second rollback = %d %s, want 409", code, body)
		}
	})
}

// TestDeploymentBadFlows: invalid flows are refused with 400 naming the
// node, before anything starts.
func TestDeploymentBadFlows(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "bad", "desired_state": "stopped"}, 201, nil)
	cases := []struct {
		flows any
		want  string
	}{
		{map[string]any{"id": "x"}, "JSON array"},
		{[]any{map[string]any{"id": "n1"}}, `node \"n1\"`},
		{[]any{map[string]any{"id": "n1", "type": "inject", "wires": [][]string{{"nope"}}}}, "n1"},
		{[]any{map[string]any{"id": "n1", "type": "a"}, map[string]any{"id": "n1", "type": "b"}}, "duplicates"},
	}
	for _, c := range cases {
		code, body := h.Do(t, "POST", "/api/deployments", h.AdminToken, map[string]any{"instance": "bad", "flows": c.flows})
		if code != 400 || !strings.Contains(string(body), c.want) || !strings.Contains(string(body), "invalid_flows") {
			t.Errorf("flows %v: %d %s, want 400 naming %s", c.flows, code, body, c.want)
		}
	}
	if code, body := h.Do(t, "GET", "/api/deployments", h.AdminToken, nil); code != 200 || !strings.Contains(string(body), `"count":0`) {
		t.Errorf("deployments after refusals: %d %s", code, body)
	}
	if code, _ := h.Do(t, "POST", "/api/deployments", h.AdminToken, map[string]any{"instance": "nope", "flows": []any{}}); code != 404 {
		t.Errorf("unknown instance = %d, want 404", code)
	}
	if code, _ := h.Do(t, "GET", "/i/nope/hello", "", nil); code != 404 {
		t.Errorf("proxy to unknown instance = %d, want 404", code)
	}
}

// deploymentEvents records deployment.phase and deployment.progress
// events from /api/ws in the background.
type deploymentEvents struct {
	mu     sync.Mutex
	phases map[string][]string // deployment id → phase/status sequence
	moves  map[string]int      // deployment id → progress events
}

func watchDeployments(t *testing.T, h *hubtest.Hub) *deploymentEvents {
	t.Helper()
	url := "ws" + strings.TrimPrefix(h.URL, "http") + "/api/ws?types=deployment.phase,deployment.progress"
	conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + h.AdminToken}})
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	w := &deploymentEvents{phases: map[string][]string{}, moves: map[string]int{}}
	go func() {
		for {
			var e struct {
				Type string `json:"type"`
				Data struct {
					ID     string `json:"id"`
					Phase  string `json:"phase"`
					Status string `json:"status"`
				} `json:"data"`
			}
			if err := conn.ReadJSON(&e); err != nil {
				return
			}
			w.mu.Lock()
			switch e.Type {
			case "deployment.phase":
				w.phases[e.Data.ID] = append(w.phases[e.Data.ID], e.Data.Phase+"/"+e.Data.Status)
			case "deployment.progress":
				w.moves[e.Data.ID]++
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *deploymentEvents) check(t *testing.T, id string, want ...string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, "deployment events", func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if got := strings.Join(w.phases[id], " "); got != strings.Join(want, " ") || w.moves[id] == 0 {
			return fmt.Errorf("deployment.phase %q, want %q; %d deployment.progress events", got, strings.Join(want, " "), w.moves[id])
		}
		return nil
	})
}
