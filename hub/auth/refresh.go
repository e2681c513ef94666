package auth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// RefreshTokenPrefix starts every refresh token: "rfr_" then 32 random
// bytes as unpadded base64url (43 characters).
const RefreshTokenPrefix = "rfr_"

// refreshRecord is the value of the auth/refresh/<sha256> setting: one
// refresh token of a session. A token is used once: UsedAt is set when it
// is exchanged, and the record is kept until it expires so that a second
// use is recognised as reuse.
type refreshRecord struct {
	SessionID    string    `json:"sid"`
	UserID       string    `json:"uid"`
	Generation   uint64    `json:"gen"`
	SessionStart time.Time `json:"session_start"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	IP           string    `json:"ip,omitempty"`
	UsedAt       time.Time `json:"used_at,omitzero"`
}

// revocation is the value of the auth/revoked_jti/<jti> and
// auth/revoked_session/<sid> settings. After Until nothing it revokes can
// be valid any more, and Sweep deletes it.
type revocation struct {
	At     time.Time `json:"at"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
}

// generation is the value of the auth/user_generation/<uid> setting. Every
// session records the user's generation at login; bumping it
// (RevokeUserSessions) invalidates them all.
type generation struct {
	Generation uint64    `json:"generation"`
	At         time.Time `json:"at"`
}

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
	_, err := apply[catalog.Setting](ctx, s.ap, catalog.PutSetting(prefixRefresh+hashToken(tok), rec, catalog.IfIndex(0)))
	if err != nil {
		return "", fmt.Errorf("store refresh token: %w", err)
	}
	return tok, nil
}

// lookupRefresh finds the record of a presented refresh token.
func (s *Service) lookupRefresh(tok string) (string, catalog.Setting, refreshRecord, error) {
	tok = strings.TrimSpace(tok)
	if !wellFormed(tok, RefreshTokenPrefix) {
		return "", catalog.Setting{}, refreshRecord{}, unauthenticated(ReasonMalformed, "not a refresh token")
	}
	key := prefixRefresh + hashToken(tok)
	st, err := s.cat.Setting(key)
	if isNotFound(err) {
		return "", st, refreshRecord{}, unauthenticated(ReasonUnknownToken, "no such refresh token (never issued, or expired and swept)")
	}
	if err != nil {
		return "", st, refreshRecord{}, fmt.Errorf("refresh token: %w", err)
	}
	var rec refreshRecord
	if err := json.Unmarshal(st.Value, &rec); err != nil {
		return "", st, rec, fmt.Errorf("refresh token record does not decode: %v", err)
	}
	return key, st, rec, nil
}

// revokeSession revokes a session: its refresh tokens and access tokens.
func (s *Service) revokeSession(ctx context.Context, sid, reason string) error {
	now := s.now()
	until := now.Add(max(s.cfg.RefreshTTL, s.cfg.AccessTTL) + s.cfg.Leeway)
	rv := revocation{At: now.UTC(), Until: until.UTC(), Reason: reason}
	_, err := s.ap.Apply(ctx, catalog.PutSetting(prefixRevokedSession+sid, rv))
	return err
}

// hasSetting reports whether the setting key exists.
func (s *Service) hasSetting(key string) (bool, error) {
	_, err := s.cat.Setting(key)
	switch {
	case err == nil:
		return true, nil
	case isNotFound(err):
		return false, nil
	}
	return false, err
}

// userGeneration returns the user's session generation: 0 when never
// bumped, and when the setting does not decode (RevokeUserSessions then
// reports the corruption).
func (s *Service) userGeneration(uid string) uint64 {
	g, _, _ := s.readGeneration(uid)
	return g.Generation
}

func (s *Service) readGeneration(uid string) (generation, uint64, error) {
	st, err := s.cat.Setting(prefixUserGeneration + uid)
	if err != nil {
		if isNotFound(err) {
			return generation{}, 0, nil
		}
		return generation{}, 0, err
	}
	var g generation
	if err := json.Unmarshal(st.Value, &g); err != nil {
		return generation{}, 0, fmt.Errorf("user generation setting of %s does not decode: %v", uid, err)
	}
	return g, st.ModifyIndex, nil
}

// RevokeUserSessions ends every session of a user on every hub: their
// access and refresh tokens are refused from the next request. API tokens
// the user created are not affected (revoke those individually). It is
// called on a password change and when a user is disabled. Errors: the
// Applier's.
func (s *Service) RevokeUserSessions(ctx context.Context, userID string) error {
	for attempt := 0; ; attempt++ {
		g, index, err := s.readGeneration(userID)
		if err != nil {
			return fmt.Errorf("revoke sessions of %s: %w", userID, err)
		}
		next := generation{Generation: g.Generation + 1, At: s.now().UTC()}
		_, err = s.ap.Apply(ctx, catalog.PutSetting(prefixUserGeneration+userID, next, catalog.IfIndex(index)))
		if errors.Is(err, catalog.ErrConflict) && attempt < 5 {
			continue // bumped concurrently; bump again from the new value
		}
		if err != nil {
			return fmt.Errorf("revoke sessions of %s: %w", userID, err)
		}
		return nil
	}
}

// Sweep deletes the session state that can no longer matter: refresh
// tokens past their expiry and revocations past their Until (after which
// everything they revoke has expired anyway), and the session generation
// of deleted users. Run it on the leader now and then (hourly is plenty).
// It returns how many settings it deleted. Errors: the Applier's (the
// sweep stops at the first).
func (s *Service) Sweep(ctx context.Context) (int, error) {
	now := s.now().Add(-s.cfg.Leeway)
	n := 0
	for _, st := range s.cat.Settings() {
		if !strings.HasPrefix(st.Key, SettingPrefix) || !s.sweepable(st, now) {
			continue
		}
		_, err := s.ap.Apply(ctx, catalog.DeleteSetting(st.Key))
		if err != nil && !isNotFound(err) {
			return n, fmt.Errorf("sweep %s: %w", st.Key, err)
		}
		n++
	}
	return n, nil
}

// sweepable reports whether the setting st of this package is obsolete at
// now. A value that does not decode is kept (and reported by the reads).
func (s *Service) sweepable(st catalog.Setting, now time.Time) bool {
	switch {
	case strings.HasPrefix(st.Key, prefixRefresh):
		var rec refreshRecord
		return json.Unmarshal(st.Value, &rec) == nil && now.After(rec.ExpiresAt)
	case strings.HasPrefix(st.Key, prefixRevokedJTI), strings.HasPrefix(st.Key, prefixRevokedSession):
		var rv revocation
		return json.Unmarshal(st.Value, &rv) == nil && now.After(rv.Until)
	case strings.HasPrefix(st.Key, prefixRetiredKey):
		var rk retiredKey
		return json.Unmarshal(st.Value, &rk) == nil && now.After(rk.Until)
	case strings.HasPrefix(st.Key, prefixUserGeneration):
		_, err := s.cat.User(strings.TrimPrefix(st.Key, prefixUserGeneration))
		return isNotFound(err)
	}
	return false
}
