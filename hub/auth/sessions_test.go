package auth

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/catalog"
)

func TestLogin(t *testing.T) {
	e := MustEnv(t)
	op := e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	ctx := ctxT(t)

	toks, p := e.MustLogin(t, "olga", opPW)
	if p.UserID != op.ID || p.Username != "olga" || p.Role != catalog.RoleOperator || p.Kind != KindSession ||
		p.Scope != ScopeAll || p.TokenID == "" || p.SessionID == "" {
		t.Fatalf("Login principal = %+v", p)
	}
	if toks.TokenType != "Bearer" || !strings.HasPrefix(toks.RefreshToken, RefreshTokenPrefix) ||
		toks.ExpiresAt.Sub(e.clock.Now()) > DefaultAccessTTL || toks.RefreshExpiresAt.Sub(e.clock.Now()) > DefaultRefreshTTL+time.Second {
		t.Fatalf("Login tokens = %+v", toks)
	}
	if got := e.MustAuth(t, "Bearer "+toks.AccessToken); got != p {
		t.Fatalf("Authenticate = %+v, want %+v", got, p)
	}
	// The username is case-insensitive, as in the catalog.
	e.MustLogin(t, "OLGA", opPW)

	_, _, err := e.svc.Login(ctx, "olga", "wrong password!!", "192.0.2.1")
	wantReason(t, "wrong password", err, ReasonBadCredentials)
	_, _, err = e.svc.Login(ctx, "nobody", opPW, "192.0.2.1")
	wantReason(t, "unknown user", err, ReasonBadCredentials)
	var ae *AuthError
	if !errors.As(err, &ae) || ae.Detail != "unknown username" {
		t.Errorf("unknown user detail = %v", err)
	}
	_, _, err = e.svc.Login(ctx, "olga", strings.Repeat("x", 100), "192.0.2.1")
	wantReason(t, "overlong password", err, ReasonBadCredentials)
	_, _, err = e.svc.Login(ctx, "", "", "192.0.2.1")
	wantReason(t, "empty", err, ReasonBadCredentials)

	op.Disabled = true
	e.MustApply(t, catalog.PutUser(op))
	_, _, err = e.svc.Login(ctx, "olga", opPW, "192.0.2.1")
	wantReason(t, "disabled user, right password", err, ReasonUserDisabled)
	_, _, err = e.svc.Login(ctx, "olga", "wrong password!!", "192.0.2.1")
	wantReason(t, "disabled user, wrong password", err, ReasonBadCredentials)
}

// TestUnknownUserComparesAgainstDummyHash: a login for an unknown user
// runs bcrypt at the configured cost, like a known one, so timing does not
// reveal whether a username exists.
func TestUnknownUserComparesAgainstDummyHash(t *testing.T) {
	e := MustEnv(t)
	e.svc.cfg.BcryptCost = bcrypt.MinCost + 1
	_, _, err := e.svc.Login(ctxT(t), "ghost", "some password!", "")
	wantReason(t, "unknown user", err, ReasonBadCredentials)
	cost, err := bcrypt.Cost(e.svc.dummyHash)
	if err != nil || cost != bcrypt.MinCost+1 {
		t.Fatalf("dummy hash cost = %d, %v; want the configured cost %d", cost, err, bcrypt.MinCost+1)
	}
}

func TestLoginBeforeSigningKey(t *testing.T) {
	e := MustEnvWithoutKey(t)
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	_, _, err := e.svc.Login(ctxT(t), "admin", adminPW, "")
	wantReason(t, "login without key", err, ReasonNoSigningKey)
	_, err = e.svc.Authenticate(ctxT(t), "a.b.c")
	wantReason(t, "authenticate without key", err, ReasonNoSigningKey)
}

func TestSigningKeySharedByEveryHub(t *testing.T) {
	e := MustEnv(t)
	k1, err := e.svc.signingKey()
	if err != nil || len(k1.Key) < 32 {
		t.Fatalf("signing key = %d bytes, %v", len(k1.Key), err)
	}
	if err := e.svc.EnsureSigningKey(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	// A second hub's Service over the same (replicated) catalog keeps the
	// key and verifies the first hub's tokens.
	other := New(Config{Now: e.clock.Now}, e.state, e.node)
	if err := other.EnsureSigningKey(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	k2, _ := other.signingKey()
	if k2.ID != k1.ID || string(k2.Key) != string(k1.Key) {
		t.Fatal("EnsureSigningKey replaced the existing key")
	}
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	toks, _ := e.MustLogin(t, "admin", adminPW)
	if _, err := other.Authenticate(ctxT(t), toks.AccessToken); err != nil {
		t.Fatalf("another hub refused the token: %v", err)
	}
}

// TestAccessTokenAttacks: every forged, altered, stale or revoked access
// token is refused with ErrUnauthenticated and a precise reason.
func TestAccessTokenAttacks(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "vera", catalog.RoleViewer, opPW)
	toks, _ := e.MustLogin(t, "vera", opPW)
	key, err := e.svc.signingKey()
	if err != nil {
		t.Fatal(err)
	}
	var base accessClaims
	if _, _, err := jwt.NewParser().ParseUnverified(toks.AccessToken, &base); err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()

	// sign signs claims (after edit) with method and key, kid as given.
	sign := func(method jwt.SigningMethod, k any, kid string, edit func(*accessClaims)) string {
		t.Helper()
		c := base
		c.Audience = append(jwt.ClaimStrings(nil), base.Audience...)
		if edit != nil {
			edit(&c)
		}
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := func(edit func(*accessClaims)) string { return sign(jwt.SigningMethodHS256, key.Key, key.ID, edit) }

	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	parts := strings.Split(toks.AccessToken, ".")
	sig := []byte(parts[2])
	if sig[3] == 'A' { // change one character of the signature, keeping it base64url
		sig[3] = 'B'
	} else {
		sig[3] = 'A'
	}
	adminPayload := base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(
		mustDecodeSeg(t, parts[1]), `"role":"VIEWER"`, `"role":"ADMIN"`, 1)))

	cases := []struct {
		name  string
		token string
		want  Reason
	}{
		{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, key.ID, nil), ReasonWrongAlgorithm},
		{"RS256 with an attacker's key", sign(jwt.SigningMethodRS256, rsaKey, key.ID, nil), ReasonWrongAlgorithm},
		{"HS256 keyed with the RSA public key (alg confusion)", sign(jwt.SigningMethodHS256, pubPEM, key.ID, nil), ReasonBadSignature},
		{"HS512 with the right key", sign(jwt.SigningMethodHS512, key.Key, key.ID, nil), ReasonWrongAlgorithm},
		{"wrong audience", good(func(c *accessClaims) { c.Audience = jwt.ClaimStrings{"node-red"} }), ReasonWrongAudience},
		{"no audience", good(func(c *accessClaims) { c.Audience = nil }), ReasonMalformed},
		{"wrong issuer", good(func(c *accessClaims) { c.Issuer = "evil" }), ReasonWrongIssuer},
		{"expired", good(func(c *accessClaims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }), ReasonExpired},
		{"no exp", good(func(c *accessClaims) { c.ExpiresAt = nil }), ReasonMalformed},
		{"not yet valid", good(func(c *accessClaims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Hour)) }), ReasonNotYetValid},
		{"issued in the future", good(func(c *accessClaims) { c.IssuedAt = jwt.NewNumericDate(now.Add(time.Hour)) }), ReasonNotYetValid},
		{"no jti", good(func(c *accessClaims) { c.ID = "" }), ReasonMalformed},
		{"unknown kid", sign(jwt.SigningMethodHS256, key.Key, "other-key", nil), ReasonUnknownKey},
		{"no kid", sign(jwt.SigningMethodHS256, key.Key, "", nil), ReasonUnknownKey},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(sig), ReasonBadSignature},
		{"tampered payload (role ADMIN)", parts[0] + "." + adminPayload + "." + parts[2], ReasonBadSignature},
		{"unknown subject", good(func(c *accessClaims) { c.Subject = "no-such-user" }), ReasonUserGone},
		{"garbage", "not-a-jwt", ReasonMalformed},
		{"two segments", parts[0] + "." + parts[1], ReasonMalformed},
		{"empty", "", ReasonMissing},
		{"bearer only", "Bearer ", ReasonMissing},
		{"a refresh token", toks.RefreshToken, ReasonMalformed},
		{"huge", strings.Repeat("a", maxBearerBytes+1), ReasonMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := e.svc.Authenticate(ctxT(t), c.token)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			wantReason(t, c.name, err, c.want)
		})
	}
	// The legitimate token still works, then expires with the clock.
	e.MustAuth(t, toks.AccessToken)
	e.clock.Advance(DefaultAccessTTL + DefaultLeeway + time.Second)
	_, err = e.svc.Authenticate(ctxT(t), toks.AccessToken)
	wantReason(t, "expired by the clock", err, ReasonExpired)
}

func mustDecodeSeg(tb testing.TB, seg string) string {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

func TestLogoutRevokesEverywhere(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	toks, p := e.MustLogin(t, "olga", opPW)
	otherToks, _ := e.MustLogin(t, "olga", opPW) // a second, independent session
	ctx := ctxT(t)

	if err := e.svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Authenticate(ctx, toks.AccessToken)
	wantReason(t, "access token after logout", err, ReasonRevoked)
	_, _, err = e.svc.Refresh(ctx, toks.RefreshToken)
	wantReason(t, "refresh token after logout", err, ReasonRevoked)
	// Another hub sharing the catalog refuses it too.
	other := New(Config{Now: e.clock.Now}, e.state, e.node)
	_, err = other.Authenticate(ctx, toks.AccessToken)
	wantReason(t, "other hub after logout", err, ReasonRevoked)
	if err := e.svc.Logout(ctx, p); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	e.MustAuth(t, otherToks.AccessToken)
	if _, _, err := e.svc.Refresh(ctx, otherToks.RefreshToken); err != nil {
		t.Fatalf("other session after logout: %v", err)
	}
	if err := e.svc.Logout(ctx, Principal{Kind: KindAPIToken, TokenID: "x"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Logout(api token) = %v, want ErrInvalid", err)
	}
}

func TestRoleChangeAndDisableTakeEffectOnNextRequest(t *testing.T) {
	e := MustEnv(t)
	u := e.MustUser(t, "olga", catalog.RoleOperator, opPW)
	toks, _ := e.MustLogin(t, "olga", opPW)

	u.Role = catalog.RoleViewer
	u = e.MustApply(t, catalog.PutUser(u)).(catalog.User)
	if p := e.MustAuth(t, toks.AccessToken); p.Role != catalog.RoleViewer {
		t.Fatalf("role after demotion = %s, want VIEWER", p.Role)
	}
	u.Disabled = true
	e.MustApply(t, catalog.PutUser(u))
	_, err := e.svc.Authenticate(ctxT(t), toks.AccessToken)
	wantReason(t, "disabled user", err, ReasonUserDisabled)
	_, _, err = e.svc.Refresh(ctxT(t), toks.RefreshToken)
	wantReason(t, "refresh of disabled user", err, ReasonUserDisabled)

	e.MustApply(t, catalog.DeleteUser(u.ID))
	_, err = e.svc.Authenticate(ctxT(t), toks.AccessToken)
	wantReason(t, "deleted user", err, ReasonUserGone)
}
