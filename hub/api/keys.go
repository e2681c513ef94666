package api

import (
	"context"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
)

// KeyRing is the JWT signing keys (hub/auth.Service).
type KeyRing interface {
	SigningKeys() ([]auth.KeyInfo, error)
	RotateKeys(ctx context.Context) (auth.KeyInfo, error)
}

// keyRoutes serves the JWT signing keys: GET lists them (no secrets), POST
// rotate adds a new one (towerctl auth rotate-keys). Both are for ADMIN
// only, like API tokens.
func (s *Server) keyRoutes() {
	s.handle(http.MethodGet, "/api/auth/keys", Perm(auth.ResourceTokens, auth.ActionRead), s.listKeys)
	s.handle(http.MethodPost, "/api/auth/keys/rotate", Perm(auth.ResourceTokens, auth.ActionCreate), s.rotateKeys)
}

func (s *Server) listKeys(c *gin.Context) {
	keys, err := s.cfg.Users.SigningKeys()
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"keys": keys})
}

func (s *Server) rotateKeys(c *gin.Context) {
	info, err := s.cfg.Users.RotateKeys(c.Request.Context())
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.SigningKeyRotated, "signing_key", info.ID, nil)
	keys, err := s.cfg.Users.SigningKeys()
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"key": info, "keys": keys})
}
