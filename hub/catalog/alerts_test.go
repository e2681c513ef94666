package catalog

import (
	"testing"
	"time"
)

// TestAlertFiresOnceAtATime: a series (its active key) has at most one
// firing alert; once resolved, the key can fire again as a new alert.
func TestAlertFiresOnceAtATime(t *testing.T) {
	a := fixture(t)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.must(PutAlert(Alert{ID: "a-2", RuleID: "r-1", State: "firing", Active: "r-1/xyz", StartsAt: t0}, IfIndex(0)))
	a.fails(PutAlert(Alert{ID: "a-3", RuleID: "r-1", State: "firing", Active: "r-1/xyz", StartsAt: t0}, IfIndex(0)), ErrConflict)
	a.fails(PutAlert(Alert{ID: "a-2", RuleID: "r-1", State: "firing", Active: "r-1/xyz", StartsAt: t0}, IfIndex(0)), ErrConflict)
	a.fails(PutAlert(Alert{ID: "a-4", RuleID: "r-1", State: "firing", StartsAt: t0}), ErrInvalid)
	cur, err := a.s.Alert("a-2")
	if err != nil {
		t.Fatal(err)
	}
	cur.State, cur.Active, cur.EndsAt = "resolved", "", t0.Add(time.Minute)
	a.must(PutAlert(cur, IfIndex(cur.ModifyIndex)))
	a.must(PutAlert(Alert{ID: "a-3", RuleID: "r-1", State: "firing", Active: "r-1/xyz", StartsAt: t0.Add(2 * time.Minute)}, IfIndex(0)))
	firing := a.s.FiringAlerts()
	if len(firing) != 2 { // a-1 from the fixture and a-3
		t.Fatalf("firing = %+v", firing)
	}
	if all := a.s.Alerts(); all[0].ID != "a-3" {
		t.Fatalf("alerts not newest first: %s", all[0].ID)
	}
	a.fails(SetAlertDelivery("a-3", 0, AlertDelivery{Status: "sent"}), ErrInvalid)
	a.fails(SetAlertDelivery("nope", 0, AlertDelivery{Status: "sent"}), ErrNotFound)
	a.fails(PutAlertRule(AlertRule{ID: "r-2", Name: "INSTANCE DOWN", Metric: "m", Condition: ">", Severity: "info"}), ErrConflict)
}
