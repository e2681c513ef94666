package catalog

import (
	"bytes"
	"context"
	"testing"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// fired reports whether any channel of ws is closed. memdb closes watch
// channels inside Commit, so right after Apply returns this is exact.
func fired(ws memdb.WatchSet) bool {
	for ch := range ws {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: watch channel not closed within 5s", what)
	}
}

// TestWatchFiresOnChangeOnly checks the watch sets the Watch methods use:
// they fire on a change to what was read, not on other tables or rows.
func TestWatchFiresOnChangeOnly(t *testing.T) {
	cases := []struct {
		name      string
		read      func(s *State, ws memdb.WatchSet)
		unrelated []Command
		related   Command
	}{
		{
			name:      "instances",
			read:      func(s *State, ws memdb.WatchSet) { s.readInstances(ws) },
			unrelated: []Command{PutUser(User{ID: "u-3", Username: "new"}), PutSetting("x", 1), PutDeployment(Deployment{ID: "d-3", InstanceID: "i-1"}), RecordEdgeHeartbeat("g-1", t0, 9)},
			related:   DeleteInstance("i-2"),
		},
		{
			name:      "one instance",
			read:      func(s *State, ws memdb.WatchSet) { get[Instance](s.read(ws), ws, tableInstances, "i-1") },
			unrelated: []Command{SetInstanceObserved("i-2", Observed{Status: "failed"}), UpsertInstance(Instance{ID: "i-0", Name: "zero"}), PutUser(User{ID: "u-3", Username: "new"})},
			related:   SetInstanceObserved("i-1", Observed{Status: "failed"}),
		},
		{
			name:      "missing instance",
			read:      func(s *State, ws memdb.WatchSet) { get[Instance](s.read(ws), ws, tableInstances, "i-7") },
			unrelated: []Command{PutEdge(Edge{ID: "g-7", Name: "g7"})},
			related:   UpsertInstance(Instance{ID: "i-7", Name: "seven"}),
		},
		{
			name:      "deployments",
			read:      func(s *State, ws memdb.WatchSet) { s.readDeployments(ws, "") },
			unrelated: []Command{UpsertInstance(Instance{ID: "i-3", Name: "three"}), PutSetting("x", 2)},
			related:   PutDeployment(Deployment{ID: "d-1", InstanceID: "i-1", Phase: PhaseResume}),
		},
		{
			name:      "edges",
			read:      func(s *State, ws memdb.WatchSet) { s.readEdges(ws) },
			unrelated: []Command{PutEnrollmentToken(EnrollmentToken{Hash: "e9"}), PutRegion(Region{Name: "ap"})},
			related:   RecordEdgeHeartbeat("g-2", t0, 1),
		},
		{
			name:      "api tokens",
			read:      func(s *State, ws memdb.WatchSet) { s.readAPITokens(ws) },
			unrelated: []Command{PutUser(User{ID: "u-3", Username: "new"})},
			related:   RevokeAPIToken("t-1", t0),
		},
		{
			name:      "setting",
			read:      func(s *State, ws memdb.WatchSet) { get[Setting](s.read(ws), ws, tableSettings, "banner") },
			unrelated: []Command{PutSetting("retention_days", 7)},
			related:   PutSetting("banner", "bye"),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := fixture(t)
			ws := memdb.NewWatchSet()
			tc.read(a.s, ws)
			for _, cmd := range tc.unrelated {
				a.must(cmd)
				if fired(ws) {
					t.Fatalf("watch fired on unrelated %s", cmd.Type)
				}
			}
			a.must(tc.related)
			if !fired(ws) {
				t.Fatalf("watch did not fire on %s", tc.related.Type)
			}
		})
	}
}

func TestWatchChannels(t *testing.T) {
	a := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	insts, index, ch := a.s.WatchInstances(ctx)
	if len(insts) != 2 || index != a.s.TableIndex(tableInstances) {
		t.Fatalf("WatchInstances = %d rows at index %d", len(insts), index)
	}
	_, one, err := a.s.WatchInstance(ctx, "i-1")
	if err != nil {
		t.Fatal(err)
	}
	_, missing, err := a.s.WatchDeployment(ctx, "d-9")
	if err == nil {
		t.Fatal("WatchDeployment of a missing deployment: no error")
	}
	_, _, deps := a.s.WatchDeployments(ctx, "i-1")
	_, edge, _ := a.s.WatchEdge(ctx, "g-1")
	_, _, edges := a.s.WatchEdges(ctx)
	_, _, toks := a.s.WatchAPITokens(ctx)
	_, setting, _ := a.s.WatchSetting(ctx, "banner")

	a.must(UpsertInstance(Instance{ID: "i-1", Name: "orders", FlowsVersion: "v3"}))
	waitClosed(t, ch, "WatchInstances")
	waitClosed(t, one, "WatchInstance")
	a.must(PutDeployment(Deployment{ID: "d-9", InstanceID: "i-1"}))
	waitClosed(t, missing, "WatchDeployment (created)")
	waitClosed(t, deps, "WatchDeployments")
	a.must(RecordEdgeHeartbeat("g-1", t0, 1))
	waitClosed(t, edge, "WatchEdge")
	waitClosed(t, edges, "WatchEdges")
	a.must(RevokeAPIToken("t-1", t0))
	waitClosed(t, toks, "WatchAPITokens")
	a.must(PutSetting("banner", 1))
	waitClosed(t, setting, "WatchSetting")
}

// TestRestoreWakesWatchers: a restore replaces the store, so every watcher
// of the old one must wake up and read again.
func TestRestoreWakesWatchers(t *testing.T) {
	a := fixture(t)
	snap := persist(t, a.s)
	ctx := context.Background()
	_, _, ch := a.s.WatchInstances(ctx)
	_, one, _ := a.s.WatchSetting(ctx, "banner")
	if err := a.s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, ch, "WatchInstances across a restore")
	waitClosed(t, one, "WatchSetting across a restore")
}

// TestWatchNotClosedOnCancel: cancelling the context ends the watch without
// reporting a change.
func TestWatchNotClosedOnCancel(t *testing.T) {
	a := fixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, _, ch := a.s.WatchInstances(ctx)
	cancel()
	a.must(PutUser(User{ID: "u-3", Username: "new"}))
	select {
	case <-ch:
		t.Fatal("channel closed without a change")
	default:
	}
}
