package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
)

// reconcileOne drives one instance toward its desired state and checks
// its health when due. It runs concurrently for different instances and
// never for the same one.
func (m *Manager) reconcileOne(ctx context.Context, inst catalog.Instance, rt Runtime, exists bool) {
	t := m.track(inst.ID)
	if inst.DesiredState == catalog.DesiredStopped {
		if exists && rt.State == StateRunning {
			if err := m.driver.Stop(ctx, inst.ID, m.cfg.StopTimeout); err != nil {
				m.setStatus(ctx, inst, StatusError, "stop: "+err.Error(), rt)
				return
			}
		}
		m.mu.Lock()
		t.restartAt, t.nextCheck, t.failures = time.Time{}, time.Time{}, 0
		m.mu.Unlock()
		if exists {
			m.setStatus(ctx, inst, StatusStopped, "", rt)
		} else if inst.Observed.Status != StatusStopped {
			m.setStatus(ctx, inst, StatusStopped, "not created", Runtime{})
		}
		return
	}
	spec, err := m.spec(ctx, inst)
	if err != nil {
		m.setStatus(ctx, inst, StatusError, err.Error(), rt)
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
		if m.status(inst) == StatusCrashLooping {
			return
		}
		m.create(ctx, inst, spec, hash)
	case known != hash:
		m.log.Info("instance spec changed; recreating", "instance", inst.ID)
		if err := m.driver.Remove(ctx, inst.ID); err != nil && !errors.Is(err, ErrNotFound) {
			m.setStatus(ctx, inst, StatusError, "recreate: "+err.Error(), rt)
			return
		}
		m.create(ctx, inst, spec, hash)
	case rt.State != StateRunning && m.startable(inst):
		m.start(ctx, inst, rt)
	default:
		m.monitorOne(ctx, inst, rt)
	}
}

// startable reports whether a not-running runtime should be started now
// (it was stopped on purpose or never started) rather than restarted by
// the monitor's backoff.
func (m *Manager) startable(inst catalog.Instance) bool {
	switch m.status(inst) {
	case StatusStopped, StatusCreating, "":
		return true
	}
	return false
}

// status is the manager's current view of an instance's status, falling
// back to the catalog's record (after a hub restart).
func (m *Manager) status(inst catalog.Instance) string {
	t := m.track(inst.ID)
	m.mu.Lock()
	defer m.mu.Unlock()
	if t.status != "" {
		return t.status
	}
	return inst.Observed.Status
}

func (m *Manager) spec(ctx context.Context, inst catalog.Instance) (Spec, error) {
	pw, err := m.AdminPassword(inst.ID)
	if err != nil {
		return Spec{}, err
	}
	port := m.track(inst.ID).port
	spec := Spec{
		InstanceID: inst.ID, Name: inst.Name, Image: inst.Image, Port: port,
		CPU: inst.Resources.CPU, MemoryMB: inst.Resources.MemoryMB, Env: inst.Env,
		AdminUser: AdminUser, AdminPassword: pw,
	}
	if m.decorate != nil {
		// The hook gets copies: inst.Env is the catalog's own map.
		spec.Env = make(map[string]string, len(inst.Env))
		for k, v := range inst.Env {
			spec.Env[k] = v
		}
		if err := m.decorate(ctx, inst, &spec); err != nil {
			return Spec{}, fmt.Errorf("instance spec: %w", err)
		}
	}
	return spec, nil
}

// specHash covers what a running runtime cannot change without a
// recreate: image, resources and environment (not the port, which the
// manager assigns).
func specHash(s Spec) string {
	b, _ := json.Marshal(struct {
		Image    string
		CPU      float64
		MemoryMB int
		Env      map[string]string
	}{s.Image, s.CPU, s.MemoryMB, s.Env})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func (m *Manager) create(ctx context.Context, inst catalog.Instance, spec Spec, hash string) {
	if spec.Port == 0 {
		p, err := m.allocatePort(inst.ID)
		if err != nil {
			m.setStatus(ctx, inst, StatusError, err.Error(), Runtime{})
			return
		}
		spec.Port = p
	}
	m.setStatus(ctx, inst, StatusCreating, "", Runtime{Port: spec.Port})
	rt, err := m.driver.Create(ctx, spec)
	if errors.Is(err, ErrExists) {
		rt, err = m.driver.Inspect(ctx, inst.ID)
	}
	if err != nil {
		m.setStatus(ctx, inst, StatusError, "create: "+err.Error(), Runtime{Port: spec.Port})
		return
	}
	t := m.track(inst.ID)
	m.mu.Lock()
	t.specHash = hash
	m.mu.Unlock()
	m.start(ctx, inst, rt)
}

func (m *Manager) start(ctx context.Context, inst catalog.Instance, rt Runtime) {
	if err := m.driver.Start(ctx, inst.ID); err != nil {
		m.setStatus(ctx, inst, StatusError, "start: "+err.Error(), rt)
		return
	}
	if fresh, err := m.driver.Inspect(ctx, inst.ID); err == nil {
		rt = fresh
	}
	t := m.track(inst.ID)
	now := m.now()
	m.mu.Lock()
	t.startedAt, t.nextCheck, t.failures, t.restartAt = now, now.Add(m.cfg.StartingPoll), 0, time.Time{}
	m.mu.Unlock()
	m.setStatus(ctx, inst, StatusStarting, "", rt)
}

// setStatus records a status change in the catalog, then on the event bus
// (so a subscriber that reads the instance back sees the new status);
// repeating the current status is a no-op.
func (m *Manager) setStatus(ctx context.Context, inst catalog.Instance, status, msg string, rt Runtime) {
	t := m.track(inst.ID)
	now := m.now().UTC()
	m.mu.Lock()
	port := t.port
	if rt.Port != 0 {
		port = rt.Port
	}
	same := t.status == status && t.message == msg && inst.Observed.Status == status && inst.Observed.Port == port
	prev := t.status
	if prev == "" {
		prev = inst.Observed.Status // not tracked yet (a new leader): the catalog's
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
	obs := catalog.Observed{Status: status, RuntimeID: rt.RuntimeID, Port: port, Since: since, Message: msg}
	if obs.RuntimeID == "" {
		obs.RuntimeID = inst.Observed.RuntimeID
	}
	if m.metrics != nil {
		up := 0.0
		if status == StatusRunning {
			up = 1
		}
		m.metrics.InstanceUp.WithLabelValues(inst.ID, inst.Name).Set(up)
	}
	if _, err := m.raft.Apply(ctx, catalog.SetInstanceObserved(inst.ID, obs)); err != nil {
		if !errors.Is(err, catalog.ErrNotFound) {
			m.log.Warn("record instance status", "instance", inst.ID, "status", status, "error", err)
		}
	} else {
		m.recordTransition(ctx, inst, prev, status, msg, now)
	}
	m.bus.Publish(events.New(events.InstanceStatus, StatusEvent{
		InstanceID: inst.ID, Name: inst.Name, Status: status, Message: msg, Since: since, Port: port,
	}))
	level := m.log.Info
	if status == StatusFailed || status == StatusCrashLooping || status == StatusError {
		level = m.log.Warn
	}
	level("instance status", "instance", inst.ID, "name", inst.Name, "status", status, "message", msg)
}

// StatusEvent is the data of an instance.status event.
type StatusEvent struct {
	InstanceID string    `json:"instance_id"`
	Name       string    `json:"name"`
	Status     string    `json:"status"`
	Message    string    `json:"message,omitempty"`
	Since      time.Time `json:"since"`
	Port       int       `json:"port,omitempty"`
}

// ResetFailures clears the crash history of an instance, so an operator's
// explicit start or restart gets a crash-looping instance going again.
func (m *Manager) ResetFailures(id string) {
	t := m.track(id)
	m.mu.Lock()
	t.crashes, t.failures, t.backoff, t.restartAt = nil, 0, 0, time.Time{}
	if t.status == StatusCrashLooping || t.status == StatusFailed {
		t.status = StatusStopped
	}
	m.mu.Unlock()
	m.Kick()
}

// Restart restarts a running instance now (the operator's restart).
func (m *Manager) Restart(ctx context.Context, inst catalog.Instance) error {
	m.ResetFailures(inst.ID)
	if err := m.driver.Restart(ctx, inst.ID); err != nil {
		if errors.Is(err, ErrNotFound) {
			m.Kick()
			return nil
		}
		return fmt.Errorf("restart %s: %w", inst.Name, err)
	}
	rt, _ := m.driver.Inspect(ctx, inst.ID)
	t := m.track(inst.ID)
	now := m.now()
	m.mu.Lock()
	t.startedAt, t.nextCheck = now, now.Add(m.cfg.StartingPoll)
	m.mu.Unlock()
	m.setStatus(ctx, inst, StatusStarting, "restarted by operator", rt)
	m.Kick()
	return nil
}
