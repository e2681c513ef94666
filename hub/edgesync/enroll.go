package edgesync

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/syncproto"
)

// Credential formats. An enrollment token is "rfet_" + 32 random bytes; an
// edge credential is "rfe_" + edge id + "." + 32 random bytes, so the hub
// finds the edge without scanning and compares the hash in constant time.
// Only SHA-256 hashes of either are stored.
const (
	tokenPrefix      = "rfet_"
	credentialPrefix = "rfe_"
)

// TokenRequest asks for an enrollment token.
type TokenRequest struct {
	Region string `json:"region,omitempty"`
	// TTLSeconds is the token's lifetime; 0 means the service default.
	TTLSeconds int64 `json:"ttl_seconds,omitempty"`
}

// NewToken is a created enrollment token; Token is shown only here.
type NewToken struct {
	Token     string    `json:"token"`
	Region    string    `json:"region,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// CreateToken stores the hash of a new one-time enrollment token and
// returns the token. Errors: ErrInvalid for a TTL out of range; Raft errors.
func (s *Service) CreateToken(ctx context.Context, req TokenRequest, createdBy string) (NewToken, error) {
	ttl := s.cfg.TokenTTL
	if req.TTLSeconds != 0 {
		ttl = time.Duration(req.TTLSeconds) * time.Second
	}
	if ttl <= 0 || ttl > MaxTokenTTL {
		return NewToken{}, fmt.Errorf("ttl_seconds must be between 1 and %d: %w", int64(MaxTokenTTL/time.Second), ErrInvalid)
	}
	tok := syncproto.TokenWithPin(tokenPrefix+randomString(32), s.cfg.CAPin)
	now := s.cfg.Now().UTC()
	t := catalog.EnrollmentToken{Hash: hashSecret(tok), Region: req.Region, CreatedBy: createdBy, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	if _, err := s.cfg.Raft.Apply(ctx, catalog.PutEnrollmentToken(t)); err != nil {
		return NewToken{}, fmt.Errorf("create enrollment token: %w", err)
	}
	return NewToken{Token: tok, Region: req.Region, ExpiresAt: t.ExpiresAt}, nil
}

// Enroll consumes an enrollment token and creates the edge with its own
// credential, returned once. Errors: ErrUnauthenticated for an unknown,
// used or expired token; catalog.ErrConflict for a taken name; Raft errors.
func (s *Service) Enroll(ctx context.Context, req *syncproto.EnrollRequest) (*syncproto.EnrollResponse, error) {
	if !strings.HasPrefix(req.GetToken(), tokenPrefix) {
		return nil, fmt.Errorf("enroll: enrollment token is unknown, used or expired: %w", ErrUnauthenticated)
	}
	id := "edge-" + hex.EncodeToString(randomBytes(8))
	name := strings.TrimSpace(req.GetName())
	if name == "" {
		name = id
	}
	secret := randomString(32)
	cred := credentialPrefix + id + "." + secret
	now := s.cfg.Now().UTC()
	e := catalog.Edge{ID: id, Name: name, Region: req.GetRegion(), CredentialHash: hashSecret(secret),
		State: catalog.EdgePending, CreatedAt: now, UpdatedAt: now}
	res, err := s.cfg.Raft.Apply(ctx, catalog.EnrollEdge(hashSecret(req.GetToken()), e, now))
	switch {
	case errors.Is(err, catalog.ErrNotFound), errors.Is(err, catalog.ErrInvalid) && strings.Contains(err.Error(), "expired"),
		errors.Is(err, catalog.ErrConflict) && strings.Contains(err.Error(), "already used"):
		return nil, fmt.Errorf("enroll: enrollment token is unknown, used or expired: %w", ErrUnauthenticated)
	case err != nil:
		return nil, fmt.Errorf("enroll edge %q: %w", name, err)
	}
	if stored, ok := res.(*catalog.Edge); ok {
		e = *stored
	} else if stored, ok := res.(catalog.Edge); ok {
		e = stored
	}
	s.cfg.Logger.Info("edge enrolled", logKeyEdge, id, "name", name)
	return &syncproto.EnrollResponse{EdgeId: id, Credential: cred, Name: e.Name, Region: e.Region}, nil
}

// AuthenticateEdge returns the id of the edge whose credential bearer is.
// Errors: ErrUnauthenticated (unknown edge, wrong secret, decommissioned).
func (s *Service) AuthenticateEdge(_ context.Context, bearer string) (string, error) {
	rest, ok := strings.CutPrefix(bearer, credentialPrefix)
	id, secret, ok2 := strings.Cut(rest, ".")
	if !ok || !ok2 || id == "" || secret == "" {
		return "", fmt.Errorf("edge credential required: %w", ErrUnauthenticated)
	}
	e, err := s.cfg.Catalog.Edge(id)
	if err != nil || e.State == catalog.EdgeDecommissioned ||
		subtle.ConstantTimeCompare([]byte(e.CredentialHash), []byte(hashSecret(secret))) != 1 {
		return "", fmt.Errorf("edge credential is not valid: %w", ErrUnauthenticated)
	}
	return id, nil
}

func hashSecret(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return b
}

func randomString(n int) string { return base64.RawURLEncoding.EncodeToString(randomBytes(n)) }
