package schedule

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

var t0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// world is a catalog the tests change between Compute rounds, as the Raft
// log would.
type world struct {
	t      *testing.T
	insts  []catalog.Instance
	allocs []catalog.Allocation
	hubs   []catalog.Hub
	moves  []catalog.Move
	next   int
}

func newWorld(t *testing.T, hubs ...string) *world {
	w := &world{t: t}
	for _, h := range hubs {
		id, region := splitHub(h)
		w.hubs = append(w.hubs, catalog.Hub{ID: id, Region: region, State: catalog.HubUp})
	}
	return w
}

func splitHub(s string) (string, string) {
	for i := range s {
		if s[i] == '@' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func (w *world) input() Input {
	return Input{Instances: w.insts, Allocations: w.allocs, Hubs: w.hubs, Moves: w.moves, Now: t0,
		NewID: func(row string) string { w.next++; return fmt.Sprintf("%s-%d", row, w.next) }}
}

// round computes and applies one plan, returning it.
func (w *world) round() Output {
	out := Compute(w.input())
	for _, id := range out.Plan.Delete {
		w.allocs = slices.DeleteFunc(w.allocs, func(a catalog.Allocation) bool { return a.ID == id })
	}
	for _, a := range out.Plan.Put {
		i := slices.IndexFunc(w.allocs, func(b catalog.Allocation) bool { return b.ID == a.ID })
		if i >= 0 {
			a.Observed = w.allocs[i].Observed
			w.allocs[i] = a
		} else {
			a.CreateIndex = uint64(len(w.allocs) + w.next)
			w.allocs = append(w.allocs, a)
		}
	}
	for _, m := range out.PutMoves {
		w.moves = append(slices.DeleteFunc(w.moves, func(x catalog.Move) bool { return x.Instance == m.Instance }), m)
	}
	for _, id := range out.DeleteMoves {
		w.moves = slices.DeleteFunc(w.moves, func(x catalog.Move) bool { return x.Instance == id })
	}
	return out
}

// settle runs rounds until nothing changes, marking every allocation
// running (or stopped when asked to stop) between rounds, like the hubs.
func (w *world) settle() {
	for i := 0; i < 10; i++ {
		for j := range w.allocs {
			w.allocs[j].Observed.Status = "running"
			if w.allocs[j].Desired == catalog.AllocStop {
				w.allocs[j].Observed.Status = "stopped"
			}
		}
		if w.round().Empty() {
			return
		}
	}
	w.t.Fatalf("the plan does not settle: %+v", w.allocs)
}

func (w *world) hubsOf(row string) []string {
	var out []string
	for _, a := range w.allocs {
		if a.InstanceID == row {
			out = append(out, a.Hub)
		}
	}
	slices.Sort(out)
	return out
}

func (w *world) setHub(id string, f func(*catalog.Hub)) {
	for i := range w.hubs {
		if w.hubs[i].ID == id {
			f(&w.hubs[i])
		}
	}
}

func TestReplicasSpreadOverDistinctHubs(t *testing.T) {
	w := newWorld(t, "a@us", "b@us", "c@us", "d@eu")
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us", Replicas: 2}}
	w.settle()
	if got := w.hubsOf("i1"); len(got) != 2 || got[0] == got[1] || slices.Contains(got, "d") {
		t.Fatalf("2 replicas in us on distinct hubs, got %v", got)
	}
}

func TestMoreReplicasThanHubsGoToTheLeastLoaded(t *testing.T) {
	w := newWorld(t, "a@us", "b@us")
	w.insts = []catalog.Instance{
		{ID: "big", Name: "big", Region: "us", Resources: catalog.Resources{MemoryMB: 4096}},
		{ID: "i1", Name: "one", Region: "us", Replicas: 3, Resources: catalog.Resources{MemoryMB: 512}},
	}
	w.settle()
	big := w.hubsOf("big")[0]
	got := w.hubsOf("i1")
	n := 0
	for _, h := range got {
		if h == big {
			n++
		}
	}
	if len(got) != 3 || n != 1 {
		t.Fatalf("3 replicas on 2 hubs, at most one beside the big instance on %s: %v", big, got)
	}
}

func TestLostHubIsReplacedInTheRegion(t *testing.T) {
	w := newWorld(t, "a@us", "b@us", "c@us")
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us"}}
	w.settle()
	lost := w.hubsOf("i1")[0]
	w.setHub(lost, func(h *catalog.Hub) { h.State = catalog.HubDown })
	out := w.round()
	if len(out.Plan.Delete) != 1 || len(out.Plan.Put) != 1 {
		t.Fatalf("a lost hub's replica is moved in one plan: %+v", out.Plan)
	}
	if got := w.hubsOf("i1"); len(got) != 1 || got[0] == lost {
		t.Fatalf("replica still on the lost hub: %v", got)
	}
	if out.Notes[len(out.Notes)-1].Reason != "rescheduled from "+lost+": hub lost" {
		t.Fatalf("reason: %+v", out.Notes)
	}
}

func TestDrainKeepsServingUntilTheReplacementRuns(t *testing.T) {
	w := newWorld(t, "a@us", "b@us")
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us"}}
	w.settle()
	old := w.hubsOf("i1")[0]
	w.setHub(old, func(h *catalog.Hub) { h.Draining = true })
	out := w.round()
	if len(out.Plan.Delete) != 0 || len(out.Plan.Put) != 1 {
		t.Fatalf("drain: place the replacement first and keep the old one: %+v", out.Plan)
	}
	if out := w.round(); !out.Empty() {
		t.Fatalf("old removed before its replacement runs: %+v", out.Plan)
	}
	w.settle()
	if got := w.hubsOf("i1"); len(got) != 1 || got[0] == old {
		t.Fatalf("after the drain: %v", got)
	}
}

func TestNothingOnDrainingOrDownHubs(t *testing.T) {
	w := newWorld(t, "a@us", "b@us", "c@us")
	w.setHub("a", func(h *catalog.Hub) { h.Draining = true })
	w.setHub("b", func(h *catalog.Hub) { h.State = catalog.HubDown })
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us", Replicas: 3}}
	w.settle()
	if got := w.hubsOf("i1"); !slices.Equal(got, []string{"c", "c", "c"}) {
		t.Fatalf("replicas only on the up hub: %v", got)
	}
}

func TestScaleDownRemovesTheHighestReplicas(t *testing.T) {
	w := newWorld(t, "a@us", "b@us", "c@us")
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us", Replicas: 3}}
	w.settle()
	w.insts[0].Replicas = 1
	w.settle()
	if len(w.allocs) != 1 || w.allocs[0].Replica != 0 {
		t.Fatalf("after scaling to 1: %+v", w.allocs)
	}
}

func TestFailoverAndBackWithNoTwoLiveWriters(t *testing.T) {
	w := newWorld(t, "a@us", "b@eu")
	w.insts = []catalog.Instance{
		{ID: "f", Name: "fail", Region: "us", Placement: catalog.PlacementFailover},
		{ID: "p", Name: "pin", Region: "us", Placement: catalog.PlacementPinned},
	}
	w.settle()
	w.setHub("a", func(h *catalog.Hub) { h.State = catalog.HubDown })
	w.settle()
	if got := w.hubsOf("f"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("failover instance not in eu: %v", got)
	}
	if got := w.hubsOf("p"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("pinned instance moved: %v", got)
	}
	if len(w.moves) != 1 || w.moves[0].To != "eu" || w.moves[0].Home != "us" {
		t.Fatalf("move record: %+v", w.moves)
	}
	// Home is back: the eu replica is asked to stop, and nothing is placed
	// at home until it has stopped.
	w.setHub("a", func(h *catalog.Hub) { h.State = catalog.HubUp })
	out := w.round()
	if len(out.Plan.Put) != 1 || out.Plan.Put[0].Desired != catalog.AllocStop || out.Plan.Put[0].Hub != "b" {
		t.Fatalf("first step back: stop the away replica: %+v", out.Plan)
	}
	if out := w.round(); !out.Empty() {
		t.Fatalf("placed at home before the away replica stopped: %+v", out.Plan)
	}
	w.settle()
	if got := w.hubsOf("f"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("failover instance not back home: %v", got)
	}
	if len(w.moves) != 0 {
		t.Fatalf("move record kept after the return: %+v", w.moves)
	}
}

func TestPlanIsPure(t *testing.T) {
	w := newWorld(t, "a@us", "b@us")
	w.insts = []catalog.Instance{{ID: "i1", Name: "one", Region: "us", Replicas: 2}}
	a, b := Compute(w.input()), Compute(w.input())
	w.next = 0
	c := Compute(w.input())
	if len(a.Plan.Put) != 2 || a.Plan.Put[0].Hub != c.Plan.Put[0].Hub || len(b.Plan.Put) != 2 {
		t.Fatalf("same input, different plans: %+v / %+v", a.Plan, c.Plan)
	}
}

// BenchmarkCompute is the scheduler's own time to plan 100 instances × 2
// replicas onto 3 hubs from nothing, and to find nothing to do once
// placed.
func BenchmarkCompute(b *testing.B) {
	w := &world{t: &testing.T{}}
	for _, h := range []string{"a", "b", "c"} {
		w.hubs = append(w.hubs, catalog.Hub{ID: h, Region: "us", State: catalog.HubUp})
	}
	for i := range 100 {
		w.insts = append(w.insts, catalog.Instance{ID: fmt.Sprintf("i%03d", i), Name: fmt.Sprintf("n%03d", i), Region: "us", Replicas: 2})
	}
	in := w.input()
	b.Run("place-100x2", func(b *testing.B) {
		for range b.N {
			if out := Compute(in); len(out.Plan.Put) != 200 {
				b.Fatalf("%d placed", len(out.Plan.Put))
			}
		}
	})
	w.round()
	placed := w.input()
	b.Run("steady-100x2", func(b *testing.B) {
		for range b.N {
			if out := Compute(placed); !out.Empty() {
				b.Fatal("a placed fleet is planned again")
			}
		}
	})
}
