package router

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

func newTestRouter(t *testing.T, targets ...string) *Router {
	t.Helper()
	r, err := New(Config{Targets: targets, FailuresToDown: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		r.ReportSuccess(tg, 1)
	}
	return r
}

// TestWeighted: picks follow the weights; down targets and zero weights
// are never picked.
func TestWeighted(t *testing.T) {
	r := newTestRouter(t, "a", "b", "c")
	w := map[string]float64{"a": 90, "b": 10}
	counts := map[string]int{}
	const n = 10000
	for i := range n {
		tg, ok := r.Weighted(w, (float64(i)+0.5)/n)
		if !ok {
			t.Fatal("no pick")
		}
		counts[tg]++
	}
	if counts["a"] != 9000 || counts["b"] != 1000 || counts["c"] != 0 {
		t.Fatalf("counts = %v, want a 9000 b 1000", counts)
	}
	r.ReportFailure("a", errors.New("down"))
	for i := range 100 {
		if tg, _ := r.Weighted(w, float64(i)/100); tg != "b" {
			t.Fatalf("picked %s with a down", tg)
		}
	}
	r.ReportFailure("b", errors.New("down"))
	if tg, ok := r.Weighted(w, 0.5); ok {
		t.Fatalf("picked %s with every weighted target down", tg)
	}
}

// TestSticky: a key keeps its target; when that target goes down only its
// keys move, and they return when it recovers; shares follow the weights.
func TestSticky(t *testing.T) {
	r := newTestRouter(t, "a", "b", "c")
	before := map[string]string{}
	shares := map[string]int{}
	const n = 3000
	for i := range n {
		k := fmt.Sprint("edge-", i)
		tg, ok := r.Sticky(k, nil)
		if !ok {
			t.Fatal("no pick")
		}
		if again, _ := r.Sticky(k, nil); again != tg {
			t.Fatalf("key %s moved from %s to %s with nothing changed", k, tg, again)
		}
		before[k] = tg
		shares[tg]++
	}
	for tg, c := range shares {
		if math.Abs(float64(c)-n/3) > n/3*0.15 {
			t.Errorf("share of %s = %d of %d", tg, c, n)
		}
	}
	r.ReportFailure("b", errors.New("down"))
	for k, was := range before {
		now, _ := r.Sticky(k, nil)
		if (was != "b" && now != was) || now == "b" {
			t.Fatalf("key %s: was %s, now %s with b down", k, was, now)
		}
	}
	r.ReportSuccess("b", 1)
	r.ReportSuccess("b", 1) // SuccessesToUp
	for k, was := range before {
		if now, _ := r.Sticky(k, nil); now != was {
			t.Fatalf("key %s did not return to %s: %s", k, was, now)
		}
	}
	heavy := map[string]int{}
	for i := range n {
		tg, _ := r.Sticky(fmt.Sprint("k", i), map[string]float64{"a": 3, "b": 1, "c": 0})
		heavy[tg]++
	}
	if heavy["c"] != 0 || math.Abs(float64(heavy["a"])/n-0.75) > 0.05 {
		t.Fatalf("weighted sticky shares = %v, want a≈75%%, b≈25%%, c 0", heavy)
	}
}
