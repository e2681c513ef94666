// Package proxy is the hub's data-plane reverse proxy: /i/{name}/… goes
// to whichever runtime (color) of the logical instance {name} is live, at
// 127.0.0.1:{port}. During a blue-green switch new requests wait (up to
// HoldTimeout) instead of failing, and requests in flight to a runtime are
// counted so the old color is stopped only once it is idle. It does not
// decide which color is live (hub/deploy does) nor authenticate (the route
// is public, like Node-RED's own http-in endpoints; see hub/deploy/DESIGN.md).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// DefaultHoldTimeout bounds how long a request waits during a switch.
const DefaultHoldTimeout = 10 * time.Second

// Resolver names the live runtime of a logical instance.
type Resolver interface {
	Live(name string) (catalog.Instance, error)
}

// Proxy serves /i/{name}/….
type Proxy struct {
	HoldTimeout time.Duration

	resolve   Resolver
	log       *slog.Logger
	transport *http.Transport

	mu       sync.Mutex
	gates    map[string]chan struct{} // closed = open; present = paused
	byPort   map[int]*atomic.Int64
	byName   map[string]*atomic.Int64
	idleWake chan struct{}
}

// New returns a proxy; it does no I/O.
func New(r Resolver, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Proxy{HoldTimeout: DefaultHoldTimeout, resolve: r, log: log,
		transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 60 * time.Second},
		gates:     map[string]chan struct{}{}, byPort: map[int]*atomic.Int64{}, byName: map[string]*atomic.Int64{},
		idleWake: make(chan struct{})}
}

// Pause makes new requests for name wait until Resume.
func (p *Proxy) Pause(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.gates[name]; !ok {
		p.gates[name] = make(chan struct{})
	}
}

// Resume lets waiting and new requests for name through.
func (p *Proxy) Resume(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if g, ok := p.gates[name]; ok {
		close(g)
		delete(p.gates, name)
	}
}

func (p *Proxy) counter(m map[int]*atomic.Int64, port int) *atomic.Int64 {
	c := m[port]
	if c == nil {
		c = new(atomic.Int64)
		m[port] = c
	}
	return c
}

// InFlight is the number of requests in flight for name.
func (p *Proxy) InFlight(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.byName[name]; c != nil {
		return c.Load()
	}
	return 0
}

// WaitIdle waits until no request to port is in flight, or ctx ends.
func (p *Proxy) WaitIdle(ctx context.Context, port int) error {
	for {
		p.mu.Lock()
		c := p.counter(p.byPort, port)
		wake := p.idleWake
		p.mu.Unlock()
		if c.Load() == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ErrNoInstance and ErrUnavailable are the proxy's refusals.
var (
	ErrNoInstance  = errors.New("proxy: no such instance")
	ErrUnavailable = errors.New("proxy: instance not running")
)

// Serve proxies r to the live runtime of name; rest is the path below
// /i/{name} ("/" when empty).
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, name, rest string) {
	if err := p.waitGate(r.Context(), name); err != nil {
		http.Error(w, "instance switch in progress; retry", http.StatusServiceUnavailable)
		return
	}
	live, err := p.resolve.Live(name)
	if errors.Is(err, catalog.ErrNotFound) {
		http.Error(w, fmt.Sprintf("no instance named %q", name), http.StatusNotFound)
		return
	}
	if err != nil || live.Observed.Port == 0 {
		http.Error(w, fmt.Sprintf("instance %q is not running", name), http.StatusServiceUnavailable)
		return
	}
	port := live.Observed.Port
	p.mu.Lock()
	pc, nc := p.counter(p.byPort, port), p.byName[name]
	if nc == nil {
		nc = new(atomic.Int64)
		p.byName[name] = nc
	}
	p.mu.Unlock()
	pc.Add(1)
	nc.Add(1)
	defer func() {
		nc.Add(-1)
		if pc.Add(-1) == 0 {
			p.mu.Lock()
			close(p.idleWake)
			p.idleWake = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	target := &url.URL{Scheme: "http", Host: "127.0.0.1:" + strconv.Itoa(port)}
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	rp := &httputil.ReverseProxy{
		Transport: p.transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = rest, ""
			pr.Out.Host = target.Host
			pr.SetXForwarded()
			pr.Out.Header.Del("Authorization") // hub credentials never reach an instance
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("proxy error", "instance", name, "port", port, "error", err)
			http.Error(w, "instance did not answer", http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

func (p *Proxy) waitGate(ctx context.Context, name string) error {
	p.mu.Lock()
	g, paused := p.gates[name]
	p.mu.Unlock()
	if !paused {
		return nil
	}
	t := time.NewTimer(p.HoldTimeout)
	defer t.Stop()
	select {
	case <-g:
		return nil
	case <-t.C:
		return ErrUnavailable
	case <-ctx.Done():
		return ctx.Err()
	}
}
