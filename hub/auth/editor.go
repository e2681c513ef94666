package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/redforge/controltower/hub/catalog"
)

// The Node-RED editor through the hub (/editor/{name}/) uses two
// credentials, both kept in the catalog so that any hub issues and checks
// them:
//
//   - an editor session: an HttpOnly cookie, scoped to one instance's
//     /editor/{name}/ path, that a console session obtains
//     (IssueEditorSession). It is checked on every request like the
//     session it came from: the user must still exist and be enabled, the
//     session must not be revoked (logout, a password change), and the
//     user's role is read afresh.
//   - an editor token: what the hub hands Node-RED with every proxied
//     request (SignEditorToken), short-lived and scoped to one catalog
//     row. It is signed with the cluster's Ed25519 editor key (a sealed
//     catalog setting, EnsureEditorKey); runtimes hold only the public key
//     (EditorPublicKey), so a runtime, whose flows are code, cannot mint
//     one, and a token a runtime shows back to the hub (an editor deploy
//     report) proves who deployed.

// Editor credential lifetimes.
const (
	// EditorSessionTTL bounds an editor session cookie; the console opens
	// a new one with "Open editor".
	EditorSessionTTL = 8 * time.Hour
	// EditorTokenTTL bounds an editor token.
	EditorTokenTTL = 5 * time.Minute
	// editorAudience is the audience of editor session JWTs (not the API's:
	// a cookie is never a bearer token).
	editorAudience = "redforge-editor"
	// editorTokenPrefix starts every editor token (its format version).
	editorTokenPrefix = "rfe1"
)

// Node-RED permissions an editor token carries.
const (
	EditorPermAll  = "*"
	EditorPermRead = "read"
)

// EditorPermission is what a principal may do in an instance's editor:
// EditorPermAll for a role that may update the instance (ADMIN, OPERATOR),
// EditorPermRead for one that may only read it (VIEWER), and "" when it may
// not open it at all (an instance-scoped token, or another instance's).
func EditorPermission(p Principal, instanceID string) string {
	if p.Scope == ScopeInstance {
		return ""
	}
	t := Target{InstanceID: instanceID}
	switch {
	case Authorize(p, ResourceInstances, ActionUpdate, t) == nil:
		return EditorPermAll
	case Authorize(p, ResourceInstances, ActionRead, t) == nil:
		return EditorPermRead
	}
	return ""
}

// editorSessionClaims are the claims of an editor session cookie: sub is
// the user, ins the logical instance, sid and gen the console session it
// came from (revoking that session ends it).
type editorSessionClaims struct {
	jwt.RegisteredClaims
	Instance   string `json:"ins"`
	SessionID  string `json:"sid"`
	Generation uint64 `json:"gen"`
}

// IssueEditorSession returns an editor session for p on the logical
// instance instanceID, and when it expires (EditorSessionTTL). Only a
// session may open one (scripts with an API token send it in the
// Authorization header instead): an API token gets an *InvalidError for
// field "token".
func (s *Service) IssueEditorSession(p Principal, instanceID string) (string, time.Time, error) {
	if p.Kind != KindSession || p.SessionID == "" {
		return "", time.Time{}, invalid("token", "only a console session opens an editor session; API tokens send their Authorization header to /editor/{name}/")
	}
	k, err := s.signingKey()
	if err != nil {
		return "", time.Time{}, s.keyError(err)
	}
	now := s.now()
	exp := now.Add(EditorSessionTTL).Truncate(time.Second)
	c := editorSessionClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: s.cfg.Issuer, Subject: p.UserID, Audience: jwt.ClaimStrings{editorAudience},
			ExpiresAt: jwt.NewNumericDate(exp), NotBefore: jwt.NewNumericDate(now), IssuedAt: jwt.NewNumericDate(now),
			ID: randomString(16),
		},
		Instance: instanceID, SessionID: p.SessionID, Generation: s.userGeneration(p.UserID),
	}
	t := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	t.Header["kid"] = k.ID
	signed, err := t.SignedString(k.Key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign editor session: %w", err)
	}
	return signed, exp.UTC(), nil
}

// AuthenticateEditorSession checks an editor session cookie for the
// logical instance instanceID and returns the principal it stands for,
// with the user's current role. Refusals are *AuthError: malformed, bad
// signature, expired, another instance's (wrong audience), the console
// session revoked, the user disabled or gone.
func (s *Service) AuthenticateEditorSession(raw, instanceID string) (Principal, error) {
	if raw == "" {
		return Principal{}, unauthenticated(ReasonMissing, "no editor session")
	}
	if len(raw) > maxBearerBytes {
		return Principal{}, unauthenticated(ReasonMalformed, "editor session too long")
	}
	k, err := s.signingKey()
	if err != nil {
		return Principal{}, s.keyError(err)
	}
	var c editorSessionClaims
	p := jwt.NewParser(jwt.WithValidMethods([]string{signingAlg}), jwt.WithIssuer(s.cfg.Issuer),
		jwt.WithAudience(editorAudience), jwt.WithLeeway(s.cfg.Leeway), jwt.WithIssuedAt(),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(s.cfg.Now), jwt.WithStrictDecoding())
	tok, err := p.ParseWithClaims(raw, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return s.verifyKey(k, kid) // the current key or a retired one (keys.go)
	})
	if err != nil {
		return Principal{}, jwtError(tok, err)
	}
	if c.Instance != instanceID {
		return Principal{}, unauthenticated(ReasonWrongAudience, "editor session of another instance")
	}
	if c.Subject == "" || c.SessionID == "" {
		return Principal{}, unauthenticated(ReasonMalformed, "editor session lacks sub or sid")
	}
	if revoked, err := s.hasSetting(prefixRevokedSession + c.SessionID); err != nil || revoked {
		return Principal{}, errOr(err, unauthenticated(ReasonRevoked, "session "+c.SessionID+" revoked"))
	}
	u, err := s.activeUser(c.Subject)
	if err != nil {
		return Principal{}, err
	}
	if s.userGeneration(u.ID) != c.Generation {
		return Principal{}, unauthenticated(ReasonRevoked, "the user's sessions were revoked after this editor session was opened")
	}
	return Principal{UserID: u.ID, Username: u.Username, Role: u.Role, TokenID: c.ID, SessionID: c.SessionID,
		Scope: ScopeAll, Kind: KindSession, ExpiresAt: c.ExpiresAt.UTC()}, nil
}

// EditorClaims are what an editor token says.
type EditorClaims struct {
	User       string `json:"u"`   // the hub username Node-RED shows and audits
	Permission string `json:"p"`   // EditorPermAll or EditorPermRead
	Row        string `json:"row"` // the catalog row whose runtimes accept it
	Expires    int64  `json:"exp"` // Unix seconds
	UserID     string `json:"uid,omitempty"`
}

// settingEditorKey holds the cluster's Ed25519 editor key: its seed,
// sealed by the hub (Config.Sealer) when it has a sealing key. It is its
// own key, not derived from the token signing key: runtimes hold its
// public half in their environment, so a change recreates every runtime,
// and RotateKeys must not do that.
const settingEditorKey = "auth/editor_key"

type editorKeySetting struct {
	Seed      []byte    `json:"seed,omitempty"`
	Sealed    string    `json:"sealed,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// EnsureEditorKey makes sure the cluster has an editor key, creating a
// random one when the catalog has none (as EnsureSigningKey does for the
// signing key; a second hub racing the first keeps the first's).
func (s *Service) EnsureEditorKey(ctx context.Context) error {
	_, err := s.editorKey()
	if err == nil || !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	k := editorKeySetting{Seed: randomBytes(ed25519.SeedSize), CreatedAt: s.now().UTC()}
	if s.cfg.Sealer != nil {
		v, err := s.cfg.Sealer.Seal(settingEditorKey, base64.StdEncoding.EncodeToString(k.Seed))
		if err != nil {
			return fmt.Errorf("seal editor key: %w", err)
		}
		k.Sealed, k.Seed = v, nil
	}
	_, err = apply[catalog.Setting](ctx, s.ap, catalog.PutSetting(settingEditorKey, k, catalog.IfIndex(0)))
	if err != nil && !errors.Is(err, catalog.ErrConflict) {
		return fmt.Errorf("ensure editor key: %w", err)
	}
	_, err = s.editorKey()
	return err
}

// editorKey returns the cluster's editor key. Errors: catalog.ErrNotFound
// before EnsureEditorKey ran; a key that does not open.
func (s *Service) editorKey() (ed25519.PrivateKey, error) {
	st, err := s.cat.Setting(settingEditorKey)
	if err != nil {
		return nil, fmt.Errorf("editor key: %w", err)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.edKey.index == st.ModifyIndex && s.edKey.key != nil {
		return s.edKey.key, nil
	}
	var k editorKeySetting
	if err := json.Unmarshal(st.Value, &k); err != nil {
		return nil, fmt.Errorf("editor key setting does not decode: %v", err)
	}
	if k.Sealed != "" {
		if s.cfg.Sealer == nil {
			return nil, errors.New("the editor key is sealed and this hub has no sealing key")
		}
		v, err := s.cfg.Sealer.Open(settingEditorKey, k.Sealed)
		if err != nil {
			return nil, fmt.Errorf("open editor key: %w", err)
		}
		if k.Seed, err = base64.StdEncoding.DecodeString(v); err != nil {
			return nil, fmt.Errorf("editor key: %w", err)
		}
	}
	if len(k.Seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("editor key setting: seed of %d bytes, want %d", len(k.Seed), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(k.Seed)
	s.edKey = cachedEditorKey{index: st.ModifyIndex, key: key}
	return key, nil
}

// cachedEditorKey is the opened editor key and the ModifyIndex of the
// setting it came from.
type cachedEditorKey struct {
	index uint64
	key   ed25519.PrivateKey
}

// EditorPublicKey is the public half of the editor key as runtimes take it
// (fleet.EnvEditorKey): DER SubjectPublicKeyInfo, unpadded base64url.
func (s *Service) EditorPublicKey() (string, error) {
	priv, err := s.editorKey()
	if err != nil {
		return "", err
	}
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		return "", fmt.Errorf("editor public key: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(der), nil
}

// SignEditorToken signs c; a zero Expires becomes now + EditorTokenTTL.
// Errors: an *InvalidError when c lacks a user, a row or a known
// permission; the signing key's errors.
func (s *Service) SignEditorToken(c EditorClaims) (string, error) {
	if c.User == "" || c.Row == "" || (c.Permission != EditorPermAll && c.Permission != EditorPermRead) {
		return "", invalid("editor_token", "needs a user, a row and the permission * or read")
	}
	if c.Expires == 0 {
		c.Expires = s.now().Add(EditorTokenTTL).Unix()
	}
	priv, err := s.editorKey()
	if err != nil {
		return "", err
	}
	body, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	signed := editorTokenPrefix + "." + base64.RawURLEncoding.EncodeToString(body)
	sig := ed25519.Sign(priv, []byte(signed))
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// ErrEditorToken is the error of a refused editor token.
var ErrEditorToken = errors.New("invalid editor token")

// VerifyEditorToken checks an editor token's signature and returns its
// claims. An expired token is still returned, with an error wrapping
// ErrEditorToken, so that a caller judging an event that happened while
// it was valid (an editor deploy report) can decide with Expires.
func (s *Service) VerifyEditorToken(tok string) (EditorClaims, error) {
	var c EditorClaims
	parts := strings.Split(tok, ".")
	if len(parts) != 3 || parts[0] != editorTokenPrefix || len(tok) > maxBearerBytes {
		return c, fmt.Errorf("%w: malformed", ErrEditorToken)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return c, fmt.Errorf("%w: malformed signature", ErrEditorToken)
	}
	priv, err := s.editorKey()
	if err != nil {
		return c, err
	}
	if !ed25519.Verify(priv.Public().(ed25519.PublicKey), []byte(parts[0]+"."+parts[1]), sig) {
		return c, fmt.Errorf("%w: bad signature", ErrEditorToken)
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(body, &c) != nil {
		return EditorClaims{}, fmt.Errorf("%w: malformed claims", ErrEditorToken)
	}
	if c.User == "" || c.Row == "" {
		return EditorClaims{}, fmt.Errorf("%w: no user or row", ErrEditorToken)
	}
	if time.Unix(c.Expires, 0).Before(s.now()) {
		return c, fmt.Errorf("%w: expired", ErrEditorToken)
	}
	return c, nil
}
