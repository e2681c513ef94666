package router

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is the injected clock: the fake prober advances it by the RTT
// it reports, so HTTPProber-style timing is deterministic.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// scripted answers each target with a configured RTT or error.
type scripted struct {
	mu  sync.Mutex
	rtt map[string]time.Duration
	err map[string]error
}

func (s *scripted) Probe(_ context.Context, target string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rtt[target], s.err[target]
}

func (s *scripted) set(target string, rtt time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rtt[target], s.err[target] = rtt, err
}

func newScripted(t *testing.T, targets ...string) (*Router, *scripted) {
	t.Helper()
	p := &scripted{rtt: map[string]time.Duration{}, err: map[string]error{}}
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	r, err := New(Config{Targets: targets, Prober: p, Now: clk.Now, FailuresToDown: 3, SuccessesToUp: 2})
	if err != nil {
		t.Fatal(err)
	}
	return r, p
}

func TestOrderedNearestHealthyFirst(t *testing.T) {
	r, p := newScripted(t, "a", "b", "c")
	if got := r.Ordered(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("before probing: %v (configured order)", got)
	}
	p.set("a", 30*time.Millisecond, nil)
	p.set("b", 10*time.Millisecond, nil)
	p.set("c", 20*time.Millisecond, nil)
	r.ProbeAll(context.Background())
	if got := r.Ordered(); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("by RTT: %v", got)
	}
	// EWMA: one slow sample on b does not outweigh its history.
	p.set("b", 40*time.Millisecond, nil)
	r.ProbeAll(context.Background())
	st := r.Status()
	if want := time.Duration(0.3*40e6 + 0.7*10e6); st[1].RTT != want {
		t.Fatalf("EWMA of b = %s, want %s", st[1].RTT, want)
	}
	if got := r.Ordered(); !slices.Equal(got, []string{"b", "c", "a"}) {
		t.Fatalf("after one slow sample: %v", got)
	}
}

func TestHysteresis(t *testing.T) {
	r, p := newScripted(t, "a", "b")
	p.set("a", 5*time.Millisecond, nil)
	p.set("b", 50*time.Millisecond, nil)
	r.ProbeAll(context.Background())
	boom := errors.New("connection refused")
	p.set("a", 0, boom)
	steps := []State{Suspect, Suspect, Down}
	for i, want := range steps {
		r.ProbeAll(context.Background())
		if got := r.Status()[0].State; got != want {
			t.Fatalf("failure %d: state %s, want %s", i+1, got, want)
		}
		if got := r.Ordered()[0]; got != "b" {
			t.Fatalf("failure %d: first is %s, want b (a is not up)", i+1, got)
		}
	}
	p.set("a", 5*time.Millisecond, nil)
	r.ProbeAll(context.Background())
	if got := r.Status()[0].State; got != Down {
		t.Fatalf("one success after down: %s, want still down", got)
	}
	r.ProbeAll(context.Background())
	if got := r.Status()[0].State; got != Up {
		t.Fatalf("two successes after down: %s, want up", got)
	}
	if got := r.Ordered(); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("recovered: %v", got)
	}
	// A flap (failure then success) from up goes suspect then straight back up.
	r.ReportFailure("a", boom)
	r.ReportSuccess("a", 0)
	if got := r.Status()[0].State; got != Up {
		t.Fatalf("flap: %s", got)
	}
}

func TestHTTPProberAgainstServer(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != HealthPath || !healthy.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"status":"ok"}`))
	}))
	defer srv.Close()
	clk := &fakeClock{t: time.Unix(1e9, 0)}
	r, err := New(Config{Targets: []string{"http://127.0.0.1:1", srv.URL}, Now: clk.Now, Timeout: time.Second, FailuresToDown: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.ProbeAll(context.Background())
	if got := r.Ordered(); got[0] != srv.URL {
		t.Fatalf("ordered %v, want the live server first", got)
	}
	st := r.Status()
	if st[0].State != Down || st[1].State != Up || st[1].RTT <= 0 || !st[1].LastSuccess.Equal(clk.Now()) {
		t.Fatalf("status %+v", st)
	}
	healthy.Store(false)
	r.ProbeAll(context.Background())
	if st := r.Status(); st[1].State != Down || st[1].LastError == "" {
		t.Fatalf("503 must count as failure: %+v", st[1])
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("no targets accepted")
	}
	if _, err := New(Config{Targets: []string{"x"}, Alpha: 2}); err == nil {
		t.Fatal("alpha 2 accepted")
	}
}

func TestNilRouterHasNoTargets(t *testing.T) {
	var r *Router
	r.ProbeAll(context.Background())
	r.ReportFailure("x", errors.New("e"))
	r.ReportSuccess("x", time.Millisecond)
	if r.Ordered() != nil || r.Status() != nil {
		t.Fatal("nil router returned targets")
	}
}
