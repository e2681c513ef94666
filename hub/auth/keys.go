package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Catalog setting keys used by this package. Everything under "auth/" is
// secret or security state: hub/api must never return these settings.
const (
	settingSigningKey    = "auth/signing_key"
	prefixRefresh        = "auth/refresh/"         // + SHA-256 hex of a refresh token
	prefixRevokedJTI     = "auth/revoked_jti/"     // + access token jti
	prefixRevokedSession = "auth/revoked_session/" // + session id
	prefixUserGeneration = "auth/user_generation/" // + user id
	prefixRetiredKey     = "auth/retired_key/"     // + kid of a signing key RotateKeys replaced
	// SettingPrefix is the prefix of every setting this package owns.
	SettingPrefix = "auth/"
)

// SigningKeyBytes is the size of the HS256 signing key.
const SigningKeyBytes = 32

// signingKey is the value of the auth/signing_key setting: the key new
// access tokens are signed with. Key is base64 in JSON. The key ID (kid)
// is written into every token's header, so a token signed with a key that
// RotateKeys has since replaced still finds its key (retiredKey).
type signingKey struct {
	ID        string    `json:"kid"`
	Key       []byte    `json:"key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Sealed is the key sealed by the hub (Config.Sealer): with a sealer
	// the catalog holds only this, never Key.
	Sealed string `json:"sealed,omitempty"`
}

// keyContext binds a sealed signing key to its id.
func keyContext(kid string) string { return "auth/signing_key/" + kid }

// sealed returns k as the catalog keeps it: sealed when there is a sealer.
func (s *Service) sealed(k signingKey) (signingKey, error) {
	if s.cfg.Sealer == nil {
		return k, nil
	}
	v, err := s.cfg.Sealer.Seal(keyContext(k.ID), base64.StdEncoding.EncodeToString(k.Key))
	if err != nil {
		return k, fmt.Errorf("seal signing key: %w", err)
	}
	k.Sealed, k.Key = v, nil
	return k, nil
}

// opened returns k with its Key in clear (a key written before sealing is
// read as it is).
func (s *Service) opened(k signingKey) (signingKey, error) {
	if k.Sealed == "" {
		return k, nil
	}
	if s.cfg.Sealer == nil {
		return k, fmt.Errorf("signing key %s is sealed and this hub has no sealing key", k.ID)
	}
	v, err := s.cfg.Sealer.Open(keyContext(k.ID), k.Sealed)
	if err != nil {
		return k, fmt.Errorf("open signing key %s: %w", k.ID, err)
	}
	if k.Key, err = base64.StdEncoding.DecodeString(v); err != nil {
		return k, fmt.Errorf("signing key %s: %w", k.ID, err)
	}
	return k, nil
}

// cachedKey is the decoded signing key and the ModifyIndex of the setting
// it was decoded from.
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
	_, err = apply[catalog.Setting](ctx, s.ap, catalog.PutSetting(settingSigningKey, k, catalog.IfIndex(0)))
	if err != nil && !errors.Is(err, catalog.ErrConflict) { // conflict: another hub won
		return fmt.Errorf("ensure signing key: %w", err)
	}
	_, err = s.signingKey()
	return err
}

// signingKey returns the cluster's signing key, decoding the setting again
// only when it changed. Errors: catalog.ErrNotFound before
// EnsureSigningKey ran; a corrupt setting.
func (s *Service) signingKey() (signingKey, error) {
	st, err := s.cat.Setting(settingSigningKey)
	if err != nil {
		return signingKey{}, fmt.Errorf("signing key: %w", err)
	}
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key.index == st.ModifyIndex && s.key.index != 0 {
		return s.key.key, nil
	}
	var k signingKey
	if err := json.Unmarshal(st.Value, &k); err != nil {
		return signingKey{}, fmt.Errorf("signing key setting %s does not decode: %v", settingSigningKey, err)
	}
	if k, err = s.opened(k); err != nil {
		return signingKey{}, err
	}
	if len(k.Key) < SigningKeyBytes || k.ID == "" {
		return signingKey{}, fmt.Errorf("signing key setting %s: key shorter than %d bytes or without id", settingSigningKey, SigningKeyBytes)
	}
	s.key = cachedKey{index: st.ModifyIndex, key: k}
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

// retiredKey is the value of an auth/retired_key/<kid> setting: a signing
// key RotateKeys replaced, kept to verify the access tokens it signed
// until the last of them has expired (Until), then swept.
type retiredKey struct {
	signingKey
	RetiredAt time.Time `json:"retired_at"`
	Until     time.Time `json:"until"`
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
	st, err := s.cat.Setting(settingSigningKey)
	if err != nil {
		return KeyInfo{}, s.keyError(fmt.Errorf("signing key: %w", err))
	}
	old, err := s.signingKey()
	if err != nil {
		return KeyInfo{}, s.keyError(err)
	}
	now := s.now().UTC()
	// Keep the old key first: a crash between the two writes leaves it
	// current and also retired, which is harmless.
	oldSealed, err := s.sealed(old)
	if err != nil {
		return KeyInfo{}, err
	}
	ret := retiredKey{signingKey: oldSealed, RetiredAt: now, Until: now.Add(s.cfg.AccessTTL + s.cfg.Leeway)}
	if _, err := apply[catalog.Setting](ctx, s.ap, catalog.PutSetting(prefixRetiredKey+old.ID, ret)); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: keep key %s: %w", old.ID, err)
	}
	k, err := s.sealed(signingKey{ID: randomString(9), Key: randomBytes(SigningKeyBytes), CreatedAt: now})
	if err != nil {
		return KeyInfo{}, err
	}
	if _, err := apply[catalog.Setting](ctx, s.ap, catalog.PutSetting(settingSigningKey, k, catalog.IfIndex(st.ModifyIndex))); err != nil {
		return KeyInfo{}, fmt.Errorf("rotate keys: %w", err)
	}
	s.log.Info("signing key rotated", "kid", k.ID, "retired_kid", old.ID, "verify_until", ret.Until)
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
	for _, st := range s.cat.Settings() {
		if !strings.HasPrefix(st.Key, prefixRetiredKey) {
			continue
		}
		var rk retiredKey
		if json.Unmarshal(st.Value, &rk) != nil || rk.ID == cur.ID {
			continue
		}
		out = append(out, KeyInfo{ID: rk.ID, CreatedAt: rk.CreatedAt, RetiredAt: &rk.RetiredAt, VerifyUntil: &rk.Until})
	}
	return out, nil
}

// verifyKey returns the key that verifies a token with key id kid: the
// current key, or a retired one until its Until (plus Leeway). Anything
// else is errUnknownKey.
func (s *Service) verifyKey(cur signingKey, kid string) ([]byte, error) {
	if kid == cur.ID {
		return cur.Key, nil
	}
	if kid == "" {
		return nil, errUnknownKey
	}
	st, err := s.cat.Setting(prefixRetiredKey + kid)
	if err != nil {
		return nil, errUnknownKey
	}
	var rk retiredKey
	if err := json.Unmarshal(st.Value, &rk); err != nil || rk.ID != kid {
		return nil, errUnknownKey
	}
	if rk.signingKey, err = s.opened(rk.signingKey); err != nil || len(rk.Key) < SigningKeyBytes {
		return nil, errUnknownKey
	}
	if s.now().After(rk.Until.Add(s.cfg.Leeway)) {
		return nil, errUnknownKey
	}
	return rk.Key, nil
}
