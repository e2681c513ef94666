package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
)

// RefreshTokenPrefix starts every refresh token: "rfr_" then 32 random
// bytes as unpadded base64url (43 characters).
const RefreshTokenPrefix = "rfr_"

// refreshRecord is one refresh token of a session, as the catalog keeps it
// (by the token's SHA-256). A token is used once: UsedAt is set when it is
// exchanged, and the record is kept until it expires so that a second use
// is recognised as reuse.
type refreshRecord = catalog.RefreshToken

// hashToken is the stored form of a refresh or API token: SHA-256, hex.
// The tokens carry 256 random bits, so a fast hash is enough.
func hashToken(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])
}

// tokenBody is the length of 32 random bytes in unpadded base64url.
const tokenBody = 43

// newSecret returns prefix + 32 random bytes in unpadded base64url.
func newSecret(prefix string) string { return prefix + randomString(32) }

// wellFormed reports whether tok is prefix + 43 base64url characters.
func wellFormed(tok, prefix string) bool {
	body, ok := strings.CutPrefix(tok, prefix)
	if !ok || len(body) != tokenBody {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// putRefresh stores a new refresh token for rec and returns the token.
func (s *Service) putRefresh(ctx context.Context, rec refreshRecord) (string, error) {
	tok := newSecret(RefreshTokenPrefix)
	rec.Hash = hashToken(tok)
	_, err := apply[catalog.RefreshToken](ctx, s.ap, catalog.PutRefreshToken(rec, catalog.IfIndex(0)))
	if err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return tok, nil
}

// lookupRefresh finds the record of a presented refresh token.
func (s *Service) lookupRefresh(tok string) (refreshRecord, error) {
	tok = strings.TrimSpace(tok)
	if !wellFormed(tok, RefreshTokenPrefix) {
		return refreshRecord{}, unauthenticated(ReasonMalformed, "not a refresh token")
	}
	rec, err := s.cat.RefreshToken(hashToken(tok))
	if isNotFound(err) {
		return rec, unauthenticated(ReasonUnknownToken, "no such refresh token (never issued, or expired and swept)")
	}
	if err != nil {
		return rec, fmt.Errorf("refresh token: %w", err)
	}
	return rec, nil
}

// sessionRevocation is the revocation of session sid from now until
// everything issued in it has expired.
func (s *Service) sessionRevocation(sid, reason string) catalog.Revocation {
	now := s.now()
	until := now.Add(max(s.cfg.RefreshTTL, s.cfg.AccessTTL) + s.cfg.Leeway)
	return catalog.Revocation{ID: sid, At: now.UTC(), Until: until.UTC(), Reason: reason}
}

// revokeSession revokes a session: its refresh tokens and access tokens.
func (s *Service) revokeSession(ctx context.Context, sid, reason string) error {
	_, err := s.ap.Apply(ctx, catalog.Revoke(catalog.Revocations{Sessions: []catalog.Revocation{s.sessionRevocation(sid, reason)}}))
	return err
}

// revoked reports whether a revocation lookup found one.
func revoked(_ catalog.Revocation, err error) (bool, error) {
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

// userGeneration returns the user's session generation: 0 when never
// bumped.
func (s *Service) userGeneration(uid string) uint64 {
	return s.cat.SessionGeneration(uid).Generation
}

// RevokeUserSessions ends every session of a user on every hub: their
// access and refresh tokens are refused from the next request. API tokens
// the user created are not affected (revoke those individually). It is
// called on a password change and when a user is disabled. Errors:
// catalog.ErrNotFound for an unknown user; the Applier's.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string) error {
	if _, err := s.ap.Apply(ctx, catalog.BumpSessionGeneration(userID, s.now().UTC())); err != nil {
		return fmt.Errorf("revoke sessions of %s: %w", userID, err)
	}
	return nil
}

// Sweep deletes, in one catalog command (catalog.ReapAuth), the session
// state that can no longer matter: refresh tokens past their expiry,
// revocations past their Until (after which everything they revoke has
// expired anyway), retired signing keys past their verification window,
// and the session generation of deleted users. Run it on the leader now
// and then (hourly is plenty); when nothing has expired it commits
// nothing. It returns how many rows it deleted.
// Errors: the Applier's.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	at := s.now().Add(-s.cfg.Leeway).UTC()
	if !s.cat.AuthReapable(at) {
		return 0, nil // nothing expired: no command
	}
	n, err := apply[catalog.AuthReaped](ctx, s.ap, catalog.ReapAuth(at))
	if err != nil {
		return 0, fmt.Errorf("sweep session state: %w", err)
	}
	return n.Total(), nil
}
