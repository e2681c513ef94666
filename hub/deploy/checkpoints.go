package deploy

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// Checkpoints is where the orchestrator reads the workflow checkpoints it
// replays to green (hub/store).
type Checkpoints interface {
	LatestCheckpoints(ctx context.Context, instanceID string) ([]store.Checkpoint, error)
}

// ReplayTopic is where the hub sends a runtime, one message each, the
// latest checkpoint of every workflow of its logical instance: the JSON of
// a store.Checkpoint ({"workflow_id","instance_id","step","state","time"}).
func ReplayTopic(instance string) string { return instance + "/checkpoints/replay" }

// replayCheckpoints sends green the latest checkpoint of each workflow of
// the logical instance on ReplayTopic (QoS 1), once green answers a ping
// on the hub bus (its subscriptions, made together at connect, are then in
// place). It records the count in the spec. With no checkpoints it sends
// nothing and does not wait for green. A re-run of DEPLOY (a new leader)
// replays again: delivery is at least once; flows take the latest state.
func (o *Orchestrator) replayCheckpoints(ctx context.Context, d *catalog.Deployment, spec *Spec, green catalog.Instance) error {
	if o.d.Checkpoints == nil {
		return nil
	}
	cps, err := o.d.Checkpoints.LatestCheckpoints(ctx, d.InstanceID)
	if err != nil {
		return fmt.Errorf("read checkpoints: %w", err)
	}
	if len(cps) == 0 {
		return nil
	}
	if err := o.awaitBus(ctx, green, o.cfg.SmokeTimeout); err != nil {
		return fmt.Errorf("replay %d checkpoints: %w", len(cps), err)
	}
	for _, cp := range cps {
		b, err := json.Marshal(cp)
		if err != nil {
			return fmt.Errorf("checkpoint %d: %w", cp.ID, err)
		}
		if err := o.d.Bus.Publish(ctx, ReplayTopic(green.Name), b, 1, false); err != nil {
			return fmt.Errorf("publish %s: %w", ReplayTopic(green.Name), err)
		}
	}
	spec.Checkpoints = len(cps)
	if err := o.putSpec(ctx, d.ID, *spec); err != nil {
		return err
	}
	o.note(ctx, d.ID, fmt.Sprintf("%d workflow checkpoints replayed to %s", len(cps), green.Name))
	return nil
}
