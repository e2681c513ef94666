package catalog

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

// TestPlacementFencing: only the hub an allocation is placed on may report
// it; a hub that lost its allocation to a move is refused (the fence), and
// a move is one command (no moment with both or neither).
func TestPlacementFencing(t *testing.T) {
	a := fixture(t)
	a.fails(SetAllocationObserved("i-1-b", "hub-a", AllocObserved{Status: "running"}), ErrConflict)
	a.must(ApplyPlan(Plan{Delete: []string{"i-1-a"}, Put: []Allocation{{ID: "i-1-z", InstanceID: "i-1", Replica: 0, Hub: "hub-b", Reason: "rescheduled from hub-a: lost"}}}))
	a.fails(SetAllocationObserved("i-1-a", "hub-a", AllocObserved{Status: "running"}), ErrNotFound)
	if got := a.s.InstanceAllocations("i-1"); len(got) != 2 || got[0].ID != "i-1-z" || got[1].ID != "i-1-b" {
		t.Fatalf("allocations after the move: %+v", got)
	}
	// A plan that fails half way changes nothing.
	before := a.s.Allocations()
	a.fails(ApplyPlan(Plan{Delete: []string{"i-1-z"}, Put: []Allocation{{ID: "x", InstanceID: "missing", Hub: "hub-a"}}}), ErrNotFound)
	if after := a.s.Allocations(); len(after) != len(before) {
		t.Fatalf("failed plan changed allocations: %d → %d", len(before), len(after))
	}
	a.fails(ApplyPlan(Plan{Put: []Allocation{{ID: "y", InstanceID: "i-1", Replica: MaxReplicas, Hub: "hub-a"}}}), ErrInvalid)
}

// TestInstanceSummary: an instance's Observed is its best replica's state,
// counting the replicas running, and follows every allocation change.
func TestInstanceSummary(t *testing.T) {
	a := fixture(t)
	a.must(SetAllocationObserved("i-1-b", "hub-b", AllocObserved{Status: "running", Port: 18801, Host: "10.0.0.2"}))
	inst, _ := a.s.Instance("i-1")
	if inst.Observed.Status != "running" || inst.Observed.Message != "2/2 replicas running" {
		t.Fatalf("summary with two running: %+v", inst.Observed)
	}
	a.must(SetAllocationObserved("i-1-a", "hub-a", AllocObserved{Status: "failed", Message: "exit 1"}))
	a.must(SetAllocationObserved("i-1-b", "hub-b", AllocObserved{Status: "starting"}))
	inst, _ = a.s.Instance("i-1")
	if inst.Observed.Status != "starting" || inst.Observed.Message != "0/2 replicas running" {
		t.Fatalf("summary with none running: %+v", inst.Observed)
	}
	a.must(ApplyPlan(Plan{Delete: []string{"i-1-a", "i-1-b"}}))
	inst, _ = a.s.Instance("i-1")
	if inst.Observed.Status != "pending" {
		t.Fatalf("summary with no allocation: %+v", inst.Observed)
	}
}

// TestHubRegistration: a draining hub that was lost stays draining when it
// registers again after a restart, and is up again.
func TestHubRegistration(t *testing.T) {
	a := fixture(t)
	a.must(RegisterHub(Hub{ID: "hub-b", Region: "eu-west", API: "http://10.0.0.9:3000"}))
	h, _ := a.s.Hub("hub-b")
	if !h.Draining || h.State != HubUp || h.API != "http://10.0.0.9:3000" {
		t.Fatalf("re-registered draining hub: %+v", h)
	}
	a.must(SetHubState("hub-a", HubDown, t0, "lost"))
	a.must(RegisterHub(Hub{ID: "hub-a", Region: "eu-west"}))
	if h, _ := a.s.Hub("hub-a"); h.State != HubUp {
		t.Fatalf("a down hub that registers is %s", h.State)
	}
	a.fails(SetHubState("hub-a", "sideways", t0, ""), ErrInvalid)
}

// TestDeleteInstanceCascadesPlacement: an instance's allocations, flows,
// credentials and move go with it.
func TestDeleteInstanceCascadesPlacement(t *testing.T) {
	a := fixture(t)
	a.must(DeleteInstance("i-1"))
	if got := a.s.InstanceAllocations("i-1"); len(got) != 0 {
		t.Fatalf("allocations remain: %+v", got)
	}
	if _, err := a.s.InstanceFlows("i-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("flows remain: %v", err)
	}
	if _, err := a.s.InstanceCredentials("i-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("credentials remain: %v", err)
	}
	a.fails(PutFlows(Flows{InstanceID: "i-1", Doc: []byte(`[]`), SHA: FlowsSHA([]byte(`[]`))}), ErrNotFound)
	a.fails(PutFlows(Flows{InstanceID: "i-2", Doc: []byte(`[]`), SHA: "nope"}), ErrInvalid)
}

// TestRestoreFormat1Fixture restores a snapshot written by the format-1
// code (testdata/snapshot-v1.bin, committed): every row comes back, and the
// hub directory and regional moves kept in settings move to their tables.
func TestRestoreFormat1Fixture(t *testing.T) {
	b, err := os.ReadFile("testdata/snapshot-v1.bin")
	if err != nil {
		t.Fatal(err)
	}
	s := NewState()
	if err := s.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("restore a format-1 snapshot: %v", err)
	}
	if inst, err := s.Instance("i-1"); err != nil || inst.Name != "orders" || inst.Observed.RuntimeID != "c0ffee" {
		t.Fatalf("instance i-1 after restore: %+v, %v", inst, err)
	}
	if u, err := s.UserByName("admin"); err != nil || u.PasswordHash != "$2a$hash" {
		t.Fatalf("user after restore: %+v, %v", u, err)
	}
	if h, err := s.Hub("hub-a"); err != nil || h.API != "http://10.0.0.1:3000" || h.Region != "eu-west" || h.State != HubUp || h.CreateIndex == 0 {
		t.Fatalf("hub directory entry not moved to the hubs table: %+v, %v", h, err)
	}
	if m, err := s.Move("i-1"); err != nil || m.To != "us-east" || m.Home != "eu-west" {
		t.Fatalf("move not moved to the moves table: %+v, %v", m, err)
	}
	for _, st := range s.Settings() {
		if st.Key == "cluster.hub/hub-a" || st.Key == "regions.move/i-1" {
			t.Fatalf("legacy setting %q left behind", st.Key)
		}
	}
	// And it snapshots again in the current format, identically restored.
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	s2 := NewState()
	if err := s2.Restore(&buf); err != nil {
		t.Fatalf("restore the re-written snapshot: %v", err)
	}
	if len(s2.Hubs()) != 1 || len(s2.Moves()) != 1 {
		t.Fatalf("after a second round trip: hubs %v moves %v", s2.Hubs(), s2.Moves())
	}
}
