package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// SigningKeyBytes is the size of the HS256 signing key.
const SigningKeyBytes = 32

// signingKey is a signing key in clear: the key new access tokens are
// signed with, or a retired one. The catalog keeps it as a
// catalog.SigningKey, sealed when the hub has a sealer (Config.Sealer).
// The key ID (kid) is written into every token's header, so a token signed
// with a key that RotateKeys has since replaced still finds its key.
type signingKey struct {
	ID        string
	Key       []byte
	CreatedAt time.Time
}

// keyContext binds a sealed signing key to its id.
func keyContext(kid string) string { return "auth/signing_key/" + kid }

// sealed returns k as the catalog keeps it: sealed when there is a sealer.
func (s *Service) sealed(k signingKey) (catalog.SigningKey, error) {
	row := catalog.SigningKey{ID: k.ID, CreatedAt: k.CreatedAt}
	if s.cfg.Sealer == nil {
		row.Key = k.Key
		return row, nil
	}
	v, err := s.cfg.Sealer.Seal(keyContext(k.ID), base64.StdEncoding.EncodeToString(k.Key))
	if err != nil {
		return row, fmt.Errorf("seal signing key: %w", err)
	}
	row.Sealed = v
	return row, nil
}

// opened returns the key of a catalog row in clear (a key written before
// sealing is read as it is).
func (s *Service) opened(row catalog.SigningKey) (signingKey, error) {
	k := signingKey{ID: row.ID, Key: row.Key, CreatedAt: row.CreatedAt}
	if row.Sealed == "" {
		return k, nil
	}
	if s.cfg.Sealer == nil {
		return k, fmt.Errorf("signing key %s is sealed and this hub has no sealing key", k.ID)
	}
	v, err := s.cfg.Sealer.Open(keyContext(k.ID), row.Sealed)
	if err != nil {
		return k, fmt.Errorf("open signing key %s: %w", k.ID, err)
	}
	if k.Key, err = base64.StdEncoding.DecodeString(v); err != nil {
		return k, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	return k, nil
}

// cachedKey is the opened current signing key and the ModifyIndex of the
// row it was opened from.
type cachedKey struct {
	index uint64
	key   signingKey
}

// EnsureSigningKey makes sure the cluster has a token signing key: when the
// catalog has none, it generates a random one and commits it (only the
// leader can; a follower gets the Applier's not-leader error). Every hub
// then signs and verifies with the same key. Calling it again, or on a
// second hub racing the first, keeps the existing key.
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	_, err := s.signingKey()
	if err == nil || !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	k, err := s.sealed(signingKey{ID: randomString(9), Key: randomBytes(SigningKeyBytes), CreatedAt: s.now().UTC()})
	if err != nil {
		return err
	}
	_, err = apply[catalog.SigningKey](ctx, s.ap, catalog.InitSigningKey(k))
	if err != nil && !errors.Is(err, catalog.ErrConflict) { // conflict: another hub won
		return fmt.Errorf("ensure signing key: %w", err)
	}
	_, err = s.signingKey()
	return err
}

// signingKey returns the cluster's current signing key, opening the row
// again only when it changed. Errors: catalog.ErrNotFound before
// EnsureSigningKey ran; a key that does not open.
func (s *Service) signingKey() (signingKey, error) {
	row, err := s.cat.SigningKey()
	if err != nil {
		return signingKey{}, fmt.Errorf("signing key: %w", err)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key.index == row.ModifyIndex && s.key.index != 0 && s.key.key.ID == row.ID {
		return s.key.key, nil
	}
	k, err := s.opened(row)
	if err != nil {
		return signingKey{}, err
	}
	if len(k.Key) < SigningKeyBytes || k.ID == "" {
		return signingKey{}, fmt.Errorf("signing key %q: key shorter than %d bytes or without id", k.ID, SigningKeyBytes)
	}
	s.key = cachedKey{index: row.ModifyIndex, key: k}
	return k, nil
}

// randomBytes returns n bytes from crypto/rand (which never fails).
func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// randomString returns n random bytes as unpadded base64url.
func randomString(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

// KeyInfo describes a signing key without its secret.
type KeyInfo struct {
	ID        string    `json:"kid"`
	CreatedAt time.Time `json:"created_at"`
	// Current is the key new tokens are signed with.
	Current bool `json:"current"`
	// RetiredAt and VerifyUntil are set on a replaced key: it verifies
	// the tokens it signed until VerifyUntil, then it is deleted.
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	VerifyUntil *time.Time `json:"verify_until,omitempty"`
}

// RotateKeys adds a new signing key: every hub signs new access tokens
// with it, while the replaced key still verifies the tokens it signed
// until they expire (AccessTTL plus Leeway from now); Sweep deletes it
// after that. Refresh tokens are not signed and are unaffected. It returns
// the new key's info. Errors: ReasonNoSigningKey before EnsureSigningKey;
// catalog.ErrConflict when a concurrent rotation won (the key was rotated:
// retry only if another key is wanted); the Applier's errors.
func (s *Service) RotateKeys(ctx context.Context) (KeyInfo, error) {
	cur, err := s.cat.SigningKey()
	if err != nil {
		return KeyInfo{}, s.keyError(fmt.Errorf("signing key: %w", err))
	}
	if _, err := s.signingKey(); err != nil {
		return KeyInfo{}, s.keyError(err)
	}
	now := s.now().UTC()
	k, err := s.sealed(signingKey{ID: randomString(9), Key: randomBytes(SigningKeyBytes), CreatedAt: now})
	if err != nil {
		return KeyInfo{}, err
	}
	until := now.Add(s.cfg.AccessTTL + s.cfg.Leeway)
	if _, err := apply[catalog.SigningKey](ctx, s.ap, catalog.RotateSigningKey(k, cur.ModifyIndex, now, until)); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: %w", err)
	}
	s.log.Info("signing key rotated", "kid", k.ID, "retired_kid", cur.ID, "verify_until", until)
	return KeyInfo{ID: k.ID, CreatedAt: now, Current: true}, nil
}

// SigningKeys lists the current signing key and the retired ones that
// still verify tokens, current first, without their secrets. Errors:
// ReasonNoSigningKey before EnsureSigningKey.
func (s *Service) SigningKeys() ([]KeyInfo, error) {
	cur, err := s.signingKey()
	if err != nil {
		return nil, s.keyError(err)
	}
	out := []KeyInfo{{ID: cur.ID, CreatedAt: cur.CreatedAt, Current: true}}
	for _, k := range s.cat.SigningKeys() {
		if k.Current || k.ID == cur.ID {
			continue
		}
		out = append(out, KeyInfo{ID: k.ID, CreatedAt: k.CreatedAt, RetiredAt: &k.RetiredAt, VerifyUntil: &k.VerifyUntil})
	}
	return out, nil
}

// verifyKey returns the key that verifies a token with key id kid: the
// current key, or a retired one until its VerifyUntil (plus Leeway).
// Anything else is errUnknownKey.
func (s *Service) verifyKey(cur signingKey, kid string) ([]byte, error) {
	if kid == cur.ID {
		return cur.Key, nil
	}
	if kid == "" {
		return nil, errUnknownKey
	}
	row, err := s.cat.SigningKeyByID(kid)
	if err != nil || row.Current || row.VerifyUntil.IsZero() {
		return nil, errUnknownKey
	}
	if s.now().After(row.VerifyUntil.Add(s.cfg.Leeway)) {
		return nil, errUnknownKey
	}
	k, err := s.opened(row)
	if err != nil || len(k.Key) < SigningKeyBytes {
		return nil, errUnknownKey
	}
	return k.Key, nil
}
