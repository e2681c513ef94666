package deploy

import (
	"testing"

	"github.com/redforge/controltower/hub/catalog"
)

type aclRows map[string]catalog.Instance

func (r aclRows) Instance(id string) (catalog.Instance, error) {
	i, ok := r[id]
	if !ok {
		return i, catalog.ErrNotFound
	}
	return i, nil
}

func (r aclRows) InstanceFlows(id string) (catalog.Flows, error) {
	if id == "r1" {
		doc := []byte(`[{"id":"b","type":"mqtt-broker","broker":"redforge-hub"},
{"id":"i","type":"mqtt in","broker":"b","topic":"sensors/+/temp"},
{"id":"o","type":"mqtt out","broker":"b","topic":"alerts/${REDFORGE_LOGICAL}"},
{"id":"x","type":"mqtt out","broker":"elsewhere","topic":"#"}]`)
		return catalog.Flows{InstanceID: id, Doc: doc, SHA: catalog.FlowsSHA(doc)}, nil
	}
	return catalog.Flows{}, catalog.ErrNotFound
}

// TestRuntimeTopicRules: a runtime reads and writes its own row's topics
// and the ones its flows declare on the hub broker, and nothing else.
func TestRuntimeTopicRules(t *testing.T) {
	rows := aclRows{"r1": {ID: "r1", Name: "app"}, "r2": {ID: "r2", Name: "other.1234abcd"}}
	a := NewBrokerAuth(nil, rows)
	for _, c := range []struct {
		user, topic string
		write, ok   bool
	}{
		{"r1", "app/control", false, true},
		{"r1", "app/in/#", false, true},
		{"r1", "$share/app/app/in/#", false, true},
		{"r1", "app/in/orders/1", false, true},
		{"r1", "app/checkpoints/replay", false, true},
		{"r1", "app/control/ack", true, true},
		{"r1", "redforge/out/app", true, true},
		{"r1", "sensors/+/temp", false, true}, // declared mqtt in
		{"r1", "sensors/kitchen/temp", false, true},
		{"r1", "alerts/app", true, true}, // declared mqtt out, substituted
		{"r1", "#", false, false},
		{"r1", "app/#", false, false}, // reading all of its namespace is more than its rules
		{"r1", "+/control", false, false},
		{"r1", "other.1234abcd/control", false, false},
		{"r1", "other.1234abcd/in/x", true, false},
		{"r1", "$share/other.1234abcd/other.1234abcd/in/#", false, false},
		{"r1", "$share/app/other.1234abcd/in/#", false, false},
		{"r1", "$SYS/broker/clients", false, false},
		{"r1", "sensors/#", false, false},
		{"r1", "redforge/out/other", true, false},
		{"r2", "other.1234abcd/in/#", false, true},
		{"r2", "redforge/out/other", true, true},
		{"r2", "app/control", false, false},
		{"nobody", "app/control", false, false},
		{"", "app/control", false, false},
	} {
		if got := a.Allow(c.user, c.topic, c.write); got != c.ok {
			t.Errorf("Allow(%s, %q, write=%v) = %v, want %v", c.user, c.topic, c.write, got, c.ok)
		}
	}
}
