package auth

import (
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/catalog"
)

// Sentinel errors. Errors returned by this package wrap one of them (or a
// catalog or cluster error from a failed write); test with errors.Is.
var (
	// ErrUnauthenticated reports a request without valid credentials: a
	// missing, malformed, expired or revoked token, or a failed login. The
	// concrete error is an *AuthError whose Reason is safe to show.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden reports an authenticated principal whose role or token
	// scope does not allow the operation. The concrete error is a
	// *ForbiddenError whose message is safe to show.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid reports bad input (a weak password, a bad username, an
	// unknown role). The concrete error is an *InvalidError naming the field.
	ErrInvalid = errors.New("invalid argument")
)

// Reason says why a credential was refused. Every reason is safe to return
// to the client: none reveals whether a username exists.
type Reason string

// Reasons for ErrUnauthenticated.
const (
	ReasonMissing        Reason = "missing credentials"
	ReasonMalformed      Reason = "malformed token"
	ReasonBadSignature   Reason = "invalid token signature"
	ReasonWrongAlgorithm Reason = "token algorithm not accepted"
	ReasonUnknownKey     Reason = "token signed with an unknown key"
	ReasonWrongIssuer    Reason = "wrong token issuer"
	ReasonWrongAudience  Reason = "wrong token audience"
	ReasonExpired        Reason = "token expired"
	ReasonNotYetValid    Reason = "token not valid yet"
	ReasonRevoked        Reason = "token revoked"
	ReasonReused         Reason = "refresh token reused; the session is revoked, log in again"
	ReasonSessionTooOld  Reason = "session too old; log in again"
	ReasonUnknownToken   Reason = "unknown token"
	ReasonBadCredentials Reason = "invalid username or password"
	ReasonUserDisabled   Reason = "account disabled"
	ReasonUserGone       Reason = "account no longer exists"
	ReasonNoSigningKey   Reason = "the hub has no signing key yet; retry shortly"
)

// AuthError is the concrete ErrUnauthenticated error. Reason is safe to
// show; Detail is for logs and the audit trail only (it may say, for
// example, that the username does not exist) and never contains a secret.
type AuthError struct {
	Reason Reason
	Detail string
}

func (e *AuthError) Error() string {
	return "unauthenticated: " + string(e.Reason)
}

// Is makes errors.Is(err, ErrUnauthenticated) true.
func (e *AuthError) Is(target error) bool { return target == ErrUnauthenticated }

func unauthenticated(r Reason, detail string) error {
	return &AuthError{Reason: r, Detail: detail}
}

// ReasonOf returns the safe reason of an ErrUnauthenticated error, or "".
func ReasonOf(err error) Reason {
	var ae *AuthError
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return ""
}

// ForbiddenError is the concrete ErrForbidden error; its message says what
// was refused and why, and is safe to show.
type ForbiddenError struct {
	Role     catalog.Role
	Resource Resource
	Action   Action
	Why      string
}

func (e *ForbiddenError) Error() string {
	if e.Why != "" {
		return "forbidden: " + e.Why
	}
	return fmt.Sprintf("forbidden: role %s may not %s %s", e.Role, e.Action, e.Resource)
}

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

func forbidden(why string) error { return &ForbiddenError{Why: why} }

// InvalidError is the concrete ErrInvalid error: Field names the input
// field as the API spells it, Reason says what is wrong and how to fix it.
type InvalidError struct {
	Field  string
	Reason string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
