package fleettest

import (
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
)

// testExitNotify: the driver tells of a runtime killed behind its back at
// once (fleet.ExitNotifier), which is how the manager sees it failed, and
// its "instance down" alert fires, without waiting for a health check.
func testExitNotify(t *testing.T, h Harness) {
	d := NewDriver(t, h, NewHubID(), t.TempDir())
	n, ok := d.(fleet.ExitNotifier)
	if !ok {
		t.Fatalf("the %s driver does not implement fleet.ExitNotifier", d.Name())
	}
	exits := make(chan string, 16)
	n.NotifyExit(func(id string) {
		select {
		case exits <- id:
		default:
		}
	})
	ctx := ctxT(t)
	spec := NewSpec(t, "exit")
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	rt := mustInspect(t, d, spec.InstanceID, fleet.StateRunning)
	killed := time.Now()
	h.Kill(t, rt)
	deadline := time.After(5 * time.Second)
	for {
		select {
		case id := <-exits:
			if id != spec.InstanceID {
				continue
			}
			t.Logf("exit of %s told %s after the kill", id, time.Since(killed).Round(time.Millisecond))
			return
		case <-deadline:
			t.Fatal("no exit notification within 5 s of the kill")
		}
	}
}
