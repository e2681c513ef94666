// Package router chooses among candidate targets (hubs, regional
// endpoints) by measured latency and health. It probes each target on an
// interval, keeps an EWMA of the round-trip time and an up/suspect/down
// state with hysteresis, and answers Ordered: the nearest healthy target
// first, then the failover order.
//
// It owns the probing, the EWMA and the state machine. It does not own what
// a target is used for, and imports nothing of the project's. Consumers
// feed it passive signals too (ReportSuccess, ReportFailure) so a failed
// request counts at once instead of at the next probe. See DESIGN.md.
package router

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// State is a target's health.
type State int

// States. Unknown is a target never probed yet.
const (
	Unknown State = iota
	Up
	Suspect
	Down
)

func (s State) String() string {
	return [...]string{"unknown", "up", "suspect", "down"}[s]
}

// rank orders states for Ordered: up first, then unknown and suspect, then down.
func (s State) rank() int {
	switch s {
	case Up:
		return 0
	case Down:
		return 2
	}
	return 1
}

// Defaults.
const (
	DefaultInterval       = 5 * time.Second
	DefaultTimeout        = 2 * time.Second
	DefaultAlpha          = 0.3 // weight of the newest RTT in the EWMA
	DefaultFailuresToDown = 3
	DefaultSuccessesToUp  = 2
	// HealthPath is what HTTPProber GETs on each target.
	HealthPath = "/api/health"
)

// Prober measures one target; an error means the probe failed.
type Prober interface {
	Probe(ctx context.Context, target string) (rtt time.Duration, err error)
}

// Config configures a Router. Zero fields take the defaults.
type Config struct {
	Targets        []string // in configured preference order (ties go to the earlier)
	Interval       time.Duration
	Timeout        time.Duration // per probe
	Alpha          float64       // EWMA weight of a new sample, in (0,1]
	FailuresToDown int           // consecutive failures from suspect to down
	SuccessesToUp  int           // consecutive successes from down to up
	Prober         Prober        // default: HTTPProber with Timeout
	Now            func() time.Time
}

// TargetStatus is a snapshot of one target.
type TargetStatus struct {
	Target      string
	State       State
	RTT         time.Duration // the EWMA; 0 before the first success
	Failures    int           // consecutive
	Successes   int           // consecutive
	LastProbe   time.Time
	LastSuccess time.Time
	LastError   string
}

// Router is safe for concurrent use. A nil *Router has no targets: its
// methods do nothing and Ordered and Status return nothing.
type Router struct {
	cfg     Config
	mu      sync.Mutex
	targets []*TargetStatus
}

// New returns a Router; it does no I/O. It returns an error for no targets
// or out-of-range tunables.
func New(cfg Config) (*Router, error) {
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Alpha == 0 {
		cfg.Alpha = DefaultAlpha
	}
	if cfg.FailuresToDown == 0 {
		cfg.FailuresToDown = DefaultFailuresToDown
	}
	if cfg.SuccessesToUp == 0 {
		cfg.SuccessesToUp = DefaultSuccessesToUp
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Prober == nil {
		cfg.Prober = &HTTPProber{Client: &http.Client{Timeout: cfg.Timeout}}
	}
	var problems []string
	if len(cfg.Targets) == 0 {
		problems = append(problems, "Targets is empty")
	}
	if cfg.Alpha < 0 || cfg.Alpha > 1 {
		problems = append(problems, fmt.Sprintf("Alpha %g must be in (0,1]", cfg.Alpha))
	}
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.FailuresToDown < 1 || cfg.SuccessesToUp < 1 {
		problems = append(problems, "Interval, Timeout must be > 0 and FailuresToDown, SuccessesToUp >= 1")
	}
	if len(problems) > 0 {
		return nil, errors.New("router config: " + strings.Join(problems, "; "))
	}
	r := &Router{cfg: cfg}
	for _, t := range cfg.Targets {
		r.targets = append(r.targets, &TargetStatus{Target: t})
	}
	return r, nil
}

// Run probes every target each Interval until ctx ends.
func (r *Router) Run(ctx context.Context) {
	if r == nil {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ProbeAll probes every target once, concurrently, and records the results.
func (r *Router) ProbeAll(ctx context.Context) {
	if r == nil {
		return
	}
	var wg sync.WaitGroup
	for _, t := range r.cfg.Targets {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
			defer cancel()
			rtt, err := r.cfg.Prober.Probe(pctx, t)
			if ctx.Err() != nil {
				return // shutting down: not the target's fault
			}
			if err != nil {
				r.ReportFailure(t, err)
			} else {
				r.ReportSuccess(t, rtt)
			}
		})
	}
	wg.Wait()
}

func (r *Router) find(target string) *TargetStatus {
	for _, t := range r.targets {
		if t.Target == target {
			return t
		}
	}
	return nil
}

// ReportSuccess records a successful exchange with target that took rtt
// (0 if the caller does not measure it: the EWMA is then left alone).
// Unknown targets are ignored.
func (r *Router) ReportSuccess(target string, rtt time.Duration) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.find(target)
	if t == nil {
		return
	}
	now := r.cfg.Now()
	t.LastProbe, t.LastSuccess, t.LastError = now, now, ""
	t.Failures = 0
	t.Successes++
	if rtt > 0 {
		if t.RTT == 0 {
			t.RTT = rtt
		} else {
			t.RTT = time.Duration(r.cfg.Alpha*float64(rtt) + (1-r.cfg.Alpha)*float64(t.RTT))
		}
	}
	switch t.State {
	case Unknown, Suspect, Up:
		t.State = Up
	case Down:
		if t.Successes >= r.cfg.SuccessesToUp {
			t.State = Up
		}
	}
}

// ReportFailure records a failed exchange with target: an up target
// becomes suspect at once and down after FailuresToDown in a row.
func (r *Router) ReportFailure(target string, err error) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.find(target)
	if t == nil {
		return
	}
	t.LastProbe = r.cfg.Now()
	if err != nil {
		t.LastError = err.Error()
	}
	t.Successes = 0
	t.Failures++
	switch {
	case t.Failures >= r.cfg.FailuresToDown:
		t.State = Down
	case t.State != Down:
		t.State = Suspect
	}
}

// Ordered returns the targets best first: up before unknown/suspect before
// down; within a state by RTT EWMA (unmeasured last), then configured
// order. A down target is still listed, as the last resort.
func (r *Router) Ordered() []string {
	if r == nil {
		return nil
	}
	st := r.Status()
	idx := map[string]int{}
	for i, t := range r.cfg.Targets {
		idx[t] = i
	}
	slices.SortStableFunc(st, func(a, b TargetStatus) int {
		if d := a.State.rank() - b.State.rank(); d != 0 {
			return d
		}
		if (a.RTT == 0) != (b.RTT == 0) {
			if a.RTT == 0 {
				return 1
			}
			return -1
		}
		if a.RTT != b.RTT {
			if a.RTT < b.RTT {
				return -1
			}
			return 1
		}
		return idx[a.Target] - idx[b.Target]
	})
	out := make([]string, len(st))
	for i, t := range st {
		out[i] = t.Target
	}
	return out
}

// Status returns a snapshot of every target in configured order.
func (r *Router) Status() []TargetStatus {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]TargetStatus, len(r.targets))
	for i, t := range r.targets {
		out[i] = *t
	}
	return out
}

// HTTPProber probes a target (a base URL) with GET target+HealthPath; any
// 2xx answer is a success and its round trip the RTT.
type HTTPProber struct {
	Client *http.Client
	Path   string           // default HealthPath
	Now    func() time.Time // default time.Now
}

// Probe implements Prober.
func (p *HTTPProber) Probe(ctx context.Context, target string) (time.Duration, error) {
	path, now := p.Path, p.Now
	if path == "" {
		path = HealthPath
	}
	if now == nil {
		now = time.Now
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(target, "/")+path, nil)
	if err != nil {
		return 0, err
	}
	start := now()
	resp, err := p.Client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	rtt := now().Sub(start)
	if resp.StatusCode/100 != 2 {
		return 0, fmt.Errorf("GET %s: status %d", path, resp.StatusCode)
	}
	return max(rtt, time.Nanosecond), nil
}
