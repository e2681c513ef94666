package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/instances"
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
	prev := d
	prev.History = slices.Clone(d.History)
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
		o.observe(prev, d)
		typ = events.DeploymentPhase
		o.log.Info("deployment phase", "deployment", id, "phase", d.Phase, "status", d.Status, "message", msg)
	}
	o.d.Events.Publish(events.New(typ, PhaseEvent{ID: d.ID, InstanceID: d.InstanceID, Phase: d.Phase,
		Status: d.Status, Progress: d.Progress, Message: msg}))
	return d, nil
}

// note appends a history record (same phase and status) with msg.
func (o *Orchestrator) note(ctx context.Context, id, msg string) {
	o.bestEffort(ctx, id, func(d *catalog.Deployment) {
		d.History = append(d.History, catalog.PhaseRecord{Phase: d.Phase, Status: d.Status, At: o.now().UTC(), Message: msg})
	})
}

// awaitBus pings a row on its control topic until every running replica
// acks (its flows are connected to the hub bus and subscribed) or wait
// passes.
func (o *Orchestrator) awaitBus(ctx context.Context, row catalog.Instance, wait time.Duration) error {
	deadline := o.now().Add(wait)
	for {
		acked, err := o.control(ctx, row.Name, "ping", time.Second, o.runningReplicas(row.ID))
		if err != nil || acked {
			return err
		}
		if o.now().After(deadline) {
			return fmt.Errorf("%s did not answer a ping on %s within %s", row.Name, AckTopic(row.Name), wait)
		}
	}
}

// runningReplicas counts the running replicas of a row (at least 1, so a
// row reported otherwise still needs one ack).
func (o *Orchestrator) runningReplicas(rowID string) int {
	n := 0
	for _, a := range o.d.Catalog.InstanceAllocations(rowID) {
		if a.Observed.Status == fleet.StatusRunning && a.Desired != catalog.AllocStop {
			n++
		}
	}
	return max(n, 1)
}

func (o *Orchestrator) progress(ctx context.Context, id string, p int) {
	o.bestEffort(ctx, id, func(d *catalog.Deployment) {
		if p > d.Progress {
			d.Progress = p
		}
	})
}

// bestEffort records a progress figure or a note; one that cannot be
// written is logged and the deployment goes on (the phase outcomes that
// matter are written by update and checked).
func (o *Orchestrator) bestEffort(ctx context.Context, id string, f func(d *catalog.Deployment)) {
	if _, err := o.update(ctx, id, "", f); err != nil && ctx.Err() == nil {
		o.log.Warn("record deployment progress", "deployment", id, "error", err)
	}
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
		if _, uerr := o.update(ctx, id, err.Error(), func(d *catalog.Deployment) {
			d.Status, d.Error, d.FinishedAt = catalog.DeploymentFailed, err.Error(), o.now().UTC()
		}); uerr != nil {
			o.log.Error("record a deployment without a spec as failed", "deployment", id, "error", uerr)
		}
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
		if err != nil && !o.retryPhase(ctx, &d, &spec, p, err) {
			return
		}
		if d, err = o.d.Catalog.Deployment(id); err != nil {
			return
		}
	}
}

// phaseRetry is the pause between tries of a phase after the switch.
var phaseRetry = 2 * time.Second

// retryPhase runs phase p again after it failed with err, until it
// succeeds or ctx ends (after the switch a deployment is never rolled back
// by itself). The first failure, and every tenth after it, is written to
// the deployment's history and error, so a deployment held up (an audit
// record that cannot be written, say) shows why instead of looking as if
// it were merely slow; a later success clears the error. It reports
// whether the phase succeeded.
func (o *Orchestrator) retryPhase(ctx context.Context, d *catalog.Deployment, spec *Spec, p catalog.DeploymentPhase, err error) bool {
	for tries := 1; err != nil; tries++ {
		o.log.Warn("deployment phase failed; retrying", "deployment", d.ID, "phase", p, "tries", tries, "error", err)
		if tries%10 == 1 {
			msg := fmt.Sprintf("%s failed (try %d); retrying every %s: %v", p, tries, phaseRetry, err)
			o.bestEffort(ctx, d.ID, func(d *catalog.Deployment) {
				d.Error = msg
				d.History = append(d.History, catalog.PhaseRecord{Phase: d.Phase, Status: d.Status, At: o.now().UTC(), Message: msg})
			})
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(phaseRetry):
		}
		err = o.runPhase(ctx, d, spec, p)
		if err == nil {
			o.bestEffort(ctx, d.ID, func(d *catalog.Deployment) { d.Error = "" })
		}
	}
	return ctx.Err() == nil
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
	// Replica names the acking runtime (its REDFORGE_CLIENT_ID), when the
	// flow sends it; acks without it are counted as they come.
	Replica string `json:"replica,omitempty"`
}

// control publishes mode to a row's replicas and, when wait > 0, waits
// for want acks of that mode (one from each replica: every replica of a
// row subscribes to its control topic; a drain ack counts only with no
// work in flight). It reports whether they came.
func (o *Orchestrator) control(ctx context.Context, instance, mode string, wait time.Duration, want int) (bool, error) {
	acked := make(chan struct{}, 1)
	if wait > 0 {
		var mu sync.Mutex
		seen := map[string]bool{}
		n := 0
		unsub, err := o.d.Bus.Subscribe(ctx, AckTopic(instance), 1, func(_ string, payload []byte) {
			var a Ack
			if json.Unmarshal(payload, &a) != nil || a.Mode != mode || (mode == "drain" && a.InFlight != 0) {
				return
			}
			mu.Lock()
			if a.Replica == "" || !seen[a.Replica] {
				seen[a.Replica] = a.Replica != ""
				n++
			}
			done := n >= want
			mu.Unlock()
			if done {
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

// ContractProbe bounds the ping with which DRAIN learns how many of
// blue's replicas speak the control contract (the RedForge runtime plugin
// does in every runtime the hub runs, whatever the flows; a flow may
// implement it itself).
var ContractProbe = 3 * time.Second

// drain holds the logical instance's input and asks blue to drain. It
// first pings blue: the replicas that answer speak the control contract,
// and the drain then waits for an ack from each of them (bounded by the
// drain timeout, for flows that never become idle); when none answers,
// nothing would ever ack, so it does not wait at all.
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
		running := o.runningReplicas(blue.ID)
		speakers, err := o.probe(ctx, blue.Name, ContractProbe, running)
		if err != nil {
			return failure{err}
		}
		switch {
		case speakers == 0:
			msg = fmt.Sprintf("blue does not speak the control contract (no answer to ping within %s); not waiting for a drain ack", ContractProbe)
		default:
			start := o.now()
			acked, err := o.control(ctx, blue.Name, "drain", spec.DrainTimeout, speakers)
			if err != nil {
				return failure{err}
			}
			msg = fmt.Sprintf("blue acknowledged drain after %s (%d of %d replicas speak the control contract)",
				o.now().Sub(start).Round(time.Millisecond), speakers, running)
			if !acked {
				msg = fmt.Sprintf("no drain ack from blue within %s; continuing", spec.DrainTimeout)
			}
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

// probe pings a row (again every half second) and returns how many of
// its replicas answered within wait (distinct replicas; acks that name
// none count one each: a flow's own), stopping early once want did.
func (o *Orchestrator) probe(ctx context.Context, instance string, wait time.Duration, want int) (int, error) {
	var mu sync.Mutex
	seen := map[string]bool{}
	n := 0
	enough := make(chan struct{}, 1)
	unsub, err := o.d.Bus.Subscribe(ctx, AckTopic(instance), 1, func(_ string, payload []byte) {
		var a Ack
		if json.Unmarshal(payload, &a) != nil || a.Mode != "ping" {
			return
		}
		mu.Lock()
		if a.Replica == "" || !seen[a.Replica] {
			seen[a.Replica] = a.Replica != ""
			n++
		}
		done := n >= want
		mu.Unlock()
		if done {
			select {
			case enough <- struct{}{}:
			default:
			}
		}
	})
	if err != nil {
		return 0, fmt.Errorf("subscribe %s: %w", AckTopic(instance), err)
	}
	defer unsub()
	// A ping sent before a replica subscribed is lost (QoS 1 to nobody):
	// ping again every half second until every replica answered.
	b, _ := json.Marshal(ControlMessage{Mode: "ping"})
	t := time.NewTimer(wait)
	defer t.Stop()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		if err := o.d.Bus.Publish(ctx, ControlTopic(instance), b, 1, false); err != nil {
			return 0, fmt.Errorf("publish %s: %w", ControlTopic(instance), err)
		}
		select {
		case <-enough:
			done = true
		case <-t.C:
			done = true
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-tick.C:
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return min(n, want), nil
}

// deployGreen creates the green row (a clone of the logical instance's
// config, with as many replicas), gives it the new flows in the catalog
// (each hub running one of its replicas deploys them) and waits until
// every replica runs them.
func (o *Orchestrator) deployGreen(ctx context.Context, d *catalog.Deployment, spec *Spec) error {
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err != nil {
		return failure{err}
	}
	green, err := o.d.Catalog.Instance(spec.GreenID)
	if errors.Is(err, catalog.ErrNotFound) {
		green = logical
		green.ID, green.Name, green.Observed, green.Indexes, green.Live = spec.GreenID, spec.GreenName, catalog.Observed{}, catalog.Indexes{}, ""
		green.DesiredState = catalog.DesiredRunning
		green.Replicas = logical.ReplicaCount()
		green.Env = maps.Clone(logical.Env)
		if green.Env == nil {
			green.Env = map[string]string{}
		}
		if spec.Settings != nil {
			green.Image, green.Resources, green.Env = spec.Settings.Image, spec.Settings.Resources, maps.Clone(spec.Settings.Env)
			if green.Env == nil {
				green.Env = map[string]string{}
			}
		}
		green.Nodes = o.greenNodes(spec)
		green.Env["REDFORGE_INSTANCE"], green.Env["REDFORGE_LOGICAL"] = spec.GreenName, logical.Name
		green.FlowsVersion = d.ToFlowsVersion
		green.CreatedAt, green.UpdatedAt = o.now().UTC(), o.now().UTC()
		if _, err := o.d.Applier.Apply(ctx, catalog.UpsertInstance(green)); err != nil {
			return failure{fmt.Errorf("create green %s: %w", spec.GreenName, err)}
		}
	} else if err != nil {
		return failure{err}
	}
	sha := catalog.FlowsSHA(spec.Flows)
	if f, err := o.d.Catalog.InstanceFlows(spec.GreenID); err != nil || f.SHA != sha {
		_, err := o.d.Applier.Apply(ctx, catalog.PutFlows(catalog.Flows{InstanceID: spec.GreenID, Doc: spec.Flows, SHA: sha,
			By: d.StartedBy, At: o.now().UTC(), Credentials: o.greenCredentials(spec)}))
		if err != nil {
			return failure{fmt.Errorf("flows of green %s: %w", spec.GreenName, err)}
		}
	}
	o.progress(ctx, d.ID, 20)
	green, err = o.waitRunning(ctx, spec.GreenID, sha, green.ReplicaCount())
	if err != nil {
		return failure{err}
	}
	o.progress(ctx, d.ID, 40)
	spec.GreenRev = sha
	if err := o.putSpec(ctx, d.ID, *spec); err != nil {
		return failure{err}
	}
	o.note(ctx, d.ID, fmt.Sprintf("green %s: %s running the new flows", green.Name, replicaWhere(o.d.Catalog.InstanceAllocations(green.ID))))
	o.progress(ctx, d.ID, 45)
	if err := o.replayCheckpoints(ctx, d, spec, green); err != nil {
		return failure{err}
	}
	o.progress(ctx, d.ID, 49)
	return nil
}

// greenNodes is green's node set: the deployment's own (a node install or
// a snapshot), else blue's.
func (o *Orchestrator) greenNodes(spec *Spec) []catalog.NodePackage {
	if spec.Nodes != nil {
		return slices.Clone(*spec.Nodes)
	}
	if blue, err := o.d.Catalog.Instance(spec.BlueID); err == nil {
		return blue.Nodes
	}
	return nil
}

// greenCredentials are the node credentials green's flows get: the
// deployment's own (a snapshot's), else blue's, so what users entered in
// the editor survives a deployment.
func (o *Orchestrator) greenCredentials(spec *Spec) string {
	if spec.Credentials != nil {
		return *spec.Credentials
	}
	if f, err := o.d.Catalog.InstanceFlows(spec.BlueID); err == nil {
		return f.Credentials
	}
	return ""
}

// replicaWhere describes where a row's replicas run.
func replicaWhere(as []catalog.Allocation) string {
	parts := make([]string, 0, len(as))
	for _, a := range as {
		parts = append(parts, fmt.Sprintf("replica %d on %s (%s)", a.Replica, a.Hub, a.Address()))
	}
	return strings.Join(parts, ", ")
}

// waitRunning waits until want replicas of the row run (and, with sha,
// run those flows).
func (o *Orchestrator) waitRunning(ctx context.Context, id, sha string, want int) (catalog.Instance, error) {
	deadline := o.now().Add(o.cfg.HealthyTimeout)
	for {
		inst, err := o.d.Catalog.Instance(id)
		if err != nil {
			return inst, err
		}
		ready := 0
		for _, a := range o.d.Catalog.InstanceAllocations(id) {
			switch a.Observed.Status {
			case fleet.StatusRunning:
				if sha == "" || a.Observed.FlowsSHA == sha {
					ready++
				}
			case fleet.StatusCrashLooping, fleet.StatusError:
				return inst, fmt.Errorf("%s replica %d on %s did not start: %s %s", inst.Name, a.Replica, a.Hub, a.Observed.Status, a.Observed.Message)
			}
		}
		if ready >= want {
			return inst, nil
		}
		if o.now().After(deadline) {
			return inst, fmt.Errorf("%s: %d of %d replicas healthy within %s (status %q: %s)", inst.Name, ready, want,
				o.cfg.HealthyTimeout, inst.Observed.Status, inst.Observed.Message)
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
	if err := o.awaitBus(ctx, green, o.cfg.SmokeTimeout); err != nil {
		o.log.Warn("green is not on the hub bus yet; held input may wait", "deployment", d.ID, "error", err)
	}
	if o.d.Proxy != nil {
		o.d.Proxy.Pause(logical.Name)
	}
	_, err = o.d.Applier.Apply(ctx, catalog.SetInstanceLive(logical.ID, green.ID))
	if o.d.Proxy != nil {
		o.d.Proxy.Resume(logical.Name)
	}
	if err != nil {
		return fmt.Errorf("switch %s to green: %w", logical.Name, err)
	}
	if _, err := o.control(ctx, green.Name, "active", 0, 0); err != nil {
		return err
	}
	o.progress(ctx, d.ID, 75)
	n, err := o.relay.release(ctx, logical.Name, green.Name)
	spec.Replayed += n
	o.obs.MessagesReplayed(n)
	if perr := o.putSpec(ctx, d.ID, *spec); perr != nil && err == nil {
		err = fmt.Errorf("record %d replayed messages: %w", n, perr)
	}
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
	kind := spec.Kind
	if kind == "" {
		kind = KindFlows
	}
	m := map[string]any{"kind": kind, "instance_id": d.InstanceID, "from_flows_version": d.FromFlowsVersion,
		"to_flows_version": d.ToFlowsVersion, "blue": spec.BlueID, "green": spec.GreenID,
		"phase_durations": durations, "total": o.now().Sub(d.StartedAt).Round(time.Millisecond).String(),
		"replayed_messages": spec.Replayed, "replayed_checkpoints": spec.Checkpoints, "drain": spec.DrainResult}
	if spec.Note != "" {
		m["note"] = spec.Note
	}
	if spec.Nodes != nil {
		var ns []string
		for _, p := range *spec.Nodes {
			ns = append(ns, p.Name+"@"+p.Version)
		}
		m["nodes"] = ns
	}
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
			o.waitIdle(ctx, blue.ID)
			if err := o.setDesired(ctx, blue.ID, catalog.DesiredStopped); err != nil {
				return err
			}
		}
		if err := o.keepSettings(ctx, d.InstanceID, spec); err != nil {
			return err
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
		if instances.IsColor(blue) {
			if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(blue.ID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
				return err
			}
		} else {
			msg = "rollback window over; the logical instance's own runtime stays stopped"
		}
	}
	_, err = o.update(ctx, d.ID, msg, func(d *catalog.Deployment) { d.Progress = 100 })
	return err
}

// keepSettings gives the logical instance the settings a deployment set
// on green (a snapshot's), once blue is stopped, so later deployments
// clone them. The logical row is then not live, or stopped, so the
// change restarts nothing.
func (o *Orchestrator) keepSettings(ctx context.Context, logicalID string, spec *Spec) error {
	if spec.Settings == nil {
		return nil
	}
	inst, err := o.d.Catalog.Instance(logicalID)
	if err != nil {
		return err
	}
	inst.Image, inst.Resources, inst.Env = spec.Settings.Image, spec.Settings.Resources, maps.Clone(spec.Settings.Env)
	inst.UpdatedAt = o.now().UTC()
	_, err = o.d.Applier.Apply(ctx, catalog.UpsertInstance(inst))
	return err
}

// waitIdle waits (30 s at most) until no request proxied through any hub
// to the row is in flight.
func (o *Orchestrator) waitIdle(ctx context.Context, rowID string) {
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if o.d.Proxy != nil {
		if err := o.d.Proxy.WaitIdle(wctx, rowID); err != nil && ctx.Err() == nil {
			o.log.Warn("requests through this hub still in flight after 30s; going on", "instance", rowID, "error", err)
		}
	}
	if o.d.ClusterIdle != nil {
		if err := o.d.ClusterIdle(wctx, rowID); err != nil {
			o.log.Warn("wait for requests through the other hubs", "instance", rowID, "error", err)
		}
	}
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
	if green, err := o.d.Catalog.Instance(spec.GreenID); err == nil {
		o.keepGreenLogs(ctx, d, green) // before its runtime goes with its row
	}
	if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(spec.GreenID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		o.log.Error("rollback: remove green", "deployment", d.ID, "error", err)
	}
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err == nil {
		if blue, err := o.d.Catalog.Instance(spec.BlueID); err == nil {
			if _, err := o.control(ctx, blue.Name, "active", 0, 0); err != nil {
				o.log.Warn("rollback: tell blue to resume", "deployment", d.ID, "instance", blue.Name, "error", err)
			}
			for {
				n, err := o.relay.release(ctx, logical.Name, blue.Name)
				spec.Replayed += n
				o.obs.MessagesReplayed(n)
				if err == nil || ctx.Err() != nil {
					break
				}
				o.log.Error("rollback: replay held input", "deployment", d.ID, "error", err)
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
				}
			}
		}
	}
	if err := o.putSpec(ctx, d.ID, spec); err != nil {
		o.log.Error("rollback: record the spec", "deployment", d.ID, "error", err)
	}
	fresh, err := o.update(ctx, d.ID, reason, func(d *catalog.Deployment) {
		d.Status, d.Error, d.FinishedAt, d.Progress = catalog.DeploymentRolledBack, reason, o.now().UTC(), 100
	})
	if err != nil {
		o.log.Error("rollback: record the outcome", "deployment", d.ID, "error", err)
		return
	}
	o.auditOrFlag(ctx, d.ID, audit.Entry{UserID: spec.UserID, Username: d.StartedBy, Action: audit.DeploymentRolledBack,
		ResourceType: "deployment", ResourceID: d.ID, Details: o.auditDetails(&fresh, &spec, reason)})
}

// auditAttempts bounds the tries of an audit record outside the AUDIT
// phase (which retries until it succeeds).
const auditAttempts = 5

// auditOrFlag records e, retrying with backoff; when it cannot, the
// deployment is flagged (its error and history say the audit record is
// missing) rather than ending as if it had been audited.
func (o *Orchestrator) auditOrFlag(ctx context.Context, id string, e audit.Entry) {
	if o.d.Audit == nil {
		return
	}
	var err error
	for i, wait := 0, 100*time.Millisecond; i < auditAttempts; i, wait = i+1, 2*wait {
		if err = o.d.Audit.Record(ctx, e); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			i = auditAttempts
		case <-time.After(wait):
		}
	}
	msg := fmt.Sprintf("audit record %s could not be written: %v", e.Action, err)
	o.log.Error("deployment not audited", "deployment", id, "action", e.Action, "error", err)
	if _, uerr := o.update(context.WithoutCancel(ctx), id, msg, func(d *catalog.Deployment) {
		d.Error = strings.TrimPrefix(d.Error+"; "+msg, "; ")
		d.History = append(d.History, catalog.PhaseRecord{Phase: d.Phase, Status: d.Status, At: o.now().UTC(), Message: msg})
	}); uerr != nil {
		o.log.Error("flag the unaudited deployment", "deployment", id, "error", uerr)
	}
}
