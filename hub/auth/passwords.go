package auth

import (
	"crypto/rand"
	"fmt"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Password rules. bcrypt reads at most 72 bytes, so a longer password is
// refused rather than silently truncated.
const (
	MinPasswordLength = 12 // characters
	MaxPasswordBytes  = 72
)

// ValidatePassword checks the password policy: at least MinPasswordLength
// characters, at most MaxPasswordBytes bytes of UTF-8, no NUL. The error
// (an *InvalidError for field "password") never contains the password.
func ValidatePassword(pw string) error {
	switch {
	case !utf8.ValidString(pw):
		return invalid("password", "must be valid UTF-8")
	case utf8.RuneCountInString(pw) < MinPasswordLength:
		return invalid("password", "must be at least %d characters long", MinPasswordLength)
	case len(pw) > MaxPasswordBytes:
		return invalid("password", "must be at most %d bytes long", MaxPasswordBytes)
	}
	for i := 0; i < len(pw); i++ {
		if pw[i] == 0 {
			return invalid("password", "must not contain NUL characters")
		}
	}
	return nil
}

// HashPassword checks pw against the password policy and returns its
// bcrypt hash at cost (DefaultBcryptCost when 0). Errors: ErrInvalid for a
// password that breaks the policy or a cost outside bcrypt's range.
func HashPassword(pw string, cost int) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	if cost == 0 {
		cost = DefaultBcryptCost
	}
	if cost < bcrypt.MinCost || cost > bcrypt.MaxCost {
		return "", invalid("bcrypt_cost", "must be between %d and %d", bcrypt.MinCost, bcrypt.MaxCost)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckPassword reports whether pw matches the bcrypt hash. It takes the
// same time whatever the answer (bcrypt's comparison is constant-time);
// an empty or malformed hash is a mismatch.
func CheckPassword(hash, pw string) bool {
	if len(pw) > MaxPasswordBytes {
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw)) == nil
}

// checkUserPassword compares pw with hash, or with a dummy hash of the
// configured cost when hash is empty (an unknown user), so that the time a
// login takes does not reveal whether the username exists.
func (s *Service) checkUserPassword(hash, pw string) bool {
	if hash == "" {
		s.dummyOnce.Do(s.makeDummyHash)
		_ = bcrypt.CompareHashAndPassword(s.dummyHash, []byte(pw))
		return false
	}
	if len(pw) > MaxPasswordBytes {
		// Compare a truncated copy anyway so the time taken is the same.
		_ = bcrypt.CompareHashAndPassword([]byte(hash), []byte(pw[:MaxPasswordBytes]))
		return false
	}
	return CheckPassword(hash, pw)
}

func (s *Service) makeDummyHash() {
	secret := make([]byte, 32)
	rand.Read(secret)
	h, err := bcrypt.GenerateFromPassword(secret, s.cfg.BcryptCost)
	if err != nil { // an invalid configured cost: users cannot be created either
		h, _ = bcrypt.GenerateFromPassword(secret, DefaultBcryptCost)
	}
	s.dummyHash = h
}
