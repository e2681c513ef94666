package docker

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/redforge/controltower/hub/fleet"
)

// epoch: Docker reports "0001-01-01T00:00:00Z" for never.
var epoch = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)

// Inspect observes the instance's container. It returns ErrNotFound when
// this hub has none for the instance.
func (d *Driver) Inspect(ctx context.Context, instanceID string) (fleet.Runtime, error) {
	if err := d.ready(); err != nil {
		return fleet.Runtime{}, err
	}
	return d.inspect(ctx, instanceID)
}

func (d *Driver) inspect(ctx context.Context, instanceID string) (fleet.Runtime, error) {
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return fleet.Runtime{}, err
	}
	return d.toRuntime(c), nil
}

// find inspects the container named for the instance and checks that it is
// this hub's.
func (d *Driver) find(ctx context.Context, instanceID string) (container.InspectResponse, error) {
	if !fleet.ValidInstanceID(instanceID) {
		return container.InspectResponse{}, fmt.Errorf("instance %q: %w", instanceID, fleet.ErrNotFound)
	}
	c, err := d.cli.ContainerInspect(ctx, ContainerName(instanceID))
	if cerrdefs.IsNotFound(err) {
		return c, fmt.Errorf("instance %s: %w", instanceID, fleet.ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("inspect instance %s: %w", instanceID, err)
	}
	if c.ContainerJSONBase == nil || c.Config == nil || !d.ours(c.Config.Labels, instanceID) {
		return c, fmt.Errorf("instance %s: container %s is not this hub's: %w", instanceID, ContainerName(instanceID), fleet.ErrNotFound)
	}
	return c, nil
}

func (d *Driver) ours(labels map[string]string, instanceID string) bool {
	return labels[LabelManaged] == "true" && labels[LabelHub] == d.cfg.HubID && labels[LabelInstance] == instanceID
}

func (d *Driver) toRuntime(c container.InspectResponse) fleet.Runtime {
	id := c.Config.Labels[LabelInstance]
	port, _ := strconv.Atoi(c.Config.Labels[LabelPort])
	rt := fleet.Runtime{
		InstanceID: id, RuntimeID: c.ID, Port: port, Image: c.Config.Image,
		State: fleet.StateUnknown, Restarts: d.loadState(id).Restarts,
	}
	if s := c.State; s != nil {
		rt.State = dockerState(s.Status)
		rt.ExitCode = s.ExitCode
		if t := parseTime(s.StartedAt); t.After(epoch) {
			rt.StartedAt = t
		}
	}
	return rt
}

// dockerState maps Docker's container status to a fleet State.
func dockerState(s container.ContainerState) fleet.State {
	switch s {
	case container.StateCreated:
		return fleet.StateCreated
	case container.StateRunning:
		return fleet.StateRunning
	case container.StateExited:
		return fleet.StateExited
	case container.StateDead, container.StateRemoving:
		return fleet.StateDead
	}
	return fleet.StateUnknown // paused, restarting
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// List returns the runtimes of every container labelled as managed by this
// hub, running or not, sorted by instance id.
func (d *Driver) List(ctx context.Context) ([]fleet.Runtime, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{
		All: true,
		Filters: filters.NewArgs(
			filters.Arg("label", LabelManaged+"=true"),
			filters.Arg("label", LabelHub+"="+d.cfg.HubID),
		),
	})
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := make([]fleet.Runtime, 0, len(list))
	for _, s := range list {
		id := s.Labels[LabelInstance]
		c, err := d.cli.ContainerInspect(ctx, s.ID)
		if cerrdefs.IsNotFound(err) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("list instances: inspect %s: %w", id, err)
		}
		if c.ContainerJSONBase == nil || c.Config == nil || !d.ours(c.Config.Labels, id) {
			continue
		}
		out = append(out, d.toRuntime(c))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstanceID < out[j].InstanceID })
	return out, nil
}
