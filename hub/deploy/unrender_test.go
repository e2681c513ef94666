package deploy

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
)

func decodeNodes(t *testing.T, raws []json.RawMessage) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, r := range raws {
		var n map[string]any
		if err := json.Unmarshal(r, &n); err != nil {
			t.Fatal(err)
		}
		out[n["id"].(string)] = n
	}
	return out
}

// TestUnrenderEditorDeploy: what a color row's runtime runs after an
// editor deploy comes back as a document any runtime can be given:
// untouched nodes exactly as the catalog had them, an edited function
// with its placeholders back, a new mqtt node on the hub bus with its
// topic in placeholder form, no credentials.
func TestUnrenderEditorDeploy(t *testing.T) {
	doc, err := os.ReadFile("../../packaging/nodered/flows/bluegreen-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	row := catalog.Instance{ID: "bg-1a2b3c4d", Name: "bg.1a2b3c4d"}
	creds := fleet.Creds{MQTTPassword: "bus-secret"}
	addr := "127.0.0.1:18830"
	running, err := Render(doc, row, creds, addr)
	if err != nil {
		t.Fatal(err)
	}
	// Unchanged: the document comes back node for node.
	back, err := Unrender(doc, row, creds, addr, running)
	if err != nil {
		t.Fatal(err)
	}
	var want []map[string]any
	_ = json.Unmarshal(doc, &want)
	got := decodeNodes(t, back)
	for _, w := range want {
		if g := got[w["id"].(string)]; !reflect.DeepEqual(g, w) {
			t.Errorf("node %s came back as %v, want %v", w["id"], g, w)
		}
	}
	// Edited in the editor: the work function changed (it shows the row's
	// name where the document had the placeholder), a new subscription
	// on the hub bus was added, and Node-RED returns no credentials.
	edited := decodeNodes(t, running)
	work := edited["bg-work"]
	work["func"] = strings.Replace(work["func"].(string), `version: "v1"`, `version: "v1-edited"`, 1)
	if !strings.Contains(work["func"].(string), "bg.1a2b3c4d") {
		t.Fatal("the rendered work function does not name the row; the test needs it to")
	}
	delete(edited["bg-broker"], "credentials")
	var list []json.RawMessage
	for _, n := range running {
		var m map[string]any
		_ = json.Unmarshal(n, &m)
		b, _ := json.Marshal(edited[m["id"].(string)])
		list = append(list, b)
	}
	list = append(list, json.RawMessage(`{"id":"new-in","type":"mqtt in","z":"bg-tab","topic":"bg.1a2b3c4d/in/extra","broker":"bg-broker","wires":[[]]}`))
	back, err = Unrender(doc, row, creds, addr, list)
	if err != nil {
		t.Fatal(err)
	}
	got = decodeNodes(t, back)
	if f := got["bg-work"]["func"].(string); !strings.Contains(f, "v1-edited") || strings.Contains(f, "bg.1a2b3c4d") || !strings.Contains(f, "${REDFORGE_INSTANCE}") {
		t.Errorf("edited work function: %q", f)
	}
	if b := got["bg-broker"]; b["broker"] != HubBroker || b["credentials"] != nil {
		t.Errorf("hub broker after the editor: %v", b)
	}
	if topic := got["new-in"]["topic"]; topic != "${REDFORGE_INSTANCE}/in/extra" {
		t.Errorf("new mqtt in topic %v, want ${REDFORGE_INSTANCE}/in/extra", topic)
	}
	if topic := got["bg-in"]["topic"]; topic != "${REDFORGE_INSTANCE}/in/#" {
		t.Errorf("input topic %v", topic)
	}
	// And the result renders for another row as the document would.
	other := catalog.Instance{ID: "bg-99999999", Name: "bg.99999999"}
	again, err := Render(mustJSON(t, back), other, creds, addr)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(mustJSON(t, again)); strings.Contains(s, "bg.1a2b3c4d") {
		t.Errorf("rendered for another row, the flows still name the first: %s", s)
	}
}

func TestInjectCredentials(t *testing.T) {
	nodes := []json.RawMessage{
		json.RawMessage(`{"id":"a","type":"http request"}`),
		json.RawMessage(`{"id":"b","type":"mqtt-broker","credentials":{"user":"row"}}`),
	}
	out, err := InjectCredentials(nodes, map[string]map[string]any{"a": {"password": "p"}, "b": {"user": "x"}, "gone": {"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	got := decodeNodes(t, out)
	if c, _ := got["a"]["credentials"].(map[string]any); c["password"] != "p" {
		t.Errorf("a: %v", got["a"])
	}
	if c, _ := got["b"]["credentials"].(map[string]any); c["user"] != "row" {
		t.Errorf("b kept the hub's credentials? %v", got["b"])
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
