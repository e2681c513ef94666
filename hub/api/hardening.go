package api

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/catalog"
)

// RoleRequestsPerMinute bounds authenticated requests per principal (the
// roadmap's per-role limits). Instance tokens post decisions and
// checkpoints at machine rates and get the highest.
var RoleRequestsPerMinute = map[catalog.Role]int{
	catalog.RoleViewer:   100,
	catalog.RoleOperator: 500,
	catalog.RoleAdmin:    1000,
}

// InstanceTokenRequestsPerMinute bounds an instance-scoped token.
const InstanceTokenRequestsPerMinute = 6000

// MetricsTokenRequestsPerMinute bounds a metrics-scoped token, counted on
// its own: a Prometheus scrapes every hub and runtime target with one.
const MetricsTokenRequestsPerMinute = 60000

// MaxRequestBytes bounds every request body unless a route sets a larger
// bound of its own (flows, sync batches).
const MaxRequestBytes = 32 << 20

// limitBody caps every request body; routes refuse past their own,
// smaller bound with a clear 413.
func limitBody() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Body != nil {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, MaxRequestBytes)
		}
		c.Next()
	}
}

// rateLimit applies the per-principal limit after authentication.
func (s *Server) rateLimit(c *gin.Context) bool {
	if s.cfg.Limits == nil {
		return true
	}
	p := principal(c)
	limit := RoleRequestsPerMinute[p.Role]
	key := "user:" + p.UserID
	switch p.Scope {
	case "instance":
		limit, key = InstanceTokenRequestsPerMinute, "token:"+p.TokenID
	case "metrics":
		limit, key = MetricsTokenRequestsPerMinute, "token:"+p.TokenID
	}
	if limit == 0 {
		return true
	}
	ok, remaining, reset, err := s.cfg.Limits.Allow(c.Request.Context(), key, limit, time.Minute)
	if err != nil {
		return true // the limiter being down must not take the API down
	}
	c.Header("X-RateLimit-Limit", strconv.Itoa(limit))
	c.Header("X-RateLimit-Remaining", strconv.Itoa(remaining))
	if !ok {
		c.Header("Retry-After", strconv.Itoa(int(reset.Seconds())+1))
		abort(c, &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "request limit of " + strconv.Itoa(limit) + " per minute for role " + string(p.Role) + " reached; retry in " + strconv.Itoa(int(reset.Seconds())+1) + "s"})
		return false
	}
	return true
}

// cors answers cross-origin requests only from the configured origins;
// without an allow-list the API is same-origin only.
func (s *Server) cors() gin.HandlerFunc {
	allowed := map[string]bool{}
	for _, o := range s.cfg.CORSOrigins {
		if o = strings.TrimRight(strings.TrimSpace(o), "/"); o != "" {
			allowed[o] = true
		}
	}
	return func(c *gin.Context) {
		origin := c.GetHeader("Origin")
		if origin == "" || !allowed[origin] {
			if c.Request.Method == http.MethodOptions && origin != "" {
				c.AbortWithStatus(http.StatusForbidden)
				return
			}
			c.Next()
			return
		}
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Add("Vary", "Origin")
		h.Set("Access-Control-Expose-Headers", "X-Request-Id, Retry-After, X-RateLimit-Remaining")
		if c.Request.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, PATCH, DELETE")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-Request-Id")
			h.Set("Access-Control-Max-Age", "600")
			c.AbortWithStatus(http.StatusNoContent)
			return
		}
		c.Next()
	}
}
