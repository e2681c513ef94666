package api

import (
	"io"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	runpprof "runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
)

// Profiling: the Go profiles of this hub process (net/http/pprof) under
// /debug/pprof/, for ADMIN only (auth.ResourceDebug). They show the
// hub's code paths, goroutines and memory use, never the data it holds.

// MaxProfileSeconds bounds the seconds of a CPU profile, an execution
// trace or a delta profile: the request stays open that long.
const MaxProfileSeconds = 120

// Defaults of ?seconds, as net/http/pprof has them.
const (
	defaultCPUProfileSeconds = 30
	defaultTraceSeconds      = 1
)

// ProfileNames are the named runtime profiles /debug/pprof/NAME serves
// besides cmdline, profile, symbol and trace. Block and mutex profiles
// stay empty unless the hub runs with --debug-block-rate and
// --debug-mutex-fraction.
var ProfileNames = []string{"allocs", "block", "goroutine", "heap", "mutex", "threadcreate"}

// debugRoutes registers the profiling endpoints. The index is served by
// the catch-all route too (gin does not allow /debug/pprof/ beside
// /debug/pprof/*name): the route table lists /debug/pprof/*name only.
func (s *Server) debugRoutes() {
	s.handle(http.MethodGet, "/debug/pprof/*name", Perm(auth.ResourceDebug, auth.ActionRead), s.pprof)
}

// pprof serves /debug/pprof/ (the index) and /debug/pprof/NAME. An unknown
// NAME is a 404; a bad seconds or debug parameter a 400 naming it.
func (s *Server) pprof(c *gin.Context) {
	name := strings.TrimPrefix(c.Param("name"), "/")
	q := c.Request.URL.Query()
	if e := checkProfileQuery(c.Request, q); e != nil {
		abort(c, e)
		return
	}
	w, r := c.Writer, c.Request
	switch {
	case name == "":
		pprof.Index(w, r)
	case name == "cmdline":
		serveCmdline(w)
	case name == "symbol":
		pprof.Symbol(w, r)
	case name == "profile":
		s.cpuProfile(c, profileSeconds(q, defaultCPUProfileSeconds))
	case name == "trace":
		s.executionTrace(c, profileSeconds(q, defaultTraceSeconds))
	case slices.Contains(ProfileNames, name):
		pprof.Handler(name).ServeHTTP(w, r)
	default:
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found",
			Message: "no profile " + strconv.Quote(name) + "; one of cmdline, profile, symbol, trace, " + strings.Join(ProfileNames, ", ")})
	}
}

// checkProfileQuery checks ?seconds (a whole number 1..MaxProfileSeconds,
// and below the server's write timeout, if it has one) and ?debug (0, 1
// or 2). net/http/pprof would take a bad value for its default.
func checkProfileQuery(r *http.Request, q url.Values) *Error {
	if q.Has("seconds") {
		n, err := strconv.Atoi(q.Get("seconds"))
		switch {
		case err != nil || n < 1:
			return Invalid("seconds", "seconds must be a whole number of seconds from 1 to "+strconv.Itoa(MaxProfileSeconds))
		case n > MaxProfileSeconds:
			return Invalid("seconds", "seconds must be at most "+strconv.Itoa(MaxProfileSeconds)+" (the request stays open that long); take several shorter profiles")
		}
		// The hub's http.Server sets no WriteTimeout (hub/hub.go), so a
		// profile is not cut short; should one be set, refuse a profile
		// that would outlast it rather than send a truncated one.
		if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 &&
			time.Duration(n)*time.Second >= srv.WriteTimeout {
			return Invalid("seconds", "seconds must be below the server's write timeout of "+srv.WriteTimeout.String())
		}
	}
	if q.Has("debug") {
		if n, err := strconv.Atoi(q.Get("debug")); err != nil || n < 0 || n > 2 {
			return Invalid("debug", "debug must be 0 (binary profile), 1 (text) or 2 (goroutine stacks as in a panic)")
		}
	}
	return nil
}

func profileSeconds(q url.Values, def int) time.Duration {
	if n, err := strconv.Atoi(q.Get("seconds")); err == nil {
		return time.Duration(n) * time.Second
	}
	return time.Duration(def) * time.Second
}

// cpuProfile takes a CPU profile for d, or until the client goes away.
// Only one CPU profile runs at a time in a process: a second is a 409.
func (s *Server) cpuProfile(c *gin.Context, d time.Duration) {
	s.timedProfile(c, "profile", d, runpprof.StartCPUProfile, runpprof.StopCPUProfile,
		"a CPU profile is already being taken in this process; retry when it is done")
}

// executionTrace records an execution trace for d, or until the client
// goes away. Only one trace runs at a time: a second is a 409.
func (s *Server) executionTrace(c *gin.Context, d time.Duration) {
	s.timedProfile(c, "trace", d, trace.Start, trace.Stop,
		"an execution trace is already being recorded in this process; retry when it is done")
}

// timedProfile streams what start records into the response for d (see
// wait), then stops it. start fails only when one is already running in
// the process: that is a 409 with busy as its message.
func (s *Server) timedProfile(c *gin.Context, name string, d time.Duration, start func(io.Writer) error, stop func(), busy string) {
	setProfileHeaders(c, name)
	if err := start(c.Writer); err != nil {
		clearProfileHeaders(c)
		abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: busy})
		return
	}
	s.wait(c, d)
	stop()
}

// wait returns after d, when the client goes away, or when the hub shuts
// down (StopProfiles): the profile taken so far is then sent, so a
// shutdown does not wait for a long profile.
func (s *Server) wait(c *gin.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Request.Context().Done():
	case <-s.stopProfiles:
	}
}

// StopProfiles ends the CPU profiles and traces being taken, and those
// asked for later at once; the hub calls it when its HTTP server shuts
// down (http.Server.RegisterOnShutdown). It may be called more than once.
func (s *Server) StopProfiles() {
	s.stopOnce.Do(func() { close(s.stopProfiles) })
}

func setProfileHeaders(c *gin.Context, name string) {
	h := c.Writer.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
}

func clearProfileHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Del("Content-Type")
	h.Del("Content-Disposition")
}

// serveCmdline writes the hub's command line, NUL-separated as
// net/http/pprof does, with secrets redacted (cmdlineArgs).
func serveCmdline(w http.ResponseWriter) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte(strings.Join(RedactArgs(os.Args), "\x00")))
}

// secretFlags are flag names whose value RedactArgs hides.
var secretFlags = []string{"password", "secret", "token", "key"}

// RedactArgs returns args with secrets replaced by "[redacted]": the
// value of a flag whose name holds password, secret, token or key
// (--x v and --x=v), and the password of any URL
// (postgres://user:pass@host). The hub takes its secrets from the
// environment or files, but a --store or --redis URL may carry one.
func RedactArgs(args []string) []string {
	out := make([]string, len(args))
	hideNext := false
	for i, a := range args {
		switch {
		case hideNext && !strings.HasPrefix(a, "-"):
			out[i], hideNext = "[redacted]", false
			continue
		case strings.HasPrefix(a, "-"):
			name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
			secret := slices.ContainsFunc(secretFlags, func(s string) bool { return strings.Contains(strings.ToLower(name), s) })
			hideNext = secret && !hasValue
			if secret && hasValue {
				out[i] = a[:len(a)-len(value)] + "[redacted]"
				continue
			}
			out[i] = redactURLArg(a)
			continue
		}
		hideNext = false
		out[i] = redactURLArg(a)
	}
	return out
}

// redactURLArg hides the password of URLs in a (a plain value or a
// --flag=URL), or the whole of a that looks like a URL with userinfo but
// does not parse.
func redactURLArg(a string) string {
	prefix, v := "", a
	if strings.HasPrefix(a, "-") {
		if n, val, ok := strings.Cut(a, "="); ok {
			prefix, v = n+"=", val
		}
	}
	if !strings.Contains(v, "://") || !strings.Contains(v, "@") {
		return a
	}
	var parts []string
	for _, p := range strings.Split(v, ",") {
		u, err := url.Parse(p)
		switch {
		case err != nil:
			parts = append(parts, "[redacted]")
		case u.User != nil:
			if _, ok := u.User.Password(); ok {
				u.User = url.UserPassword(u.User.Username(), "xxxxx")
			}
			parts = append(parts, u.String())
		default:
			parts = append(parts, p)
		}
	}
	return prefix + strings.Join(parts, ",")
}
