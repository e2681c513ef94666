package hub_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestRestartAdoptsInstances restarts the hub on the same data dir: the
// running instance is adopted as it is (same process), not duplicated.
func TestRestartAdoptsInstances(t *testing.T) {
	dir := t.TempDir()
	raft := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	same := func(c *hub.Config) { c.DataDir, c.RaftListen = dir, raft }

	h1 := hubtest.Start(t, same)
	w := watchStatus(t, h1)
	var inst instance
	h1.JSON(t, "POST", "/api/instances", map[string]any{"name": "kept"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	before, err := h1.Driver.Inspect(t.Context(), placed(t, h1, "kept").runtimeID(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}

	h2 := hubtest.Start(t, same)
	testenv.WaitFor(t, 30*time.Second, "instance seen running by the new hub", func() error {
		var got instance
		if code, body := h2.Do(t, "GET", "/api/instances/kept", h2.AdminToken, nil); code != 200 {
			return fmt.Errorf("GET = %d %s", code, body)
		} else if err := json.Unmarshal(body, &got); err != nil {
			return err
		} else if got.Observed.Status != fleet.StatusRunning {
			return fmt.Errorf("status %q", got.Observed.Status)
		}
		return nil
	})
	rts, err := h2.Driver.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(rts) != 1 || rts[0].RuntimeID != before.RuntimeID {
		t.Fatalf("after restart runtimes = %+v; want only the adopted %s", rts, before.RuntimeID)
	}
}
