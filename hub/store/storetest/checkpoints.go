package storetest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func runCheckpoints(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("LatestPerWorkflow", func(t *testing.T) { testLatestCheckpoints(t, open(t)) })
	t.Run("ListNewestFirst", func(t *testing.T) { testListCheckpoints(t, open(t)) })
	t.Run("Invalid", func(t *testing.T) { testCheckpointsInvalid(t, open(t)) })
}

func checkpoint(wf, inst, step string, tm time.Time) store.Checkpoint {
	return store.Checkpoint{WorkflowID: wf, InstanceID: inst, Step: step, Time: tm,
		State: json.RawMessage(`{"step": "` + step + `", "memory": [1,2]}`)}
}

func mustPutCheckpoints(t *testing.T, s store.Store, cs ...store.Checkpoint) {
	t.Helper()
	for _, c := range cs {
		if err := s.PutCheckpoint(t.Context(), c); err != nil {
			t.Fatalf("PutCheckpoint(%+v): %v", c, err)
		}
	}
}

// sameCheckpoints compares got with want, ignoring the store-assigned IDs
// but requiring them to be set.
func sameCheckpoints(t *testing.T, what string, got, want []store.Checkpoint) {
	t.Helper()
	g := append([]store.Checkpoint(nil), got...)
	w := make([]store.Checkpoint, len(want))
	for i := range g {
		if g[i].ID <= 0 {
			t.Fatalf("%s: checkpoint %d has ID %d", what, i, g[i].ID)
		}
		g[i].ID = 0
	}
	for i, c := range want {
		c.Time = store.NormalizeTime(c.Time)
		c.State = store.NormalizeJSON(c.State)
		w[i] = c
	}
	if len(g) == 0 && len(w) == 0 {
		return
	}
	equal(t, what, g, w)
}

func testLatestCheckpoints(t *testing.T, s store.Store) {
	a1 := checkpoint("wf-a", "i1", "1", t0)
	a2 := checkpoint("wf-a", "i1", "2", t0.Add(time.Second))
	a3 := checkpoint("wf-a", "i1", "3", t0.Add(2*time.Second))
	b1 := checkpoint("wf-b", "i1", "plan", t0)
	b2 := checkpoint("wf-b", "i1", "act", t0) // same time as b1: the later append wins
	b2.State = nil
	c1 := checkpoint("wf-c", "i2", "x", t0.Add(time.Hour))
	// a3 arrives before the older a1/a2 (a late edge sync): latest is by time.
	mustPutCheckpoints(t, s, a3, a1, b1, c1, a2, b2)

	got, err := s.LatestCheckpoints(t.Context(), "i1")
	if err != nil {
		t.Fatal(err)
	}
	sameCheckpoints(t, "latest of i1", got, []store.Checkpoint{a3, b2})
	got, _ = s.LatestCheckpoints(t.Context(), "i2")
	sameCheckpoints(t, "latest of i2", got, []store.Checkpoint{c1})
	got, _ = s.LatestCheckpoints(t.Context(), "i3")
	sameCheckpoints(t, "latest of an unknown instance", got, nil)
}

func testListCheckpoints(t *testing.T, s store.Store) {
	var cs []store.Checkpoint
	for i := range 5 {
		cs = append(cs, checkpoint("wf", "i1", string(rune('a'+i)), t0.Add(time.Duration(i)*time.Minute)))
	}
	mustPutCheckpoints(t, s, cs...)
	mustPutCheckpoints(t, s, checkpoint("other", "i1", "z", t0.Add(time.Hour)))
	got, err := s.ListCheckpoints(t.Context(), "wf", 2)
	if err != nil {
		t.Fatal(err)
	}
	sameCheckpoints(t, "newest 2", got, []store.Checkpoint{cs[4], cs[3]})
	got, _ = s.ListCheckpoints(t.Context(), "wf", 0)
	sameCheckpoints(t, "default limit", got, []store.Checkpoint{cs[4], cs[3], cs[2], cs[1], cs[0]})
}

func testCheckpointsInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.Checkpoint)
	}{
		{"workflow_id", func(c *store.Checkpoint) { c.WorkflowID = "" }},
		{"instance_id", func(c *store.Checkpoint) { c.InstanceID = "" }},
		{"time", func(c *store.Checkpoint) { c.Time = time.Time{} }},
		{"state", func(c *store.Checkpoint) { c.State = json.RawMessage(`{'a':1}`) }},
		{"step", func(c *store.Checkpoint) { c.Step = "\x00" }},
	} {
		cp := checkpoint("wf", "i1", "1", t0)
		c.mutate(&cp)
		wantInvalid(t, s.PutCheckpoint(t.Context(), cp), c.field)
	}
	_, err := s.LatestCheckpoints(t.Context(), "")
	wantInvalid(t, err, "instance_id")
	_, err = s.ListCheckpoints(t.Context(), "", 1)
	wantInvalid(t, err, "workflow_id")
	_, err = s.ListCheckpoints(t.Context(), "wf", -1)
	wantInvalid(t, err, "limit")
	if got, _ := s.ListCheckpoints(t.Context(), "wf", 0); len(got) != 0 {
		t.Fatalf("refused checkpoints were written: %+v", got)
	}
}
