package auth

import (
	"context"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Kind says how a principal authenticated.
type Kind string

// Kinds of principal.
const (
	KindSession  Kind = "session"   // a user's access token (JWT) from Login or Refresh
	KindAPIToken Kind = "api_token" // an API token (rft_…)
)

// Token scopes. A session always has ScopeAll.
const (
	// ScopeAll: the principal may do whatever its role allows.
	ScopeAll = "all"
	// ScopeInstance: an API token bound to one instance; it may only do
	// what InstanceScopePermissions lists, for that instance.
	ScopeInstance = "instance"
	// ScopeMetrics: an API token that may only read metrics (what a
	// Prometheus server scrapes and discovers with); see
	// MetricsScopePermissions.
	ScopeMetrics = "metrics"
)

// maxBearerBytes bounds what Authenticate will parse.
const maxBearerBytes = 8192

// Principal is who a request acts as. Role is the role in force now (read
// from the catalog at authentication, so a role change or a disabled user
// takes effect on the next request), not the one at login.
type Principal struct {
	UserID   string       `json:"user_id"`
	Username string       `json:"username"`
	Role     catalog.Role `json:"role"`
	// TokenID is the access token's jti for a session, the token's ID for
	// an API token.
	TokenID string `json:"token_id"`
	// SessionID identifies the session (the refresh token family); empty
	// for API tokens.
	SessionID  string `json:"session_id,omitempty"`
	Scope      string `json:"scope"`
	InstanceID string `json:"instance_id,omitempty"`
	Kind       Kind   `json:"kind"`
	// ExpiresAt is when the credential expires; zero for an API token
	// without expiry.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Authenticate checks a bearer credential, either an access token (JWT)
// or an API token (rft_…), with or without a leading "Bearer ", and
// returns the principal it stands for. Every refusal is an *AuthError
// (errors.Is ErrUnauthenticated) with a reason safe to show: missing,
// malformed, bad signature, wrong algorithm, issuer or audience, expired,
// not yet valid, revoked (logout, a reused refresh token, sessions revoked
// by a password change), unknown token, disabled or deleted user. Other
// errors are internal (a corrupt catalog setting).
func (s *Service) Authenticate(ctx context.Context, bearer string) (Principal, error) {
	tok := strings.TrimSpace(bearer)
	if len(tok) >= 6 && strings.EqualFold(tok[:6], "bearer") && (len(tok) == 6 || tok[6] == ' ') {
		tok = strings.TrimSpace(tok[6:])
	}
	switch {
	case tok == "":
		return Principal{}, unauthenticated(ReasonMissing, "no bearer token")
	case len(tok) > maxBearerBytes:
		return Principal{}, unauthenticated(ReasonMalformed, "bearer token too long")
	case strings.HasPrefix(tok, APITokenPrefix):
		return s.authenticateAPIToken(tok)
	case strings.HasPrefix(tok, RefreshTokenPrefix):
		return Principal{}, unauthenticated(ReasonMalformed, "a refresh token was presented as a bearer token")
	}
	return s.verifyAccessToken(tok)
}

// activeUser returns the user with id if it exists and is not disabled.
func (s *Service) activeUser(id string) (catalog.User, error) {
	u, err := s.cat.User(id)
	if err != nil {
		if isNotFound(err) {
			return catalog.User{}, unauthenticated(ReasonUserGone, "user "+id+" does not exist")
		}
		return catalog.User{}, err
	}
	if u.Disabled {
		return catalog.User{}, unauthenticated(ReasonUserDisabled, "user "+id+" is disabled")
	}
	return u, nil
}
