package docker

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// NotifyExit implements fleet.ExitNotifier: it follows the daemon's
// "die" events of this hub's containers and calls fn with the instance id
// of each, re-subscribing (with backoff up to 5 s) when the stream breaks,
// until Close. Call it after Open.
func (d *Driver) NotifyExit(fn func(instanceID string)) {
	if d.cli == nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	d.mu.Lock()
	d.stopEvents = cancel
	d.mu.Unlock()
	go d.followExits(ctx, fn)
}

func (d *Driver) followExits(ctx context.Context, fn func(string)) {
	args := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)), filters.Arg("event", string(events.ActionDie)),
		filters.Arg("label", LabelManaged+"=true"), filters.Arg("label", LabelHub+"="+d.cfg.HubID))
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 5*time.Second) {
		msgs, errs := d.cli.Events(ctx, events.ListOptions{Filters: args})
	stream:
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-msgs:
				wait = 100 * time.Millisecond
				if id := m.Actor.Attributes[LabelInstance]; id != "" {
					fn(id)
				}
			case err := <-errs:
				d.log.Debug("docker events stream ended; re-subscribing", "error", err)
				break stream
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
