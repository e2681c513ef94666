package hub

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/catalog"
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

// startDemo creates the demo instance with its flows when the fleet is
// empty, so a newcomer sees a live fleet of one; the scheduler places it
// and the fleet deploys the flows when it runs.
func (h *Hub) startDemo(ctx context.Context) {
	if len(h.State.Instances()) > 0 {
		return
	}
	nodes, err := nodered.ValidateFlows([]byte(demoFlows))
	if err != nil {
		h.Logger.Error("demo flows are invalid", "error", err)
		return
	}
	doc, _ := json.Marshal(nodes)
	now := time.Now().UTC()
	inst := catalog.Instance{ID: uuid.NewString(), Name: DemoInstance, Region: h.Config.Region,
		Placement: catalog.PlacementPinned, Driver: h.Driver.Name(), DesiredState: catalog.DesiredRunning, Replicas: 1,
		Resources: catalog.Resources{MemoryMB: 256}, FlowsVersion: catalog.FlowsSHA(doc)[:12], CreatedAt: now, UpdatedAt: now}
	if _, err := h.Instances.Create(ctx, inst); err != nil {
		if !errors.Is(err, catalog.ErrConflict) {
			h.Logger.Warn("demo instance", "error", err)
		}
		return
	}
	if _, err := h.Raft.Apply(ctx, catalog.PutFlows(catalog.Flows{InstanceID: inst.ID, Doc: doc, SHA: catalog.FlowsSHA(doc),
		By: "demo", At: now})); err != nil {
		h.Logger.Warn("demo flows", "error", err)
		return
	}
	h.Logger.Info("demo instance created", "url", h.URL()+"/api/instances/"+DemoInstance, "hello", h.URL()+"/i/"+DemoInstance+"/hello")
}
