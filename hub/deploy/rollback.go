package deploy

import (
	"context"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
)

// Rollback switches a succeeded deployment back to blue inside its
// rollback window: blue is started again, input is held, the proxy and
// relay switch to blue, held input is replayed to it and green is
// removed. Errors: catalog.ErrNotFound; ErrNotRollable when the
// deployment is not succeeded or its window is over (blue is gone).
func (o *Orchestrator) Rollback(ctx context.Context, id, userID, username string) (catalog.Deployment, error) {
	d, err := o.d.Catalog.Deployment(id)
	if err != nil {
		return d, err
	}
	if d.Status != catalog.DeploymentSucceeded || d.Phase != catalog.PhaseCleanup || d.Progress >= 100 {
		return d, fmt.Errorf("deployment %s is %s at %s %d%%; only a succeeded deployment inside its rollback window can be rolled back: %w",
			id, d.Status, d.Phase, d.Progress, ErrNotRollable)
	}
	spec, err := o.spec(id)
	if err != nil {
		return d, err
	}
	logical, err := o.d.Catalog.Instance(d.InstanceID)
	if err != nil {
		return d, err
	}
	if live, err := o.Live(logical.Name); err != nil || live.ID != spec.GreenID {
		return d, fmt.Errorf("deployment %s is no longer live (a later deployment replaced it): %w", id, ErrNotRollable)
	}
	if err := o.setDesired(ctx, spec.BlueID, catalog.DesiredRunning); err != nil {
		return d, fmt.Errorf("start blue: %w", err)
	}
	blueRow, err := o.d.Catalog.Instance(spec.BlueID)
	if err != nil {
		return d, fmt.Errorf("start blue: %w", err)
	}
	blue, err := o.waitRunning(ctx, spec.BlueID, "", blueRow.ReplicaCount())
	if err != nil {
		return d, fmt.Errorf("start blue: %w", err)
	}
	if err := o.awaitBus(ctx, blue, o.cfg.SmokeTimeout); err != nil {
		return d, fmt.Errorf("blue is running but not on the hub bus (its flows do not connect to it); not switching: %w: %w", ErrNotRollable, err)
	}
	o.relay.hold(logical.Name)
	// Green finishes what it was given before blue takes over, so the
	// order of processing is kept across the switch back.
	if green, err := o.d.Catalog.Instance(spec.GreenID); err == nil {
		if acked, err := o.control(ctx, green.Name, "drain", spec.DrainTimeout, o.runningReplicas(green.ID)); err != nil {
			return d, errors.Join(fmt.Errorf("drain green: %w", err), o.releaseTo(ctx, logical.Name, green.Name))
		} else if !acked {
			o.log.Warn("green did not ack the drain; switching back anyway", "deployment", id)
		}
	}
	if o.d.Proxy != nil {
		o.d.Proxy.Pause(logical.Name)
	}
	_, err = o.d.Applier.Apply(ctx, catalog.SetInstanceLive(logical.ID, blue.ID))
	if o.d.Proxy != nil {
		o.d.Proxy.Resume(logical.Name)
	}
	if err != nil {
		return d, errors.Join(fmt.Errorf("switch back to blue: %w", err), o.releaseTo(ctx, logical.Name, spec.GreenName))
	}
	if _, err := o.control(ctx, blue.Name, "active", 0, 0); err != nil {
		o.log.Warn("rollback: tell blue to resume", "deployment", id, "instance", blue.Name, "error", err)
	}
	if _, err := o.relay.release(ctx, logical.Name, blue.Name); err != nil {
		return d, err
	}
	o.waitIdle(ctx, spec.GreenID)
	if _, err := o.d.Applier.Apply(ctx, catalog.DeleteInstance(spec.GreenID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
		return d, fmt.Errorf("remove green: %w", err)
	}
	reason := "rolled back by " + username
	d, err = o.update(ctx, id, reason, func(d *catalog.Deployment) {
		d.Status, d.Error, d.Progress = catalog.DeploymentRolledBack, reason, 100
	})
	if err == nil {
		o.auditOrFlag(ctx, id, audit.Entry{UserID: userID, Username: username, Action: audit.DeploymentRolledBack,
			ResourceType: "deployment", ResourceID: id, Details: o.auditDetails(&d, &spec, reason)})
	}
	return d, err
}

// releaseTo replays the held input of logical to target and stops holding
// it, after a manual rollback gave up; an error says the input is still
// held.
func (o *Orchestrator) releaseTo(ctx context.Context, logical, target string) error {
	if _, err := o.relay.release(ctx, logical, target); err != nil {
		return fmt.Errorf("the input of %s stays held: replay to %s: %w", logical, target, err)
	}
	return nil
}
