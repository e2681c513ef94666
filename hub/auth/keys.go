package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
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
	// SettingPrefix is the prefix of every setting this package owns.
	SettingPrefix = "auth/"
)

// SigningKeyBytes is the size of the HS256 signing key.
const SigningKeyBytes = 32

// signingKey is the value of the auth/signing_key setting. Key is
// base64 in JSON. The key ID (kid) is written into every token's header,
// which leaves room for key rotation (a list of keys) later.
type signingKey struct {
	ID        string    `json:"kid"`
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at"`
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
	k := signingKey{ID: randomString(9), Key: randomBytes(SigningKeyBytes), CreatedAt: s.now().UTC()}
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
