package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/nodered"
)

// Catalog is what the orchestrator reads of the control plane.
type Catalog interface {
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	Instances() []catalog.Instance
	InstanceAllocations(rowID string) []catalog.Allocation
	InstanceFlows(rowID string) (catalog.Flows, error)
	Deployment(id string) (catalog.Deployment, error)
	Deployments(instanceID string) []catalog.Deployment
	WatchDeployments(ctx context.Context, instanceID string) ([]catalog.Deployment, uint64, <-chan struct{})
	DeploymentSpec(deploymentID string) (catalog.DeploymentSpec, error)
	// GreenLogs reads the logs a failed green left with its deployment.
	GreenLogs(deploymentID string) (catalog.GreenLogs, error)
}

// Applier writes to the control plane (the Raft node).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Fleet is what the orchestrator needs of hub/fleet: an admin client for
// a replica wherever it runs.
type Fleet interface {
	Client(ctx context.Context, a catalog.Allocation) (*nodered.Client, error)
}

// Rows is the instance service (hub/instances): the live row of a logical
// instance.
type Rows interface {
	Live(ref string) (catalog.Instance, error)
}

// Auditor records audit entries.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Coord is the part of hub/coord the orchestrator uses.
type Coord interface {
	coord.HoldQueue
	coord.KV
}

// Proxy is what the orchestrator needs of the /i/{name}/ proxy.
type Proxy interface {
	// Pause makes new requests for name wait until Resume.
	Pause(name string)
	Resume(name string)
	// WaitIdle waits until no request proxied through this hub to the row
	// is in flight.
	WaitIdle(ctx context.Context, rowID string) error
	// InFlight is the number of requests in flight for name.
	InFlight(name string) int64
}

// Config tunes the orchestrator; zero fields take defaults.
type Config struct {
	HealthyTimeout time.Duration
	SmokeTimeout   time.Duration
	// BrokerAddr returns host:port of the hub's MQTT broker as instances
	// reach it (127.0.0.1 for the process driver).
	BrokerAddr func() string
	// RelaySession names the input relay's persistent session on a
	// DurableBus; hubs of one cluster share it (default
	// DefaultRelaySession).
	RelaySession string
}

// Deps are the orchestrator's collaborators.
type Deps struct {
	Catalog  Catalog
	Applier  Applier
	Fleet    Fleet
	Rows     Rows
	Bus      Bus
	Coord    Coord
	Audit    Auditor
	Events   *events.Bus
	Proxy    Proxy
	IsLeader func() bool
	Logger   *slog.Logger

	// Checkpoints, when set, are replayed to green in DEPLOY.
	Checkpoints Checkpoints
	// ClusterIdle, when set, waits until no request proxied through any
	// other hub to the row is in flight (the local proxy is Proxy).
	ClusterIdle func(ctx context.Context, rowID string) error
	// Observer, when set, is told phase durations, outcomes and held and
	// replayed messages (metrics).
	Observer Observer
	// Logs, when set, returns the last tail lines of a replica's runtime
	// log; a green that fails leaves them with its deployment (GreenLogs).
	Logs func(ctx context.Context, a catalog.Allocation, tail int) ([]byte, error)
}

// Orchestrator runs deployments on the Raft leader.
type Orchestrator struct {
	cfg   Config
	d     Deps
	log   *slog.Logger
	relay *relay
	obs   Observer
	now   func() time.Time

	mu        sync.Mutex
	running   map[string]bool // deployment ids driven by this hub
	termCtx   context.Context
	endTerm   context.CancelFunc
	relayTerm context.Context // the term whose leader relay runs (DurableBus)

	// drives counts the drive goroutines; Run joins them before it
	// returns, so no Apply is in flight once the hub closes Raft and
	// the store.
	drives sync.WaitGroup
}

// Errors of Start and Rollback.
var (
	ErrBusy        = fmt.Errorf("deploy: the instance has a deployment in progress: %w", catalog.ErrConflict)
	ErrNotRollable = fmt.Errorf("deploy: deployment cannot be rolled back: %w", catalog.ErrConflict)
)

// New returns an orchestrator; it does no I/O until Run.
func New(cfg Config, d Deps) *Orchestrator {
	if cfg.HealthyTimeout <= 0 {
		cfg.HealthyTimeout = DefaultHealthyTimeout
	}
	if cfg.SmokeTimeout <= 0 {
		cfg.SmokeTimeout = DefaultSmokeTimeout
	}
	if cfg.RelaySession == "" {
		cfg.RelaySession = DefaultRelaySession
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Events == nil {
		d.Events = events.NewBus()
	}
	o := &Orchestrator{cfg: cfg, d: d, log: d.Logger, now: time.Now, running: map[string]bool{}}
	o.obs = d.Observer
	if o.obs == nil {
		o.obs = noObserver{}
	}
	o.relay = newRelay(d.Bus, d.Coord, o.liveName, d.Logger)
	o.relay.held = o.obs.MessagesHeld
	o.relay.pace = o.paceReplay
	if d.Coord != nil {
		o.relay.done = d.Coord
	}
	return o
}

// replayPaceTimeout bounds the wait for a target's ack between replayed
// batches; past it the replay goes on (the target may not answer pings).
const replayPaceTimeout = 10 * time.Second

// paceReplay pings target on its control topic and waits for the ack: the
// broker delivers a subscriber's messages in order, so the ack means the
// target has received every message replayed before the ping.
func (o *Orchestrator) paceReplay(ctx context.Context, target string) {
	if acked, err := o.control(ctx, target, "ping", replayPaceTimeout, 1); err == nil && !acked {
		o.log.Warn("no ack from the replay target within the pace timeout; replaying on", "instance", target, "timeout", replayPaceTimeout)
	}
}

// Run relays input and, while this hub leads, drives deployments until
// ctx ends. A deployment in flight when leadership arrives is resumed
// from its recorded phase. Run returns only once every goroutine it
// started (deployments being driven, relay loops) has ended.
func (o *Orchestrator) Run(ctx context.Context) {
	defer o.relay.wait()
	defer o.drives.Wait()
	if err := o.relay.run(ctx); err != nil {
		o.log.Error("deploy: input relay not running", "error", err)
	}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		wctx, cancel := context.WithCancel(ctx)
		ds, _, changed := o.d.Catalog.WatchDeployments(wctx, "")
		o.tick(ctx, ds)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		cancel() // ends the watch's goroutine
		if ctx.Err() != nil {
			o.setTerm(false, ctx)
			return
		}
	}
}

func (o *Orchestrator) tick(ctx context.Context, ds []catalog.Deployment) {
	term := o.setTerm(o.d.IsLeader(), ctx)
	if term == nil {
		return
	}
	o.collectOrphans(term)
	for _, d := range ds {
		if !needsDriving(d) {
			continue
		}
		o.mu.Lock()
		busy := o.running[d.ID]
		o.running[d.ID] = true
		o.mu.Unlock()
		if busy {
			continue
		}
		if inHold(d) {
			if inst, err := o.d.Catalog.Instance(d.InstanceID); err == nil {
				o.relay.hold(inst.Name) // a resumed deployment keeps holding
			}
		}
		o.drives.Add(1)
		go func() {
			defer o.drives.Done()
			defer func() {
				o.mu.Lock()
				delete(o.running, d.ID)
				o.mu.Unlock()
			}()
			o.drive(term, d.ID)
		}()
	}
	o.startLeaderRelay(term)
}

// startLeaderRelay starts the input relay of a DurableBus for this term,
// once: after the loop above re-held the input of every deployment in
// DRAIN..RESUME, so what the broker queued while no hub led is held, not
// forwarded to a runtime that is being replaced.
func (o *Orchestrator) startLeaderRelay(term context.Context) {
	o.mu.Lock()
	started := o.relayTerm == term
	o.mu.Unlock()
	if started {
		return
	}
	if err := o.relay.runLeader(term, o.cfg.RelaySession); err != nil {
		o.log.Error("deploy: input relay not running; retrying", "error", err)
		return
	}
	o.mu.Lock()
	o.relayTerm = term
	o.mu.Unlock()
}

// setTerm starts or ends this hub's leadership term and returns the
// term's context (nil when not leading).
func (o *Orchestrator) setTerm(leading bool, parent context.Context) context.Context {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case leading && o.termCtx == nil:
		o.termCtx, o.endTerm = context.WithCancel(parent)
	case !leading && o.termCtx != nil:
		o.endTerm()
		o.termCtx, o.endTerm = nil, nil
	}
	return o.termCtx
}

// needsDriving: a deployment still running, or finished but with blue
// awaiting removal at the end of its rollback window.
func needsDriving(d catalog.Deployment) bool {
	switch d.Status {
	case catalog.DeploymentPending, catalog.DeploymentRunning:
		return true
	case catalog.DeploymentSucceeded:
		return d.Phase == catalog.PhaseCleanup && d.Progress < 100
	}
	return false
}

// inHold: the phases during which the instance's input is held.
func inHold(d catalog.Deployment) bool {
	if d.Status != catalog.DeploymentPending && d.Status != catalog.DeploymentRunning {
		return false
	}
	switch d.Phase {
	case "", catalog.PhaseDrain, catalog.PhaseDeploy, catalog.PhaseVerify, catalog.PhaseResume:
		return true
	}
	return false
}

// logical returns the logical instance named or identified by ref.
func (o *Orchestrator) logical(ref string) (catalog.Instance, error) {
	inst, err := o.d.Catalog.Instance(ref)
	if errors.Is(err, catalog.ErrNotFound) {
		inst, err = o.d.Catalog.InstanceByName(ref)
	}
	if err != nil {
		return inst, err
	}
	if instances.IsColor(inst) {
		l := instances.LogicalName(inst.Name)
		return inst, fmt.Errorf("instance %q is a deployment color of %q; deploy to %q: %w", inst.Name, l, l, catalog.ErrInvalid)
	}
	return inst, nil
}

// Live returns the catalog row currently serving the logical instance
// named name: its own row, or the color row a deployment switched to.
func (o *Orchestrator) Live(name string) (catalog.Instance, error) { return o.d.Rows.Live(name) }

func (o *Orchestrator) liveName(name string) (string, error) {
	live, err := o.Live(name)
	return live.Name, err
}

// Start records a new deployment (status pending) and its spec; the
// leader's loop then drives it. Errors: catalog.ErrNotFound for an
// unknown instance, ErrBusy when one is already in progress for it.
func (o *Orchestrator) Start(ctx context.Context, req Request) (catalog.Deployment, error) {
	inst, err := o.logical(req.Instance)
	if err != nil {
		return catalog.Deployment{}, err
	}
	for _, d := range o.d.Catalog.Deployments(inst.ID) {
		if d.Status == catalog.DeploymentPending || d.Status == catalog.DeploymentRunning {
			return catalog.Deployment{}, fmt.Errorf("deployment %s of %s: %w", d.ID, inst.Name, ErrBusy)
		}
	}
	live, err := o.Live(inst.Name)
	if err != nil {
		return catalog.Deployment{}, err
	}
	if req.DrainTimeout <= 0 {
		req.DrainTimeout = DefaultDrainTimeout
	}
	if req.RollbackWindow == 0 {
		req.RollbackWindow = DefaultRollbackWindow
	}
	id := uuid.NewString()
	short := strings.ReplaceAll(id, "-", "")[:8]
	spec := Spec{Flows: req.Flows, DrainTimeout: req.DrainTimeout, RollbackWindow: req.RollbackWindow,
		Smoke: req.Smoke, BlueID: live.ID, GreenID: inst.ID + "-" + short, GreenName: inst.Name + "." + short,
		UserID: req.UserID, Nodes: req.Nodes, Credentials: req.Credentials, Settings: req.Settings, Kind: req.Kind, Note: req.Note}
	if err := o.writeSpec(ctx, catalog.DeploymentSpec{DeploymentID: id, InstanceID: inst.ID}, spec); err != nil {
		return catalog.Deployment{}, fmt.Errorf("record deployment spec: %w", err)
	}
	now := o.now().UTC()
	d := catalog.Deployment{ID: id, InstanceID: inst.ID, Strategy: "blue-green", Status: catalog.DeploymentPending,
		FromFlowsVersion: live.FlowsVersion, ToFlowsVersion: FlowsVersion(req.Flows),
		StartedBy: req.Username, StartedAt: now, UpdatedAt: now}
	res, err := o.d.Applier.Apply(ctx, catalog.PutDeployment(d, catalog.IfIndex(0)))
	if err != nil {
		return catalog.Deployment{}, fmt.Errorf("record deployment: %w", err)
	}
	if stored, ok := res.(*catalog.Deployment); ok {
		d = *stored
	}
	return d, nil
}

// View is a deployment with its live counts, as GET /api/deployments/:id
// shows it.
type View struct {
	catalog.Deployment
	Instance string `json:"instance"`
	Blue     string `json:"blue,omitempty"`
	Green    string `json:"green,omitempty"`
	Held     int64  `json:"held"`
	InFlight int64  `json:"in_flight"`
	// Checkpoints is how many workflow checkpoints DEPLOY replayed to green.
	Checkpoints int `json:"checkpoints_replayed"`
}

// Get returns a deployment with its held and in-flight counts.
func (o *Orchestrator) Get(ctx context.Context, id string) (View, error) {
	d, err := o.d.Catalog.Deployment(id)
	if err != nil {
		return View{}, err
	}
	v := View{Deployment: d}
	if inst, err := o.d.Catalog.Instance(d.InstanceID); err == nil {
		v.Instance = inst.Name
		v.Held = o.relay.heldCount(ctx, inst.Name)
		if o.d.Proxy != nil {
			v.InFlight = o.d.Proxy.InFlight(inst.Name)
		}
	}
	if spec, err := o.spec(id); err == nil {
		v.Blue, v.Green, v.Checkpoints = spec.BlueID, spec.GreenID, spec.Checkpoints
	}
	return v, nil
}

// List returns the deployments of an instance (id or name), or all.
func (o *Orchestrator) List(instance string) ([]catalog.Deployment, error) {
	if instance == "" {
		return o.d.Catalog.Deployments(""), nil
	}
	inst, err := o.logical(instance)
	if err != nil {
		return nil, err
	}
	return o.d.Catalog.Deployments(inst.ID), nil
}

func (o *Orchestrator) spec(id string) (Spec, error) {
	var s Spec
	row, err := o.d.Catalog.DeploymentSpec(id)
	if err == nil {
		err = json.Unmarshal(row.Spec, &s)
	}
	if err != nil {
		return s, fmt.Errorf("deployment %s spec: %w", id, err)
	}
	return s, nil
}

// putSpec replaces the stored spec of deployment id with s.
func (o *Orchestrator) putSpec(ctx context.Context, id string, s Spec) error {
	row, err := o.d.Catalog.DeploymentSpec(id)
	if err != nil {
		return fmt.Errorf("deployment %s spec: %w", id, err)
	}
	return o.writeSpec(ctx, row, s)
}

// writeSpec stores s as the spec in row (catalog.PutDeploymentSpec).
func (o *Orchestrator) writeSpec(ctx context.Context, row catalog.DeploymentSpec, s Spec) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("deployment %s spec: %w", row.DeploymentID, err)
	}
	row.Spec = raw
	_, err = o.d.Applier.Apply(ctx, catalog.PutDeploymentSpec(row))
	return err
}

// SetProxy sets the proxy after New (the proxy resolves through the
// orchestrator, so one of them is made first).
func (o *Orchestrator) SetProxy(p Proxy) { o.d.Proxy = p }

// collectOrphans deletes color rows whose logical instance was deleted
// outside the instance service (which deletes them with it).
func (o *Orchestrator) collectOrphans(ctx context.Context) {
	for _, inst := range o.d.Catalog.Instances() {
		if !instances.IsColor(inst) {
			continue
		}
		if _, err := o.d.Catalog.InstanceByName(instances.LogicalName(inst.Name)); !errors.Is(err, catalog.ErrNotFound) {
			continue
		}
		o.log.Info("removing the color of a deleted instance", "instance", inst.Name)
		if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(inst.ID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			o.log.Warn("remove orphaned color", "instance", inst.Name, "error", err)
		}
	}
}
