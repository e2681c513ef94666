// Package proxy is the hub's data-plane reverse proxy: /i/{name}/… goes
// to a healthy replica of whichever row (color) of the logical instance
// {name} is live, wherever it runs: a replica on this hub first, then one
// in this hub's region, then the nearest region by RTT, and among equals
// the one with the fewest requests outstanding. A request whose
// connection fails is retried once on another replica when that is safe
// (an idempotent method, or a body not yet sent). During a blue-green
// switch new requests wait (up to HoldTimeout) instead of failing, and
// requests in flight to a row are counted so the old color is stopped only
// once it is idle. Node-RED's editor and admin API are not part of the
// data plane: every path under fleet.AdminRoot answers 404 here (the
// editor is served behind hub authentication, see ServeEditor). It does
// not decide which color is live (hub/deploy)
// nor where replicas run (hub/schedule), nor authenticate (the route is
// public, like Node-RED's own http-in endpoints; see hub/deploy/DESIGN.md).
package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	rfleet "github.com/redforge/controltower/hub/fleet"
)

// DefaultHoldTimeout bounds how long a request waits during a switch.
const DefaultHoldTimeout = 10 * time.Second

// Resolver names the live row of a logical instance and its replicas.
type Resolver interface {
	Live(name string) (catalog.Instance, error)
	InstanceAllocations(rowID string) []catalog.Allocation
}

// Locality tells the proxy where it is and how far the other hubs are.
type Locality struct {
	Hub    string // this hub's id
	Region string // this hub's region
	// HubRegion is the region of a hub; nil: unknown.
	HubRegion func(hubID string) string
	// RTT is this hub's measured RTT to another hub; ok false when unknown.
	RTT func(hubID string) (time.Duration, bool)
}

// Proxy serves /i/{name}/….
type Proxy struct {
	HoldTimeout time.Duration

	resolve   Resolver
	loc       Locality
	log       *slog.Logger
	transport *http.Transport

	mu       sync.Mutex
	gates    map[string]chan struct{} // closed = open; present = paused
	byAddr   map[string]*atomic.Int64 // outstanding requests per runtime address
	byRow    map[string]*atomic.Int64 // outstanding requests per row id
	byName   map[string]*atomic.Int64 // outstanding requests per logical name
	idleWake chan struct{}
}

// New returns a proxy; it does no I/O.
func New(r Resolver, loc Locality, log *slog.Logger) *Proxy {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Proxy{HoldTimeout: DefaultHoldTimeout, resolve: r, loc: loc, log: log,
		transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second, ResponseHeaderTimeout: 60 * time.Second,
		},
		gates: map[string]chan struct{}{}, byAddr: map[string]*atomic.Int64{}, byRow: map[string]*atomic.Int64{},
		byName: map[string]*atomic.Int64{}, idleWake: make(chan struct{})}
}

// Close closes the proxy's idle connections to runtimes (requests in
// flight finish on theirs).
func (p *Proxy) Close() error {
	p.transport.CloseIdleConnections()
	return nil
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

func counter(m map[string]*atomic.Int64, key string) *atomic.Int64 {
	c := m[key]
	if c == nil {
		c = new(atomic.Int64)
		m[key] = c
	}
	return c
}

// InFlight is the number of requests in flight through this hub for the
// logical instance name.
func (p *Proxy) InFlight(name string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.byName[name]; c != nil {
		return c.Load()
	}
	return 0
}

// RowInFlight is the number of requests in flight through this hub to
// the replicas of one row.
func (p *Proxy) RowInFlight(rowID string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c := p.byRow[rowID]; c != nil {
		return c.Load()
	}
	return 0
}

// WaitIdle waits until no request through this hub to the row is in
// flight, or ctx ends.
func (p *Proxy) WaitIdle(ctx context.Context, rowID string) error {
	for {
		p.mu.Lock()
		n := counter(p.byRow, rowID).Load()
		wake := p.idleWake
		p.mu.Unlock()
		if n == 0 {
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

// Targets returns the live row's healthy replicas in the order the proxy
// tries them (best first); when none is healthy, the unhealthy ones that
// still run (failing health checks), so a slow runtime still answers.
func (p *Proxy) Targets(name string) (catalog.Instance, []catalog.Allocation, error) {
	live, err := p.resolve.Live(name)
	if err != nil {
		return live, nil, err
	}
	var ready, ailing []catalog.Allocation
	for _, a := range p.resolve.InstanceAllocations(live.ID) {
		if a.Address() == "" || a.Desired == catalog.AllocStop {
			continue
		}
		switch a.Observed.Status {
		case "running":
			ready = append(ready, a)
		case "unhealthy":
			// Alive but failing its health checks (a slow admin API under
			// load, say): better than no answer when nothing is healthy.
			ailing = append(ailing, a)
		}
	}
	if len(ready) == 0 {
		ready = ailing
	}
	p.order(ready)
	return live, ready, nil
}

// order sorts replicas: tier (this hub, this region, other regions by
// RTT), then fewest outstanding requests, then a random tie-break so
// equal replicas share the load.
func (p *Proxy) order(as []catalog.Allocation) {
	type key struct {
		tier  int
		rtt   time.Duration
		out   int64
		shuff uint32
	}
	keys := make(map[string]key, len(as))
	p.mu.Lock()
	for _, a := range as {
		k := key{tier: 2, out: counter(p.byAddr, a.Address()).Load(), shuff: rand.Uint32()}
		switch {
		case a.Hub == p.loc.Hub:
			k.tier = 0
		case p.loc.Region != "" && (a.Region == p.loc.Region || p.loc.HubRegion != nil && p.loc.HubRegion(a.Hub) == p.loc.Region):
			k.tier = 1
		default:
			k.rtt = time.Hour
			if p.loc.RTT != nil {
				if d, ok := p.loc.RTT(a.Hub); ok {
					k.rtt = d
				}
			}
		}
		keys[a.ID] = k
	}
	p.mu.Unlock()
	slices.SortFunc(as, func(a, b catalog.Allocation) int {
		ka, kb := keys[a.ID], keys[b.ID]
		return cmp.Or(cmp.Compare(ka.tier, kb.tier), cmp.Compare(ka.rtt, kb.rtt), cmp.Compare(ka.out, kb.out), cmp.Compare(ka.shuff, kb.shuff))
	})
}

// CleanPath is rest as the proxy forwards it: rooted, without dot
// segments or repeated slashes, keeping a trailing slash.
func CleanPath(rest string) string {
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	c := path.Clean(rest)
	if strings.HasSuffix(rest, "/") && c != "/" {
		c += "/"
	}
	return c
}

// IsAdminPath reports whether a cleaned path is Node-RED's editor or admin
// API (fleet.AdminRoot or below it; Express matches paths without regard
// to case).
func IsAdminPath(clean string) bool {
	lc := strings.ToLower(clean)
	root := strings.ToLower(rfleet.AdminRoot)
	return lc == root || strings.HasPrefix(lc, root+"/")
}

// Serve proxies r to a healthy replica of the live row of name; rest is
// the path below /i/{name} ("/" when empty). A path under the runtimes'
// admin root answers 404 without reaching a runtime.
func (p *Proxy) Serve(w http.ResponseWriter, r *http.Request, name, rest string) {
	rest = CleanPath(rest)
	if IsAdminPath(rest) {
		http.NotFound(w, r)
		return
	}
	if err := p.waitGate(r.Context(), name); err != nil {
		http.Error(w, "instance switch in progress; retry", http.StatusServiceUnavailable)
		return
	}
	live, targets, err := p.Targets(name)
	if errors.Is(err, catalog.ErrNotFound) {
		http.Error(w, fmt.Sprintf("no instance named %q", name), http.StatusNotFound)
		return
	}
	if err != nil || len(targets) == 0 {
		http.Error(w, fmt.Sprintf("instance %q has no running replica", name), http.StatusServiceUnavailable)
		return
	}
	p.mu.Lock()
	rc, nc := counter(p.byRow, live.ID), counter(p.byName, name)
	p.mu.Unlock()
	rc.Add(1)
	nc.Add(1)
	defer func() {
		nc.Add(-1)
		if rc.Add(-1) == 0 {
			p.mu.Lock()
			close(p.idleWake)
			p.idleWake = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	rt := &retrying{p: p, targets: targets}
	rp := &httputil.ReverseProxy{
		Transport:     rt,
		FlushInterval: -1, // stream (server-sent events, chunked replies)
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "replica"})
			pr.Out.URL.Path, pr.Out.URL.RawPath = rest, ""
			pr.SetXForwarded()
			pr.Out.Header.Del("Authorization") // hub credentials never reach an instance
			pr.Out.Header.Del(rfleet.EditorTokenHeader)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.log.Warn("proxy error", "instance", name, "tried", rt.tried, "error", err)
			http.Error(w, "instance did not answer", http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// retrying is the proxy's transport for one request: it sends it to the
// first target and, when the connection fails, once more to the next when
// that is safe.
type retrying struct {
	p       *Proxy
	targets []catalog.Allocation
	tried   []string
}

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	var lastErr error
	tries := t.targets
	if len(tries) == 1 {
		// One replica: a retry goes to it again, on a fresh connection (a
		// pooled one may have died with a runtime that restarted).
		tries = []catalog.Allocation{tries[0], tries[0]}
	}
	for i, a := range tries {
		if i > 1 {
			break // one retry
		}
		addr := a.Address()
		t.tried = append(t.tried, addr)
		out := req
		if i > 0 {
			out = req.Clone(req.Context())
		}
		out.URL.Host, out.Host = addr, addr
		t.p.mu.Lock()
		c := counter(t.p.byAddr, addr)
		t.p.mu.Unlock()
		c.Add(1)
		body := &sentBody{ReadCloser: out.Body}
		if out.Body != nil && out.Body != http.NoBody {
			out.Body = body
		}
		resp, err := t.p.transport.RoundTrip(out)
		if err == nil {
			if resp.StatusCode == http.StatusSwitchingProtocols {
				c.Add(-1) // the upgraded connection needs the body as it is (writable)
			} else {
				resp.Body = &doneBody{ReadCloser: resp.Body, done: func() { c.Add(-1) }}
			}
			return resp, nil
		}
		c.Add(-1)
		lastErr = err
		if !retryable(req, err, body.read.Load()) {
			return nil, err
		}
		t.p.log.Info("replica did not answer; retrying on another", "addr", addr, "error", err)
	}
	return nil, lastErr
}

// retryable: a connection that could not be made (nothing was sent), or a
// failure of an idempotent request whose body was not read.
func retryable(req *http.Request, err error, bodyRead bool) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return true
	}
	if bodyRead || req.Context().Err() != nil {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

// sentBody records whether the transport read any of the request body.
// Its Close does nothing: a transport closes the body when a connection
// fails, and a retry must still read it (the server closes the incoming
// body when the handler returns).
type sentBody struct {
	io.ReadCloser
	read atomic.Bool
}

func (b *sentBody) Close() error { return nil }

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.read.Store(true)
	}
	return n, err
}

// doneBody calls done once when the response body is closed.
type doneBody struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (b *doneBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.done)
	return err
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
