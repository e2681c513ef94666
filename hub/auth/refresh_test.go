package auth

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// TestRefreshRotationAndReuseDetection: each refresh returns a new refresh
// token and spends the old one; presenting a spent token revokes the whole
// session (RFC 6819 §5.2.2.3), the thief's and the owner's tokens alike.
func TestRefreshRotationAndReuseDetection(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	ctx := ctxT(t)
	t0, p0 := e.MustLogin(t, "olga", opPW)

	e.clock.Advance(time.Minute)
	t1, p1, err := e.svc.Refresh(ctx, t0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if t1.RefreshToken == t0.RefreshToken || t1.AccessToken == t0.AccessToken || p1.SessionID != p0.SessionID ||
		p1.TokenID == p0.TokenID || p1.UserID != p0.UserID {
		t.Fatalf("refresh did not rotate: %+v / %+v", p0, p1)
	}
	e.MustAuth(t, t1.AccessToken)
	t2, _, err := e.svc.Refresh(ctx, t1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}

	// An attacker replays the first refresh token.
	_, _, err = e.svc.Refresh(ctx, t0.RefreshToken)
	wantReason(t, "reused refresh token", err, ReasonReused)
	// The whole family is now dead: the latest refresh token and every
	// access token of the session.
	_, _, err = e.svc.Refresh(ctx, t2.RefreshToken)
	wantReason(t, "latest refresh token after reuse", err, ReasonRevoked)
	for _, at := range []string{t0.AccessToken, t1.AccessToken, t2.AccessToken} {
		_, err = e.svc.Authenticate(ctx, at)
		wantReason(t, "access token after reuse", err, ReasonRevoked)
	}
	if !strings.Contains(e.logs.String(), "refresh token reused") {
		t.Error("reuse was not logged")
	}
	// A new login starts a fresh session.
	e.MustLogin(t, "olga", opPW)
}

// TestConcurrentRefreshOneWins: the same refresh token presented twice at
// once is a reuse; at most one exchange succeeds.
func TestConcurrentRefreshOneWins(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	toks, _ := e.MustLogin(t, "olga", opPW)
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, errs[i] = e.svc.Refresh(ctxT(t), toks.RefreshToken)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
		} else if r := ReasonOf(err); r != ReasonReused && r != ReasonRevoked {
			t.Errorf("concurrent refresh: %v", err)
		}
	}
	if ok > 1 {
		t.Fatalf("%d concurrent refreshes of one token succeeded, want at most 1", ok)
	}
}

func TestRefreshRefusals(t *testing.T) {
	e := MustEnv(t)
	u := e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	ctx := ctxT(t)

	for _, bad := range []string{"", "rfr_", "rfr_short", toksPrefixOnly(), "rft_" + strings.Repeat("A", 43)} {
		_, _, err := e.svc.Refresh(ctx, bad)
		wantReason(t, "malformed refresh "+bad, err, ReasonMalformed)
	}
	_, _, err := e.svc.Refresh(ctx, "rfr_"+strings.Repeat("A", 43))
	wantReason(t, "unknown refresh", err, ReasonUnknownToken)

	toks, _ := e.MustLogin(t, "olga", opPW)
	e.clock.Advance(DefaultRefreshTTL + DefaultLeeway + time.Second)
	_, _, err = e.svc.Refresh(ctx, toks.RefreshToken)
	wantReason(t, "expired refresh", err, ReasonExpired)

	// A session cannot be stretched past SessionMaxAge by refreshing.
	toks, _ = e.MustLogin(t, "olga", opPW)
	start := e.clock.Now()
	for i := 0; ; i++ {
		e.clock.Advance(DefaultRefreshTTL - time.Hour)
		next, _, err := e.svc.Refresh(ctx, toks.RefreshToken)
		if err != nil {
			wantReason(t, "session past max age", err, ReasonExpired)
			if elapsed := e.clock.Now().Sub(start); elapsed < DefaultSessionMaxAge {
				t.Fatalf("session ended after %s, before its max age", elapsed)
			}
			break
		}
		if next.RefreshExpiresAt.After(start.Add(DefaultSessionMaxAge)) {
			t.Fatal("refresh expiry past the session's max age")
		}
		if i > 10 {
			t.Fatal("session outlived SessionMaxAge")
		}
		toks = next
	}

	// A password change ends the user's sessions.
	toks, p := e.MustLogin(t, "olga", opPW)
	newPW := "a brand new password"
	if _, err := e.svc.UpdateUser(ctx, p, u.ID, UserPatch{Password: &newPW, CurrentPassword: opPW}); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.Authenticate(ctx, toks.AccessToken)
	wantReason(t, "access after password change", err, ReasonRevoked)
	_, _, err = e.svc.Refresh(ctx, toks.RefreshToken)
	wantReason(t, "refresh after password change", err, ReasonRevoked)
	e.MustLogin(t, "olga", newPW)
}

func toksPrefixOnly() string { return RefreshTokenPrefix + strings.Repeat("!", 43) }

func TestSweepDropsExpiredSessionState(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	ctx := ctxT(t)
	_, p := e.MustLogin(t, "olga", opPW)
	toks2, _ := e.MustLogin(t, "olga", opPW)
	if err := e.svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := len(e.state.RefreshTokens())
		if _, err := e.state.TokenRevoked(p.TokenID); err == nil {
			n++
		}
		if _, err := e.state.SessionRevoked(p.SessionID); err == nil {
			n++
		}
		return n
	}
	before, index := count(), e.state.Index() // 2 refresh records, 1 revoked jti, 1 revoked session
	if n, err := e.svc.Sweep(ctx); err != nil || n != 0 || before != 4 {
		t.Fatalf("early Sweep = %d, %v (state entries %d, want 4)", n, err, before)
	}
	if e.state.Index() != index {
		t.Fatalf("a Sweep with nothing to reap committed a command (index %d, was %d)", e.state.Index(), index)
	}
	e.clock.Advance(DefaultAccessTTL + time.Minute)
	if n, err := e.svc.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("Sweep after access TTL = %d, %v; want the revoked jti", n, err)
	}
	e.clock.Advance(DefaultRefreshTTL)
	if n, err := e.svc.Sweep(ctx); err != nil || n != 3 || count() != 0 {
		t.Fatalf("Sweep after refresh TTL = %d, %v, %d left", n, err, count())
	}
	if _, err := e.state.SigningKey(); err != nil {
		t.Fatal("Sweep removed the signing key")
	}
	_, _, err := e.svc.Refresh(ctx, toks2.RefreshToken)
	wantReason(t, "swept refresh", err, ReasonUnknownToken)
}
