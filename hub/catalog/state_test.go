package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestApplyAndReadBack applies every command type and reads the result back.
func TestApplyAndReadBack(t *testing.T) {
	a := fixture(t)
	s := a.s

	inst, err := s.Instance("i-1")
	if err != nil {
		t.Fatal(err)
	}
	if inst.FlowsVersion != "v2" || inst.Env["MODE"] != "prod" || inst.Resources.MemoryMB != 256 || inst.Observed.RuntimeID != "4242" || inst.Observed.Message != "1/2 replicas running" {
		t.Fatalf("instance i-1 = %+v", inst)
	}
	if byName, err := s.InstanceByName("ORDERS"); err != nil || byName.ID != "i-1" {
		t.Fatalf("InstanceByName(ORDERS) = %+v, %v", byName, err)
	}
	if got := ids(s.Instances(), func(i Instance) string { return i.ID }); !reflect.DeepEqual(got, []string{"i-1", "i-2"}) {
		t.Fatalf("Instances() = %v", got)
	}
	if got := s.InstancesInRegion("eu-west"); len(got) != 1 || got[0].ID != "i-1" {
		t.Fatalf("InstancesInRegion(eu-west) = %+v", got)
	}

	d, err := s.Deployment("d-1")
	if err != nil || d.Phase != PhaseVerify || len(d.History) != 2 || string(d.Smoke) != `{"health":"ok","flows":3}` {
		t.Fatalf("Deployment(d-1) = %+v, %v", d, err)
	}
	if got := s.Deployments("i-1"); len(got) != 1 || got[0].ID != "d-1" {
		t.Fatalf("Deployments(i-1) = %+v", got)
	}
	if got := s.Deployments(""); len(got) != 2 {
		t.Fatalf("Deployments(\"\") has %d rows, want 2", len(got))
	}

	if u, err := s.UserByName("Admin"); err != nil || u.ID != "u-1" || u.Role != RoleAdmin {
		t.Fatalf("UserByName(Admin) = %+v, %v", u, err)
	}
	if got := s.Users(); len(got) != 2 || !got[1].Disabled {
		t.Fatalf("Users() = %+v", got)
	}

	if tok, err := s.APITokenByHash("h1"); err != nil || tok.ID != "t-1" || tok.InstanceID != "i-1" {
		t.Fatalf("APITokenByHash(h1) = %+v, %v", tok, err)
	}
	if tok, err := s.APIToken("t-2"); err != nil || !tok.Revoked || !tok.RevokedAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("APIToken(t-2) = %+v, %v", tok, err)
	}
	if got := s.APITokensByUser("u-1"); len(got) != 2 {
		t.Fatalf("APITokensByUser(u-1) has %d rows", len(got))
	}

	e, err := s.Edge("g-1")
	if err != nil || e.Region != "eu-west" || e.State != EdgeOnline || e.AppliedConfigVersion != 7 || !e.LastHeartbeat.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("Edge(g-1) = %+v, %v", e, err)
	}
	if e, err := s.EdgeByName("PI-2"); err != nil || e.DesiredConfigVersion != 3 {
		t.Fatalf("EdgeByName(PI-2) = %+v, %v", e, err)
	}
	if got := s.Edges(); len(got) != 2 {
		t.Fatalf("Edges() has %d rows", len(got))
	}
	if et, err := s.EnrollmentToken("e1"); err != nil || !et.Used || et.UsedBy != "g-1" {
		t.Fatalf("EnrollmentToken(e1) = %+v, %v", et, err)
	}
	if got := s.EnrollmentTokens(); len(got) != 2 {
		t.Fatalf("EnrollmentTokens() has %d rows", len(got))
	}

	if r, err := s.Region("eu-west"); err != nil || len(r.Hubs) != 2 {
		t.Fatalf("Region(eu-west) = %+v, %v", r, err)
	}
	if got := s.Regions(); len(got) != 2 {
		t.Fatalf("Regions() = %+v (gone should be deleted)", got)
	}
	var days int
	if err := s.SettingValue("retention_days", &days); err != nil || days != 30 {
		t.Fatalf("SettingValue(retention_days) = %d, %v", days, err)
	}
	if st, err := s.Setting("banner"); err != nil || string(st.Value) != `{"text":"hello"}` {
		t.Fatalf("Setting(banner) = %s, %v", st.Value, err)
	}
	if _, err := s.Setting("temp"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Setting(temp) after delete: %v, want ErrNotFound", err)
	}
	if got := s.Settings(); len(got) != 2 {
		t.Fatalf("Settings() has %d rows", len(got))
	}

	a.must(DeleteInstance("i-2"))
	a.must(DeleteUser("u-2"))
	a.must(DeleteAPIToken("t-1"))
	a.must(DeleteEdge("g-2"))
	a.must(DeleteEnrollmentToken("e2"))
	a.must(DeleteDeployment("d-1"))
	for name, err := range map[string]error{
		"instance":         second(s.Instance("i-2")),
		"user":             second(s.User("u-2")),
		"api token":        second(s.APIToken("t-1")),
		"edge":             second(s.Edge("g-2")),
		"enrollment token": second(s.EnrollmentToken("e2")),
		"deployment":       second(s.Deployment("d-1")),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s after delete: %v, want ErrNotFound", name, err)
		}
	}
}

func ids[T any](rows []T, id func(T) string) []string {
	var out []string
	for _, r := range rows {
		out = append(out, id(r))
	}
	return out
}

func second[T any](_ T, err error) error { return err }

func TestApplyResultIsTheStoredRow(t *testing.T) {
	a := newApplier(t)
	res := a.must(UpsertInstance(Instance{ID: "i-1", Name: "a"}))
	inst, ok := res.(Instance)
	if !ok || inst.ModifyIndex != a.index || inst.CreateIndex != a.index {
		t.Fatalf("result = %#v, want an Instance stamped with index %d", res, a.index)
	}
	if res := a.must(DeleteInstance("i-1")); res != nil {
		t.Fatalf("delete result = %#v, want nil", res)
	}
}

func TestApplyRecordsIndexes(t *testing.T) {
	a := newApplier(t)
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "a", CreatedAt: t0}))
	created := a.index
	a.must(PutUser(User{ID: "u-1", Username: "x"}))
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "a", FlowsVersion: "v2", CreatedAt: t0.Add(time.Hour), Indexes: Indexes{CreateIndex: 99, ModifyIndex: 99}}))
	inst, _ := a.s.Instance("i-1")
	if inst.CreateIndex != created || inst.ModifyIndex != a.index {
		t.Fatalf("indexes = %+v, want create %d modify %d", inst.Indexes, created, a.index)
	}
	if !inst.CreatedAt.Equal(t0) {
		t.Fatalf("CreatedAt = %v, want the original %v", inst.CreatedAt, t0)
	}
	if got := a.s.TableIndex(tableInstances); got != a.index {
		t.Fatalf("TableIndex(instances) = %d, want %d", got, a.index)
	}
	if got := a.s.TableIndex(tableUsers); got != created+1 {
		t.Fatalf("TableIndex(users) = %d, want %d", got, created+1)
	}
	a.must(DeleteInstance("i-1"))
	if got := a.s.TableIndex(tableInstances); got != a.index {
		t.Fatalf("TableIndex(instances) after delete = %d, want %d", got, a.index)
	}
}

func TestApplyIndexOrder(t *testing.T) {
	a := newApplier(t)
	a.must(PutSetting("k", 1))
	before := dump(a.s)
	for _, idx := range []uint64{0, 1} {
		if _, err := a.s.Apply(idx, PutSetting("k", 2)); !errors.Is(err, ErrInvalid) {
			t.Fatalf("Apply at %d after 1: %v, want ErrInvalid", idx, err)
		}
	}
	if !reflect.DeepEqual(dump(a.s), before) {
		t.Fatal("a refused index changed the state")
	}
	if _, err := a.s.Apply(10, PutSetting("k", 3)); err != nil {
		t.Fatalf("Apply at 10 (gaps are fine): %v", err)
	}
	if a.s.Index() != 10 {
		t.Fatalf("Index() = %d, want 10", a.s.Index())
	}
}

// TestFailedCommandChangesNothing: a failing command leaves every row alone
// and only advances the applied index.
func TestFailedCommandChangesNothing(t *testing.T) {
	a := fixture(t)
	for _, tc := range []struct {
		cmd  Command
		want error
	}{
		{EnrollEdge("e2", Edge{ID: "g-9", Name: "PI-1"}, t0), ErrConflict}, // name taken: token must stay unused
		{UpsertInstance(Instance{ID: "i-9", Name: "Orders"}), ErrConflict},
		{PutDeployment(Deployment{ID: "d-9", InstanceID: "nope"}), ErrNotFound},
		{DeleteUser("nope"), ErrNotFound},
		{Command{Type: 99, Version: 1}, ErrInvalid},
	} {
		before := dump(a.s)
		a.fails(tc.cmd, tc.want)
		after := dump(a.s)
		if a.s.Index() != a.index {
			t.Fatalf("%s: Index() = %d, want %d", tc.cmd.Type, a.s.Index(), a.index)
		}
		delete(before, tableIndex)
		delete(after, tableIndex)
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("%s failed but changed the state", tc.cmd.Type)
		}
	}
	if et, _ := a.s.EnrollmentToken("e2"); et.Used {
		t.Fatal("a failed enrollment consumed the token")
	}
}

func TestUniqueness(t *testing.T) {
	a := fixture(t)
	a.fails(UpsertInstance(Instance{ID: "i-9", Name: "ORDERS"}), ErrConflict)
	a.fails(UpsertInstance(Instance{ID: "i-2", Name: "orders"}), ErrConflict) // rename onto a taken name
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "Orders"}))               // own name, other case
	a.fails(PutUser(User{ID: "u-9", Username: "ADMIN"}), ErrConflict)
	a.fails(PutAPIToken(APIToken{ID: "t-9", Hash: "h1"}), ErrConflict)
	a.fails(PutEdge(Edge{ID: "g-9", Name: "pi-1"}), ErrConflict)
	a.fails(EnrollEdge("e2", Edge{ID: "g-1", Name: "new"}, t0), ErrConflict) // edge id exists
	a.fails(PutEnrollmentToken(EnrollmentToken{Hash: "e1"}), ErrConflict)

	a.must(DeleteInstance("i-2"))
	a.must(UpsertInstance(Instance{ID: "i-9", Name: "billing"})) // freed name
	if inst, err := a.s.InstanceByName("billing"); err != nil || inst.ID != "i-9" {
		t.Fatalf("InstanceByName(billing) = %+v, %v", inst, err)
	}
	if err := a.fails(PutAPIToken(APIToken{ID: "t-9", Hash: "h1"}), ErrConflict); strings.Contains(err.Error(), `"h1"`) {
		t.Fatalf("conflict error %q echoes the token hash", err)
	}
}

func TestNotFoundAndInvalid(t *testing.T) {
	a := fixture(t)
	for _, cmd := range []Command{
		DeleteInstance("nope"), DeleteDeployment("nope"), DeleteUser("nope"), DeleteAPIToken("nope"),
		DeleteEdge("nope"), DeleteEnrollmentToken("nope"), DeleteRegion("nope"), DeleteSetting("nope"),
		SetInstanceObserved("nope", Observed{}), RevokeAPIToken("nope", t0), RecordEdgeHeartbeat("nope", t0, 1),
		EnrollEdge("nope", Edge{ID: "g-9", Name: "x"}, t0),
		PutDeployment(Deployment{ID: "d-9", InstanceID: "nope"}),
		PutAPIToken(APIToken{ID: "t-9", Hash: "h9", InstanceID: "nope"}),
		PutAPIToken(APIToken{ID: "t-9", Hash: "h9", CreatedBy: "nope"}),
	} {
		a.fails(cmd, ErrNotFound)
	}
	for _, cmd := range []Command{
		UpsertInstance(Instance{ID: "i-9"}), UpsertInstance(Instance{Name: "x"}),
		PutDeployment(Deployment{ID: "d-9"}), PutDeployment(Deployment{ID: "d-1", InstanceID: "i-2"}),
		PutUser(User{ID: "u-9"}), PutAPIToken(APIToken{ID: "t-9"}), PutEdge(Edge{ID: "g-9"}),
		PutEnrollmentToken(EnrollmentToken{}), PutRegion(Region{}), PutSetting("", 1),
		EnrollEdge("e2", Edge{ID: "g-9"}, t0),
	} {
		a.fails(cmd, ErrInvalid)
	}
	for name, err := range map[string]error{
		"Instance":        second(a.s.Instance("nope")),
		"InstanceByName":  second(a.s.InstanceByName("nope")),
		"User":            second(a.s.User("nope")),
		"UserByName":      second(a.s.UserByName("nope")),
		"APITokenByHash":  second(a.s.APITokenByHash("nope")),
		"EdgeByName":      second(a.s.EdgeByName("nope")),
		"Region":          second(a.s.Region("nope")),
		"SettingValue":    a.s.SettingValue("nope", new(int)),
		"EnrollmentToken": second(a.s.EnrollmentToken("nope")),
	} {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
	if err := a.s.SettingValue("banner", new(int)); !errors.Is(err, ErrInvalid) {
		t.Errorf("SettingValue into the wrong type: %v, want ErrInvalid", err)
	}
}

func TestDeletesCascade(t *testing.T) {
	a := fixture(t)
	a.must(DeleteInstance("i-1"))
	if got := a.s.Deployments("i-1"); len(got) != 0 {
		t.Fatalf("deployments of a deleted instance remain: %+v", got)
	}
	if _, err := a.s.APITokenByHash("h1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("token scoped to a deleted instance remains: %v", err)
	}
	if _, err := a.s.Deployment("d-2"); err != nil {
		t.Fatalf("another instance's deployment went too: %v", err)
	}
	if got := a.s.InstanceSnapshots("i-1"); len(got) != 0 {
		t.Fatalf("snapshots of a deleted instance remain: %+v", got)
	}
	a.fails(PutInstanceSnapshot(InstanceSnapshot{ID: "s-9", InstanceID: "i-1", Name: "x", Flows: []byte(`[]`), FlowsSHA: FlowsSHA([]byte(`[]`))}), ErrNotFound)
	a.must(DeleteUser("u-1"))
	if got := a.s.APITokensByUser("u-1"); len(got) != 0 {
		t.Fatalf("tokens of a deleted user remain: %+v", got)
	}
}

// TestSpecAndStatusWriters: UpsertInstance and PutEdge keep what the fleet
// and the edge reported, so a stale read-modify-write cannot erase it.
func TestSpecAndStatusWriters(t *testing.T) {
	a := fixture(t)
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "orders", DesiredState: DesiredStopped, Observed: Observed{Status: "bogus"}}))
	inst, _ := a.s.Instance("i-1")
	if inst.Observed.RuntimeID != "4242" || inst.DesiredState != DesiredStopped {
		t.Fatalf("after upsert: %+v", inst)
	}
	a.must(SetInstanceObserved("i-1", Observed{Status: "stopped"}))
	inst, _ = a.s.Instance("i-1")
	if inst.DesiredState != DesiredStopped || inst.Observed.Status != "stopped" || inst.Observed.RuntimeID != "" {
		t.Fatalf("after observed: %+v", inst)
	}
	a.must(PutEdge(Edge{ID: "g-1", Name: "pi-1", DesiredConfigVersion: 8}))
	e, _ := a.s.Edge("g-1")
	if e.AppliedConfigVersion != 7 || e.LastHeartbeat.IsZero() || e.DesiredConfigVersion != 8 || !e.CreatedAt.Equal(t0) {
		t.Fatalf("after put edge: %+v", e)
	}
	a.must(PutEdge(Edge{ID: "g-1", Name: "pi-1", State: EdgeDecommissioned}))
	a.fails(RecordEdgeHeartbeat("g-1", t0, 8), ErrConflict)
}

func TestIfIndex(t *testing.T) {
	a := newApplier(t)
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "a"}, IfIndex(0)))
	read := a.index
	a.fails(UpsertInstance(Instance{ID: "i-1", Name: "a"}, IfIndex(0)), ErrConflict)
	a.fails(UpsertInstance(Instance{ID: "i-2", Name: "b"}, IfIndex(5)), ErrConflict)
	a.must(UpsertInstance(Instance{ID: "i-1", Name: "a", FlowsVersion: "v2"}, IfIndex(read)))
	a.fails(UpsertInstance(Instance{ID: "i-1", Name: "a", FlowsVersion: "v3"}, IfIndex(read)), ErrConflict) // stale
	if inst, _ := a.s.Instance("i-1"); inst.FlowsVersion != "v2" {
		t.Fatalf("FlowsVersion = %q, want v2", inst.FlowsVersion)
	}
	a.must(PutSetting("k", 1, IfIndex(0)))
	a.fails(PutSetting("k", 2, IfIndex(0)), ErrConflict)
}

func TestEnrollEdge(t *testing.T) {
	a := newApplier(t)
	a.must(PutEnrollmentToken(EnrollmentToken{Hash: "e1", Region: "eu", ExpiresAt: t0.Add(time.Hour)}))
	a.fails(EnrollEdge("e1", Edge{ID: "g-1", Name: "pi"}, t0.Add(time.Hour)), ErrInvalid) // expired at the instant
	res := a.must(EnrollEdge("e1", Edge{ID: "g-1", Name: "pi"}, t0))
	if e := res.(Edge); e.Region != "eu" || e.ModifyIndex != a.index {
		t.Fatalf("enrolled edge = %+v", e)
	}
	a.fails(EnrollEdge("e1", Edge{ID: "g-2", Name: "pi2"}, t0), ErrConflict) // single use
	if et, _ := a.s.EnrollmentToken("e1"); !et.Used || et.UsedBy != "g-1" || !et.UsedAt.Equal(t0) {
		t.Fatalf("token = %+v", et)
	}
}

func TestRevokeIsIdempotent(t *testing.T) {
	a := fixture(t)
	before, _ := a.s.APIToken("t-2")
	res := a.must(RevokeAPIToken("t-2", t0.Add(time.Hour)))
	if !reflect.DeepEqual(res, before) {
		t.Fatalf("second revoke changed the token: %+v, was %+v", res, before)
	}
}

func TestReadsReturnCopies(t *testing.T) {
	a := fixture(t)
	inst, _ := a.s.Instance("i-1")
	inst.Env["MODE"] = "hacked"
	d, _ := a.s.Deployment("d-1")
	d.History[0].Message = "hacked"
	d.Smoke[0] = '['
	r, _ := a.s.Region("eu-west")
	r.Hubs[0] = "hacked"
	st, _ := a.s.Setting("banner")
	st.Value[0] = '['
	for _, i := range a.s.Instances() {
		if i.Env != nil {
			i.Env["MODE"] = "hacked"
		}
	}
	res := a.must(UpsertInstance(Instance{ID: "i-5", Name: "e", Env: map[string]string{"A": "1"}})).(Instance)
	res.Env["A"] = "hacked"

	again := fixture(t)
	again.must(UpsertInstance(Instance{ID: "i-5", Name: "e", Env: map[string]string{"A": "1"}}))
	assertSameState(t, a.s, again.s)
}

// TestApplyIsDeterministic: the same commands give the same state and the
// same snapshot bytes, which is what lets every hub replay the log alone.
func TestApplyIsDeterministic(t *testing.T) {
	a, b := fixture(t), fixture(t)
	assertSameState(t, a.s, b.s)
	if string(persist(t, a.s)) != string(persist(t, b.s)) {
		t.Fatal("same state, different snapshot bytes")
	}
}

func TestCommandsRoundTripThroughJSONUnchanged(t *testing.T) {
	// A row written through a command reads back as sent, apart from the
	// fields the catalog owns (indexes) and the ones it documents keeping.
	a := newApplier(t)
	want := Instance{ID: "i-1", Name: "a", Env: map[string]string{"K": "V"}, Resources: Resources{CPU: 1.25, MemoryMB: 512}, CreatedAt: t0.In(time.FixedZone("X", 3600)), UpdatedAt: t0}
	got := a.must(UpsertInstance(want)).(Instance)
	want.Indexes = got.Indexes
	wj, _ := json.Marshal(want)
	gj, _ := json.Marshal(got)
	if string(wj) != string(gj) {
		t.Fatalf("got %s\nwant %s", gj, wj)
	}
}
