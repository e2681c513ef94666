package auth

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/catalog"
)

// APITokenPrefix starts every API token: "rft_" then 32 random bytes as
// unpadded base64url (43 characters). The prefix lets secret scanners and
// Authenticate recognise one.
const APITokenPrefix = "rft_"

// MaxTokenNameLength bounds an API token's name (characters).
const MaxTokenNameLength = 128

// NewAPIToken is a request for an API token.
type NewAPIToken struct {
	Name string       `json:"name"`
	Role catalog.Role `json:"role"`
	// Scope is ScopeAll (default) or ScopeInstance, which needs InstanceID.
	Scope      string `json:"scope,omitempty"`
	InstanceID string `json:"instance_id,omitempty"`
	// ExpiresAt is optional; zero means the token does not expire.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// APITokenInfo describes an API token without its secret or hash.
type APITokenInfo struct {
	ID         string       `json:"id"`
	Name       string       `json:"name,omitempty"`
	Role       catalog.Role `json:"role"`
	Scope      string       `json:"scope"`
	InstanceID string       `json:"instance_id,omitempty"`
	CreatedBy  string       `json:"created_by,omitempty"`
	CreatedAt  time.Time    `json:"created_at"`
	ExpiresAt  time.Time    `json:"expires_at,omitzero"`
	Revoked    bool         `json:"revoked,omitempty"`
	RevokedAt  time.Time    `json:"revoked_at,omitzero"`
}

// TokenInfo returns the public description of t.
func TokenInfo(t catalog.APIToken) APITokenInfo {
	return APITokenInfo{ID: t.ID, Name: t.Name, Role: t.Role, Scope: scopeOf(t), InstanceID: t.InstanceID,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, RevokedAt: t.RevokedAt}
}

func scopeOf(t catalog.APIToken) string {
	if t.Scope == "" {
		return ScopeAll
	}
	return t.Scope
}

// CreateAPIToken creates an API token on behalf of by and returns its
// secret, which is shown this once (only its SHA-256 is stored). The
// token's role may not exceed by's; a token of ScopeInstance is bound to
// InstanceID and may only do what InstanceScopePermissions lists. Errors:
// ErrForbidden unless by may create tokens (ADMIN sessions and
// full-scope ADMIN tokens); ErrInvalid (naming the field) for a bad role,
// scope, name or expiry; catalog.ErrNotFound for an unknown instance; the
// Applier's errors.
func (s *Service) CreateAPIToken(ctx context.Context, by Principal, req NewAPIToken) (string, APITokenInfo, error) {
	if err := Authorize(by, ResourceTokens, ActionCreate, Target{}); err != nil {
		return "", APITokenInfo{}, err
	}
	if err := s.checkNewToken(by, &req); err != nil {
		return "", APITokenInfo{}, err
	}
	secret := newSecret(APITokenPrefix)
	t := catalog.APIToken{
		ID: uuid.NewString(), Name: req.Name, Hash: hashToken(secret), Scope: req.Scope, Role: req.Role,
		InstanceID: req.InstanceID, CreatedBy: by.UserID, CreatedAt: s.now().UTC(), ExpiresAt: req.ExpiresAt.UTC(),
	}
	if req.ExpiresAt.IsZero() {
		t.ExpiresAt = time.Time{}
	}
	stored, err := apply[catalog.APIToken](ctx, s.ap, catalog.PutAPIToken(t, catalog.IfIndex(0)))
	if err != nil {
		return "", APITokenInfo{}, fmt.Errorf("create api token: %w", err)
	}
	return secret, TokenInfo(stored), nil
}

func (s *Service) checkNewToken(by Principal, req *NewAPIToken) error {
	if req.Scope == "" {
		req.Scope = ScopeAll
	}
	switch {
	case !KnownRole(req.Role):
		return invalid("role", "must be one of ADMIN, OPERATOR, VIEWER")
	case RoleRank(req.Role) > RoleRank(by.Role):
		return forbidden(fmt.Sprintf("a token's role may not exceed its creator's (%s)", by.Role))
	case req.Scope != ScopeAll && req.Scope != ScopeInstance && req.Scope != ScopeMetrics:
		return invalid("scope", "must be %q, %q or %q", ScopeAll, ScopeInstance, ScopeMetrics)
	case req.Scope == ScopeInstance && req.InstanceID == "":
		return invalid("instance_id", "is required with scope %q", ScopeInstance)
	case req.Scope != ScopeInstance && req.InstanceID != "":
		return invalid("instance_id", "is only allowed with scope %q", ScopeInstance)
	case !utf8.ValidString(req.Name) || utf8.RuneCountInString(req.Name) > MaxTokenNameLength:
		return invalid("name", "must be UTF-8 text of at most %d characters", MaxTokenNameLength)
	case !req.ExpiresAt.IsZero() && !req.ExpiresAt.After(s.now()):
		return invalid("expires_at", "must be in the future")
	}
	return nil
}

// RevokeAPIToken revokes a token: every hub refuses it from the next
// request. Revoking a revoked token is not an error. Errors: ErrForbidden
// unless by may delete tokens; catalog.ErrNotFound; the Applier's errors.
func (s *Service) RevokeAPIToken(ctx context.Context, by Principal, id string) (APITokenInfo, error) {
	if err := Authorize(by, ResourceTokens, ActionDelete, Target{}); err != nil {
		return APITokenInfo{}, err
	}
	t, err := apply[catalog.APIToken](ctx, s.ap, catalog.RevokeAPIToken(id, s.now().UTC()))
	if err != nil {
		return APITokenInfo{}, fmt.Errorf("revoke api token: %w", err)
	}
	return TokenInfo(t), nil
}

// ListAPITokens returns every API token, without secrets or hashes, ordered
// by ID. Errors: ErrForbidden unless by may read tokens.
func (s *Service) ListAPITokens(by Principal) ([]APITokenInfo, error) {
	if err := Authorize(by, ResourceTokens, ActionRead, Target{}); err != nil {
		return nil, err
	}
	toks := s.cat.APITokens()
	out := make([]APITokenInfo, 0, len(toks))
	for _, t := range toks {
		out = append(out, TokenInfo(t))
	}
	return out, nil
}

// authenticateAPIToken checks an rft_ token: known, not revoked, not
// expired, its creator still active. The principal's role is the lower of
// the token's and the creator's current role.
func (s *Service) authenticateAPIToken(tok string) (Principal, error) {
	if !wellFormed(tok, APITokenPrefix) {
		return Principal{}, unauthenticated(ReasonMalformed, "not a well-formed API token")
	}
	t, err := s.cat.APITokenByHash(hashToken(tok))
	if isNotFound(err) {
		return Principal{}, unauthenticated(ReasonUnknownToken, "no API token with this hash")
	}
	if err != nil {
		return Principal{}, err
	}
	switch {
	case t.Revoked:
		return Principal{}, unauthenticated(ReasonRevoked, "api token "+t.ID+" revoked")
	case !t.ExpiresAt.IsZero() && s.now().After(t.ExpiresAt.Add(s.cfg.Leeway)):
		return Principal{}, unauthenticated(ReasonExpired, "api token "+t.ID+" expired")
	case !KnownRole(t.Role) || (t.Scope != "" && t.Scope != ScopeAll && t.Scope != ScopeInstance && t.Scope != ScopeMetrics):
		return Principal{}, unauthenticated(ReasonMalformed, "api token "+t.ID+" has an unknown role or scope")
	}
	p := Principal{Role: t.Role, TokenID: t.ID, Scope: scopeOf(t), InstanceID: t.InstanceID, Kind: KindAPIToken, ExpiresAt: t.ExpiresAt}
	if t.CreatedBy != "" {
		u, err := s.activeUser(t.CreatedBy)
		if err != nil {
			return Principal{}, err
		}
		p.UserID, p.Username = u.ID, u.Username
		if RoleRank(u.Role) < RoleRank(p.Role) {
			p.Role = u.Role
		}
	}
	if p.Scope == ScopeInstance && strings.TrimSpace(p.InstanceID) == "" {
		return Principal{}, unauthenticated(ReasonMalformed, "api token "+t.ID+" is instance-scoped without an instance")
	}
	return p, nil
}
