package edgesync_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/syncproto"
)

// stateApplier applies commands straight to a catalog.State (no Raft) and
// counts them, so the heartbeat throttle is visible.
type stateApplier struct {
	st    *catalog.State
	index uint64
	n     int
}

func (a *stateApplier) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	a.index++
	a.n++
	return a.st.Apply(a.index, cmd)
}

// TestHeartbeatThrottleAndOffline: heartbeats are Raft writes at most every
// interval/2 (unless the applied version changes); an edge is offline after
// 3 missed heartbeats, computed at read time from an injected clock.
func TestHeartbeatThrottleAndOffline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := sqlite.New(filepath.Join(t.TempDir(), "hub.db"))
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := catalog.NewState()
	ap := &stateApplier{st: st}
	s := edgesync.New(edgesync.Config{Catalog: st, Raft: ap, Store: db, HeartbeatInterval: time.Minute, Now: func() time.Time { return now }})
	ctx := context.Background()
	tok, err := s.CreateToken(ctx, edgesync.TokenRequest{TTLSeconds: 60}, "op")
	if err != nil {
		t.Fatal(err)
	}
	en, err := s.Enroll(ctx, &syncproto.EnrollRequest{Token: tok.Token, Name: "pi-1"})
	if err != nil {
		t.Fatal(err)
	}
	if id, err := s.AuthenticateEdge(ctx, en.Credential); err != nil || id != en.EdgeId {
		t.Fatalf("authenticate: %q %v", id, err)
	}
	if v, _ := s.Edge(ctx, en.EdgeId); v.State != catalog.EdgePending {
		t.Fatalf("before any heartbeat: %s", v.State)
	}
	writes := ap.n
	for i := range 10 { // 10 heartbeats 5s apart: only those 30s apart are written
		if err := s.Heartbeat(ctx, en.EdgeId, &syncproto.Heartbeat{}); err != nil {
			t.Fatal(err)
		}
		if i < 9 {
			now = now.Add(5 * time.Second)
		}
	}
	if got := ap.n - writes; got != 2 {
		t.Fatalf("10 heartbeats over 45s wrote %d times, want 2 (throttled to interval/2)", got)
	}
	if err := s.Heartbeat(ctx, en.EdgeId, &syncproto.Heartbeat{AppliedConfigVersion: 7}); err != nil || ap.n-writes != 3 {
		t.Fatalf("a new applied version must be written at once: %v, %d writes", err, ap.n-writes)
	}
	v, _ := s.Edge(ctx, en.EdgeId)
	if v.State != catalog.EdgeOnline || v.AppliedConfigVersion != 7 {
		t.Fatalf("after heartbeats: %+v", v)
	}
	now = now.Add(3*time.Minute - time.Second)
	if v, _ := s.Edge(ctx, en.EdgeId); v.State != catalog.EdgeOnline {
		t.Fatalf("just under 3 intervals: %s", v.State)
	}
	now = now.Add(2 * time.Second)
	if v, _ := s.Edge(ctx, en.EdgeId); v.State != catalog.EdgeOffline {
		t.Fatalf("3 missed heartbeats: %s, want offline", v.State)
	}
	// Expired token.
	tok2, _ := s.CreateToken(ctx, edgesync.TokenRequest{TTLSeconds: 1}, "op")
	now = now.Add(2 * time.Second)
	if _, err := s.Enroll(ctx, &syncproto.EnrollRequest{Token: tok2.Token}); !errors.Is(err, edgesync.ErrUnauthenticated) {
		t.Fatalf("expired token: %v", err)
	}
	if _, err := s.CreateToken(ctx, edgesync.TokenRequest{TTLSeconds: -5}, "op"); !errors.Is(err, edgesync.ErrInvalid) {
		t.Fatalf("bad ttl: %v", err)
	}
	// Only hashes are stored.
	for _, et := range st.EnrollmentTokens() {
		if et.Hash == tok.Token || et.Hash == tok2.Token {
			t.Fatal("enrollment token stored in clear")
		}
	}
	if e, _ := st.Edge(en.EdgeId); e.CredentialHash == "" || e.CredentialHash == en.Credential {
		t.Fatal("credential not stored hashed")
	}
}
