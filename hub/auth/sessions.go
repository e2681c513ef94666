package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/redforge/controltower/hub/catalog"
)

// signingAlg is the only JWT algorithm issued or accepted.
const signingAlg = "HS256"

// Tokens is what Login and Refresh return to the client. The refresh token
// is shown only here; the hub keeps its SHA-256.
type Tokens struct {
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	TokenType        string    `json:"token_type"` // "Bearer"
	ExpiresAt        time.Time `json:"expires_at"` // of the access token
	RefreshExpiresAt time.Time `json:"refresh_expires_at"`
}

// accessClaims are the claims of an access token. sub is the user ID; the
// role claim is informational (Authenticate uses the catalog's current
// role); sid names the session, gen the user's session generation.
type accessClaims struct {
	jwt.RegisteredClaims
	Username   string       `json:"name"`
	Role       catalog.Role `json:"role"`
	SessionID  string       `json:"sid"`
	Generation uint64       `json:"gen"`
}

// Login checks a username and password and starts a session: a short-lived
// access token and a refresh token. ip is recorded with the session. The
// password is compared in constant time, and against a dummy hash for an
// unknown username, so timing does not reveal which usernames exist.
// Errors: *AuthError with ReasonBadCredentials (unknown user or wrong
// password; Detail says which, for the audit log) or ReasonUserDisabled
// (only after a correct password); ReasonNoSigningKey before
// EnsureSigningKey; the Applier's errors.
func (s *Service) Login(ctx context.Context, username, password, ip string) (Tokens, Principal, error) {
	u, err := s.cat.UserByName(username)
	if err != nil && !isNotFound(err) {
		return Tokens{}, Principal{}, fmt.Errorf("login: %w", err)
	}
	if !s.checkUserPassword(u.PasswordHash, password) {
		detail := "wrong password for user " + u.ID
		if u.ID == "" {
			detail = "unknown username"
		}
		return Tokens{}, Principal{}, unauthenticated(ReasonBadCredentials, detail)
	}
	if u.Disabled {
		return Tokens{}, Principal{}, unauthenticated(ReasonUserDisabled, "user "+u.ID+" is disabled")
	}
	now := s.now()
	rec := refreshRecord{
		SessionID: randomString(16), UserID: u.ID, Generation: s.userGeneration(u.ID),
		SessionStart: now.UTC(), IP: ip,
	}
	return s.issueSession(ctx, u, rec, now)
}

// issueSession writes a new refresh token for rec's session and signs an
// access token.
func (s *Service) issueSession(ctx context.Context, u catalog.User, rec refreshRecord, now time.Time) (Tokens, Principal, error) {
	if _, err := s.signingKey(); err != nil {
		return Tokens{}, Principal{}, s.keyError(err)
	}
	rec.IssuedAt = now.UTC()
	rec.ExpiresAt = minTime(now.Add(s.cfg.RefreshTTL), rec.SessionStart.Add(s.cfg.SessionMaxAge)).UTC()
	rt, err := s.putRefresh(ctx, rec)
	if err != nil {
		return Tokens{}, Principal{}, fmt.Errorf("start session: %w", err)
	}
	at, p, err := s.issueAccess(u, rec, now)
	if err != nil {
		return Tokens{}, Principal{}, err
	}
	return Tokens{AccessToken: at, RefreshToken: rt, TokenType: "Bearer",
		ExpiresAt: p.ExpiresAt, RefreshExpiresAt: rec.ExpiresAt}, p, nil
}

// issueAccess signs an access token for u in rec's session.
func (s *Service) issueAccess(u catalog.User, rec refreshRecord, now time.Time) (string, Principal, error) {
	k, err := s.signingKey()
	if err != nil {
		return "", Principal{}, s.keyError(err)
	}
	exp := now.Add(s.cfg.AccessTTL).Truncate(time.Second)
	c := accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.cfg.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{s.cfg.Audience},
			ExpiresAt: jwt.NewNumericDate(exp),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        randomString(16),
		},
		Username: u.Username, Role: u.Role, SessionID: rec.SessionID, Generation: rec.Generation,
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = k.ID
	signed, err := t.SignedString(k.Key)
	if err != nil {
		return "", Principal{}, fmt.Errorf("sign access token: %w", err)
	}
	return signed, Principal{UserID: u.ID, Username: u.Username, Role: u.Role, TokenID: c.ID,
		SessionID: rec.SessionID, Scope: ScopeAll, Kind: KindSession, ExpiresAt: exp.UTC()}, nil
}

func (s *Service) keyError(err error) error {
	if isNotFound(err) {
		return unauthenticated(ReasonNoSigningKey, "no signing key in the catalog: EnsureSigningKey has not run on the leader")
	}
	return err
}

// errUnknownKey is returned by the key function for a kid that is neither
// the cluster's current key nor a retired key still verifying tokens.
var errUnknownKey = errors.New("unknown key id")

// verifyAccessToken checks an access token: signature (HS256 only, the
// current key or a retired one still verifying), issuer, audience,
// exp/nbf/iat with leeway, then the revocation set, the session, the user
// and the user's session generation.
func (s *Service) verifyAccessToken(raw string) (Principal, error) {
	k, err := s.signingKey()
	if err != nil {
		return Principal{}, s.keyError(err)
	}
	var c accessClaims
	p := jwt.NewParser(
		jwt.WithValidMethods([]string{signingAlg}),
		jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(s.cfg.Audience),
		jwt.WithLeeway(s.cfg.Leeway),
		jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(s.cfg.Now),
		jwt.WithStrictDecoding(),
	)
	tok, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.verifyKey(k, kid) // the current key or a retired one (keys.go)
	})
	if err != nil {
		return Principal{}, jwtError(tok, err)
	}
	if c.ID == "" || c.Subject == "" || c.SessionID == "" || c.ExpiresAt == nil {
		return Principal{}, unauthenticated(ReasonMalformed, "access token lacks jti, sub, sid or exp")
	}
	if err := s.checkNotRevoked(c); err != nil {
		return Principal{}, err
	}
	u, err := s.activeUser(c.Subject)
	if err != nil {
		return Principal{}, err
	}
	if s.userGeneration(u.ID) != c.Generation {
		return Principal{}, unauthenticated(ReasonRevoked, "the user's sessions were revoked after this token was issued")
	}
	return Principal{UserID: u.ID, Username: u.Username, Role: u.Role, TokenID: c.ID,
		SessionID: c.SessionID, Scope: ScopeAll, Kind: KindSession, ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// checkNotRevoked refuses a token whose jti or session was revoked.
func (s *Service) checkNotRevoked(c accessClaims) error {
	isRevoked, err := revoked(s.cat.TokenRevoked(c.ID))
	if err != nil || isRevoked {
		return errOr(err, unauthenticated(ReasonRevoked, "access token revoked (logout)"))
	}
	isRevoked, err = revoked(s.cat.SessionRevoked(c.SessionID))
	if err != nil || isRevoked {
		return errOr(err, unauthenticated(ReasonRevoked, "session "+c.SessionID+" revoked"))
	}
	return nil
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// jwtError maps a golang-jwt error to an *AuthError with a safe reason.
func jwtError(tok *jwt.Token, err error) error {
	alg := ""
	if tok != nil {
		alg, _ = tok.Header["alg"].(string)
	}
	detail := err.Error()
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return unauthenticated(ReasonMalformed, detail)
	case tok != nil && alg != signingAlg:
		return unauthenticated(ReasonWrongAlgorithm, "alg "+alg)
	case errors.Is(err, errUnknownKey):
		return unauthenticated(ReasonUnknownKey, detail)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return unauthenticated(ReasonBadSignature, detail)
	case errors.Is(err, jwt.ErrTokenExpired):
		return unauthenticated(ReasonExpired, detail)
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return unauthenticated(ReasonNotYetValid, detail)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return unauthenticated(ReasonWrongIssuer, detail)
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return unauthenticated(ReasonWrongAudience, detail)
	}
	return unauthenticated(ReasonMalformed, detail)
}

// Refresh exchanges a refresh token for a new access token and a new
// refresh token (rotation). The presented token is marked used; presenting
// a used token again is taken as theft (RFC 6819 §5.2.2.3): the whole
// session is revoked, its access tokens included, and ReasonReused is
// returned. Other errors: *AuthError (malformed, unknown, expired, session
// too old or revoked, user disabled or gone, sessions revoked by a
// password change); the Applier's errors.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, Principal, error) {
	rec, err := s.lookupRefresh(refreshToken)
	if err != nil {
		return Tokens{}, Principal{}, err
	}
	now := s.now()
	if isRevoked, err := revoked(s.cat.SessionRevoked(rec.SessionID)); err != nil || isRevoked {
		return Tokens{}, Principal{}, errOr(err, unauthenticated(ReasonRevoked, "session "+rec.SessionID+" revoked"))
	}
	if !rec.UsedAt.IsZero() {
		return Tokens{}, Principal{}, s.reused(ctx, rec)
	}
	if err := s.checkRefreshUsable(rec, now); err != nil {
		return Tokens{}, Principal{}, err
	}
	u, err := s.activeUser(rec.UserID)
	if err != nil {
		return Tokens{}, Principal{}, err
	}
	used := rec
	used.UsedAt = now.UTC()
	_, err = apply[catalog.RefreshToken](ctx, s.ap, catalog.PutRefreshToken(used, catalog.IfIndex(rec.ModifyIndex)))
	if errors.Is(err, catalog.ErrConflict) { // used concurrently: also a reuse
		return Tokens{}, Principal{}, s.reused(ctx, rec)
	}
	if err != nil {
		return Tokens{}, Principal{}, fmt.Errorf("refresh: %w", err)
	}
	next := refreshRecord{SessionID: rec.SessionID, UserID: rec.UserID, Generation: rec.Generation,
		SessionStart: rec.SessionStart, IP: rec.IP}
	return s.issueSession(ctx, u, next, now)
}

// checkRefreshUsable refuses an expired or too old refresh token, or one
// from before the user's sessions were revoked.
func (s *Service) checkRefreshUsable(rec refreshRecord, now time.Time) error {
	switch {
	case now.After(rec.ExpiresAt.Add(s.cfg.Leeway)):
		return unauthenticated(ReasonExpired, "refresh token expired")
	case now.After(rec.SessionStart.Add(s.cfg.SessionMaxAge)):
		return unauthenticated(ReasonSessionTooOld, "session started "+rec.SessionStart.Format(time.RFC3339))
	case s.userGeneration(rec.UserID) != rec.Generation:
		return unauthenticated(ReasonRevoked, "the user's sessions were revoked after this token was issued")
	}
	return nil
}

// reused revokes the session of a refresh token presented a second time.
func (s *Service) reused(ctx context.Context, rec refreshRecord) error {
	s.log.Warn("refresh token reused; revoking the session", logKeyUserID, rec.UserID, logKeySession, rec.SessionID)
	if err := s.revokeSession(ctx, rec.SessionID, "refresh token reuse"); err != nil {
		return fmt.Errorf("revoke session after refresh token reuse: %w", err)
	}
	return unauthenticated(ReasonReused, "refresh token of session "+rec.SessionID+" presented twice")
}

// Logout ends p's session: p's access token (its jti) is revoked until it
// expires, and so is the session, so its refresh tokens and every other
// access token issued in it are refused by every hub. Logging out twice is
// not an error. Errors: ErrInvalid for an API token principal (revoke
// those with RevokeAPIToken); the Applier's errors.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.Kind != KindSession || p.TokenID == "" || p.SessionID == "" {
		return invalid("token", "only a session can log out; API tokens are revoked with the token API")
	}
	until := p.ExpiresAt.Add(s.cfg.Leeway)
	if p.ExpiresAt.IsZero() {
		until = s.now().Add(s.cfg.AccessTTL + s.cfg.Leeway)
	}
	rv := catalog.Revocations{
		Tokens:   []catalog.Revocation{{ID: p.TokenID, At: s.now().UTC(), Until: until.UTC(), Reason: "logout"}},
		Sessions: []catalog.Revocation{s.sessionRevocation(p.SessionID, "logout")},
	}
	if _, err := s.ap.Apply(ctx, catalog.Revoke(rv)); err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func isNotFound(err error) bool { return errors.Is(err, catalog.ErrNotFound) }
