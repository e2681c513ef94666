package auth

import (
	"context"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/secrets"
)

func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, &accessClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// TestRotateKeys: after a rotation new tokens carry the new key; tokens of
// the old key still verify (on this hub and another over the same
// catalog) until they expire; then the old key verifies nothing more and
// Sweep deletes it.
func TestRotateKeys(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	before, _ := e.MustLogin(t, "admin", adminPW)
	oldKey, err := e.svc.signingKey()
	if err != nil {
		t.Fatal(err)
	}

	info, err := e.svc.RotateKeys(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.ID == oldKey.ID || !info.Current {
		t.Fatalf("rotate: %+v (old kid %s)", info, oldKey.ID)
	}
	after, _ := e.MustLogin(t, "admin", adminPW)
	if kidOf(t, before.AccessToken) != oldKey.ID || kidOf(t, after.AccessToken) != info.ID {
		t.Fatalf("kids: before %s after %s, want %s then %s", kidOf(t, before.AccessToken), kidOf(t, after.AccessToken), oldKey.ID, info.ID)
	}
	other := New(Config{Now: e.clock.Now}, e.state, e.node) // another hub
	for _, svc := range []*Service{e.svc, other} {
		for name, tok := range map[string]string{"old key": before.AccessToken, "new key": after.AccessToken} {
			if _, err := svc.Authenticate(ctxT(t), tok); err != nil {
				t.Errorf("token of the %s refused after the rotation: %v", name, err)
			}
		}
	}
	keys, err := e.svc.SigningKeys()
	if err != nil || len(keys) != 2 || !keys[0].Current || keys[0].ID != info.ID || keys[1].ID != oldKey.ID || keys[1].VerifyUntil == nil {
		t.Fatalf("signing keys after the rotation: %+v %v", keys, err)
	}

	// A token of the old key forged to outlive the key's window: once the
	// window has passed it is refused for its key, not only its expiry.
	e.clock.Advance(DefaultAccessTTL + DefaultLeeway + time.Second)
	wantReason(t, "old token after expiry", authErr(e.svc, before.AccessToken), ReasonExpired)
	var c accessClaims
	if _, _, err := jwt.NewParser().ParseUnverified(before.AccessToken, &c); err != nil {
		t.Fatal(err)
	}
	c.ExpiresAt = jwt.NewNumericDate(e.clock.Now().Add(time.Minute))
	c.IssuedAt, c.NotBefore = jwt.NewNumericDate(e.clock.Now()), jwt.NewNumericDate(e.clock.Now())
	forged := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	forged.Header["kid"] = oldKey.ID
	raw, err := forged.SignedString(oldKey.Key)
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(DefaultLeeway)
	wantReason(t, "old key past its window", authErr(e.svc, raw), ReasonUnknownKey)

	if n, err := e.svc.Sweep(ctxT(t)); err != nil || n == 0 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if _, err := e.state.SigningKeyByID(oldKey.ID); err == nil {
		t.Error("Sweep kept the retired key past its window")
	}
	if keys, _ := e.svc.SigningKeys(); len(keys) != 1 || keys[0].ID != info.ID {
		t.Errorf("signing keys after the sweep: %+v", keys)
	}
}

func TestRotateKeysBeforeSigningKey(t *testing.T) {
	e := MustEnvWithoutKey(t)
	_, err := e.svc.RotateKeys(ctxT(t))
	wantReason(t, "rotate without key", err, ReasonNoSigningKey)
}

func authErr(s *Service, token string) error {
	_, err := s.Authenticate(context.Background(), token)
	return err
}

// TestSigningKeysSealed: with a sealer the catalog holds the signing keys
// sealed only (current and retired), and tokens of both still verify on
// another hub that has the same sealing key; a hub without it cannot use
// them.
func TestSigningKeysSealed(t *testing.T) {
	e := MustEnvWithoutKey(t)
	seal, err := secrets.FromClusterSecret("sealing-test-cluster-secret")
	if err != nil {
		t.Fatal(err)
	}
	e.svc = New(Config{Now: e.clock.Now, Sealer: seal}, e.state, e.node)
	if err := e.svc.EnsureSigningKey(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	before, _ := e.MustLogin(t, "admin", adminPW)
	if _, err := e.svc.RotateKeys(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	after, _ := e.MustLogin(t, "admin", adminPW)
	keys := e.state.SigningKeys()
	if len(keys) != 2 {
		t.Fatalf("signing keys after a rotation: %d, want 2", len(keys))
	}
	for _, k := range keys {
		if len(k.Key) != 0 || k.Sealed == "" {
			t.Fatalf("signing key %s is kept in clear (key %d bytes, sealed %q)", k.ID, len(k.Key), k.Sealed)
		}
	}
	same, _ := secrets.FromClusterSecret("sealing-test-cluster-secret")
	other := New(Config{Now: e.clock.Now, Sealer: same}, e.state, e.node)
	for _, tok := range []string{before.AccessToken, after.AccessToken} {
		if _, err := other.Authenticate(ctxT(t), tok); err != nil {
			t.Fatalf("a hub with the same sealing key refused a token: %v", err)
		}
	}
	wrong, _ := secrets.FromClusterSecret("another-cluster-secret-entirely")
	if _, err := New(Config{Now: e.clock.Now, Sealer: wrong}, e.state, e.node).Authenticate(ctxT(t), after.AccessToken); err == nil {
		t.Fatal("a hub with another sealing key accepted a token")
	}
}
