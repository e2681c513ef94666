package hub

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/nodered"
)

// DemoInstance is the instance --demo creates on a hub with no instances.
const DemoInstance = "demo"

// demoFlows answer GET /hello on the demo instance and tick every 10 s.
const demoFlows = `[
 {"id":"demo-tab","type":"tab","label":"RedForge demo"},
 {"id":"demo-in","type":"http in","z":"demo-tab","name":"GET /hello","url":"/hello","method":"get","wires":[["demo-fn"]]},
 {"id":"demo-fn","type":"function","z":"demo-tab","name":"greet","func":"msg.payload = {hello: 'from Node-RED on RedForge', time: new Date().toISOString()};\nreturn msg;","outputs":1,"wires":[["demo-out"]]},
 {"id":"demo-out","type":"http response","z":"demo-tab","statusCode":"200","wires":[]},
 {"id":"demo-tick","type":"inject","z":"demo-tab","name":"tick","repeat":"10","once":true,"payload":"","payloadType":"date","wires":[["demo-debug"]]},
 {"id":"demo-debug","type":"debug","z":"demo-tab","name":"tick","active":true,"tosidebar":true,"wires":[]}
]`

// startDemo creates the demo instance when the fleet is empty, waits until
// it runs and deploys the demo flows, so a newcomer sees a live fleet of
// one. It gives up quietly when ctx ends.
func (h *Hub) startDemo(ctx context.Context) {
	if len(h.State.Instances()) > 0 {
		return
	}
	now := time.Now().UTC()
	inst := catalog.Instance{ID: uuid.NewString(), Name: DemoInstance, Region: h.Config.Region,
		Placement: catalog.PlacementPinned, Driver: h.Driver.Name(), DesiredState: catalog.DesiredRunning,
		Resources: catalog.Resources{MemoryMB: 256}, CreatedAt: now, UpdatedAt: now}
	if _, err := h.Raft.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(0))); err != nil {
		if !errors.Is(err, catalog.ErrConflict) {
			h.Logger.Warn("demo instance", "error", err)
		}
		return
	}
	h.Fleet.Kick()
	nodes, err := nodered.ValidateFlows([]byte(demoFlows))
	if err != nil {
		h.Logger.Error("demo flows are invalid", "error", err)
		return
	}
	for {
		cur, err := h.State.Instance(inst.ID)
		if err != nil {
			return
		}
		if cur.Observed.Status == fleet.StatusRunning {
			c, err := h.Fleet.Client(cur)
			if err == nil {
				var rev string
				if rev, err = c.DeployFlows(ctx, nodes, "", nodered.DeployFull); err == nil {
					cur.FlowsVersion = rev
					_, _ = h.Raft.Apply(ctx, catalog.UpsertInstance(cur, catalog.IfIndex(cur.ModifyIndex)))
					h.Logger.Info("demo instance running", "url", h.URL()+"/api/instances/"+DemoInstance,
						"hello", "http://127.0.0.1:"+strconv.Itoa(cur.Observed.Port)+"/hello")
					return
				}
			}
			h.Logger.Warn("demo flows", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}
