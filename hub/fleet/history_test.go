package fleet

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
)

// fsm applies commands to a catalog.State as the Raft FSM does, at
// increasing indexes (one hub, no network).
type fsm struct {
	mu    sync.Mutex
	state *catalog.State
	index uint64
}

func (f *fsm) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.index++
	return f.state.Apply(f.index, cmd)
}

// TestStatusTransitionsRecordedOnceAcrossRestarts drives setStatus on one
// manager, then on a second one standing in for the same hub restarted
// (nothing tracked, the catalog as the first left it): every change of
// status is recorded once with the status before it; repeats,
// message-only changes and the restarted manager's first look at an
// unchanged status are not.
func TestStatusTransitionsRecordedOnceAcrossRestarts(t *testing.T) {
	ctx := t.Context()
	db := sqlite.New(filepath.Join(t.TempDir(), "store.db"))
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	f := &fsm{state: catalog.NewState()}
	if _, err := f.Apply(ctx, catalog.UpsertInstance(catalog.Instance{ID: "i1", Name: "alpha"})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(ctx, catalog.ApplyPlan(catalog.Plan{Put: []catalog.Allocation{{ID: "a1", InstanceID: "i1", Hub: "hub-1"}}})); err != nil {
		t.Fatal(err)
	}
	newManager := func() *Manager {
		m := NewManager(Config{HubID: "hub-1"}, Deps{Catalog: f.state, Applier: f})
		m.RecordHistory(db, nil)
		return m
	}
	set := func(m *Manager, status, msg string) {
		t.Helper()
		work, _ := f.state.WatchHubWork(ctx, "hub-1")
		if len(work) != 1 {
			t.Fatalf("work of hub-1: %+v", work)
		}
		m.setStatus(ctx, work[0], status, msg, Runtime{})
	}
	old := newManager()
	set(old, StatusStarting, "")
	set(old, StatusRunning, "")
	set(old, StatusRunning, "")
	set(old, StatusUnhealthy, "health check failed (1 of 3)")
	set(old, StatusUnhealthy, "health check failed (2 of 3)")

	leader := newManager()
	set(leader, StatusUnhealthy, "health check failed (2 of 3)")
	set(leader, StatusRunning, "")

	trs, err := db.ListStatusTransitions(ctx, store.TransitionFilter{InstanceID: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(trs) - 1; i >= 0; i-- {
		tr := trs[i]
		if tr.RowID != "i1" || tr.RowName != "alpha" || tr.Time.IsZero() {
			t.Fatalf("transition %+v", tr)
		}
		got = append(got, tr.PrevStatus+">"+tr.Status)
	}
	want := ">starting starting>running running>unhealthy unhealthy>running"
	if strings.Join(got, " ") != want {
		t.Fatalf("transitions %q, want %q", strings.Join(got, " "), want)
	}
	if trs[1].Message != "health check failed (1 of 3)" {
		t.Errorf("the unhealthy transition keeps the message of the change: %q", trs[1].Message)
	}
}

// TestCancelledRoundRecordsNothing: a status set with the round's context
// already cancelled (the hub stopping, e.g. a start cut short waiting for
// the hub's API) writes nothing to the catalog: the allocation keeps the
// status it had, so a deployment resumed by the next leader does not read
// the cancellation as its green failing.
func TestCancelledRoundRecordsNothing(t *testing.T) {
	f := &fsm{state: catalog.NewState()}
	ctx := t.Context()
	if _, err := f.Apply(ctx, catalog.UpsertInstance(catalog.Instance{ID: "i1", Name: "alpha"})); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Apply(ctx, catalog.ApplyPlan(catalog.Plan{Put: []catalog.Allocation{{ID: "a1", InstanceID: "i1", Hub: "hub-1"}}})); err != nil {
		t.Fatal(err)
	}
	m := NewManager(Config{HubID: "hub-1"}, Deps{Catalog: f.state, Applier: f})
	work, _ := f.state.WatchHubWork(ctx, "hub-1")
	m.setStatus(ctx, work[0], StatusStarting, "", Runtime{})
	before := f.index
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	work, _ = f.state.WatchHubWork(ctx, "hub-1")
	m.setStatus(stopped, work[0], StatusError, "instance spec: waiting for the hub API to listen: context canceled", Runtime{})
	if f.index != before {
		t.Fatalf("a cancelled round wrote %d commands", f.index-before)
	}
	work, _ = f.state.WatchHubWork(ctx, "hub-1")
	if got := work[0].Alloc.Observed.Status; got != StatusStarting {
		t.Fatalf("allocation status %q after a cancelled round, want %q", got, StatusStarting)
	}
}
