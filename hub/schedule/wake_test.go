package schedule

import (
	"context"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

type hubsOnly []catalog.Hub

func (h hubsOnly) Instances() []catalog.Instance                  { return nil }
func (h hubsOnly) Allocations() []catalog.Allocation              { return nil }
func (h hubsOnly) Hubs() []catalog.Hub                            { return h }
func (h hubsOnly) Moves() []catalog.Move                          { return nil }
func (h hubsOnly) WatchPlacement(context.Context) <-chan struct{} { return nil }

// A leader wakes when an up hub's silence reaches LostAfter, not up to an
// interval later; a follower and a hub already down keep the interval.
func TestNextWakeIsTheEarliestLostDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	contact := map[string]time.Time{"b": now.Add(-2500 * time.Millisecond), "c": now.Add(-time.Second)}
	s := New(Config{Self: "a", LostAfter: 3 * time.Second, Interval: time.Second}, Deps{
		Catalog:     hubsOnly{{ID: "a", State: catalog.HubUp}, {ID: "b", State: catalog.HubUp}, {ID: "c", State: catalog.HubUp}, {ID: "d", State: catalog.HubDown}},
		LastContact: func(id string) (time.Time, bool) { at, ok := contact[id]; return at, ok },
	})
	s.now = func() time.Time { return now }
	if got := s.nextWake(); got != time.Second {
		t.Fatalf("follower waits %v, want the interval", got)
	}
	s.termStart = now.Add(-time.Minute)
	if got := s.nextWake(); got != 500*time.Millisecond {
		t.Fatalf("leader waits %v, want 500ms (b is lost then)", got)
	}
	contact["b"] = now.Add(-time.Hour) // overdue: the next round is at once
	if got := s.nextWake(); got != 10*time.Millisecond {
		t.Fatalf("leader waits %v with an overdue hub, want the floor of 10ms", got)
	}
}
