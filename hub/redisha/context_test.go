package redisha_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestNodeREDContextRidesRedisFailover: an instance's Node-RED context in
// the "redis" store (packaging/nodered/context-redis) goes through the
// hub's Sentinel URL, with the process driver and with the docker driver
// (the imported Node-RED image, host network): a value written before the
// Redis master's SIGKILL is read after Sentinel's failover, and writes
// succeed again on the new master without the runtime being restarted.
func TestNodeREDContextRidesRedisFailover(t *testing.T) {
	for _, driver := range []string{"process", "docker"} {
		t.Run(driver, func(t *testing.T) {
			t.Parallel()
			testContextRidesFailover(t, driver)
		})
	}
}

func testContextRidesFailover(t *testing.T, driver string) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: password})
	h := hubtest.Start(t, func(c *hub.Config) {
		c.Redis = cl.URL
		c.Driver = driver
		if driver == "docker" {
			c.DockerHost = testenv.Docker(t)
			c.DockerNetwork = "host"
			c.Image = testenv.NodeREDImage(t)
		}
	})
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "ha"}, 201, nil)
	if d := deploy(t, h, "bluegreen-v1.json"); d.Status != "succeeded" {
		t.Fatalf("v1: %s %s", d.Status, d.Error)
	}
	if r := contextCall(t, h, "POST", map[string]any{"key": "before", "value": map[string]any{"n": 1}}); r.Error != "" {
		t.Fatalf("context write before the kill: %s", r.Error)
	}
	cl.SyncReplicas(t) // the write acknowledged before the kill is on the replicas (Redis replicates asynchronously)
	before := allocations(t, h)
	old, killed := cl.KillMaster(t)
	master, took := cl.Failover(t, old, killed)
	t.Logf("%s: master %s SIGKILLed; Sentinel promoted %s after %s", driver, old, master, took.Round(time.Millisecond))
	testenv.WaitFor(t, 60*time.Second, "a context write on the new master", func() error {
		if r := contextCall(t, h, "POST", map[string]any{"key": "after", "value": "new master"}); r.Error != "" || r.Version != "v1" {
			return fmt.Errorf("answered by %q: %s", r.Version, r.Error)
		}
		return nil
	})
	for key, want := range map[string]string{"before": `{"n":1}`, "after": `"new master"`} {
		var r ctxReply
		testenv.WaitFor(t, 30*time.Second, "context "+key+" read back", func() error {
			if r = contextGet(t, h, key); r.Error != "" {
				return fmt.Errorf("%s", r.Error)
			}
			return nil
		})
		if string(r.Value) != want {
			t.Errorf("%s: context %s after the failover = %s, want %s", driver, key, r.Value, want)
		}
	}
	if after := allocations(t, h); after != before {
		t.Errorf("the runtime changed (restarted?) through the failover: %s → %s; the store should follow the master by itself", before, after)
	}
}

// allocations lists the instance's replicas with their status and since
// which time they have had it: a restart changes it.
func allocations(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	var inst struct {
		Allocations []struct {
			ID     string    `json:"id"`
			Status string    `json:"status"`
			Since  time.Time `json:"since"`
		} `json:"allocations"`
	}
	h.JSON(t, "GET", "/api/instances/ha", nil, 200, &inst)
	return fmt.Sprint(inst.Allocations)
}

// ctxReply is the example flows' answer on /context.
type ctxReply struct {
	Value   json.RawMessage `json:"value"`
	Version string          `json:"version"`
	Error   string          `json:"error"`
}

// contextCall sends the example flows' /context request through the
// hub's proxy; a proxy error is returned as the reply's Error.
func contextCall(t *testing.T, h *hubtest.Hub, method string, body any) ctxReply {
	t.Helper()
	code, b := h.Do(t, method, "/i/ha/context", "", body)
	return decodeCtx(code, b)
}

func contextGet(t *testing.T, h *hubtest.Hub, key string) ctxReply {
	t.Helper()
	code, b := h.Do(t, "GET", "/i/ha/context?key="+key, "", nil)
	return decodeCtx(code, b)
}

func decodeCtx(code int, b []byte) ctxReply {
	var r ctxReply
	if code != http.StatusOK {
		return ctxReply{Error: fmt.Sprintf("%d %s", code, b)}
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return ctxReply{Error: fmt.Sprintf("%v: %s", err, b)}
	}
	return r
}
