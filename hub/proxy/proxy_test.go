package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

type liveFunc func(string) (catalog.Instance, error)

func (f liveFunc) Live(name string) (catalog.Instance, error) { return f(name) }

func backend(t *testing.T, reply string, delay time.Duration) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if r.Header.Get("Authorization") != "" {
			http.Error(w, "hub credential leaked", 500)
			return
		}
		io.WriteString(w, reply+" "+r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return p
}

// TestProxySwitch: requests go to the live port; while paused they wait
// and then go to the new one; WaitIdle returns once the old port's
// requests are done; the Authorization header is not forwarded.
func TestProxySwitch(t *testing.T) {
	blue, green := backend(t, "blue", 200*time.Millisecond), backend(t, "green", 0)
	var port atomic.Int64
	port.Store(int64(blue))
	p := New(liveFunc(func(name string) (catalog.Instance, error) {
		if name != "app" {
			return catalog.Instance{}, catalog.ErrNotFound
		}
		return catalog.Instance{Name: "app", Observed: catalog.Observed{Port: int(port.Load())}}, nil
	}), nil)
	get := func(name string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/i/"+name+"/hello", nil)
		req.Header.Set("Authorization", "Bearer hub-token")
		p.Serve(rec, req, name, "/hello")
		return rec.Code, rec.Body.String()
	}
	if code, _ := get("nope"); code != 404 {
		t.Errorf("unknown instance = %d, want 404", code)
	}
	slow := make(chan string, 1)
	go func() { _, b := get("app"); slow <- b }() // in flight to blue
	time.Sleep(50 * time.Millisecond)
	if n := p.InFlight("app"); n != 1 {
		t.Errorf("in flight = %d, want 1", n)
	}
	p.Pause("app")
	held := make(chan string, 1)
	go func() { _, b := get("app"); held <- b }()
	time.Sleep(50 * time.Millisecond)
	select {
	case b := <-held:
		t.Fatalf("request went through while paused: %s", b)
	default:
	}
	port.Store(int64(green))
	p.Resume("app")
	if b := <-held; b != "green /hello" {
		t.Errorf("held request got %q, want green", b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := p.WaitIdle(ctx, blue); err != nil {
		t.Fatal(err)
	}
	if b := <-slow; b != "blue /hello" {
		t.Errorf("request in flight during the switch got %q, want blue", b)
	}
	p.HoldTimeout = 20 * time.Millisecond
	p.Pause("app")
	if code, _ := get("app"); code != http.StatusServiceUnavailable {
		t.Errorf("request held past HoldTimeout = %d, want 503", code)
	}
}
