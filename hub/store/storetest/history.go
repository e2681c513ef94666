package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func runHistory(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("TransitionsNewestFirstFilteredAndPaged", func(t *testing.T) { testTransitions(t, open(t)) })
	t.Run("TransitionInvalidWritesNothing", func(t *testing.T) { testTransitionInvalid(t, open(t)) })
	t.Run("FlowsVersionsGaplessPerInstance", func(t *testing.T) { testFlowsVersions(t, open(t)) })
	t.Run("FlowsVersionsConcurrentAppendsGapless", func(t *testing.T) { testFlowsVersionsConcurrent(t, open(t)) })
	t.Run("FlowsVersionInvalidWritesNothing", func(t *testing.T) { testFlowsVersionInvalid(t, open(t)) })
	t.Run("TransitionsPrunedBeforeCutOff", func(t *testing.T) { testTransitionPrune(t, open(t)) })
	t.Run("FlowsVersionsPrunedToNewestPerInstance", func(t *testing.T) { testFlowsVersionPrune(t, open(t)) })
}

func testTransitionPrune(t *testing.T, s store.Store) {
	var all []store.StatusTransition // newest first, per instance
	for i := range 5 {
		for _, inst := range []string{"p1", "p2"} {
			tr := store.StatusTransition{Time: t0.Add(time.Duration(i) * time.Hour), InstanceID: inst, RowID: inst, Status: "running"}
			if err := s.AppendStatusTransition(t.Context(), &tr); err != nil {
				t.Fatal(err)
			}
			if inst == "p1" {
				all = append([]store.StatusTransition{tr}, all...)
			}
		}
	}
	cut := t0.Add(2 * time.Hour) // hours 0 and 1 go, for both instances
	n, err := s.PruneStatusTransitions(t.Context(), cut)
	if err != nil || n != 4 {
		t.Fatalf("PruneStatusTransitions = %d, %v; want 4", n, err)
	}
	equal(t, "after prune", mustListTransitions(t, s, store.TransitionFilter{InstanceID: "p1"}), all[:3])
	if got := mustListTransitions(t, s, store.TransitionFilter{InstanceID: "p2"}); len(got) != 3 {
		t.Fatalf("p2 kept %d transitions, want 3", len(got))
	}
	if n, err := s.PruneStatusTransitions(t.Context(), cut); err != nil || n != 0 {
		t.Fatalf("second prune = %d, %v; want 0", n, err)
	}
	_, err = s.PruneStatusTransitions(t.Context(), time.Time{})
	wantInvalid(t, err, "before")
}

func testFlowsVersionPrune(t *testing.T, s store.Store) {
	appendN := func(inst string, n int) {
		for i := range n {
			v := store.FlowsVersion{InstanceID: inst, Flows: json.RawMessage(fmt.Sprintf(`[{"id":"n%d"}]`, i)), Source: store.FlowsSourcePut}
			if err := s.AppendFlowsVersion(t.Context(), &v); err != nil {
				t.Fatal(err)
			}
		}
	}
	versions := func(inst string) []int64 {
		vs, err := s.ListFlowsVersions(t.Context(), store.FlowsVersionFilter{InstanceID: inst})
		if err != nil {
			t.Fatal(err)
		}
		out := []int64{}
		for _, v := range vs {
			out = append(out, v.Version)
		}
		return out
	}
	appendN("v1", 5)
	appendN("v2", 2)
	n, err := s.PruneFlowsVersions(t.Context(), 3)
	if err != nil || n != 2 {
		t.Fatalf("PruneFlowsVersions(3) = %d, %v; want 2", n, err)
	}
	equal(t, "v1 keeps its 3 newest", versions("v1"), []int64{5, 4, 3})
	equal(t, "v2 under the count keeps all", versions("v2"), []int64{2, 1})
	if _, err := s.GetFlowsVersion(t.Context(), "v1", 2); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a pruned version: %v, want ErrNotFound", err)
	}
	if v, err := s.GetFlowsVersion(t.Context(), "v1", 3); err != nil || string(v.Flows) != `[{"id":"n2"}]` {
		t.Fatalf("a kept version: %+v, %v", v, err)
	}
	appendN("v1", 1)
	equal(t, "numbering goes on", versions("v1"), []int64{6, 5, 4, 3})
	if n, err := s.PruneFlowsVersions(t.Context(), 1); err != nil || n != 4 {
		t.Fatalf("PruneFlowsVersions(1) = %d, %v; want 4", n, err)
	}
	equal(t, "keep 1", versions("v1"), []int64{6})
	equal(t, "keep 1, v2", versions("v2"), []int64{2})
	_, err = s.PruneFlowsVersions(t.Context(), 0)
	wantInvalid(t, err, "keep")
}

func mustListTransitions(t *testing.T, s store.Store, f store.TransitionFilter) []store.StatusTransition {
	t.Helper()
	got, err := s.ListStatusTransitions(t.Context(), f)
	if err != nil {
		t.Fatalf("ListStatusTransitions(%+v): %v", f, err)
	}
	return got
}

func testTransitions(t *testing.T, s store.Store) {
	statuses := []string{"creating", "starting", "running", "unhealthy", "running", "stopped"}
	var want []store.StatusTransition // newest first
	for i, st := range statuses {
		for _, inst := range []string{"i1", "i2"} {
			tr := store.StatusTransition{Time: t0.Add(time.Duration(i) * time.Minute), InstanceID: inst,
				RowID: inst + "-row", RowName: inst + ".abc", Status: st, Message: fmt.Sprintf("step %d", i)}
			if i > 0 {
				tr.PrevStatus = statuses[i-1]
			}
			in := tr
			if err := s.AppendStatusTransition(t.Context(), &tr); err != nil {
				t.Fatal(err)
			}
			if tr.ID == 0 || !tr.Time.Equal(in.Time) || tr.Time != store.NormalizeTime(in.Time) {
				t.Fatalf("append set ID %d, Time %v (from %v)", tr.ID, tr.Time, in.Time)
			}
			if inst == "i1" {
				want = append([]store.StatusTransition{tr}, want...)
			}
		}
	}
	equal(t, "all of i1", mustListTransitions(t, s, store.TransitionFilter{InstanceID: "i1"}), want)
	equal(t, "since (inclusive) and until (exclusive)", mustListTransitions(t, s, store.TransitionFilter{
		InstanceID: "i1", Since: want[4].Time, Until: want[1].Time}), want[2:5])
	equal(t, "limit and offset", mustListTransitions(t, s, store.TransitionFilter{InstanceID: "i1", Limit: 2, Offset: 1}), want[1:3])
	equal(t, "unknown instance", mustListTransitions(t, s, store.TransitionFilter{InstanceID: "nope"}), []store.StatusTransition{})

	// Same time: the later append (higher ID) comes first.
	a := store.StatusTransition{Time: t0.Add(time.Hour), InstanceID: "i3", RowID: "i3", Status: "starting"}
	b := store.StatusTransition{Time: t0.Add(time.Hour), InstanceID: "i3", RowID: "i3", Status: "running", PrevStatus: "starting"}
	for _, tr := range []*store.StatusTransition{&a, &b} {
		if err := s.AppendStatusTransition(t.Context(), tr); err != nil {
			t.Fatal(err)
		}
	}
	equal(t, "ties newest ID first", mustListTransitions(t, s, store.TransitionFilter{InstanceID: "i3"}), []store.StatusTransition{b, a})

	// Zero time: the store's clock.
	before := time.Now().Add(-time.Second)
	c := store.StatusTransition{InstanceID: "i4", RowID: "i4", Status: "running"}
	if err := s.AppendStatusTransition(t.Context(), &c); err != nil {
		t.Fatal(err)
	}
	if c.Time.Before(before) || c.Time.Location() != time.UTC {
		t.Fatalf("zero time became %v", c.Time)
	}
}

func testTransitionInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.StatusTransition)
	}{
		{"instance_id", func(tr *store.StatusTransition) { tr.InstanceID = "" }},
		{"row_id", func(tr *store.StatusTransition) { tr.RowID = "" }},
		{"status", func(tr *store.StatusTransition) { tr.Status = "" }},
		{"message", func(tr *store.StatusTransition) { tr.Message = "a\x00b" }},
		{"prev_status", func(tr *store.StatusTransition) { tr.PrevStatus = "\xff" }},
		{"time", func(tr *store.StatusTransition) { tr.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		tr := store.StatusTransition{Time: t0, InstanceID: "i1", RowID: "i1", Status: "running"}
		c.mutate(&tr)
		in := tr
		wantInvalid(t, s.AppendStatusTransition(t.Context(), &tr), c.field)
		equal(t, "refused transition unchanged", tr, in)
	}
	if got := mustListTransitions(t, s, store.TransitionFilter{InstanceID: "i1"}); len(got) != 0 {
		t.Fatalf("refused appends wrote %d transitions", len(got))
	}
	for _, c := range []struct {
		field string
		f     store.TransitionFilter
	}{
		{"instance_id", store.TransitionFilter{}},
		{"limit", store.TransitionFilter{InstanceID: "i1", Limit: -1}},
		{"limit", store.TransitionFilter{InstanceID: "i1", Limit: store.MaxLimit + 1}},
		{"offset", store.TransitionFilter{InstanceID: "i1", Offset: -1}},
		{"until", store.TransitionFilter{InstanceID: "i1", Since: t0, Until: t0.Add(-time.Microsecond)}},
	} {
		_, err := s.ListStatusTransitions(t.Context(), c.f)
		wantInvalid(t, err, c.field)
	}
}

func flowsDoc(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`[{"id":"tab%d","type":"tab","label":"Flow %d"}, {"id":"n%d","type":"inject","z":"tab%d"}]`, i, i, i, i))
}

func testFlowsVersions(t *testing.T, s store.Store) {
	var want []store.FlowsVersion // i1, newest first, without flows
	for i := 1; i <= 4; i++ {
		for _, inst := range []string{"i1", "i2"} {
			v := store.FlowsVersion{InstanceID: inst, Flows: flowsDoc(i), Source: store.FlowsSourcePut,
				UserID: "u1", Username: "alice", Time: t0.Add(time.Duration(i) * time.Minute)}
			if i%2 == 0 {
				v.Source, v.DeploymentID = store.FlowsSourceDeployment, fmt.Sprintf("d%d", i)
			}
			if err := s.AppendFlowsVersion(t.Context(), &v); err != nil {
				t.Fatal(err)
			}
			if v.Version != int64(i) {
				t.Fatalf("%s: version %d, want %d", inst, v.Version, i)
			}
			var check store.FlowsVersion
			check.Flows = flowsDoc(i)
			store.PrepareFlowsVersion(&check, 0, time.Now)
			if v.SHA256 != check.SHA256 || len(v.SHA256) != 64 || v.Size != int64(len(flowsDoc(i))) {
				t.Fatalf("sha256 %q size %d, want %q %d", v.SHA256, v.Size, check.SHA256, len(flowsDoc(i)))
			}
			sameTime(t, "flows version time", v.Time, t0.Add(time.Duration(i)*time.Minute))
			got, err := s.GetFlowsVersion(t.Context(), inst, v.Version)
			if err != nil {
				t.Fatal(err)
			}
			if !bytesEqual(got.Flows, flowsDoc(i)) {
				t.Fatalf("flows came back as %s", got.Flows)
			}
			equal(t, "get", got, v)
			if inst == "i1" {
				v.Flows = nil
				want = append([]store.FlowsVersion{v}, want...)
			}
		}
	}
	list := func(f store.FlowsVersionFilter) []store.FlowsVersion {
		t.Helper()
		got, err := s.ListFlowsVersions(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	equal(t, "list newest first without flows", list(store.FlowsVersionFilter{InstanceID: "i1"}), want)
	equal(t, "limit and offset", list(store.FlowsVersionFilter{InstanceID: "i1", Limit: 2, Offset: 1}), want[1:3])
	equal(t, "unknown instance", list(store.FlowsVersionFilter{InstanceID: "none"}), []store.FlowsVersion{})
	for _, c := range []struct {
		inst string
		v    int64
	}{{"i1", 5}, {"i1", 0}, {"none", 1}} {
		if _, err := s.GetFlowsVersion(t.Context(), c.inst, c.v); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("GetFlowsVersion(%s, %d) = %v, want ErrNotFound", c.inst, c.v, err)
		}
	}
}

func testFlowsVersionsConcurrent(t *testing.T, s store.Store) {
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := store.FlowsVersion{InstanceID: "i1", Flows: flowsDoc(i), Source: store.FlowsSourcePut}
			errs <- s.AppendFlowsVersion(t.Context(), &v)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListFlowsVersions(t.Context(), store.FlowsVersionFilter{InstanceID: "i1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("%d versions, want %d", len(got), n)
	}
	for i, v := range got {
		if v.Version != int64(n-i) {
			t.Fatalf("versions %v are not %d..1 without gaps", got, n)
		}
	}
}

func testFlowsVersionInvalid(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.FlowsVersion)
	}{
		{"instance_id", func(v *store.FlowsVersion) { v.InstanceID = "" }},
		{"flows", func(v *store.FlowsVersion) { v.Flows = nil }},
		{"flows", func(v *store.FlowsVersion) { v.Flows = json.RawMessage(`[{`) }},
		{"source", func(v *store.FlowsVersion) { v.Source = "upload" }},
		{"deployment_id", func(v *store.FlowsVersion) { v.Source = store.FlowsSourceDeployment }},
		{"deployment_id", func(v *store.FlowsVersion) { v.DeploymentID = "d1" }},
		{"username", func(v *store.FlowsVersion) { v.Username = "a\x00" }},
		{"time", func(v *store.FlowsVersion) { v.Time = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) }},
	} {
		v := store.FlowsVersion{InstanceID: "i1", Flows: flowsDoc(1), Source: store.FlowsSourcePut}
		c.mutate(&v)
		in := v
		wantInvalid(t, s.AppendFlowsVersion(t.Context(), &v), c.field)
		equal(t, "refused version unchanged", v, in)
	}
	got, err := s.ListFlowsVersions(t.Context(), store.FlowsVersionFilter{InstanceID: "i1"})
	if err != nil || len(got) != 0 {
		t.Fatalf("refused appends: %v, %v", got, err)
	}
	for _, c := range []struct {
		field string
		f     store.FlowsVersionFilter
	}{
		{"instance_id", store.FlowsVersionFilter{}},
		{"limit", store.FlowsVersionFilter{InstanceID: "i1", Limit: -1}},
		{"offset", store.FlowsVersionFilter{InstanceID: "i1", Offset: -1}},
	} {
		_, err := s.ListFlowsVersions(t.Context(), c.f)
		wantInvalid(t, err, c.field)
	}
}
