package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

// fleet is a resolver over a mutable set of rows and allocations.
type fleet struct {
	mu     sync.Mutex
	live   map[string]catalog.Instance // logical name → live row
	allocs map[string][]catalog.Allocation
}

func (f *fleet) Live(name string) (catalog.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.live[name]
	if !ok {
		return r, catalog.ErrNotFound
	}
	return r, nil
}

func (f *fleet) InstanceAllocations(row string) []catalog.Allocation {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]catalog.Allocation(nil), f.allocs[row]...)
}

func (f *fleet) set(name, row string, allocs ...catalog.Allocation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live[name] = catalog.Instance{ID: row, Name: name}
	f.allocs[row] = allocs
}

// backend serves reply; release, when set, is waited for before answering.
func backend(t *testing.T, reply string, release <-chan struct{}) (string, int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if release != nil {
			<-release
		}
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "hub credential leaked", 500)
			return
		}
		io.WriteString(w, reply+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return host, p
}

func alloc(id, hub, region, host string, port int) catalog.Allocation {
	return catalog.Allocation{ID: id, Hub: hub, Region: region,
		Observed: catalog.AllocObserved{Status: "running", Host: host, Port: port}}
}

func (p *Proxy) get(name, path string) (int, string) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/i/"+name+path, nil)
	req.Header.Set("Authorization", "Bearer hub-token")
	p.Serve(rec, req, name, path)
	return rec.Code, rec.Body.String()
}

// TestProxySwitch: requests go to the live row; while paused they wait and
// then go to the new one; WaitIdle returns once the old row's requests
// are done; the Authorization header is not forwarded.
func TestProxySwitch(t *testing.T) {
	release := make(chan struct{})
	bh, bp := backend(t, "blue", release)
	gh, gp := backend(t, "green", nil)
	f := &fleet{live: map[string]catalog.Instance{}, allocs: map[string][]catalog.Allocation{}}
	f.set("app", "blue", alloc("b0", "h1", "us", bh, bp))
	p := New(f, Locality{Hub: "h1", Region: "us"}, nil)
	if code, _ := p.get("nope", "/hello"); code != 404 {
		t.Errorf("unknown instance = %d, want 404", code)
	}
	slow := make(chan string, 1)
	go func() { _, b := p.get("app", "/hello"); slow <- b }() // in flight to blue
	testenv.WaitFor(t, 5*time.Second, "one request in flight", func() error {
		if n := p.InFlight("app"); n != 1 {
			return errf("in flight = %d", n)
		}
		return nil
	})
	p.Pause("app")
	held := make(chan string, 1)
	go func() { _, b := p.get("app", "/hello"); held <- b }()
	testenv.WaitFor(t, 5*time.Second, "the second request held at the gate", func() error {
		if n := p.InFlight("app"); n != 1 {
			return errf("in flight = %d", n) // held requests are not counted until they pass
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, paused := p.gates["app"]; !paused {
			return errf("not paused")
		}
		return nil
	})
	select {
	case b := <-held:
		t.Fatalf("request went through while paused: %s", b)
	default:
	}
	f.set("app", "green", alloc("g0", "h1", "us", gh, gp))
	p.Resume("app")
	if b := <-held; b != "green /hello" {
		t.Errorf("held request got %q, want green", b)
	}
	if n := p.RowInFlight("blue"); n != 1 {
		t.Errorf("blue in flight = %d, want 1", n)
	}
	close(release)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.WaitIdle(ctx, "blue"); err != nil {
		t.Fatal(err)
	}
	if b := <-slow; b != "blue /hello" {
		t.Errorf("request in flight during the switch got %q, want blue", b)
	}
	p.HoldTimeout = 20 * time.Millisecond
	p.Pause("app")
	if code, _ := p.get("app", "/hello"); code != http.StatusServiceUnavailable {
		t.Errorf("request held past HoldTimeout = %d, want 503", code)
	}
}

// TestReplicaChoice: a replica on this hub first, then one of this
// region, then the nearest region by RTT; replicas not running are never
// chosen.
func TestReplicaChoice(t *testing.T) {
	h1, p1 := backend(t, "local", nil)
	h2, p2 := backend(t, "region", nil)
	h3, p3 := backend(t, "near", nil)
	h4, p4 := backend(t, "far", nil)
	f := &fleet{live: map[string]catalog.Instance{}, allocs: map[string][]catalog.Allocation{}}
	rtt := map[string]time.Duration{"h3": 20 * time.Millisecond, "h4": 150 * time.Millisecond}
	p := New(f, Locality{Hub: "h1", Region: "us", RTT: func(h string) (time.Duration, bool) { d, ok := rtt[h]; return d, ok }}, nil)
	starting := alloc("s", "h1", "us", h1, p1)
	starting.Observed.Status = "starting"
	local, region := alloc("local", "h1", "us", h1, p1), alloc("region", "h2", "us", h2, p2)
	near, far := alloc("near", "h3", "eu", h3, p3), alloc("far", "h4", "apac", h4, p4)
	for _, c := range []struct {
		allocs []catalog.Allocation
		want   string
	}{
		{[]catalog.Allocation{far, near, region, local, starting}, "local"},
		{[]catalog.Allocation{far, near, region, starting}, "region"},
		{[]catalog.Allocation{far, near, starting}, "near"},
		{[]catalog.Allocation{far, starting}, "far"},
	} {
		f.set("app", "row", c.allocs...)
		for range 3 {
			if _, b := p.get("app", "/x"); b != c.want+" /x" {
				t.Fatalf("with %d replicas got %q, want %s", len(c.allocs), b, c.want)
			}
		}
	}
	f.set("app", "row", starting)
	if code, _ := p.get("app", "/x"); code != http.StatusServiceUnavailable {
		t.Fatalf("only a starting replica: %d, want 503", code)
	}
}

// TestLeastOutstanding: of two equal replicas, a request goes to the one
// with fewer requests in flight.
func TestLeastOutstanding(t *testing.T) {
	release := make(chan struct{})
	ah, ap := backend(t, "a", release)
	bh, bp := backend(t, "b", nil)
	f := &fleet{live: map[string]catalog.Instance{}, allocs: map[string][]catalog.Allocation{}}
	p := New(f, Locality{Hub: "h1", Region: "us"}, nil)
	f.set("app", "row", alloc("a", "h1", "us", ah, ap))
	first := make(chan string, 1)
	go func() { _, b := p.get("app", "/1"); first <- b }()
	testenv.WaitFor(t, 5*time.Second, "a busy", func() error {
		if p.InFlight("app") != 1 {
			return errf("not yet")
		}
		return nil
	})
	f.set("app", "row", alloc("a", "h1", "us", ah, ap), alloc("b", "h1", "us", bh, bp))
	for i := range 5 {
		if _, b := p.get("app", "/2"); b != "b /2" {
			t.Fatalf("request %d went to %q while a had one outstanding", i, b)
		}
	}
	close(release)
	if b := <-first; b != "a /1" {
		t.Fatalf("first got %q", b)
	}
}

// TestRetryOnAnotherReplica: a replica that refuses connections is skipped
// for the next one, for any method (nothing was sent); a POST whose body
// was sent to a replica that then failed is not retried.
func TestRetryOnAnotherReplica(t *testing.T) {
	gh, gp := backend(t, "good", nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens: connection refused
	f := &fleet{live: map[string]catalog.Instance{}, allocs: map[string][]catalog.Allocation{}}
	p := New(f, Locality{Hub: "h1", Region: "us"}, nil)
	f.set("app", "row", alloc("dead", "h1", "us", "127.0.0.1", deadPort), alloc("good", "h2", "us", gh, gp))
	for _, m := range []string{"GET", "POST"} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(m, "/i/app/x", strings.NewReader(`{"a":1}`))
		p.Serve(rec, req, "app", "/x")
		if rec.Code != 200 || rec.Body.String() != "good /x" {
			t.Fatalf("%s with a dead local replica: %d %q", m, rec.Code, rec.Body.String())
		}
	}
	// A replica that reads the body and drops the connection: the POST is
	// not retried (it may have been processed), the GET is.
	hits := map[string]int{}
	var mu sync.Mutex
	drop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.Method]++
		mu.Unlock()
		io.ReadAll(r.Body)
		hj, _ := w.(http.Hijacker)
		c, _, _ := hj.Hijack()
		c.Close()
	}))
	defer drop.Close()
	dh, dp, _ := net.SplitHostPort(drop.Listener.Addr().String())
	dport, _ := strconv.Atoi(dp)
	f.set("app", "row", alloc("drop", "h1", "us", dh, dport), alloc("good", "h2", "us", gh, gp))
	rec := httptest.NewRecorder()
	p.Serve(rec, httptest.NewRequest("POST", "/i/app/x", strings.NewReader(`{"a":1}`)), "app", "/x")
	if rec.Code != http.StatusBadGateway {
		t.Fatalf("POST whose body was sent: %d, want 502 (not retried)", rec.Code)
	}
	rec = httptest.NewRecorder()
	p.Serve(rec, httptest.NewRequest("GET", "/i/app/x", nil), "app", "/x")
	if rec.Code != 200 || rec.Body.String() != "good /x" {
		t.Fatalf("GET on a dropping replica: %d %q, want a retry on good", rec.Code, rec.Body.String())
	}
	if hits["POST"] != 1 || hits["GET"] != 1 {
		t.Fatalf("hits on the dropping replica: %v", hits)
	}
}

func errf(format string, a ...any) error { return fmt.Errorf(format, a...) }

// TestAdminPaths: what the proxy takes for Node-RED's admin root, however
// the path is spelled, and what it forwards.
func TestAdminPaths(t *testing.T) {
	for in, admin := range map[string]bool{
		"/redforge-admin": true, "/redforge-admin/": true, "/redforge-admin/flows": true, "/REDFORGE-ADMIN/flows": true,
		"/x/../redforge-admin/auth/token": true, "//redforge-admin/settings": true, "redforge-admin/comms": true,
		"/./redforge-admin": true, "/hello": false, "/redforge-administrator": false, "/": false, "/a/redforge-admin": false,
	} {
		if got := IsAdminPath(CleanPath(in)); got != admin {
			t.Errorf("IsAdminPath(CleanPath(%q)) = %v, want %v", in, got, admin)
		}
	}
	for in, want := range map[string]string{"": "/", "/a/": "/a/", "a//b/../c": "/a/c", "/a/./b/": "/a/b/"} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
}
