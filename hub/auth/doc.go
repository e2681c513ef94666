// Package auth owns who may do what on a hub: users and their passwords
// (bcrypt), sessions (short-lived HS256 access tokens with rotating,
// revocable refresh tokens), API tokens (rft_…, optionally bound to one
// instance), the roles ADMIN, OPERATOR and VIEWER, and the permission
// matrix (Can, Authorize).
//
// State lives in the Raft catalog (hub/catalog), so every hub of a cluster
// verifies the tokens of every other, each kind in its own table: users,
// API tokens, signing keys, refresh token records (by SHA-256), the
// revocation sets (revoked access token ids and sessions) and each user's
// session generation. Reads go through the
// consumer-owned Catalog interface (*catalog.State), writes through
// Applier (*cluster.Node). Secrets are never stored, logged or returned
// after creation: passwords are bcrypt hashes, refresh and API tokens
// SHA-256 hashes.
//
// Authenticate turns a bearer credential into a Principal or an
// *AuthError (ErrUnauthenticated) whose Reason is safe to show; Authorize
// turns a principal and an operation into nil or a *ForbiddenError
// (ErrForbidden). The package does not serve HTTP, rate-limit logins or
// write the audit trail: hub/api does, calling this package and hub/audit.
// See DESIGN.md for the token formats and the invariants.
package auth
