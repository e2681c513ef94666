package hub_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestDebugPprof: an ADMIN takes real heap, goroutine and CPU profiles
// of a running hub; OPERATOR and VIEWER are refused with 403, a request
// without a token with 401; bad parameters are a 400 naming the field,
// an unknown profile a 404, both as the API's JSON error.
func TestDebugPprof(t *testing.T) {
	h := hubtest.Start(t)

	heap := fetchProfile(t, h, "/debug/pprof/heap")
	if len(heap.SampleType) == 0 || len(heap.Sample) == 0 {
		t.Fatalf("heap profile has no samples: %d sample types, %d samples", len(heap.SampleType), len(heap.Sample))
	}
	if g := fetchProfile(t, h, "/debug/pprof/goroutine"); len(g.Sample) == 0 {
		t.Fatal("goroutine profile has no samples")
	}
	cpu := fetchProfile(t, h, "/debug/pprof/profile?seconds=1")
	if cpu.DurationNanos < 9e8 || len(cpu.SampleType) != 2 || cpu.SampleType[1].Unit != "nanoseconds" {
		t.Fatalf("CPU profile: %v long, sample types %v", cpu.DurationNanos, cpu.SampleType)
	}
	if code, body := h.Do(t, "GET", "/debug/pprof/trace?seconds=1", h.AdminToken, nil); code != 200 || len(body) == 0 {
		t.Fatalf("trace = %d (%d bytes)", code, len(body))
	}
	if code, body := h.Do(t, "GET", "/debug/pprof/", h.AdminToken, nil); code != 200 || !strings.Contains(string(body), "heap") {
		t.Fatalf("index = %d %.300s", code, body)
	}
	if code, body := h.Do(t, "GET", "/debug/pprof/goroutine?debug=2", h.AdminToken, nil); code != 200 || !strings.Contains(string(body), "goroutine ") {
		t.Fatalf("goroutine?debug=2 = %d %.300s", code, body)
	}
	if code, body := h.Do(t, "GET", "/debug/pprof/cmdline", h.AdminToken, nil); code != 200 || len(body) == 0 {
		t.Fatalf("cmdline = %d %s", code, body)
	}

	for _, c := range []struct {
		path, field string
	}{
		{"/debug/pprof/profile?seconds=abc", "seconds"},
		{"/debug/pprof/profile?seconds=0", "seconds"},
		{"/debug/pprof/profile?seconds=-3", "seconds"},
		{"/debug/pprof/profile?seconds=121", "seconds"},
		{"/debug/pprof/trace?seconds=1.5", "seconds"},
		{"/debug/pprof/heap?seconds=9999", "seconds"},
		{"/debug/pprof/heap?debug=7", "debug"},
	} {
		code, body := h.Do(t, "GET", c.path, h.AdminToken, nil)
		if e := errorOf(body).Error; code != http.StatusBadRequest || e.Code != "invalid_argument" || e.Field != c.field {
			t.Errorf("GET %s = %d %s, want 400 naming %s", c.path, code, body, c.field)
		}
	}
	code, body := h.Do(t, "GET", "/debug/pprof/profile?seconds=500", h.AdminToken, nil)
	if e := errorOf(body).Error; code != 400 || !strings.Contains(e.Message, "at most 120") {
		t.Errorf("seconds above the cap = %d %s, want 400 saying the cap", code, body)
	}
	for _, p := range []string{"/debug/pprof/nosuch", "/debug/pprof/heap/x", "/debug/pprof/../api"} {
		code, body := h.Do(t, "GET", p, h.AdminToken, nil)
		if e := errorOf(body).Error; code != http.StatusNotFound || e.Code != "not_found" {
			t.Errorf("GET %s = %d %s, want 404 not_found", p, code, body)
		}
	}

	operator := h.CreateUser(t, "oper", "OPERATOR")
	viewer := h.CreateUser(t, "viewer", "VIEWER")
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/profile?seconds=1", "/debug/pprof/cmdline", "/debug/pprof/nosuch"} {
		for who, token := range map[string]string{"OPERATOR": operator, "VIEWER": viewer} {
			code, body := h.Do(t, "GET", p, token, nil)
			if e := errorOf(body).Error; code != http.StatusForbidden || e.Code == "" {
				t.Errorf("GET %s as %s = %d %s, want 403", p, who, code, body)
			}
		}
		if code, body := h.Do(t, "GET", p, "", nil); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a token = %d %s, want 401", p, code, body)
		}
	}
}

// TestDebugProfileRates: --debug-block-rate and --debug-mutex-fraction
// (and their REDFORGE_* variables) turn the block and mutex profiles on;
// negative values are refused naming the flag.
func TestDebugProfileRates(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := hub.ParseConfig(nil, none, io.Discard)
	if err != nil || cfg.DebugBlockRate != 0 || cfg.DebugMutexFraction != 0 {
		t.Fatalf("defaults: %+v, %v; want both off", cfg.DebugConfig, err)
	}
	env := func(k string) string {
		return map[string]string{"REDFORGE_DEBUG_BLOCK_RATE": "5", "REDFORGE_DEBUG_MUTEX_FRACTION": "7"}[k]
	}
	if cfg, _ = hub.ParseConfig(nil, env, io.Discard); cfg.DebugBlockRate != 5 || cfg.DebugMutexFraction != 7 {
		t.Fatalf("from the environment: %+v", cfg.DebugConfig)
	}
	if cfg, _ = hub.ParseConfig([]string{"--debug-block-rate", "1", "--debug-mutex-fraction", "2"}, env, io.Discard); cfg.DebugBlockRate != 1 || cfg.DebugMutexFraction != 2 {
		t.Fatalf("flags over the environment: %+v", cfg.DebugConfig)
	}
	cfg, _ = hub.ParseConfig([]string{"--debug-block-rate", "-1", "--debug-mutex-fraction", "-1"}, none, io.Discard)
	var fe *hub.FieldError
	if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--debug-block-rate") || !strings.Contains(err.Error(), "--debug-mutex-fraction") {
		t.Fatalf("negative rates: Validate = %v, want errors naming both flags", err)
	}
	if _, err := hub.ParseConfig(nil, func(k string) string {
		return map[string]string{"REDFORGE_DEBUG_MUTEX_FRACTION": "some"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "REDFORGE_DEBUG_MUTEX_FRACTION") {
		t.Fatalf("a bad env value: %v", err)
	}

	// The rates belong to the process: put them back for the other tests.
	t.Cleanup(func() { runtime.SetBlockProfileRate(0); runtime.SetMutexProfileFraction(0) })
	h := hubtest.Start(t, func(c *hub.Config) { c.DebugBlockRate, c.DebugMutexFraction = 1, 1 })
	if got := runtime.SetMutexProfileFraction(-1); got != 1 {
		t.Fatalf("mutex profile fraction = %d, want 1", got)
	}
	// The hub's own goroutines block on channels all the time (Raft, the
	// broker, timers): the block profile has samples.
	if p := fetchProfile(t, h, "/debug/pprof/block"); len(p.Sample) == 0 {
		t.Fatal("block profile is empty with --debug-block-rate 1")
	}
	fetchProfile(t, h, "/debug/pprof/mutex") // parses; contention is not guaranteed
}

// fetchProfile GETs path as the admin and parses the profile.
func fetchProfile(t *testing.T, h *hubtest.Hub, path string) *profile.Profile {
	t.Helper()
	code, body := h.Do(t, "GET", path, h.AdminToken, nil)
	if code != 200 {
		t.Fatalf("GET %s = %d %.300s", path, code, body)
	}
	if !bytes.HasPrefix(body, []byte{0x1f, 0x8b}) {
		t.Fatalf("GET %s: not a gzipped profile: %.40q", path, body)
	}
	p, err := profile.ParseData(body)
	if err != nil {
		t.Fatalf("GET %s: parse profile: %v", path, err)
	}
	return p
}

// errorOf decodes the API error body (security_test.go's apiError).
func errorOf(body []byte) (e apiError) {
	_ = json.Unmarshal(body, &e)
	return e
}

// TestDebugProfileEndsAtShutdown: a second CPU profile while one runs is
// a 409; a long CPU profile does not hold up the hub's shutdown, and the
// client gets the profile taken so far.
func TestDebugProfileEndsAtShutdown(t *testing.T) {
	h := hubtest.Start(t)
	type result struct {
		code int
		body []byte
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", h.URL+"/debug/pprof/profile?seconds=120", nil)
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		resp, err := h.Client.Do(req)
		if err != nil {
			done <- result{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, b}
	}()
	testenv.WaitFor(t, 30*time.Second, "the CPU profile to start", func() error {
		if _, body := h.Do(t, "GET", "/debug/pprof/goroutine?debug=1", h.AdminToken, nil); !strings.Contains(string(body), "(*Server).cpuProfile") {
			return errors.New("no goroutine in cpuProfile yet")
		}
		return nil
	})
	// One CPU profile at a time: a second is refused while this one runs.
	code, body := h.Do(t, "GET", "/debug/pprof/profile?seconds=1", h.AdminToken, nil)
	if e := errorOf(body).Error; code != http.StatusConflict || e.Code != "conflict" {
		t.Fatalf("a second CPU profile = %d %s, want 409 conflict", code, body)
	}
	start := time.Now()
	if err := h.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if took := time.Since(start); took >= h.Config.ShutdownTimeout {
		t.Fatalf("close took %v: it waited for the profile", took)
	}
	r := <-done
	if r.code != 200 {
		t.Fatalf("profile during shutdown = %d %.200s", r.code, r.body)
	}
	if _, err := profile.ParseData(r.body); err != nil {
		t.Fatalf("profile cut at shutdown does not parse: %v", err)
	}
}
