package fleet

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/nodered"
)

// Instance statuses the manager records in catalog.Observed.Status.
const (
	StatusCreating     = "creating"
	StatusStarting     = "starting"
	StatusRunning      = "running" // healthy: the admin API answers
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
	// secretSetting is the catalog setting holding the fleet secret from
	// which each instance's admin password is derived.
	secretSetting = "fleet/secret"
)

// Catalog is what the manager reads of the control-plane state.
type Catalog interface {
	WatchInstances(ctx context.Context) ([]catalog.Instance, uint64, <-chan struct{})
	Instance(id string) (catalog.Instance, error)
	SettingValue(key string, v any) error
}

// Applier writes to the control plane (the Raft node).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// SampleStore keeps metric samples for history.
type SampleStore interface {
	AppendMetricSamples(ctx context.Context, samples []store.MetricSample) error
}

// Config tunes the manager; zero fields take the defaults above.
type Config struct {
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
}

// Manager moves the fleet's actual state toward the catalog's desired
// state (the reconciler), watches each instance's health and restarts
// failed ones with backoff (the monitor), and collects resource metrics.
// It acts only while IsLeader reports true, so exactly one hub drives the
// fleet; every hub may read.
type Manager struct {
	cfg      Config
	driver   Driver
	state    Catalog
	raft     Applier
	isLeader func() bool
	bus      *events.Bus
	samples  SampleStore
	metrics  *metrics.Metrics
	decorate func(context.Context, catalog.Instance, *Spec) error
	history  *history // nil: transitions are not recorded
	log      *slog.Logger
	now      func() time.Time

	kick chan struct{}

	mu      sync.Mutex
	tracked map[string]*tracked
	secret  []byte
}

// tracked is what the manager remembers of one instance between rounds.
type tracked struct {
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
	port        int // the instance's host port, reserved or in use
	client      *nodered.Client
	clientPort  int
}

// Deps are the manager's collaborators.
type Deps struct {
	Driver   Driver
	Catalog  Catalog
	Applier  Applier
	IsLeader func() bool
	Bus      *events.Bus
	Samples  SampleStore
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// Decorate, when set, adds to an instance's Spec what the hub injects
	// beyond the catalog row (environment such as the instance's API
	// token, ExtraSettings such as contextStorage). It must be
	// deterministic: what it adds is part of the spec hash, so a change
	// recreates the runtime. An error delays the instance's create (its
	// status reads error with the message).
	Decorate func(ctx context.Context, inst catalog.Instance, spec *Spec) error
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
	return &Manager{cfg: cfg, driver: d.Driver, state: d.Catalog, raft: d.Applier, isLeader: d.IsLeader,
		bus: d.Bus, samples: d.Samples, metrics: d.Metrics, decorate: d.Decorate, log: d.Logger, now: time.Now,
		kick: make(chan struct{}, 1), tracked: map[string]*tracked{}}
}

// Driver returns the driver the manager runs instances with.
func (m *Manager) Driver() Driver { return m.driver }

// Kick asks for a reconcile round now.
func (m *Manager) Kick() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Run reconciles and monitors until ctx ends.
func (m *Manager) Run(ctx context.Context) {
	for {
		insts, _, changed := m.state.WatchInstances(ctx)
		wait := m.cfg.MonitorInterval
		if m.isLeader() {
			if err := m.ensureSecret(ctx); err != nil {
				m.log.Warn("fleet secret unavailable", "error", err)
			} else {
				wait = m.round(ctx, insts)
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-changed:
		case <-m.kick:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// round runs one reconcile + monitor pass and returns how long to wait
// before the next one.
func (m *Manager) round(ctx context.Context, insts []catalog.Instance) time.Duration {
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
	for _, inst := range insts {
		t := m.tracked[inst.ID]
		if t == nil {
			t = &tracked{}
			m.tracked[inst.ID] = t
		}
		if rt, ok := byID[inst.ID]; ok && rt.Port != 0 {
			t.port = rt.Port
		} else if t.port == 0 {
			t.port = inst.Observed.Port
		}
	}
	m.mu.Unlock()
	wanted := make(map[string]bool, len(insts))
	var wg sync.WaitGroup
	for _, inst := range insts {
		wanted[inst.ID] = true
		rt, ok := byID[inst.ID]
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.reconcileOne(ctx, inst, rt, ok)
		}()
	}
	for id := range byID {
		if !wanted[id] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.removeOrphan(ctx, id)
			}()
		}
	}
	wg.Wait()
	return m.nextWake()
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
	if wait < 10*time.Millisecond {
		wait = 10 * time.Millisecond
	}
	return wait
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

// removeOrphan removes a runtime whose instance is no longer in the catalog.
func (m *Manager) removeOrphan(ctx context.Context, id string) {
	if err := m.driver.Remove(ctx, id); err != nil && !errors.Is(err, ErrNotFound) {
		m.log.Warn("remove deleted instance", "instance", id, "error", err)
		return
	}
	m.mu.Lock()
	delete(m.tracked, id)
	m.mu.Unlock()
	if m.metrics != nil {
		m.metrics.ForgetInstance(id)
	}
	m.log.Info("removed runtime of deleted instance", "instance", id)
}

// AdminPassword is the Node-RED adminAuth password of an instance: an
// HMAC of its id under the fleet secret, so any hub can derive it and none
// stores it.
func (m *Manager) AdminPassword(instanceID string) (string, error) {
	return m.Derive("nodered-admin:" + instanceID)
}

// Derive returns a secret for purpose: the unpadded base64url HMAC-SHA256
// of purpose under the fleet secret (43 characters). Every hub derives
// the same value; none stores it. Purposes must not collide:
// AdminPassword uses "nodered-admin:{instance id}".
func (m *Manager) Derive(purpose string) (string, error) {
	m.mu.Lock()
	secret := m.secret
	m.mu.Unlock()
	if secret == nil {
		var hexSecret string
		if err := m.state.SettingValue(secretSetting, &hexSecret); err != nil {
			return "", fmt.Errorf("fleet secret: %w", err)
		}
		b, err := hex.DecodeString(hexSecret)
		if err != nil || len(b) < 32 {
			return "", fmt.Errorf("fleet secret is corrupt")
		}
		secret = b
		m.mu.Lock()
		m.secret = b
		m.mu.Unlock()
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(purpose))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// ensureSecret creates the fleet secret once, on the leader.
func (m *Manager) ensureSecret(ctx context.Context) error {
	if _, err := m.AdminPassword("probe"); err == nil {
		return nil
	} else if !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	_, err := m.raft.Apply(ctx, catalog.PutSetting(secretSetting, hex.EncodeToString(b), catalog.IfIndex(0)))
	if err != nil && !errors.Is(err, catalog.ErrConflict) {
		return fmt.Errorf("create fleet secret: %w", err)
	}
	_, err = m.AdminPassword("probe")
	return err
}

// Client returns a Node-RED admin client for a running instance.
func (m *Manager) Client(inst catalog.Instance) (*nodered.Client, error) {
	if inst.Observed.Port == 0 {
		return nil, fmt.Errorf("instance %s has no port yet (status %q)", inst.Name, inst.Observed.Status)
	}
	t := m.track(inst.ID)
	m.mu.Lock()
	if t.client != nil && t.clientPort == inst.Observed.Port {
		c := t.client
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	pw, err := m.AdminPassword(inst.ID)
	if err != nil {
		return nil, err
	}
	c, err := nodered.New(fmt.Sprintf("http://127.0.0.1:%d", inst.Observed.Port), AdminUser, pw)
	if err != nil {
		return nil, err
	}
	c.Timeout = 5 * time.Second
	m.mu.Lock()
	t.client, t.clientPort = c, inst.Observed.Port
	m.mu.Unlock()
	return c, nil
}

// allocatePort reserves a port in the range that no other instance holds
// and that is free on this host. Reservation and check happen under one
// lock so concurrent creates never get the same port.
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
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
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
	return 0, fmt.Errorf("no free port in %d-%d", m.cfg.PortMin, m.cfg.PortMax)
}
