package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// Instance statuses the manager records in each allocation's observed
// state (and the catalog summarises per instance).
const (
	StatusCreating     = "creating"
	StatusStarting     = "starting"
	StatusRunning      = "running" // healthy: the admin API answers and the row's flows are deployed
	StatusUnhealthy    = "unhealthy"
	StatusFailed       = "failed"
	StatusCrashLooping = "crash_looping"
	StatusStopped      = "stopped"
	StatusError        = "error" // the driver could not create or start it
)

// Defaults for Config.
const (
	DefaultMonitorInterval  = 30 * time.Second
	MinMonitorInterval      = time.Second
	DefaultStartingPoll     = 100 * time.Millisecond
	DefaultStartTimeout     = 90 * time.Second
	DefaultFailureThreshold = 3
	DefaultCrashLoopCount   = 5
	DefaultCrashLoopWindow  = 10 * time.Minute
	DefaultBackoffBase      = time.Second
	DefaultBackoffMax       = 2 * time.Minute
	DefaultMetricsInterval  = 15 * time.Second
	DefaultPortMin          = 18800
	DefaultPortMax          = 19799
	DefaultStopTimeout      = 10 * time.Second
	// AdminUser is the Node-RED adminAuth user the hub logs in as.
	AdminUser = "redforge-hub"
)

// Environment variables the manager gives each runtime, on top of the
// row's env and what Deps.Decorate adds.
const (
	// EnvReplica is the replica index (0-based) of the runtime.
	EnvReplica = "REDFORGE_REPLICA"
	// EnvAllocation is the allocation id the runtime serves.
	EnvAllocation = "REDFORGE_ALLOCATION"
	// EnvClientID is the runtime's MQTT client id on the hub bus: the row
	// id and the replica, stable across reschedules, so a replica placed
	// on another hub takes over its session (and what was queued for it).
	EnvClientID = "REDFORGE_CLIENT_ID"
)

// ClientID is the hub-bus MQTT client id of one replica of a row.
func ClientID(rowID string, replica int) string { return rowID + "-r" + strconv.Itoa(replica) }

// Catalog is what the manager reads of the control-plane state.
type Catalog interface {
	WatchHubWork(ctx context.Context, hub string) ([]catalog.Work, <-chan struct{})
	Instance(id string) (catalog.Instance, error)
}

// Applier writes to the control plane (the Raft node, forwarding to the
// leader).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// SampleStore keeps metric samples for history.
type SampleStore interface {
	AppendMetricSamples(ctx context.Context, samples []store.MetricSample) error
}

// Creds are the secrets of one row's runtimes, in clear (the catalog keeps
// them sealed).
type Creds struct {
	AdminPassword string
	MQTTPassword  string
	Token         string // the logical instance's REDFORGE_TOKEN
}

// Credentials hands out a row's credentials, creating them on first use.
type Credentials interface {
	RuntimeCredentials(ctx context.Context, row catalog.Instance) (Creds, error)
}

// RenderFunc turns a row's flows document into the flows one runtime
// runs (its names, its bus credentials and client id).
type RenderFunc func(ctx context.Context, w catalog.Work, creds Creds) ([]json.RawMessage, error)

// Config tunes the manager; zero fields take the defaults above.
type Config struct {
	// HubID is this hub: the manager runs the allocations placed on it.
	HubID string
	// Advertise is the host at which the other hubs reach this hub's
	// runtimes (recorded in each allocation); 127.0.0.1 when empty.
	Advertise string
	// BindHost is the address runtimes listen on: Advertise when empty.
	BindHost string

	MonitorInterval  time.Duration
	StartingPoll     time.Duration
	StartTimeout     time.Duration
	FailureThreshold int
	CrashLoopCount   int
	CrashLoopWindow  time.Duration
	BackoffBase      time.Duration
	BackoffMax       time.Duration
	MetricsInterval  time.Duration
	PortMin, PortMax int
	StopTimeout      time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.MonitorInterval, DefaultMonitorInterval)
	if c.MonitorInterval < MinMonitorInterval {
		c.MonitorInterval = MinMonitorInterval
	}
	def(&c.StartingPoll, DefaultStartingPoll)
	def(&c.StartTimeout, DefaultStartTimeout)
	def(&c.CrashLoopWindow, DefaultCrashLoopWindow)
	def(&c.BackoffBase, DefaultBackoffBase)
	def(&c.BackoffMax, DefaultBackoffMax)
	def(&c.MetricsInterval, DefaultMetricsInterval)
	def(&c.StopTimeout, DefaultStopTimeout)
	if c.FailureThreshold <= 0 {
		c.FailureThreshold = DefaultFailureThreshold
	}
	if c.CrashLoopCount <= 0 {
		c.CrashLoopCount = DefaultCrashLoopCount
	}
	if c.PortMin <= 0 || c.PortMax < c.PortMin {
		c.PortMin, c.PortMax = DefaultPortMin, DefaultPortMax
	}
	if c.Advertise == "" {
		c.Advertise = "127.0.0.1"
	}
	if c.BindHost == "" {
		c.BindHost = c.Advertise
	}
}

// Manager runs the allocations the scheduler placed on this hub: it
// creates their runtimes with the local driver (or adopts them after a
// restart), deploys their row's flows, watches their health, restarts
// failed ones with backoff, collects their metrics, and stops and removes
// every runtime whose allocation is gone or placed elsewhere (the fence).
// Every hub runs one; each acts on its own allocations only.
type Manager struct {
	cfg      Config
	driver   Driver
	state    Catalog
	raft     Applier
	creds    Credentials
	render   RenderFunc
	ready    func() bool
	bus      *events.Bus
	samples  SampleStore
	metrics  *metrics.Metrics
	decorate func(context.Context, catalog.Instance, *Spec) error
	history  *history // nil: transitions are not recorded
	log      *slog.Logger
	now      func() time.Time

	kick chan struct{}

	mu           sync.Mutex
	tracked      map[string]*tracked // by allocation id
	clients      map[string]*cachedClient
	usageClients map[string]*cachedClient // local clients of scrapeUsage, by allocation id
	local        map[string]*cachedClient // this hub's runtimes at their bind address (localClient)
}

// tracked is what the manager remembers of one allocation between rounds.
type tracked struct {
	rowID       string
	rowName     string // for the metric labels of a runtime being removed
	replica     int
	status      string
	message     string
	since       time.Time
	failures    int
	crashes     []time.Time
	backoff     time.Duration
	restartAt   time.Time // zero: no restart scheduled
	startedAt   time.Time // when the current start was issued
	nextCheck   time.Time
	nextMetrics time.Time
	specHash    string
	port        int    // the runtime's port, reserved or in use
	flowsSHA    string // the flows the runtime runs, as deployed by this hub ("" unknown)
	restartGen  uint64
	genSeen     bool
}

type cachedClient struct {
	addr string
	c    *nodered.Client
}

// Deps are the manager's collaborators.
type Deps struct {
	Driver      Driver
	Catalog     Catalog
	Applier     Applier
	Credentials Credentials
	// Render prepares a row's flows for one runtime; without it the
	// document is deployed as stored.
	Render RenderFunc
	// Ready reports whether this hub's catalog has caught up with the
	// cluster. Until it has, the manager neither creates nor removes
	// runtimes: a stale catalog could place on it what moved away while it
	// was down. nil: always ready.
	Ready   func() bool
	Bus     *events.Bus
	Samples SampleStore
	Metrics *metrics.Metrics
	Logger  *slog.Logger
	// Decorate, when set, adds to a runtime's Spec what the hub injects
	// beyond the catalog row (environment such as the hub URL,
	// ExtraSettings such as contextStorage). It must be deterministic:
	// what it adds is part of the spec hash, so a change recreates the
	// runtime. An error delays the create (the status reads error with
	// the message).
	Decorate func(ctx context.Context, row catalog.Instance, spec *Spec) error
}

// NewManager returns a manager; it does no I/O until Run.
func NewManager(cfg Config, d Deps) *Manager {
	cfg.setDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Bus == nil {
		d.Bus = events.NewBus()
	}
	if d.Ready == nil {
		d.Ready = func() bool { return true }
	}
	m := &Manager{cfg: cfg, driver: d.Driver, state: d.Catalog, raft: d.Applier, creds: d.Credentials,
		render: d.Render, ready: d.Ready, bus: d.Bus, samples: d.Samples, metrics: d.Metrics, decorate: d.Decorate,
		log: d.Logger, now: time.Now, kick: make(chan struct{}, 1), tracked: map[string]*tracked{},
		clients: map[string]*cachedClient{}, usageClients: map[string]*cachedClient{},
		local: map[string]*cachedClient{}}
	if n, ok := d.Driver.(ExitNotifier); ok {
		n.NotifyExit(m.exited)
	}
	return m
}

// Driver returns the driver the manager runs instances with.
func (m *Manager) Driver() Driver { return m.driver }

// HubID is the hub whose allocations the manager runs.
func (m *Manager) HubID() string { return m.cfg.HubID }

// Kick asks for a reconcile round now.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run reconciles and monitors this hub's allocations until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		wctx, cancel := context.WithCancel(ctx)
		work, changed := m.state.WatchHubWork(wctx, m.cfg.HubID)
		wait := m.cfg.StartingPoll * 10
		if m.ready() {
			wait = m.round(ctx, work)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-m.kick:
		case <-timer.C:
		}
		timer.Stop()
		cancel() // ends the watch's goroutine
		if ctx.Err() != nil {
			return
		}
	}
}

// round runs one reconcile + monitor pass and returns how long to wait
// before the next one.
func (m *Manager) round(ctx context.Context, work []catalog.Work) time.Duration {
	runtimes, err := m.driver.List(ctx)
	if err != nil {
		m.log.Warn("list runtimes", "driver", m.driver.Name(), "error", err)
		return m.cfg.StartingPoll * 10
	}
	byID := make(map[string]Runtime, len(runtimes))
	for _, rt := range runtimes {
		byID[rt.InstanceID] = rt
	}
	m.mu.Lock()
	for _, w := range work {
		t := m.tracked[w.Alloc.ID]
		if t == nil {
			t = &tracked{rowID: w.Row.ID, flowsSHA: w.Alloc.Observed.FlowsSHA}
			m.tracked[w.Alloc.ID] = t
		}
		t.rowName, t.replica = w.Row.Name, w.Alloc.Replica
		if rt, ok := byID[w.Alloc.ID]; ok && rt.Port != 0 {
			t.port = rt.Port
		} else if t.port == 0 {
			t.port = w.Alloc.Observed.Port
		}
	}
	m.mu.Unlock()
	wanted := make(map[string]bool, len(work))
	var wg sync.WaitGroup
	for _, w := range work {
		wanted[w.Alloc.ID] = true
		rt, ok := byID[w.Alloc.ID]
		wg.Go(func() { m.reconcileOne(ctx, w, rt, ok) })
	}
	for id := range byID {
		if !wanted[id] {
			wg.Go(func() { m.removeOrphan(ctx, id) })
		}
	}
	wg.Wait()
	m.forgetGone(wanted, byID)
	return m.nextWake()
}

// forgetGone drops what is tracked of allocations that are neither placed
// here nor have a runtime any more.
func (m *Manager) forgetGone(wanted map[string]bool, runtimes map[string]Runtime) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id := range m.tracked {
		if _, rt := runtimes[id]; !wanted[id] && !rt {
			delete(m.tracked, id)
			delete(m.clients, id)
			delete(m.usageClients, id)
			delete(m.local, id)
		}
	}
}

// nextWake is the time until the earliest scheduled check or restart.
func (m *Manager) nextWake() time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	wait := m.cfg.MonitorInterval
	for _, t := range m.tracked {
		for _, at := range []time.Time{t.nextCheck, t.restartAt, t.nextMetrics} {
			if !at.IsZero() {
				if d := at.Sub(now); d < wait {
					wait = d
				}
			}
		}
	}
	return max(wait, 10*time.Millisecond)
}

func (m *Manager) track(id string) *tracked {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tracked[id]
	if t == nil {
		t = &tracked{}
		m.tracked[id] = t
	}
	return t
}

// removeOrphan removes a runtime whose allocation is gone or is no longer
// placed on this hub (deleted, moved while this hub was away, or its
// instance deleted).
func (m *Manager) removeOrphan(ctx context.Context, id string) {
	if err := m.driver.Remove(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		m.log.Warn("remove runtime of an allocation not placed here", "allocation", id, "error", err)
		return
	}
	m.mu.Lock()
	t := m.tracked[id]
	delete(m.tracked, id)
	delete(m.clients, id)
	delete(m.usageClients, id)
	delete(m.local, id)
	m.mu.Unlock()
	if m.metrics != nil && t != nil {
		m.metrics.ForgetAllocation(t.rowID, t.rowName, t.replica, id)
	}
	m.log.Info("removed a runtime whose allocation is not placed on this hub", "allocation", id)
}

// AdminPassword is the Node-RED adminAuth password of a row's runtimes.
func (m *Manager) AdminPassword(ctx context.Context, rowID string) (string, error) {
	row, err := m.state.Instance(rowID)
	if err != nil {
		return "", err
	}
	c, err := m.creds.RuntimeCredentials(ctx, row)
	return c.AdminPassword, err
}

// Client returns a Node-RED admin client for the runtime of an
// allocation, wherever it runs (at the address the allocation records).
func (m *Manager) Client(ctx context.Context, a catalog.Allocation) (*nodered.Client, error) {
	addr := a.Address()
	if addr == "" {
		return nil, fmt.Errorf("replica %d of %s has no address yet (status %q)", a.Replica, a.InstanceID, a.Observed.Status)
	}
	m.mu.Lock()
	cc := m.clients[a.ID]
	m.mu.Unlock()
	if cc != nil && cc.addr == addr {
		return cc.c, nil
	}
	pw, err := m.AdminPassword(ctx, a.InstanceID)
	if err != nil {
		return nil, err
	}
	c, err := nodered.New("http://"+addr+AdminRoot, AdminUser, pw)
	if err != nil {
		return nil, err
	}
	c.Timeout = 5 * time.Second
	m.mu.Lock()
	m.clients[a.ID] = &cachedClient{addr: addr, c: c}
	m.mu.Unlock()
	return c, nil
}

// allocatePort reserves a port in the range that no other runtime of this
// hub holds and that is free on the bind host. Reservation and check
// happen under one lock so concurrent creates never get the same port.
func (m *Manager) allocatePort(self string) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	used := map[int]bool{}
	for id, t := range m.tracked {
		if id != self && t.port != 0 {
			used[t.port] = true
		}
	}
	for p := m.cfg.PortMin; p <= m.cfg.PortMax; p++ {
		if used[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(m.cfg.BindHost, strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		t := m.tracked[self]
		if t == nil {
			t = &tracked{}
			m.tracked[self] = t
		}
		t.port = p
		return p, nil
	}
	return 0, fmt.Errorf("no free port in %d-%d on %s", m.cfg.PortMin, m.cfg.PortMax, m.cfg.BindHost)
}
