package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// bgDrivers are the fleet drivers the blue-green tests run with: the
// process driver and the docker driver (the test dockerd, host
// networking, the local Node-RED image).
var bgDrivers = []string{"process", "docker"}

// withDriver is the hubtest.Start option for a fleet driver.
func withDriver(tb testing.TB, name string) func(*hub.Config) {
	return func(c *hub.Config) {
		c.Driver = name
		if name == "docker" {
			c.DockerHost = testenv.Docker(tb)
			c.DockerNetwork = "host"
			c.Image = testenv.NodeREDImage(tb)
		}
	}
}

// proxyJSON sends a request through the hub's /i/{name}/ proxy and decodes
// the JSON reply, failing the test unless the status is 200.
func proxyJSON(t *testing.T, h *hubtest.Hub, method, path string, body any, out any) {
	t.Helper()
	code, b := h.Do(t, method, path, "", body)
	if code != http.StatusOK {
		t.Fatalf("%s %s = %d %s", method, path, code, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, b)
	}
}

type ctxReply struct {
	Key     string          `json:"key"`
	Value   json.RawMessage `json:"value"`
	Version string          `json:"version"`
	Error   string          `json:"error"`
}

// readContext reads a global context key of the "redis" store through the
// example flows' GET /context and checks which version answered.
func readContext(t *testing.T, h *hubtest.Hub, name, key, version string) string {
	t.Helper()
	var r ctxReply
	proxyJSON(t, h, "GET", "/i/"+name+"/context?key="+key, nil, &r)
	if r.Version != version || r.Error != "" {
		t.Fatalf("GET /i/%s/context?key=%s answered by %q (error %q), want %s", name, key, r.Version, r.Error, version)
	}
	return string(r.Value)
}

// TestBlueGreenSharedState: with Redis coordination, Node-RED context
// that blue writes to the "redis" store is read by green after a
// deployment and by blue again after a rollback (what green wrote too),
// and is not seen by another logical instance; a workflow checkpoint that
// blue's flow records through the hub API with its injected token is
// replayed to green during DEPLOY, and the deployment counts it. Run with
// the process and the docker driver.
func TestBlueGreenSharedState(t *testing.T) {
	for _, driver := range bgDrivers {
		t.Run(driver, func(t *testing.T) { testBlueGreenSharedState(t, driver) })
	}
}

func testBlueGreenSharedState(t *testing.T, driver string) {
	redisURL := testenv.Redis(t)
	h := hubtest.Start(t, withDriver(t, driver), func(c *hub.Config) { c.Redis = redisURL })
	var st, other struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "st"}, 201, &st)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "other"}, 201, &other)
	for _, name := range []string{"st", "other"} {
		d := bgDeploy(t, h, map[string]any{"instance": name, "flows": bgFlows(t, "bluegreen-v1.json"),
			"drain_timeout": "1s", "rollback_window": "0s",
			"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v1"`}}})
		if d.Status != "succeeded" {
			t.Fatalf("v1 to %s: %s %s", name, d.Status, d.Error)
		}
	}

	// Blue (v1) writes context and records two checkpoints of a workflow.
	var set ctxReply
	proxyJSON(t, h, "POST", "/i/st/context", map[string]any{"key": "greeting", "value": map[string]any{"n": 1, "by": "blue"}}, &set)
	if set.Version != "v1" || set.Error != "" {
		t.Fatalf("context set by %q: %s", set.Version, set.Error)
	}
	for _, step := range []string{"fetch", "summarise"} {
		var r struct {
			Status int             `json:"status"`
			Hub    json.RawMessage `json:"hub"`
		}
		proxyJSON(t, h, "POST", "/i/st/checkpoint", map[string]any{"workflow_id": "wf-1", "step": step,
			"state": map[string]any{"done": step}}, &r)
		if r.Status != 201 {
			t.Fatalf("checkpoint %s through the hub API from blue's flow = %d %s", step, r.Status, r.Hub)
		}
	}
	var cps struct {
		Checkpoints []struct {
			WorkflowID string          `json:"workflow_id"`
			InstanceID string          `json:"instance_id"`
			Step       string          `json:"step"`
			State      json.RawMessage `json:"state"`
		} `json:"checkpoints"`
	}
	h.JSON(t, "GET", "/api/checkpoints?instance=st", nil, 200, &cps)
	if len(cps.Checkpoints) != 1 || cps.Checkpoints[0].Step != "summarise" || cps.Checkpoints[0].InstanceID != st.ID {
		t.Fatalf("latest checkpoints of st = %+v, want wf-1 at summarise for %s", cps.Checkpoints, st.ID)
	}

	// The context lives in the hub's Redis under the logical instance's prefix.
	rdb := goredis.NewClient(mustRedisOptions(t, redisURL))
	defer rdb.Close()
	prefix := hub.ContextPrefix(st.ID)
	if v, err := rdb.HGet(context.Background(), prefix+"global", "greeting").Result(); err != nil || !strings.Contains(v, `"blue"`) {
		t.Fatalf("HGET %sglobal greeting = %q, %v", prefix, v, err)
	}

	// Another logical instance has its own context.
	if v := readContext(t, h, "other", "greeting", "v1"); v != "null" {
		t.Errorf("instance other reads st's context: %s", v)
	}

	// Deploy v2: green reads blue's context and received the checkpoint.
	d2 := bgDeploy(t, h, map[string]any{"instance": "st", "flows": bgFlows(t, "bluegreen-v2.json"),
		"drain_timeout": "30s", "rollback_window": "5m",
		"smoke": map[string]any{"http": map[string]any{"path": "/hello", "expect_contains": `"v2"`}}})
	if d2.Status != "succeeded" {
		t.Fatalf("v2: %s %s", d2.Status, d2.Error)
	}
	var view struct {
		Checkpoints int `json:"checkpoints_replayed"`
	}
	h.JSON(t, "GET", "/api/deployments/"+d2.ID, nil, 200, &view)
	if view.Checkpoints != 1 {
		t.Errorf("deployment records %d checkpoints replayed, want 1", view.Checkpoints)
	}
	if v := readContext(t, h, "st", "greeting", "v2"); !strings.Contains(v, `"by":"blue"`) {
		t.Errorf("green reads greeting = %s, want what blue wrote", v)
	}
	testenv.WaitFor(t, 30*time.Second, "green to hold the replayed checkpoint", func() error {
		var r struct {
			Version  string `json:"version"`
			Replayed map[string]struct {
				Step  string          `json:"step"`
				State json.RawMessage `json:"state"`
			} `json:"replayed"`
		}
		proxyJSON(t, h, "GET", "/i/st/checkpoints/replayed", nil, &r)
		if got := r.Replayed["wf-1"]; r.Version != "v2" || got.Step != "summarise" || !strings.Contains(string(got.State), "summarise") {
			return fmt.Errorf("%s holds %+v", r.Version, r.Replayed)
		}
		return nil
	})
	proxyJSON(t, h, "POST", "/i/st/context", map[string]any{"key": "later", "value": "from green"}, &set)
	if set.Version != "v2" {
		t.Fatalf("second context write answered by %s", set.Version)
	}

	// Roll back: blue again, with both keys.
	var rb bgDeployment
	h.JSON(t, "POST", "/api/deployments/"+d2.ID+"/rollback", nil, 200, &rb)
	if rb.Status != "rolled_back" {
		t.Fatalf("rollback: %s %s", rb.Status, rb.Error)
	}
	// Known gap (see the closing note): right after the rollback answers,
	// the proxy may not yet see blue's replica as running (503 "no running
	// replica" for a moment). Wait for it to serve before reading state.
	testenv.WaitFor(t, 30*time.Second, "blue serving after the rollback", func() error {
		if code, body, err := get(h.URL + "/i/st/context?key=later"); err != nil || code != 200 {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	if v := readContext(t, h, "st", "later", "v1"); v != `"from green"` {
		t.Errorf("blue after the rollback reads later = %s, want what green wrote", v)
	}
	if v := readContext(t, h, "st", "greeting", "v1"); !strings.Contains(v, `"by":"blue"`) {
		t.Errorf("blue after the rollback reads greeting = %s", v)
	}
}

func mustRedisOptions(t *testing.T, url string) *goredis.Options {
	t.Helper()
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// TestCheckpointAPI: POST /api/checkpoints refuses bad input with 400
// naming the field, an instance token writes only for its own instance
// (403 otherwise) and cannot read; GET returns the latest checkpoint of
// each workflow, or one workflow's history.
func TestCheckpointAPI(t *testing.T) {
	h := hubtest.Start(t)
	var a, b struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "cpa", "desired_state": "stopped"}, 201, &a)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "cpb", "desired_state": "stopped"}, 201, &b)
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "cpa", "role": "OPERATOR", "scope": "instance", "instance_id": a.ID}, 201, &tok)
	viewer := h.CreateUser(t, "cpviewer", "VIEWER")
	operator := h.CreateUser(t, "cpoperator", "OPERATOR")

	anHourAgo := time.Now().UTC().Add(-time.Hour).Truncate(time.Second).Format(time.RFC3339) // within the hub's ±24 h skew bound
	cases := []struct {
		name, token string
		body        any
		status      int
		want        string // in the body
	}{
		{"no instance", h.AdminToken, map[string]any{"workflow_id": "w"}, 400, `"field":"instance_id"`},
		{"no workflow", h.AdminToken, map[string]any{"instance_id": a.ID}, 400, `"field":"workflow_id"`},
		{"step not text", h.AdminToken, map[string]any{"instance_id": a.ID, "workflow_id": "w", "step": 5}, 400, `"field":"step"`},
		{"bad time", h.AdminToken, map[string]any{"instance_id": a.ID, "workflow_id": "w", "time": "yesterday"}, 400, `"field":"time"`},
		{"NUL in step", h.AdminToken, map[string]any{"instance_id": a.ID, "workflow_id": "w", "step": "a\x00b"}, 400, `"field":"step"`},
		{"unknown field", h.AdminToken, map[string]any{"instance_id": a.ID, "workflow_id": "w", "stage": 1}, 400, "stage"},
		{"not JSON", h.AdminToken, []byte(`{"instance_id":`), 400, "invalid_argument"},
		{"unknown instance", h.AdminToken, map[string]any{"instance_id": "nope", "workflow_id": "w"}, 404, `"field":"instance_id"`},
		{"token for another instance", tok.Token, map[string]any{"instance_id": b.ID, "workflow_id": "w"}, 403, `"field":"instance_id"`},
		{"viewer", viewer, map[string]any{"instance_id": a.ID, "workflow_id": "w"}, 403, "forbidden"},
		{"operator", operator, map[string]any{"instance_id": a.ID, "workflow_id": "w"}, 403, "forbidden"},
		{"token, own instance implied", tok.Token, map[string]any{"workflow_id": "w1", "step": "one", "state": map[string]any{"n": 1}}, 201, a.ID},
		{"token, own instance by name", tok.Token, map[string]any{"instance_id": "cpa", "workflow_id": "w1", "step": "two", "state": map[string]any{"n": 2}}, 201, a.ID},
		{"admin, by name", h.AdminToken, map[string]any{"instance_id": "cpb", "workflow_id": "w1", "step": "b-one"}, 201, b.ID},
		{"admin, second workflow", h.AdminToken, map[string]any{"instance_id": a.ID, "workflow_id": "w2", "step": "x", "time": anHourAgo}, 201, anHourAgo},
	}
	for _, c := range cases {
		code, body := h.Do(t, "POST", "/api/checkpoints", c.token, c.body)
		if code != c.status || !strings.Contains(string(body), c.want) {
			t.Errorf("%s: POST /api/checkpoints = %d %s, want %d with %s", c.name, code, body, c.status, c.want)
		}
	}

	gets := []struct {
		name, token, query string
		status             int
		want               []string
	}{
		{"latest per workflow", viewer, "?instance=cpa", 200, []string{`"count":2`, `"step":"two"`, `"workflow_id":"w2"`}},
		{"by id", h.AdminToken, "?instance=" + b.ID, 200, []string{`"count":1`, `"step":"b-one"`}},
		{"one workflow's history", h.AdminToken, "?workflow_id=w1", 200, []string{`"count":3`}},
		{"one workflow of one instance", h.AdminToken, "?workflow_id=w1&instance=cpb", 200, []string{`"count":1`, "b-one"}},
		{"nothing asked", h.AdminToken, "", 400, []string{`"field":"instance"`}},
		{"bad limit", h.AdminToken, "?workflow_id=w1&limit=abc", 400, []string{`"field":"limit"`}},
		{"unknown instance", h.AdminToken, "?instance=nope", 404, []string{`"field":"instance"`}},
		{"instance token may not read", tok.Token, "?instance=cpa", 403, []string{"forbidden"}},
	}
	for _, g := range gets {
		code, body := h.Do(t, "GET", "/api/checkpoints"+g.query, g.token, nil)
		ok := code == g.status
		for _, w := range g.want {
			ok = ok && strings.Contains(string(body), w)
		}
		if !ok {
			t.Errorf("%s: GET /api/checkpoints%s = %d %s, want %d with %v", g.name, g.query, code, body, g.status, g.want)
		}
	}
}
