package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/fleet"
)

// Progress at the start of each phase; a phase moves it toward the next.
var phaseStart = map[catalog.DeploymentPhase]int{
	catalog.PhaseDrain: 0, catalog.PhaseDeploy: 15, catalog.PhaseVerify: 50,
	catalog.PhaseResume: 70, catalog.PhaseAudit: 85, catalog.PhaseCleanup: 90,
}

var phaseOrder = []catalog.DeploymentPhase{catalog.PhaseDrain, catalog.PhaseDeploy, catalog.PhaseVerify,
	catalog.PhaseResume, catalog.PhaseAudit, catalog.PhaseCleanup}

// PhaseEvent is the data of deployment.phase and deployment.progress events.
type PhaseEvent struct {
	ID         string                   `json:"id"`
	InstanceID string                   `json:"instance_id"`
	Phase      catalog.DeploymentPhase  `json:"phase"`
	Status     catalog.DeploymentStatus `json:"status"`
	Progress   int                      `json:"progress"`
	Message    string                   `json:"message,omitempty"`
}

// failure is an error before RESUME: it rolls the deployment back.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }

// update reads the deployment, applies f and writes it back; phase
// changes append history and publish deployment.phase, other changes
// deployment.progress.
func (o *Orchestrator) update(ctx context.Context, id string, msg string, f func(d *catalog.Deployment)) (catalog.Deployment, error) {
	d, err := o.d.Catalog.Deployment(id)
	if err != nil {
		return d, err
	}
	phase, status := d.Phase, d.Status
	f(&d)
	d.UpdatedAt = o.now().UTC()
	changed := d.Phase != phase || d.Status != status
	if changed {
		d.History = append(d.History, catalog.PhaseRecord{Phase: d.Phase, Status: d.Status, At: d.UpdatedAt, Message: msg})
	}
	if _, err := o.d.Applier.Apply(ctx, catalog.PutDeployment(d)); err != nil {
		return d, fmt.Errorf("record deployment %s: %w", id, err)
	}
	typ := events.DeploymentUpdate
	if changed {
		typ = events.DeploymentPhase
		o.log.Info("deployment phase", "deployment", id, "phase", d.Phase, "status", d.Status, "message", msg)
	}
	o.d.Events.Publish(events.New(typ, PhaseEvent{ID: d.ID, InstanceID: d.InstanceID, Phase: d.Phase,
		Status: d.Status, Progress: d.Progress, Message: msg}))
	return d, nil
}

// note appends a history record (same phase and status) with msg.
func (o *Orchestrator) note(ctx context.Context, id, msg string) {
	_, _ = o.update(ctx, id, "", func(d *catalog.Deployment) {
		d.History = append(d.History, catalog.PhaseRecord{Phase: d.Phase, Status: d.Status, At: o.now().UTC(), Message: msg})
	})
}

// awaitBus pings instance on its control topic until it acks (its flows
// are connected to the hub bus and subscribed) or wait passes.
func (o *Orchestrator) awaitBus(ctx context.Context, instance string, wait time.Duration) error {
	deadline := o.now().Add(wait)
	for {
		acked, err := o.control(ctx, instance, "ping", time.Second)
		if err != nil || acked {
			return err
		}
		if o.now().After(deadline) {
			return fmt.Errorf("%s did not answer a ping on %s within %s", instance, AckTopic(instance), wait)
		}
	}
}

func (o *Orchestrator) progress(ctx context.Context, id string, p int) {
	_, _ = o.update(ctx, id, "", func(d *catalog.Deployment) {
		if p > d.Progress {
			d.Progress = p
		}
	})
}

// drive runs a deployment from its recorded phase to the end (or until
// leadership, and with it ctx, is lost: the next leader resumes it).
func (o *Orchestrator) drive(ctx context.Context, id string) {
	d, err := o.d.Catalog.Deployment(id)
	if err != nil {
		return
	}
	spec, err := o.spec(id)
	if err != nil {
		_, _ = o.update(ctx, id, err.Error(), func(d *catalog.Deployment) {
			d.Status, d.Error, d.FinishedAt = catalog.DeploymentFailed, err.Error(), o.now().UTC()
		})
		return
	}
	start := 0
	for i, p := range phaseOrder {
		if p == d.Phase {
			start = i
		}
	}
	for _, p := range phaseOrder[start:] {
		if ctx.Err() != nil {
			return
		}
		if d.Phase != p || d.Status == catalog.DeploymentPending {
			d, err = o.update(ctx, id, "", func(d *catalog.Deployment) {
				d.Phase = p
				if d.Status == catalog.DeploymentPending {
					d.Status = catalog.DeploymentRunning
				}
				d.Progress = max(d.Progress, phaseStart[p])
			})
			if err != nil {
				return
			}
		}
		err = o.runPhase(ctx, &d, &spec, p)
		if ctx.Err() != nil {
			return
		}
		var f failure
		if errors.As(err, &f) {
			o.rollback(ctx, d, spec, f.err.Error())
			return
		}
		for err != nil && ctx.Err() == nil { // after the switch: retry, never roll back by itself
			o.log.Warn("deployment phase failed; retrying", "deployment", id, "phase", p, "error", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
			err = o.runPhase(ctx, &d, &spec, p)
		}
		if ctx.Err() != nil {
			return
		}
		if d, err = o.d.Catalog.Deployment(id); err != nil {
			return
		}
	}
}

func (o *Orchestrator) runPhase(ctx context.Context, d *catalog.Deployment, spec *Spec, p catalog.DeploymentPhase) error {
	switch p {
	case catalog.PhaseDrain:
		return o.drain(ctx, d, spec)
	case catalog.PhaseDeploy:
		return o.deployGreen(ctx, d, spec)
	case catalog.PhaseVerify:
		return o.verify(ctx, d, spec)
	case catalog.PhaseResume:
		return o.resume(ctx, d, spec)
	case catalog.PhaseAudit:
		return o.auditDone(ctx, d, spec)
	case catalog.PhaseCleanup:
		return o.cleanup(ctx, d, spec)
	}
	return nil
}

// ControlMessage is what the hub sends on {instance}/control.
type ControlMessage struct {
	Mode string `json:"mode"` // drain | active | ping
}

// Ack is what an instance sends on {instance}/control/ack.
type Ack struct {
	Mode     string `json:"mode"`
	InFlight int    `json:"inflight"`
}

// control publishes mode to instance and, when wait > 0, waits for an ack
// of that mode with no work in flight. It reports whether one came.
func (o *Orchestrator) control(ctx context.Context, instance, mode string, wait time.Duration) (bool, error) {
	acked := make(chan struct{}, 1)
	if wait > 0 {
		unsub, err := o.d.Bus.Subscribe(ctx, AckTopic(instance), 1, func(_ string, payload []byte) {
			var a Ack
			if json.Unmarshal(payload, &a) == nil && a.Mode == mode && a.InFlight == 0 {
				select {
				case acked <- struct{}{}:
				default:
				}
			}
		})
		if err != nil {
			return false, fmt.Errorf("subscribe %s: %w", AckTopic(instance), err)
		}
		defer unsub()
	}
	b, _ := json.Marshal(ControlMessage{Mode: mode})
	if err := o.d.Bus.Publish(ctx, ControlTopic(instance), b, 1, false); err != nil {
		return false, fmt.Errorf("publish %s: %w", ControlTopic(instance), err)
	}
	if wait <= 0 {
		return false, nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-acked:
		return true, nil
	case <-t.C:
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// drain holds the logical instance's input and asks blue to drain.
func (o *Orchestrator) drain(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err != nil {
		return failure{err}
	}
	o.relay.hold(logical.Name)
	blue, err := o.d.Catalog.Instance(spec.BlueID)
	if err != nil {
		return failure{fmt.Errorf("blue %s: %w", spec.BlueID, err)}
	}
	msg := "blue is not running; nothing to drain"
	if blue.Observed.Status == fleet.StatusRunning {
		start := o.now()
		acked, err := o.control(ctx, blue.Name, "drain", spec.DrainTimeout)
		if err != nil {
			return failure{err}
		}
		msg = fmt.Sprintf("blue acknowledged drain after %s", o.now().Sub(start).Round(time.Millisecond))
		if !acked {
			msg = fmt.Sprintf("no drain ack from blue within %s; continuing", spec.DrainTimeout)
		}
	}
	spec.DrainResult = msg
	if err := o.putSpec(ctx, d.ID, *spec); err != nil {
		return failure{err}
	}
	o.note(ctx, d.ID, msg)
	o.progress(ctx, d.ID, 14)
	return nil
}

// deployGreen creates the green row (a clone of the logical instance's
// config), waits until the fleet reports it running and deploys the flows.
func (o *Orchestrator) deployGreen(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err != nil {
		return failure{err}
	}
	green, err := o.d.Catalog.Instance(spec.GreenID)
	if errors.Is(err, catalog.ErrNotFound) {
		green = logical
		green.ID, green.Name, green.Observed, green.Indexes = spec.GreenID, spec.GreenName, catalog.Observed{}, catalog.Indexes{}
		green.DesiredState = catalog.DesiredRunning
		green.Env = map[string]string{}
		for k, v := range logical.Env {
			green.Env[k] = v
		}
		green.Env["REDFORGE_INSTANCE"], green.Env["REDFORGE_LOGICAL"] = spec.GreenName, logical.Name
		green.FlowsVersion = d.ToFlowsVersion
		green.CreatedAt, green.UpdatedAt = o.now().UTC(), o.now().UTC()
		if _, err := o.d.Applier.Apply(ctx, catalog.UpsertInstance(green)); err != nil {
			return failure{fmt.Errorf("create green %s: %w", spec.GreenName, err)}
		}
	} else if err != nil {
		return failure{err}
	}
	o.d.Fleet.Kick()
	o.progress(ctx, d.ID, 20)
	green, err = o.waitRunning(ctx, spec.GreenID)
	if err != nil {
		return failure{err}
	}
	o.progress(ctx, d.ID, 40)
	flows, err := o.render(spec.Flows, green)
	if err != nil {
		return failure{err}
	}
	c, err := o.d.Fleet.Client(green)
	if err != nil {
		return failure{err}
	}
	rev, err := c.DeployFlows(ctx, flows, "", "full")
	if err != nil {
		return failure{fmt.Errorf("deploy flows to green: %w", err)}
	}
	spec.GreenRev = rev
	if err := o.putSpec(ctx, d.ID, *spec); err != nil {
		return failure{err}
	}
	o.note(ctx, d.ID, fmt.Sprintf("green %s running on port %d with flows rev %s", green.Name, green.Observed.Port, rev))
	o.progress(ctx, d.ID, 45)
	if err := o.replayCheckpoints(ctx, d, spec, green); err != nil {
		return failure{err}
	}
	o.progress(ctx, d.ID, 49)
	return nil
}

// waitRunning waits until the fleet reports the row running.
func (o *Orchestrator) waitRunning(ctx context.Context, id string) (catalog.Instance, error) {
	deadline := o.now().Add(o.cfg.HealthyTimeout)
	for {
		inst, err := o.d.Catalog.Instance(id)
		if err != nil {
			return inst, err
		}
		switch inst.Observed.Status {
		case fleet.StatusRunning:
			return inst, nil
		case fleet.StatusCrashLooping, fleet.StatusError:
			return inst, fmt.Errorf("%s did not start: %s %s", inst.Name, inst.Observed.Status, inst.Observed.Message)
		}
		if o.now().After(deadline) {
			return inst, fmt.Errorf("%s not healthy within %s (status %q)", inst.Name, o.cfg.HealthyTimeout, inst.Observed.Status)
		}
		select {
		case <-ctx.Done():
			return inst, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// resume switches the proxy and the input relay to green, tells green it
// is active and replays the held input to it in order.
func (o *Orchestrator) resume(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err != nil {
		return err
	}
	green, err := o.d.Catalog.Instance(spec.GreenID)
	if err != nil {
		return err
	}
	if err := o.awaitBus(ctx, green.Name, o.cfg.SmokeTimeout); err != nil {
		o.log.Warn("green is not on the hub bus yet; held input may wait", "deployment", d.ID, "error", err)
	}
	if o.d.Proxy != nil {
		o.d.Proxy.Pause(logical.Name)
	}
	_, err = o.d.Applier.Apply(ctx, catalog.PutSetting(LiveKey(logical.ID), green.ID))
	if o.d.Proxy != nil {
		o.d.Proxy.Resume(logical.Name)
	}
	if err != nil {
		return fmt.Errorf("switch %s to green: %w", logical.Name, err)
	}
	if _, err := o.control(ctx, green.Name, "active", 0); err != nil {
		return err
	}
	o.progress(ctx, d.ID, 75)
	n, err := o.relay.release(ctx, logical.Name, green.Name)
	spec.Replayed += n
	_ = o.putSpec(ctx, d.ID, *spec)
	if err != nil {
		return err
	}
	o.note(ctx, d.ID, fmt.Sprintf("live: %s; %d held messages replayed", green.Name, n))
	o.progress(ctx, d.ID, 84)
	return nil
}

// auditDone writes DEPLOYMENT_COMPLETED.
func (o *Orchestrator) auditDone(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	if o.d.Audit == nil {
		return nil
	}
	e := audit.Entry{UserID: spec.UserID, Username: d.StartedBy, Action: audit.DeploymentCompleted,
		ResourceType: "deployment", ResourceID: d.ID, Details: o.auditDetails(d, spec, "")}
	if err := o.d.Audit.Record(ctx, e); err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

func (o *Orchestrator) auditDetails(d *catalog.Deployment, spec *Spec, reason string) map[string]any {
	durations := map[string]string{}
	for i, h := range d.History {
		end := o.now()
		if i+1 < len(d.History) {
			end = d.History[i+1].At
		}
		if h.Status == catalog.DeploymentRunning || h.Status == catalog.DeploymentSucceeded {
			durations[string(h.Phase)] = end.Sub(h.At).Round(time.Millisecond).String()
		}
	}
	m := map[string]any{"instance_id": d.InstanceID, "from_flows_version": d.FromFlowsVersion,
		"to_flows_version": d.ToFlowsVersion, "blue": spec.BlueID, "green": spec.GreenID,
		"phase_durations": durations, "total": o.now().Sub(d.StartedAt).Round(time.Millisecond).String(),
		"replayed_messages": spec.Replayed, "replayed_checkpoints": spec.Checkpoints, "drain": spec.DrainResult}
	if reason != "" {
		m["reason"] = reason
	}
	return m
}

// cleanup stops blue once no proxied request to it is in flight, marks
// the deployment succeeded and, after the rollback window, removes blue.
func (o *Orchestrator) cleanup(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	blue, err := o.d.Catalog.Instance(spec.BlueID)
	if err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return err
	}
	if d.Status == catalog.DeploymentRunning {
		if err == nil {
			if o.d.Proxy != nil && blue.Observed.Port != 0 {
				wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				_ = o.d.Proxy.WaitIdle(wctx, blue.Observed.Port)
				cancel()
			}
			if err := o.setDesired(ctx, blue.ID, catalog.DesiredStopped); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("blue stopped; kept for %s", spec.RollbackWindow)
		if spec.RollbackWindow < 0 {
			msg = "blue stopped"
		}
		fresh, err := o.update(ctx, d.ID, msg, func(d *catalog.Deployment) {
			d.Status, d.FinishedAt, d.Progress = catalog.DeploymentSucceeded, o.now().UTC(), 95
		})
		if err != nil {
			return err
		}
		*d = fresh
		o.d.Fleet.Kick()
	}
	wait := time.Until(d.FinishedAt.Add(spec.RollbackWindow))
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	if cur, err := o.d.Catalog.Deployment(d.ID); err != nil || cur.Status != catalog.DeploymentSucceeded {
		return nil // rolled back meanwhile
	}
	msg := "rollback window over; blue removed"
	if err == nil {
		if IsColor(blue) {
			if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(blue.ID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
				return err
			}
			o.d.Fleet.Kick()
		} else {
			msg = "rollback window over; the logical instance's own runtime stays stopped"
		}
	}
	_, err = o.update(ctx, d.ID, msg, func(d *catalog.Deployment) { d.Progress = 100 })
	return err
}

func (o *Orchestrator) setDesired(ctx context.Context, id string, s catalog.DesiredState) error {
	inst, err := o.d.Catalog.Instance(id)
	if err != nil {
		return err
	}
	if inst.DesiredState == s {
		return nil
	}
	inst.DesiredState, inst.UpdatedAt = s, o.now().UTC()
	_, err = o.d.Applier.Apply(ctx, catalog.UpsertInstance(inst))
	return err
}

// rollback undoes a deployment that failed before RESUME: green is
// removed, blue told to resume, held input replayed to blue.
func (o *Orchestrator) rollback(ctx context.Context, d catalog.Deployment, spec Spec, reason string) {
	o.log.Warn("deployment failed; rolling back", "deployment", d.ID, "phase", d.Phase, "reason", reason)
	if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(spec.GreenID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		o.log.Error("rollback: remove green", "deployment", d.ID, "error", err)
	}
	o.d.Fleet.Kick()
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err == nil {
		if blue, err := o.d.Catalog.Instance(spec.BlueID); err == nil {
			_, _ = o.control(ctx, blue.Name, "active", 0)
			for {
				n, err := o.relay.release(ctx, logical.Name, blue.Name)
				spec.Replayed += n
				if err == nil || ctx.Err() != nil {
					break
				}
				o.log.Error("rollback: replay held input", "deployment", d.ID, "error", err)
				time.Sleep(time.Second)
			}
		}
	}
	_ = o.putSpec(ctx, d.ID, spec)
	fresh, err := o.update(ctx, d.ID, reason, func(d *catalog.Deployment) {
		d.Status, d.Error, d.FinishedAt, d.Progress = catalog.DeploymentRolledBack, reason, o.now().UTC(), 100
	})
	if err == nil && o.d.Audit != nil {
		_ = o.d.Audit.Record(ctx, audit.Entry{UserID: spec.UserID, Username: d.StartedBy, Action: audit.DeploymentRolledBack,
			ResourceType: "deployment", ResourceID: d.ID, Details: o.auditDetails(&fresh, &spec, reason)})
	}
}
