package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"
)

// onceSettingsCommands fill the tables that replaced settings (session
// state, deployment specs, the audit anchor, edge configs), with updates
// and deletes. They run after fixtureCommands' users, instances and edges:
// after the command at index last.
func onceSettingsCommands(last uint64) []Command {
	return []Command{
		InitSigningKey(SigningKey{ID: "k-1", Sealed: "sealed-k1", CreatedAt: t0}),
		RotateSigningKey(SigningKey{ID: "k-2", Sealed: "sealed-k2", CreatedAt: t0.Add(time.Hour)}, last+1, t0.Add(time.Hour), t0.Add(2*time.Hour)),
		PutRefreshToken(RefreshToken{Hash: "r1", SessionID: "s-1", UserID: "u-1", SessionStart: t0, IssuedAt: t0, ExpiresAt: t0.Add(24 * time.Hour), IP: "10.0.0.9"}, IfIndex(0)),
		PutRefreshToken(RefreshToken{Hash: "r-old", SessionID: "s-0", UserID: "u-1", SessionStart: t0, IssuedAt: t0, ExpiresAt: t0.Add(time.Minute)}, IfIndex(0)),
		Revoke(Revocations{Tokens: []Revocation{{ID: "jti-1", At: t0, Until: t0.Add(time.Hour), Reason: "logout"}},
			Sessions: []Revocation{{ID: "s-9", At: t0, Until: t0.Add(48 * time.Hour), Reason: "logout"}}}),
		BumpSessionGeneration("u-1", t0),
		BumpSessionGeneration("u-1", t0.Add(time.Minute)),
		ReapAuth(t0.Add(90 * time.Minute)),
		PutDeploymentSpec(DeploymentSpec{DeploymentID: "d-1", InstanceID: "i-1", Spec: json.RawMessage(`{"green_id":"i-1-d1"}`)}),
		PutAuditAnchor(AuditAnchor{Chain: AuditChain, RecordID: 7, Hash: "aa", Time: t0}, IfIndex(0)),
		PutAuditAnchor(AuditAnchor{Chain: AuditChain, RecordID: 9, Hash: "bb", Time: t0}),
		PutEdgeConfig(EdgeConfig{EdgeID: "g-1", Version: 1, Flows: json.RawMessage(`[]`), UpdatedBy: "admin", UpdatedAt: t0}, IfIndex(0)),
		PutEdgeConfig(EdgeConfig{EdgeID: "g-1", Version: 2, Flows: json.RawMessage(`[{"id":"n"}]`), Settings: json.RawMessage(`{"a":1}`), UpdatedAt: t0}),
		PutGreenLogs(GreenLogs{DeploymentID: "d-1", InstanceID: "i-1", Green: "orders.green-d1", At: t0, Replicas: []ReplicaLog{
			{Replica: 0, Hub: "hub-a", Lines: []string{"starting", "Error: bad option --x"}},
			{Replica: 1, Hub: "hub-b", Lines: []string{}, Error: "hub-b unreachable"}}}, IfIndex(0)),
		PutGreenLogs(GreenLogs{DeploymentID: "d-2", InstanceID: "i-2", Green: "billing.green-d2", At: t0, Replicas: []ReplicaLog{}}),
		DeleteGreenLogs("d-2"),
	}
}

// TestRotateSigningKey: one command retires the current key and installs
// the next; a rotation from a stale read, or an init over a key, is a
// conflict and changes nothing.
func TestRotateSigningKey(t *testing.T) {
	a := newApplier(t)
	if _, err := a.s.SigningKey(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("SigningKey before init: %v", err)
	}
	k1 := a.must(InitSigningKey(SigningKey{ID: "k-1", Key: []byte("0123456789abcdef0123456789abcdef"), CreatedAt: t0})).(SigningKey)
	if _, err := a.apply(InitSigningKey(SigningKey{ID: "k-x", Sealed: "x"})); !errors.Is(err, ErrConflict) {
		t.Fatalf("second init: %v, want ErrConflict", err)
	}
	if _, err := a.apply(RotateSigningKey(SigningKey{ID: "k-2", Sealed: "s2"}, k1.ModifyIndex+100, t0, t0.Add(time.Hour))); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale rotation: %v, want ErrConflict", err)
	}
	if _, err := a.apply(RotateSigningKey(SigningKey{ID: "k-1", Sealed: "s2"}, k1.ModifyIndex, t0, t0.Add(time.Hour))); !errors.Is(err, ErrConflict) {
		t.Fatalf("rotation to a taken kid: %v, want ErrConflict", err)
	}
	if cur, _ := a.s.SigningKey(); cur.ID != "k-1" || len(a.s.SigningKeys()) != 1 {
		t.Fatalf("failed rotations changed the keys: %+v", a.s.SigningKeys())
	}
	a.must(RotateSigningKey(SigningKey{ID: "k-2", Sealed: "s2", CreatedAt: t0}, k1.ModifyIndex, t0, t0.Add(time.Hour)))
	cur, err := a.s.SigningKey()
	if err != nil || cur.ID != "k-2" || !cur.Current {
		t.Fatalf("current after rotation: %+v, %v", cur, err)
	}
	old, err := a.s.SigningKeyByID("k-1")
	if err != nil || old.Current || !old.VerifyUntil.Equal(t0.Add(time.Hour)) || string(old.Key) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("retired key: %+v, %v", old, err)
	}
	// The reap keeps a retired key until its VerifyUntil, and never the current one.
	if n := a.must(ReapAuth(t0.Add(59 * time.Minute))).(AuthReaped); n.SigningKeys != 0 {
		t.Fatalf("reaped %+v before verify_until", n)
	}
	if n := a.must(ReapAuth(t0.Add(61 * time.Minute))).(AuthReaped); n.SigningKeys != 1 || len(a.s.SigningKeys()) != 1 {
		t.Fatalf("reaped %+v after verify_until; keys %+v", n, a.s.SigningKeys())
	}
}

// TestReapAuth: one command deletes exactly the expired session state.
func TestReapAuth(t *testing.T) {
	a := fixture(t)
	a.must(PutUser(User{ID: "u-3", Username: "gone", Role: RoleViewer}))
	a.must(BumpSessionGeneration("u-3", t0))
	a.must(PutRefreshToken(RefreshToken{Hash: "r-late", SessionID: "s-2", UserID: "u-1", ExpiresAt: t0.Add(72 * time.Hour)}))
	a.must(DeleteUser("u-3"))
	if g := a.s.SessionGeneration("u-3"); g.Generation != 0 {
		t.Fatalf("a deleted user's generation survived: %+v", g)
	}
	if a.s.AuthReapable(t0.Add(2 * time.Hour)) {
		t.Fatal("AuthReapable before anything expired")
	}
	if !a.s.AuthReapable(t0.Add(2*time.Hour + time.Nanosecond)) {
		t.Fatal("AuthReapable misses the retired key k-1 past its window")
	}
	// A generation of a user that is gone (as older hubs left them).
	a.must(PutSetting("auth/user_generation/u-gone", map[string]any{"generation": 3, "at": t0}))
	if !a.s.AuthReapable(t0) {
		t.Fatal("AuthReapable misses the generation of a deleted user")
	}
	n := a.must(ReapAuth(t0.Add(25 * time.Hour))).(AuthReaped)
	want := AuthReaped{RefreshTokens: 1, SigningKeys: 1, Generations: 1} // r1, k-1, u-gone (jti-1 went in the fixture, s-9 lasts 48h)
	if n != want {
		t.Fatalf("reaped %+v, want %+v", n, want)
	}
	if _, err := a.s.RefreshToken("r-late"); err != nil {
		t.Fatalf("an unexpired refresh token was reaped: %v", err)
	}
	if a.s.AuthReapable(t0.Add(25*time.Hour)) || !a.s.AuthReapable(t0.Add(48*time.Hour+time.Second)) {
		t.Fatal("AuthReapable after the reap: want nothing until s-9's revocation ends")
	}
	if _, err := a.s.SessionRevoked("s-9"); err != nil {
		t.Fatalf("an unexpired revocation was reaped: %v", err)
	}
	if g := a.s.SessionGeneration("u-1"); g.Generation != 2 {
		t.Fatalf("a live user's generation was reaped: %+v", g)
	}
}

// TestOnceSettingsCascade: deleting an instance, deployment, edge or user
// deletes the rows that belong to it.
func TestOnceSettingsCascade(t *testing.T) {
	a := fixture(t)
	a.must(PutDeploymentSpec(DeploymentSpec{DeploymentID: "d-orphan", InstanceID: "i-1", Spec: json.RawMessage(`{}`)}))
	if _, err := a.s.GreenLogs("d-1"); err != nil {
		t.Fatalf("green logs before the deletes: %v", err)
	}
	a.must(DeleteDeployment("d-1"))
	if _, err := a.s.DeploymentSpec("d-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("spec of a deleted deployment: %v", err)
	}
	if _, err := a.s.GreenLogs("d-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("green logs of a deleted deployment: %v", err)
	}
	// The logs of a deployment of i-1 whose green row is gone (the
	// rollback deleted it) stay until i-1 goes.
	a.must(PutDeployment(Deployment{ID: "d-3", InstanceID: "i-1", Status: DeploymentRolledBack, StartedAt: t0, UpdatedAt: t0}))
	a.must(UpsertInstance(Instance{ID: "i-1-g3", Name: "orders.g3", CreatedAt: t0, UpdatedAt: t0}))
	a.must(PutGreenLogs(GreenLogs{DeploymentID: "d-3", InstanceID: "i-1", Green: "orders.g3", At: t0, Replicas: []ReplicaLog{{Lines: []string{"x"}}}}))
	a.must(DeleteInstance("i-1-g3"))
	if _, err := a.s.GreenLogs("d-3"); err != nil {
		t.Fatalf("green logs after their green row went: %v", err)
	}
	a.must(DeleteInstance("i-1"))
	if _, err := a.s.DeploymentSpec("d-orphan"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("spec of a deleted instance: %v", err)
	}
	if _, err := a.s.GreenLogs("d-3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("green logs of a deleted instance: %v", err)
	}
	a.must(DeleteEdge("g-1"))
	if _, err := a.s.EdgeConfig("g-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("config of a deleted edge: %v", err)
	}
	a.must(DeleteUser("u-1"))
	if len(a.s.RefreshTokens()) != 0 {
		t.Fatalf("refresh tokens of a deleted user: %+v", a.s.RefreshTokens())
	}
}

// TestOnceSettingsChecks: the new tables refuse what makes no sense.
func TestOnceSettingsChecks(t *testing.T) {
	a := fixture(t)
	for name, c := range map[string]struct {
		cmd  Command
		want error
	}{
		"refresh token of a missing user":     {PutRefreshToken(RefreshToken{Hash: "x", SessionID: "s", UserID: "nobody", ExpiresAt: t0}), ErrNotFound},
		"refresh token without expiry":        {PutRefreshToken(RefreshToken{Hash: "x", SessionID: "s", UserID: "u-1"}), ErrInvalid},
		"used twice":                          {PutRefreshToken(RefreshToken{Hash: "r1", SessionID: "s-1", UserID: "u-1", ExpiresAt: t0}, IfIndex(0)), ErrConflict},
		"revocation without until":            {Revoke(Revocations{Tokens: []Revocation{{ID: "j"}}}), ErrInvalid},
		"generation of a missing user":        {BumpSessionGeneration("nobody", t0), ErrNotFound},
		"spec of a missing instance":          {PutDeploymentSpec(DeploymentSpec{DeploymentID: "d", InstanceID: "nope", Spec: json.RawMessage(`{}`)}), ErrNotFound},
		"spec that is not an object":          {PutDeploymentSpec(DeploymentSpec{DeploymentID: "d", InstanceID: "i-1", Spec: json.RawMessage(`[]`)}), ErrInvalid},
		"anchor moved back":                   {PutAuditAnchor(AuditAnchor{Chain: AuditChain, RecordID: 8, Hash: "cc"}), ErrConflict},
		"edge config of a missing edge":       {PutEdgeConfig(EdgeConfig{EdgeID: "nope", Version: 9, Flows: json.RawMessage(`[]`)}), ErrNotFound},
		"green logs of a missing deployment":  {PutGreenLogs(GreenLogs{DeploymentID: "nope", InstanceID: "i-1", Green: "g"}), ErrNotFound},
		"green logs of another instance":      {PutGreenLogs(GreenLogs{DeploymentID: "d-1", InstanceID: "i-2", Green: "g"}), ErrInvalid},
		"green logs without a green":          {PutGreenLogs(GreenLogs{DeploymentID: "d-1", InstanceID: "i-1"}), ErrInvalid},
		"green logs put twice with IfIndex 0": {PutGreenLogs(GreenLogs{DeploymentID: "d-1", InstanceID: "i-1", Green: "g"}, IfIndex(0)), ErrConflict},
		"edge config version not above":       {PutEdgeConfig(EdgeConfig{EdgeID: "g-1", Version: 2, Flows: json.RawMessage(`[]`)}), ErrConflict},
		"edge flows not an array":             {PutEdgeConfig(EdgeConfig{EdgeID: "g-1", Version: 3, Flows: json.RawMessage(`{}`)}), ErrInvalid},
	} {
		before := dump(a.s)
		if _, err := a.apply(c.cmd); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		after := dump(a.s)
		delete(before, tableIndex)
		delete(after, tableIndex)
		if !reflect.DeepEqual(before, after) {
			t.Errorf("%s: the failed command changed the state", name)
		}
	}
}
