package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
)

// Limiter counts requests in a window (hub/coord satisfies it).
type Limiter interface {
	Allow(ctx context.Context, key string, limit int, window time.Duration) (bool, int, time.Duration, error)
}

// Limits are the rate limits and the per-account login delay, both kept
// in hub/coord (memory on one hub, Redis for a region).
type Limits interface {
	Limiter
	LoginState
}

// Users is hub/auth.Service as the API uses it.
type Users interface {
	Authenticator
	Accounts
	KeyRing
	EditorSessions
}

// Accounts are login, sessions, users and API tokens.
type Accounts interface {
	Login(ctx context.Context, username, password, ip string) (auth.Tokens, auth.Principal, error)
	Refresh(ctx context.Context, refreshToken string) (auth.Tokens, auth.Principal, error)
	Logout(ctx context.Context, p auth.Principal) error
	ListUsers(by auth.Principal) ([]auth.UserInfo, error)
	GetUser(by auth.Principal, id string) (auth.UserInfo, error)
	CreateUser(ctx context.Context, by auth.Principal, in auth.NewUser) (auth.UserInfo, error)
	UpdateUser(ctx context.Context, by auth.Principal, id string, p auth.UserPatch) (auth.UserInfo, error)
	DeleteUser(ctx context.Context, by auth.Principal, id string) error
	ListAPITokens(by auth.Principal) ([]auth.APITokenInfo, error)
	CreateAPIToken(ctx context.Context, by auth.Principal, req auth.NewAPIToken) (string, auth.APITokenInfo, error)
	RevokeAPIToken(ctx context.Context, by auth.Principal, id string) (auth.APITokenInfo, error)
}

// LoginAttemptsPerMinute bounds login attempts per client IP.
const LoginAttemptsPerMinute = 10

func (s *Server) authRoutes() {
	if s.cfg.Users == nil {
		return
	}
	s.handle(http.MethodPost, "/api/auth/login", Public, s.login)
	s.handle(http.MethodPost, "/api/auth/refresh", Public, s.refresh)
	s.handle(http.MethodPost, "/api/auth/logout", Perm(auth.ResourceUsers, auth.ActionRead).self(), s.logout)
	s.handle(http.MethodGet, "/api/auth/me", Perm(auth.ResourceUsers, auth.ActionRead).self(), s.me)

	s.handle(http.MethodGet, "/api/users", Perm(auth.ResourceUsers, auth.ActionRead), s.listUsers)
	s.handle(http.MethodPost, "/api/users", Perm(auth.ResourceUsers, auth.ActionCreate), s.createUser)
	s.handle(http.MethodGet, "/api/users/:id", Perm(auth.ResourceUsers, auth.ActionRead).OnUser(), s.getUser)
	s.handle(http.MethodPatch, "/api/users/:id", Perm(auth.ResourceUsers, auth.ActionUpdate).OnUser(), s.patchUser)
	s.handle(http.MethodDelete, "/api/users/:id", Perm(auth.ResourceUsers, auth.ActionDelete).OnUser(), s.deleteUser)

	s.handle(http.MethodGet, "/api/tokens", Perm(auth.ResourceTokens, auth.ActionRead), s.listTokens)
	s.handle(http.MethodPost, "/api/tokens", Perm(auth.ResourceTokens, auth.ActionCreate), s.createToken)
	s.handle(http.MethodDelete, "/api/tokens/:id", Perm(auth.ResourceTokens, auth.ActionDelete), s.revokeToken)
	s.keyRoutes() // keys.go
}

// self marks a route any authenticated session may call for itself.
func (a Access) self() Access { a.Target = "self"; return a }

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) login(c *gin.Context) {
	if s.cfg.Limits != nil {
		ok, _, reset, err := s.cfg.Limits.Allow(c.Request.Context(), "login:"+c.ClientIP(), LoginAttemptsPerMinute, time.Minute)
		if err == nil && !ok {
			c.Header("Retry-After", strconv.Itoa(int(reset.Seconds())+1))
			abort(c, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited", Message: fmt.Sprintf("too many login attempts; retry in %ds", int(reset.Seconds())+1)})
			return
		}
	}
	var req loginRequest
	if !bindJSON(c, &req, 4096) {
		return
	}
	if req.Username == "" {
		abort(c, Invalid("username", "username is required"))
		return
	}
	if !s.allowAccountLogin(c, req.Username) {
		return
	}
	tokens, p, err := s.cfg.Users.Login(c.Request.Context(), req.Username, req.Password, c.ClientIP())
	if err == nil && s.cfg.Limits != nil {
		if ferr := forgetLoginAttempts(c.Request.Context(), s.cfg.Limits, req.Username); ferr != nil {
			s.log.Warn("clear login delay", logKeyRequestID, c.GetString(ctxRequestID), logKeyError, ferr)
		}
	}
	if err != nil {
		var ae *auth.AuthError
		if errors.As(err, &ae) {
			c.Set(ctxPrincipal, auth.Principal{Username: req.Username})
			s.audit(c, audit.LoginFailed, "user", "", map[string]any{"username": req.Username, "reason": ae.Detail})
		}
		abort(c, err)
		return
	}
	c.Set(ctxPrincipal, p)
	s.audit(c, audit.LoginSucceeded, "user", p.UserID, nil)
	c.JSON(http.StatusOK, gin.H{"access_token": tokens.AccessToken, "refresh_token": tokens.RefreshToken,
		"token_type": tokens.TokenType, "expires_at": tokens.ExpiresAt, "refresh_expires_at": tokens.RefreshExpiresAt,
		"user": gin.H{"id": p.UserID, "username": p.Username, "role": p.Role}})
}

// allowAccountLogin applies the per-account delay (loginguard.go): false
// when the attempt was answered 429 with Retry-After. The store being
// down must not take logins down: the per-address limit still holds.
func (s *Server) allowAccountLogin(c *gin.Context, username string) bool {
	if s.cfg.Limits == nil {
		return true
	}
	now := time.Now
	if s.cfg.LoginClock != nil {
		now = s.cfg.LoginClock
	}
	wait, err := claimLoginAttempt(c.Request.Context(), s.cfg.Limits, username, now())
	if err != nil {
		s.log.Warn("login delay unavailable", logKeyRequestID, c.GetString(ctxRequestID), logKeyError, err)
		return true
	}
	if wait <= 0 {
		return true
	}
	secs := int((wait + time.Second - 1) / time.Second)
	c.Header("Retry-After", strconv.Itoa(secs))
	abort(c, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
		Message: fmt.Sprintf("too many failed logins for this account; retry in %ds", secs)})
	return false
}

func (s *Server) refresh(c *gin.Context) {
	var req struct {
		RefreshToken string `json:"refresh_token"`
	}
	if !bindJSON(c, &req, 4096) {
		return
	}
	if req.RefreshToken == "" {
		abort(c, Invalid("refresh_token", "refresh_token is required"))
		return
	}
	tokens, p, err := s.cfg.Users.Refresh(c.Request.Context(), req.RefreshToken)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"access_token": tokens.AccessToken, "refresh_token": tokens.RefreshToken,
		"token_type": tokens.TokenType, "expires_at": tokens.ExpiresAt, "refresh_expires_at": tokens.RefreshExpiresAt,
		"user": gin.H{"id": p.UserID, "username": p.Username, "role": p.Role}})
}

func (s *Server) logout(c *gin.Context) {
	if err := s.cfg.Users.Logout(c.Request.Context(), principal(c)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.Logout, "user", principal(c).UserID, nil)
	c.JSON(http.StatusOK, gin.H{"logged_out": true})
}

func (s *Server) me(c *gin.Context) {
	p := principal(c)
	out := gin.H{"principal": p, "permissions": auth.PermissionsOfPrincipal(p)}
	if p.UserID != "" {
		if u, err := s.cfg.Users.GetUser(p, p.UserID); err == nil {
			out["user"] = u
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) listUsers(c *gin.Context) {
	users, err := s.cfg.Users.ListUsers(principal(c))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"users": users})
}

func (s *Server) createUser(c *gin.Context) {
	var req auth.NewUser
	if !bindJSON(c, &req, 0) {
		return
	}
	u, err := s.cfg.Users.CreateUser(c.Request.Context(), principal(c), req)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.UserCreated, "user", u.ID, map[string]any{"username": u.Username, "role": u.Role})
	c.JSON(http.StatusCreated, u)
}

func (s *Server) getUser(c *gin.Context) {
	u, err := s.cfg.Users.GetUser(principal(c), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, u)
}

func (s *Server) patchUser(c *gin.Context) {
	var req auth.UserPatch
	if !bindJSON(c, &req, 0) {
		return
	}
	u, err := s.cfg.Users.UpdateUser(c.Request.Context(), principal(c), c.Param("id"), req)
	if err != nil {
		abort(c, err)
		return
	}
	switch {
	case req.Role != nil:
		s.audit(c, audit.RoleAssigned, "user", u.ID, map[string]any{"role": u.Role})
	case req.Password != nil:
		s.audit(c, audit.PasswordChanged, "user", u.ID, nil)
	default:
		s.audit(c, audit.UserUpdated, "user", u.ID, map[string]any{"email_changed": req.Email != nil, "disabled": req.Disabled})
	}
	c.JSON(http.StatusOK, u)
}

func (s *Server) deleteUser(c *gin.Context) {
	if err := s.cfg.Users.DeleteUser(c.Request.Context(), principal(c), c.Param("id")); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.UserDeleted, "user", c.Param("id"), nil)
	c.JSON(http.StatusOK, gin.H{"deleted": c.Param("id")})
}

func (s *Server) listTokens(c *gin.Context) {
	toks, err := s.cfg.Users.ListAPITokens(principal(c))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"tokens": toks})
}

func (s *Server) createToken(c *gin.Context) {
	var req auth.NewAPIToken
	if !bindJSON(c, &req, 0) {
		return
	}
	secret, info, err := s.cfg.Users.CreateAPIToken(c.Request.Context(), principal(c), req)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.TokenCreated, "token", info.ID, map[string]any{"name": info.Name, "role": info.Role, "scope": info.Scope, "instance_id": info.InstanceID})
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"token": secret, "info": info, "note": "store this token now; it is not shown again"})
}

func (s *Server) revokeToken(c *gin.Context) {
	info, err := s.cfg.Users.RevokeAPIToken(c.Request.Context(), principal(c), c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, audit.TokenRevoked, "token", info.ID, nil)
	c.JSON(http.StatusOK, info)
}
