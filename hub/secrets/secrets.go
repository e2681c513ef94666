// Package secrets seals the secrets the hub keeps in its catalog (runtime
// credentials, secret instance env, signing keys) so that the Raft log,
// its snapshots and backups hold only ciphertext. The key is kept apart
// from the Raft log: derived from the cluster secret that every hub of a
// cluster is given (so every hub can open what another sealed), or, on a
// hub started without one, generated once into a file of its own in the
// data dir (secrets.key, mode 0600). It does not decide what is secret
// nor where sealed values live.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFile is the name of the generated key file in a hub's data dir.
const KeyFile = "secrets.key"

// prefix starts every sealed value; the key id follows.
const prefix = "rfs1:"

// Errors of Open.
var (
	// ErrWrongKey: the value was sealed with another key (another cluster
	// secret, or another hub's key file).
	ErrWrongKey = errors.New("secrets: sealed with another key")
	// ErrCorrupt: the value is not a sealed value, or was altered.
	ErrCorrupt = errors.New("secrets: not a sealed value or altered")
)

// Sealer seals and opens values with one AES-256-GCM key. It is safe for
// concurrent use.
type Sealer struct {
	aead cipher.AEAD
	kid  string
}

// New returns a sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secrets: key must be 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append([]byte("redforge key id\x00"), key...))
	return &Sealer{aead: aead, kid: hex.EncodeToString(sum[:4])}, nil
}

// FromClusterSecret derives the sealing key from a cluster secret.
func FromClusterSecret(secret string) (*Sealer, error) {
	if secret == "" {
		return nil, errors.New("secrets: empty cluster secret")
	}
	key, err := hkdf.Key(sha256.New, []byte(secret), []byte("redforge"), "redforge catalog secrets v1", 32)
	if err != nil {
		return nil, err
	}
	return New(key)
}

// FromKeyFile reads the key in dir/KeyFile, creating it (32 random bytes,
// mode 0600) when it does not exist.
func FromKeyFile(dir string) (*Sealer, error) {
	path := filepath.Join(dir, KeyFile)
	key, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("secrets: create %s: %w", path, err)
		}
		_, werr := f.Write(key)
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return nil, fmt.Errorf("secrets: write %s: %w", path, werr)
		}
		return New(key)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: read %s: %w", path, err)
	}
	if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets: %s is readable by others (mode %v); chmod 600 it", path, st.Mode().Perm())
	}
	return New(key)
}

// KeyID names the key: the first bytes of a hash of it, safe to show.
func (s *Sealer) KeyID() string { return s.kid }

// Seal encrypts plaintext bound to context (a name for where the value
// lives, e.g. "credentials/<row>/admin"): a sealed value opens only with
// the same context, so one cannot be moved to another place.
func (s *Sealer) Seal(context, plaintext string) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	ct := s.aead.Seal(nonce, nonce, []byte(plaintext), []byte(context))
	return prefix + s.kid + ":" + base64.RawURLEncoding.EncodeToString(ct), nil
}

// Open decrypts a value sealed with the same key and context. Errors:
// ErrWrongKey, ErrCorrupt.
func (s *Sealer) Open(context, sealed string) (string, error) {
	rest, ok := strings.CutPrefix(sealed, prefix)
	if !ok {
		return "", ErrCorrupt
	}
	kid, body, ok := strings.Cut(rest, ":")
	if !ok {
		return "", ErrCorrupt
	}
	if kid != s.kid {
		return "", fmt.Errorf("%w (key %s, this hub has %s: give every hub the same cluster secret)", ErrWrongKey, kid, s.kid)
	}
	ct, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(ct) < s.aead.NonceSize() {
		return "", ErrCorrupt
	}
	pt, err := s.aead.Open(nil, ct[:s.aead.NonceSize()], ct[s.aead.NonceSize():], []byte(context))
	if err != nil {
		return "", ErrCorrupt
	}
	return string(pt), nil
}

// IsSealed reports whether v looks like a sealed value.
func IsSealed(v string) bool { return strings.HasPrefix(v, prefix) }

// Random returns n random bytes as unpadded base64url text, for passwords
// and tokens.
func Random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic("secrets: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
