package catalog_test

// This generator wrote testdata/legacy-log.jsonl, testdata/snapshot-v2-legacy.bin
// and testdata/legacy-fixture.json with the code of commit 5df2fe0, when
// hub/auth, hub/deploy, hub/audit and hub/edgesync still kept their state
// in catalog settings. It is removed by the commit that moves that state
// into typed tables (it could no longer write settings); read it in the
// history to see how the fixtures were made.
//
//	REDFORGE_WRITE_LEGACY_FIXTURE=1 go test -run TestWriteLegacyFixture ./hub/catalog/

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/secrets"
)

type recorder struct {
	mu    sync.Mutex
	state *catalog.State
	index uint64
	lines []byte
}

func (r *recorder) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	dec, err := catalog.DecodeCommand(b)
	if err != nil {
		return nil, err
	}
	r.index++
	line, _ := json.Marshal(map[string]any{"index": r.index, "command": base64.StdEncoding.EncodeToString(b)})
	r.lines = append(append(r.lines, line...), '\n')
	return r.state.Apply(r.index, dec)
}

type fixClock struct{ t time.Time }

func (c *fixClock) Now() time.Time { return c.t }

func TestWriteLegacyFixture(t *testing.T) {
	if os.Getenv("REDFORGE_WRITE_LEGACY_FIXTURE") == "" {
		t.Skip("set REDFORGE_WRITE_LEGACY_FIXTURE=1 to rewrite the legacy fixtures")
	}
	ctx := context.Background()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	clk := &fixClock{t: t0.Add(-10 * 24 * time.Hour)}
	sealKey := bytes.Repeat([]byte{0x5a}, 32)
	sealer, err := secrets.New(sealKey)
	if err != nil {
		t.Fatal(err)
	}
	st := catalog.NewState()
	rec := &recorder{state: st}
	svc := auth.New(auth.Config{Sealer: sealer, BcryptCost: bcrypt.MinCost, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}, st, rec)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := svc.EnsureAdmin(ctx, "admin-password-1"); err != nil {
		t.Fatal(err)
	}
	must(svc.EnsureSigningKey(ctx))
	_, admin, err := svc.Login(ctx, "admin", "admin-password-1", "127.0.0.1")
	must(err)
	newUser := func(name string) auth.UserInfo {
		u, err := svc.CreateUser(ctx, admin, auth.NewUser{Username: name, Password: name + "-password-1", Role: catalog.RoleOperator})
		must(err)
		return u
	}
	alice, bob, carol, dave := newUser("alice"), newUser("bob"), newUser("carol"), newUser("dave")
	// dave's session expires before t0 and is swept then.
	_, _, err = svc.Login(ctx, "dave", "dave-password-1", "10.0.0.4")
	must(err)
	must(svc.RevokeUserSessions(ctx, carol.ID))
	must(svc.DeleteUser(ctx, admin, carol.ID))
	clk.t = t0
	n, err := svc.Sweep(ctx)
	must(err)
	if n < 3 { // dave's and admin's refresh tokens, carol's generation
		t.Fatalf("swept %d settings, want at least 3", n)
	}
	// alice: a session refreshed once (a1 used, a2 current).
	a1, _, err := svc.Login(ctx, "alice", "alice-password-1", "10.0.0.1")
	must(err)
	a2, _, err := svc.Refresh(ctx, a1.RefreshToken)
	must(err)
	clk.t = t0.Add(time.Minute)
	_, err = svc.RotateKeys(ctx)
	must(err)
	// alice: a second session signed with the new key.
	b1, _, err := svc.Login(ctx, "alice", "alice-password-1", "10.0.0.1")
	must(err)
	// bob: logged out, then all his sessions revoked.
	c1, bobP, err := svc.Login(ctx, "bob", "bob-password-1", "10.0.0.2")
	must(err)
	must(svc.Logout(ctx, bobP))
	must(svc.RevokeUserSessions(ctx, bob.ID))

	// A deployment's spec, as Orchestrator.Deploy and putSpec write it.
	inst := catalog.Instance{ID: "inst-web", Name: "web", Driver: "process", DesiredState: catalog.DesiredRunning}
	_, err = rec.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(0)))
	must(err)
	depID := "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
	spec := deploy.Spec{Flows: json.RawMessage(`[{"id":"n1","type":"inject"}]`), DrainTimeout: 30 * time.Second,
		RollbackWindow: 10 * time.Minute, BlueID: inst.ID, GreenID: inst.ID + "-0f1e2d3c", GreenName: "web.0f1e2d3c", UserID: alice.ID}
	_, err = rec.Apply(ctx, catalog.PutSetting(deploy.SpecKey(depID), spec))
	must(err)
	_, err = rec.Apply(ctx, catalog.PutDeployment(catalog.Deployment{ID: depID, InstanceID: inst.ID, Strategy: "blue-green",
		Status: catalog.DeploymentPending, StartedBy: "alice", StartedAt: clk.t, UpdatedAt: clk.t}, catalog.IfIndex(0)))
	must(err)
	spec.GreenRev = "rev-2"
	_, err = rec.Apply(ctx, catalog.PutSetting(deploy.SpecKey(depID), spec))
	must(err)

	// The audit anchor, moved twice.
	anchors := audit.CatalogAnchors{Catalog: st, Applier: rec}
	must(anchors.SaveAnchor(ctx, audit.Anchor{ID: 7, Hash: "aa07", Time: clk.t}))
	must(anchors.SaveAnchor(ctx, audit.Anchor{ID: 12, Hash: "bb12", Time: clk.t.Add(time.Second)}))

	// An edge's desired config, set twice.
	_, err = rec.Apply(ctx, catalog.PutEdge(catalog.Edge{ID: "edge-1", Name: "edge-one", State: catalog.EdgeOnline}, catalog.IfIndex(0)))
	must(err)
	es := edgesync.New(edgesync.Config{Catalog: st, Raft: rec, Now: clk.Now})
	_, err = es.SetConfig(ctx, "edge-1", json.RawMessage(`[]`), nil, "alice")
	must(err)
	_, err = es.SetConfig(ctx, "edge-1", json.RawMessage(`[{"id":"e1","type":"debug"}]`), json.RawMessage(`{"flowFilePretty":true}`), "alice")
	must(err)

	// A setting of nobody's in particular: it stays a setting.
	_, err = rec.Apply(ctx, catalog.PutSetting("ui/banner", "hello"))
	must(err)

	var snap bytes.Buffer
	must(st.Snapshot().Persist(&snap))
	fixture := map[string]any{
		"now":          clk.t,
		"sealing_key":  hex.EncodeToString(sealKey),
		"admin_id":     admin.UserID,
		"alice_id":     alice.ID,
		"bob_id":       bob.ID,
		"carol_id":     carol.ID,
		"dave_id":      dave.ID,
		"a1":           a1,
		"a2":           a2,
		"b1":           b1,
		"c1":           c1,
		"deployment":   depID,
		"instance":     inst.ID,
		"edge":         "edge-1",
		"last_index":   st.Index(),
		"settings_now": st.Settings(),
	}
	fj, err := json.MarshalIndent(fixture, "", "  ")
	must(err)
	must(os.WriteFile("testdata/legacy-log.jsonl", rec.lines, 0o644))
	must(os.WriteFile("testdata/snapshot-v2-legacy.bin", snap.Bytes(), 0o644))
	must(os.WriteFile("testdata/legacy-fixture.json", append(fj, '\n'), 0o644))
}
