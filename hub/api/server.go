// Package api serves the hub's REST API, WebSocket events, metrics and the
// console over gin. It owns routing, middleware (request id, access log,
// recovery, security headers) and the mapping of domain errors to HTTP
// status codes; it owns no state. The components it serves are reached
// through small interfaces declared here, so hub/hub.go wires them.
package api

import (
	"context"
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/metrics"
)

// Checker is a component whose health /api/health reports. Ping must
// return promptly (it gets a context with a short deadline).
type Checker interface {
	Ping(ctx context.Context) error
}

// Component is a named Checker; the name appears in health responses.
type Component struct {
	Name    string
	Checker Checker
}

// Config holds what the API needs from the rest of the hub.
type Config struct {
	Version    string
	Region     string
	NodeID     string
	Components []Component
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
}

// Server is the hub's HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	engine  *gin.Engine
}

// New builds the router. It does no I/O.
func New(cfg Config) *Server {
	gin.SetMode(gin.ReleaseMode)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	e.Use(requestID(), s.accessLog(), recovery(), securityHeaders())
	e.NoRoute(func(c *gin.Context) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		abort(c, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})
	s.engine = e
	s.routes()
	return s
}

func (s *Server) routes() {
	s.engine.GET("/api/health", s.health)
	if s.metrics != nil {
		h := s.metrics.Handler()
		s.engine.GET("/metrics", func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
	}
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }
