package hub_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/hubtest"
)

// TestPatchRaftApplies: a PATCH of an instance's env is one Raft apply,
// and a PATCH of its replicas while a deployment color serves it is two
// (the logical row, then the live color row; it used to write the logical
// row twice), both rows ending with the new count. Other writers may add
// entries (the scheduler reacts to the new count), never remove them, so
// the fewest over up to ten tries is the PATCH's own count.
func TestPatchRaftApplies(t *testing.T) {
	h := hubtest.Start(t)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "counted", "desired_state": "stopped"}, 201, &inst)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	color := catalog.Instance{ID: inst.ID + "-green", Name: "counted.green", DesiredState: catalog.DesiredStopped, Replicas: 1}
	if _, err := h.Raft.Apply(ctx, catalog.UpsertInstance(color)); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Raft.Apply(ctx, catalog.SetInstanceLive(inst.ID, color.ID)); err != nil {
		t.Fatal(err)
	}
	applies := func(body map[string]any, want uint64) uint64 {
		fewest := uint64(1 << 62)
		for range 10 {
			before := h.State.Index()
			h.JSON(t, "PATCH", "/api/instances/counted", body, 200, nil)
			if fewest = min(fewest, h.State.Index()-before); fewest <= want {
				break
			}
		}
		return fewest
	}
	if n := applies(map[string]any{"env": map[string]string{"K": "v"}}, 1); n != 1 {
		t.Errorf("PATCH env: %d Raft applies, want 1", n)
	}
	for _, replicas := range []int{2, 3} {
		if n := applies(map[string]any{"replicas": replicas}, 2); n != 2 {
			t.Errorf("PATCH replicas %d on a live color: %d Raft applies, want 2", replicas, n)
		}
		for _, id := range []string{inst.ID, color.ID} {
			if row, err := h.State.Instance(id); err != nil || row.Replicas != replicas {
				t.Errorf("row %s after PATCH replicas %d: %d replicas, %v", id, replicas, row.Replicas, err)
			}
		}
	}
}

// TestConcurrentPatchesAllApply: 48 clients PATCH one instance at once,
// each adding its own secret_env key. None may be refused because the
// others got in first (a PATCH without a precondition has nothing to
// conflict with), and none may be lost: the instance ends with every key.
func TestConcurrentPatchesAllApply(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "busy", "desired_state": "stopped"}, 201, nil)
	const clients = 48
	var wg sync.WaitGroup
	codes := make([]int, clients)
	bodies := make([]string, clients)
	for i := range clients {
		wg.Go(func() {
			code, b := h.Do(t, "PATCH", "/api/instances/busy", h.AdminToken, map[string]any{"secret_env": map[string]any{fmt.Sprintf("K%02d", i): "v"}})
			codes[i], bodies[i] = code, string(b)
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Errorf("PATCH %d = %d %s", i, code, bodies[i])
		}
	}
	var inst struct {
		Keys []string `json:"secret_env_keys"`
	}
	h.JSON(t, "GET", "/api/instances/busy", nil, 200, &inst)
	if len(inst.Keys) != clients {
		t.Errorf("the instance holds %d secret_env keys, want %d: %v", len(inst.Keys), clients, inst.Keys)
	}
}
