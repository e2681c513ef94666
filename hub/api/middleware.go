package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

const (
	ctxRequestID = "request_id"
	headerReqID  = "X-Request-Id"

	logKeyRequestID = "request_id"
	logKeyMethod    = "method"
	logKeyPath      = "path"
	logKeyStatus    = "status"
	logKeyDuration  = "duration_ms"
	logKeyClient    = "client"
	logKeyError     = "error"
)

// validRequestID bounds what a client may pass as its own request id, so a
// header can't inject into logs.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID takes the caller's X-Request-Id when well-formed, else makes one,
// and echoes it on the response.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(headerReqID)
		if !validRequestID.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(ctxRequestID, id)
		c.Header(headerReqID, id)
		c.Next()
	}
}

// accessLog logs one line per request (never the query string, which may
// carry tokens) and records the request metrics.
func (s *Server) accessLog() gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		route := c.FullPath()
		if route == "" {
			route = "unmatched"
		}
		status := c.Writer.Status()
		elapsed := time.Since(start)
		if s.metrics != nil {
			s.metrics.HTTPRequests.WithLabelValues(c.Request.Method, route, strconv.Itoa(status)).Inc()
			s.metrics.HTTPDuration.WithLabelValues(c.Request.Method, route).Observe(elapsed.Seconds())
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelError
		} else if route == "/api/health" || route == "/metrics" {
			level = slog.LevelDebug
		}
		attrs := []any{
			logKeyRequestID, c.GetString(ctxRequestID),
			logKeyMethod, c.Request.Method,
			logKeyPath, c.Request.URL.Path,
			logKeyStatus, status,
			logKeyDuration, float64(elapsed.Microseconds()) / 1000,
			logKeyClient, c.ClientIP(),
		}
		if len(c.Errors) > 0 {
			attrs = append(attrs, logKeyError, c.Errors.String())
		}
		s.log.Log(c.Request.Context(), level, "http request", attrs...)
	}
}

// recovery turns a handler panic into a logged 500 with the API error body,
// so one bad request cannot take the hub down.
func recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				abort(c, fmt.Errorf("panic: %v", r))
			}
		}()
		c.Next()
	}
}

// securityHeaders sets conservative browser headers on every response.
func securityHeaders(frameSrc string) gin.HandlerFunc {
	csp := "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
	if frameSrc != "" { // the console embeds Grafana's dashboards (--grafana-url)
		csp += "; frame-src 'self' " + frameSrc
	}
	return func(c *gin.Context) {
		h := c.Writer.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", csp)
		c.Next()
	}
}
