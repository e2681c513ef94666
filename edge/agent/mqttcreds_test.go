package agent

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestInjectMQTTCredentials (issue 13.6): mqtt-broker nodes pointing at the
// edge's broker get their per-flow credential; a node pointing at another
// broker or port gets none, so no edge credential leaves the edge.
func TestInjectMQTTCredentials(t *testing.T) {
	flows := []json.RawMessage{
		json.RawMessage(`{"id":"t1","type":"tab"}`),
		json.RawMessage(`{"id":"b1","type":"mqtt-broker","broker":"localhost","port":"1883"}`),
		json.RawMessage(`{"id":"b2","type":"mqtt-broker","broker":"mqtt://127.0.0.1:1883"}`),
		json.RawMessage(`{"id":"b3","type":"mqtt-broker","broker":"broker.example.com","port":"1883"}`),
		json.RawMessage(`{"id":"b4","type":"mqtt-broker","broker":"localhost","port":1884}`),
		json.RawMessage(`{"id":"o1","type":"mqtt out","broker":"b1","topic":"redforge/v1/audit"}`),
	}
	cred := func(id string) (string, string) { return "flow:" + id, "pw-" + id }
	out, err := InjectMQTTCredentials(flows, []string{"localhost", "127.0.0.1", "::1"}, "1883", cred)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"b1": "pw-b1", "b2": "pw-b2"}
	for _, raw := range out {
		var n struct {
			ID          string            `json:"id"`
			Credentials map[string]string `json:"credentials"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			t.Fatal(err)
		}
		if pw := want[n.ID]; n.Credentials["password"] != pw || (pw != "" && n.Credentials["user"] != "flow:"+n.ID) {
			t.Errorf("node %s credentials %v, want password %q", n.ID, n.Credentials, pw)
		}
	}
	if !strings.Contains(string(out[5]), `"topic":"redforge/v1/audit"`) {
		t.Errorf("another node changed: %s", out[5])
	}
}
