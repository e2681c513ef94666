package catalog_test

import (
	"bufio"
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

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/secrets"
)

// fixtureTokens is a Login or Refresh result the older hub handed out.
type fixtureTokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// consumerFixture is what this test reads of testdata/legacy-fixture.json.
type consumerFixture struct {
	Now        time.Time     `json:"now"`
	SealingKey string        `json:"sealing_key"`
	AliceID    string        `json:"alice_id"`
	A1         fixtureTokens `json:"a1"` // alice, used once (refreshed into a2)
	A2         fixtureTokens `json:"a2"` // alice, current, signed with the key since retired
	B1         fixtureTokens `json:"b1"` // alice's second session, signed with the current key
	C1         fixtureTokens `json:"c1"` // bob, logged out and all sessions revoked
	Deployment string        `json:"deployment"`
	Edge       string        `json:"edge"`
	LastIndex  uint64        `json:"last_index"`
}

// stateApplier applies commands to a State at increasing indexes, as the
// cluster's FSM would.
type stateApplier struct {
	mu    sync.Mutex
	state *catalog.State
	index uint64
}

func (a *stateApplier) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, err := cmd.Encode()
	if err != nil {
		return nil, err
	}
	dec, err := catalog.DecodeCommand(b)
	if err != nil {
		return nil, err
	}
	a.index++
	return a.state.Apply(a.index, dec)
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *testClock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// legacyStates returns the state of the older hub twice: restored from its
// format-2 snapshot, and rebuilt by replaying its Raft log.
func legacyStates(t *testing.T) map[string]*catalog.State {
	t.Helper()
	snap, err := os.ReadFile("testdata/snapshot-v2-legacy.bin")
	if err != nil {
		t.Fatal(err)
	}
	restored := catalog.NewState()
	if err := restored.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("restore the format-2 snapshot: %v", err)
	}
	f, err := os.Open("testdata/legacy-log.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	replayed := catalog.NewState()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Index   uint64 `json:"index"`
			Command string `json:"command"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(e.Command)
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := catalog.DecodeCommand(raw)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := replayed.Apply(e.Index, cmd); err != nil {
			t.Fatalf("replay entry %d: %v", e.Index, err)
		}
	}
	return map[string]*catalog.State{"restored": restored, "replayed": replayed}
}

// TestLegacyStateServesTodaysConsumers: after a restore of the older hub's
// snapshot, or a replay of its log, today's hub/auth, hub/audit,
// hub/edgesync and hub/deploy read what that hub wrote: the sessions it
// issued go on (tokens of the retired key until its window ends, refresh
// with rotation and reuse detection, revocations), the audit anchor, the
// edge config and the deployment spec are there, and the reaping command
// deletes what expired.
func TestLegacyStateServesTodaysConsumers(t *testing.T) {
	b, err := os.ReadFile("testdata/legacy-fixture.json")
	if err != nil {
		t.Fatal(err)
	}
	var f consumerFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	key, err := hex.DecodeString(f.SealingKey)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, st := range legacyStates(t) {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			clk := &testClock{t: f.Now}
			ap := &stateApplier{state: st, index: f.LastIndex}
			svc := auth.New(auth.Config{Sealer: sealer, Now: clk.Now, Logger: slog.New(slog.DiscardHandler)}, st, ap)

			for tok, want := range map[string]auth.Reason{f.A2.AccessToken: "", f.B1.AccessToken: "", f.C1.AccessToken: auth.ReasonRevoked} {
				_, err := svc.Authenticate(ctx, "Bearer "+tok)
				if got := auth.ReasonOf(err); got != want || want == "" && err != nil {
					t.Errorf("access token of the older hub: %v (reason %q), want reason %q", err, got, want)
				}
			}
			keys, err := svc.SigningKeys()
			if err != nil || len(keys) != 2 || !keys[0].Current || keys[1].VerifyUntil == nil {
				t.Fatalf("signing keys: %+v, %v", keys, err)
			}
			next, p, err := svc.Refresh(ctx, f.A2.RefreshToken)
			if err != nil || p.UserID != f.AliceID {
				t.Fatalf("refresh with the older hub's token: %+v, %v", p, err)
			}
			if _, err := svc.Authenticate(ctx, "Bearer "+next.AccessToken); err != nil {
				t.Fatalf("access token after the refresh: %v", err)
			}
			if _, _, err := svc.Refresh(ctx, f.A1.RefreshToken); auth.ReasonOf(err) != auth.ReasonReused {
				t.Fatalf("refresh token the older hub saw used: %v, want reuse", err)
			}
			if _, err := svc.Authenticate(ctx, "Bearer "+next.AccessToken); auth.ReasonOf(err) != auth.ReasonRevoked {
				t.Fatalf("session after the reuse: %v, want revoked", err)
			}

			a, ok, err := audit.CatalogAnchors{Catalog: st, Applier: ap}.LoadAnchor()
			if err != nil || !ok || a.ID != 12 || a.Hash != "bb12" {
				t.Errorf("audit anchor: %+v %v %v", a, ok, err)
			}
			es := edgesync.New(edgesync.Config{Catalog: st, Raft: ap, Now: clk.Now})
			c, err := es.DesiredConfig(ctx, f.Edge)
			if err != nil || c.Version != 2 || c.UpdatedBy != "alice" || string(c.Settings) != `{"flowFilePretty":true}` {
				t.Errorf("edge config: %+v, %v", c, err)
			}
			if c, err = es.SetConfig(ctx, f.Edge, json.RawMessage(`[]`), nil, "bob"); err != nil || c.Version != 3 {
				t.Errorf("set the edge config after the upgrade: %+v, %v", c, err)
			}
			row, err := st.DeploymentSpec(f.Deployment)
			var spec deploy.Spec
			if err != nil || json.Unmarshal(row.Spec, &spec) != nil || spec.GreenRev != "rev-2" || spec.DrainTimeout != 30*time.Second {
				t.Errorf("deployment spec: %+v (%s), %v", spec, row.Spec, err)
			}

			// Past the retired key's window its tokens are refused; past
			// the refresh tokens' expiry one command reaps them all.
			clk.Advance(auth.DefaultAccessTTL + 2*auth.DefaultLeeway)
			if _, err := svc.Authenticate(ctx, "Bearer "+f.A2.AccessToken); err == nil {
				t.Error("token of the retired key accepted after its window")
			}
			clk.Advance(auth.DefaultRefreshTTL)
			n, err := svc.Sweep(ctx)
			if err != nil || n < 5 || len(st.RefreshTokens()) != 0 || len(st.SigningKeys()) != 1 {
				t.Errorf("sweep: %d, %v; %d refresh tokens and %d keys left", n, err, len(st.RefreshTokens()), len(st.SigningKeys()))
			}
		})
	}
}
