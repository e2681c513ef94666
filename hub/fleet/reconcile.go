package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/nodered"
)

// reconcileOne drives one allocation toward its desired state, deploys its
// row's flows and checks its health when due. It runs concurrently for
// different allocations and never for the same one.
func (m *Manager) reconcileOne(ctx context.Context, w catalog.Work, rt Runtime, exists bool) {
	t := m.track(w.Alloc.ID)
	if m.restartRequested(w, t) && exists && rt.State == StateRunning && !m.wantStopped(w) {
		if err := m.restart(ctx, w); err != nil {
			m.setStatus(ctx, w, StatusError, err.Error(), rt)
		}
		return
	}
	if m.wantStopped(w) {
		m.stopOne(ctx, w, rt, exists)
		return
	}
	spec, err := m.spec(ctx, w)
	if errors.Is(err, ErrNotReady) {
		m.mu.Lock()
		t.nextCheck = m.now().Add(5 * m.cfg.StartingPoll)
		m.mu.Unlock()
		if !exists {
			m.setStatus(ctx, w, StatusCreating, err.Error(), rt)
		}
		return
	}
	if err != nil {
		m.setStatus(ctx, w, StatusError, err.Error(), rt)
		return
	}
	hash := specHash(spec)
	m.mu.Lock()
	known := t.specHash
	if known == "" && exists {
		t.specHash, known = hash, hash // adopted: take it as current
	}
	m.mu.Unlock()
	switch {
	case !exists:
		if m.status(w) == StatusCrashLooping {
			return
		}
		m.create(ctx, w, spec, hash)
	case known != hash:
		m.log.Info("runtime spec changed; recreating", "allocation", w.Alloc.ID, "instance", w.Row.Name)
		if err := m.driver.Remove(ctx, w.Alloc.ID); err != nil && !errors.Is(err, ErrNotFound) {
			m.setStatus(ctx, w, StatusError, "recreate: "+err.Error(), rt)
			return
		}
		m.mu.Lock()
		t.flowsSHA = ""
		m.mu.Unlock()
		m.create(ctx, w, spec, hash)
	case rt.State != StateRunning && m.startable(w):
		m.start(ctx, w, rt)
	default:
		if m.status(w) == StatusRunning && m.flowsBehind(w) {
			m.syncFlows(ctx, w, rt)
			return
		}
		m.monitorOne(ctx, w, rt)
	}
}

// wantStopped: the instance is stopped, or the scheduler asked this hub
// to stop the replica before it moves.
func (m *Manager) wantStopped(w catalog.Work) bool {
	return w.Row.DesiredState == catalog.DesiredStopped || w.Alloc.Desired == catalog.AllocStop
}

func (m *Manager) stopOne(ctx context.Context, w catalog.Work, rt Runtime, exists bool) {
	t := m.track(w.Alloc.ID)
	if exists && rt.State == StateRunning {
		if err := m.driver.Stop(ctx, w.Alloc.ID, m.cfg.StopTimeout); err != nil {
			m.setStatus(ctx, w, StatusError, "stop: "+err.Error(), rt)
			return
		}
	}
	m.mu.Lock()
	t.restartAt, t.nextCheck, t.failures = time.Time{}, time.Time{}, 0
	m.mu.Unlock()
	if exists {
		m.setStatus(ctx, w, StatusStopped, "", rt)
	} else if w.Alloc.Observed.Status != StatusStopped {
		m.setStatus(ctx, w, StatusStopped, "not created", Runtime{})
	}
}

// restartRequested reports (once) that the row's RestartGen moved since the
// manager first saw the allocation: an operator's start or restart, which
// also clears the crash history.
func (m *Manager) restartRequested(w catalog.Work, t *tracked) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !t.genSeen {
		t.genSeen, t.restartGen = true, w.Row.RestartGen
		return false
	}
	if t.restartGen == w.Row.RestartGen {
		return false
	}
	t.restartGen = w.Row.RestartGen
	t.crashes, t.failures, t.backoff, t.restartAt = nil, 0, 0, time.Time{}
	if t.status == StatusCrashLooping || t.status == StatusFailed {
		t.status = StatusStopped
	}
	return true
}

// startable reports whether a not-running runtime should be started now
// (it was stopped on purpose or never started) rather than restarted by
// the monitor's backoff.
func (m *Manager) startable(w catalog.Work) bool {
	switch m.status(w) {
	case StatusStopped, StatusCreating, "":
		return true
	}
	return false
}

// status is the manager's current view of an allocation's status, falling
// back to the catalog's record (after a hub restart).
func (m *Manager) status(w catalog.Work) string {
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.status != "" {
		return t.status
	}
	return w.Alloc.Observed.Status
}

func (m *Manager) spec(ctx context.Context, w catalog.Work) (Spec, error) {
	creds, err := m.creds.RuntimeCredentials(ctx, w.Row)
	if err != nil {
		return Spec{}, fmt.Errorf("credentials: %w", err)
	}
	port := m.track(w.Alloc.ID).port
	env := maps.Clone(w.Row.Env)
	if env == nil {
		env = map[string]string{}
	}
	env[EnvReplica] = strconv.Itoa(w.Alloc.Replica)
	env[EnvAllocation] = w.Alloc.ID
	env[EnvClientID] = ClientID(w.Row.ID, w.Alloc.Replica)
	spec := Spec{
		InstanceID: w.Alloc.ID, Name: w.Row.Name, Image: w.Row.Image, Port: port, Host: m.cfg.BindHost,
		CPU: w.Row.Resources.CPU, MemoryMB: w.Row.Resources.MemoryMB, Env: env,
		AdminUser: AdminUser, AdminPassword: creds.AdminPassword,
	}
	if m.decorate != nil {
		if err := m.decorate(ctx, w.Row, &spec); err != nil {
			return Spec{}, fmt.Errorf("instance spec: %w", err)
		}
	}
	return spec, nil
}

// specHash covers what a running runtime cannot change without a
// recreate: image, resources, environment, settings and node packages (not the port, which the
// manager assigns, nor the admin password, fixed for a row).
func specHash(s Spec) string {
	b, _ := json.Marshal(struct {
		Image    string
		CPU      float64
		MemoryMB int
		Env      map[string]string
		Extra    map[string]any
		Nodes    []string `json:",omitempty"`
	}{s.Image, s.CPU, s.MemoryMB, s.Env, s.ExtraSettings, s.Nodes})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (m *Manager) create(ctx context.Context, w catalog.Work, spec Spec, hash string) {
	if spec.Port == 0 {
		p, err := m.allocatePort(w.Alloc.ID)
		if err != nil {
			m.setStatus(ctx, w, StatusError, err.Error(), Runtime{})
			return
		}
		spec.Port = p
	}
	m.setStatus(ctx, w, StatusCreating, "", Runtime{Port: spec.Port})
	rt, err := m.driver.Create(ctx, spec)
	if errors.Is(err, ErrExists) {
		rt, err = m.driver.Inspect(ctx, w.Alloc.ID)
	}
	if err != nil {
		m.setStatus(ctx, w, StatusError, "create: "+err.Error(), Runtime{Port: spec.Port})
		return
	}
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	t.specHash, t.flowsSHA = hash, ""
	m.mu.Unlock()
	m.start(ctx, w, rt)
}

func (m *Manager) start(ctx context.Context, w catalog.Work, rt Runtime) {
	if err := m.driver.Start(ctx, w.Alloc.ID); err != nil {
		m.setStatus(ctx, w, StatusError, "start: "+err.Error(), rt)
		return
	}
	if fresh, err := m.driver.Inspect(ctx, w.Alloc.ID); err == nil {
		rt = fresh
	}
	t := m.track(w.Alloc.ID)
	now := m.now()
	m.mu.Lock()
	t.startedAt, t.nextCheck, t.failures, t.restartAt = now, now.Add(m.cfg.StartingPoll), 0, time.Time{}
	m.mu.Unlock()
	m.setStatus(ctx, w, StatusStarting, "", rt)
}

// restart restarts a running runtime (an operator's restart).
func (m *Manager) restart(ctx context.Context, w catalog.Work) error {
	if err := m.driver.Restart(ctx, w.Alloc.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("restart %s: %w", w.Row.Name, err)
	}
	rt, _ := m.driver.Inspect(ctx, w.Alloc.ID)
	t := m.track(w.Alloc.ID)
	now := m.now()
	m.mu.Lock()
	t.startedAt, t.nextCheck = now, now.Add(m.cfg.StartingPoll)
	m.mu.Unlock()
	m.setStatus(ctx, w, StatusStarting, "restarted by operator", rt)
	return nil
}

// flowsBehind reports whether the row has flows the runtime does not run.
func (m *Manager) flowsBehind(w catalog.Work) bool {
	if w.Flows == nil {
		return false
	}
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	return t.flowsSHA != w.Flows.SHA
}

// MarkFlows records that the runtime of an allocation of this hub already
// runs the flows sha (an editor deploy made them there), so the manager
// does not deploy them to it again when the row's flows become sha. It
// does nothing for an allocation this hub does not run.
func (m *Manager) MarkFlows(allocID, sha string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.tracked[allocID]; t != nil {
		t.flowsSHA = sha
	}
}

// syncFlows deploys the row's flows to the runtime (rendered for it) and
// records what it runs. It returns the error to record.
func (m *Manager) syncFlows(ctx context.Context, w catalog.Work, rt Runtime) error {
	if w.Flows == nil {
		return nil
	}
	err := m.deployFlows(ctx, w)
	if err != nil {
		m.setStatus(ctx, w, StatusUnhealthy, "deploy flows: "+err.Error(), rt)
		return err
	}
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	t.flowsSHA = w.Flows.SHA
	m.mu.Unlock()
	m.setStatus(ctx, w, StatusRunning, "", rt)
	return nil
}

func (m *Manager) deployFlows(ctx context.Context, w catalog.Work) error {
	creds, err := m.creds.RuntimeCredentials(ctx, w.Row)
	if err != nil {
		return err
	}
	var flows []json.RawMessage
	if m.render != nil {
		flows, err = m.render(ctx, w, creds)
	} else {
		err = json.Unmarshal(w.Flows.Doc, &flows)
	}
	if err != nil {
		return err
	}
	c, err := m.localClient(w, creds)
	if err != nil {
		return err
	}
	_, err = c.DeployFlows(ctx, flows, "", nodered.DeployFull)
	return err
}

// localClient is an admin client for a runtime of this hub, at its bind
// address. It is kept between calls (by allocation), so health checks
// reuse its Node-RED session instead of logging in (a bcrypt check in the
// runtime) every time.
func (m *Manager) localClient(w catalog.Work, creds Creds) (*nodered.Client, error) {
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	port := t.port
	cc := m.local[w.Alloc.ID]
	m.mu.Unlock()
	if port == 0 {
		return nil, fmt.Errorf("replica %d of %s has no port", w.Alloc.Replica, w.Row.Name)
	}
	addr := joinHost(m.cfg.BindHost, port)
	if cc != nil && cc.addr == addr {
		return cc.c, nil
	}
	c, err := m.newLocalClient(w, creds)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.local[w.Alloc.ID] = &cachedClient{addr: addr, c: c}
	m.mu.Unlock()
	return c, nil
}

// newLocalClient is a new admin client for a runtime of this hub, at its
// bind address and admin root.
func (m *Manager) newLocalClient(w catalog.Work, creds Creds) (*nodered.Client, error) {
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	port := t.port
	m.mu.Unlock()
	if port == 0 {
		return nil, fmt.Errorf("replica %d of %s has no port", w.Alloc.Replica, w.Row.Name)
	}
	c, err := nodered.New("http://"+joinHost(m.cfg.BindHost, port)+AdminRoot, AdminUser, creds.AdminPassword)
	if err != nil {
		return nil, err
	}
	c.Timeout = 10 * time.Second
	return c, nil
}

func joinHost(host string, port int) string {
	a := catalog.Allocation{Observed: catalog.AllocObserved{Host: host, Port: port}}
	return a.Address()
}

// setStatus records a status change of an allocation in the catalog (which
// summarises it into its instance), then on the event bus; repeating the
// current status is a no-op.
func (m *Manager) setStatus(ctx context.Context, w catalog.Work, status, msg string, rt Runtime) {
	if ctx.Err() != nil {
		// The round was cancelled: the hub is stopping. What just failed
		// is that cancellation, not the runtime, and a write now would
		// end "outcome unknown" yet may still commit (a deployment then
		// resumed by the next leader read its green as failed). Record
		// nothing; the next reconcile, here or on the hub that takes the
		// allocation, observes the runtime afresh.
		return
	}
	t := m.track(w.Alloc.ID)
	now := m.now().UTC()
	a := w.Alloc
	m.mu.Lock()
	port := t.port
	if rt.Port != 0 {
		port = rt.Port
	}
	flowsSHA := t.flowsSHA
	same := t.status == status && t.message == msg && a.Observed.Status == status && a.Observed.Port == port &&
		a.Observed.FlowsSHA == flowsSHA && a.Observed.Host == m.cfg.Advertise
	prev := t.status
	if prev == "" {
		prev = a.Observed.Status // not tracked yet (a restarted hub): the catalog's
	}
	if !same {
		if t.status != status {
			t.since = now
		}
		t.status, t.message = status, msg
	}
	since := t.since
	m.mu.Unlock()
	if same {
		return
	}
	obs := catalog.AllocObserved{Status: status, RuntimeID: rt.RuntimeID, Host: m.cfg.Advertise, Port: port,
		Since: since, Message: msg, FlowsSHA: flowsSHA}
	if obs.RuntimeID == "" {
		obs.RuntimeID = a.Observed.RuntimeID
	}
	if m.metrics != nil {
		up := 0.0
		if status == StatusRunning {
			up = 1
		}
		l := metrics.RuntimeLabels(w.Row.ID, w.Row.Name, a.Replica)
		if status == StatusStopped { // stopped on purpose: not "down"
			m.metrics.InstanceUp.Delete(l)
			m.metrics.InstanceCrashLoop.Delete(l)
		} else {
			m.metrics.InstanceUp.With(l).Set(up)
			looping := 0.0
			if status == StatusCrashLooping {
				looping = 1
			}
			m.metrics.InstanceCrashLoop.With(l).Set(looping)
		}
	}
	if _, err := m.raft.Apply(ctx, catalog.SetAllocationObserved(a.ID, m.cfg.HubID, obs)); err != nil {
		if errors.Is(err, catalog.ErrConflict) || errors.Is(err, catalog.ErrNotFound) {
			m.log.Info("allocation no longer placed on this hub; its runtime will be removed", "allocation", a.ID)
			m.Kick()
			return
		}
		m.log.Warn("record allocation status", "allocation", a.ID, "status", status, "error", err)
		m.mu.Lock()
		t.status = "" // retry the write next round
		m.mu.Unlock()
		return
	}
	m.recordTransition(ctx, w, prev, status, msg, now)
	m.bus.Publish(events.New(events.InstanceStatus, StatusEvent{
		InstanceID: w.Row.ID, Name: w.Row.Name, Status: status, Message: msg, Since: since, Port: port,
		Replica: a.Replica, Hub: m.cfg.HubID, Allocation: a.ID, Host: m.cfg.Advertise,
	}))
	level := m.log.Info
	if status == StatusFailed || status == StatusCrashLooping || status == StatusError {
		level = m.log.Warn
	}
	level("replica status", "instance", w.Row.ID, "name", w.Row.Name, "replica", a.Replica, "status", status, "message", msg)
}

// StatusEvent is the data of an instance.status event: one replica's
// status, as the hub running it observed it.
type StatusEvent struct {
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Message    string    `json:"message,omitempty"`
	Since      time.Time `json:"since"`
	Port       int       `json:"port,omitempty"`
	Replica    int       `json:"replica"`
	Hub        string    `json:"hub,omitempty"`
	Allocation string    `json:"allocation,omitempty"`
	Host       string    `json:"host,omitempty"`
}
