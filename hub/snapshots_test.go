package hub_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// snapFlow is the plain flow plus a debug node and an http request node
// whose credentials (basic auth) are entered in the editor.
func snapFlow(version string) []map[string]any {
	var nodes []map[string]any
	_ = json.Unmarshal(plainFlow(version), &nodes)
	return append(nodes,
		map[string]any{"id": "sn-debug", "type": "debug", "z": "pf-tab", "name": "trace", "wires": []any{}},
		map[string]any{"id": "sn-req", "type": "http request", "z": "pf-tab", "name": "upstream", "method": "GET",
			"url": "http://127.0.0.1:9/", "authType": "basic", "wires": [][]string{}})
}

type comparison struct {
	Flows struct {
		Added, Changed, Removed []struct {
			ID, Type, Name string
			Fields         []string
		}
	} `json:"flows"`
	Settings []struct{ Setting, From, To string } `json:"settings"`
	Summary  string                               `json:"summary"`
}

func ids(ns []struct {
	ID, Type, Name string
	Fields         []string
}) string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID+"("+n.Type+")")
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// TestSnapshotCompareAndRollback: a snapshot keeps the flows, their node
// credentials (entered in the editor, never returned), the settings and
// the node set; comparing it with what runs later shows exactly the nodes
// added, changed and removed (and the settings that differ); rolling back
// to it is a blue-green deployment after which the instance runs the
// snapshot's flows with its credentials.
func TestSnapshotCompareAndRollback(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "snap", "env": map[string]string{"MODE": "a"}}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/snap/flows", snapFlow("v1"), 200, nil)
	// The credentials are entered in the editor: a deploy there carries
	// them; the runtime plugin reports them and the hub seals them.
	e := openEditor(t, h, h.AdminToken, "snap")
	testenv.WaitFor(t, time.Minute, "the editor", func() error {
		if code, body, _ := e.do(t, "GET", "/settings", nil, nil); code != 200 {
			return fmt.Errorf("%d %.200s", code, body)
		}
		return nil
	})
	nodes, rev := e.flows(t)
	for _, n := range nodes {
		if n["id"] == "sn-req" {
			n["credentials"] = map[string]any{"user": "svc", "password": "s3cret-upstream"}
		}
	}
	body, _ := json.Marshal(map[string]any{"flows": nodes, "rev": rev})
	if code, out, _ := e.do(t, "POST", "/flows", body, map[string]string{"Node-RED-Deployment-Type": "full"}); code != 200 {
		t.Fatalf("editor deploy with credentials = %d %s", code, out)
	}
	var view struct {
		ID             string `json:"id"`
		HasCredentials bool   `json:"has_credentials"`
		FlowNodes      int    `json:"flow_nodes"`
	}
	testenv.WaitFor(t, 30*time.Second, "the editor's credentials sealed in the catalog (a snapshot has them)", func() error {
		code, b := h.Do(t, "POST", "/api/instances/snap/snapshots", h.AdminToken, map[string]any{"name": "probe"})
		if code != 201 || json.Unmarshal(b, &view) != nil {
			return fmt.Errorf("%d %s", code, b)
		}
		h.JSON(t, "DELETE", "/api/instances/snap/snapshots/"+view.ID, nil, 204, nil)
		if !view.HasCredentials {
			return fmt.Errorf("no credentials yet")
		}
		return nil
	})

	h.JSON(t, "POST", "/api/instances/snap/snapshots", map[string]any{"name": "before the change", "description": "v1"}, 201, &view)
	before := view.ID
	if !view.HasCredentials || view.FlowNodes != 6 {
		t.Errorf("snapshot %+v: want credentials and 6 nodes", view)
	}
	if code, b := h.Do(t, "GET", "/api/instances/snap/snapshots/"+before, h.AdminToken, nil); code != 200 || strings.Contains(string(b), "s3cret-upstream") || strings.Contains(string(b), `"credentials"`) {
		t.Errorf("GET snapshot = %d, shows credentials? %.300s", code, b)
	}

	// Change one node, remove one, add one, and a setting.
	changed := snapFlow("v2")
	changed = append(changed[:4], changed[5:]...) // drop sn-debug
	changed = append(changed, map[string]any{"id": "sn-fn", "type": "function", "z": "pf-tab", "name": "new step", "func": "return msg;", "wires": [][]string{}})
	h.JSON(t, "PUT", "/api/instances/snap/flows", changed, 200, nil)
	h.JSON(t, "PATCH", "/api/instances/snap", map[string]any{"env": map[string]string{"MODE": "b"}}, 200, nil)

	var cmp comparison
	h.JSON(t, "GET", "/api/instances/snap/snapshots/"+before+"/compare", nil, 200, &cmp)
	t.Logf("compare with current: %s", cmp.Summary)
	if got := ids(cmp.Flows.Added); got != "sn-fn(function)" {
		t.Errorf("added %s, want sn-fn(function)", got)
	}
	if got := ids(cmp.Flows.Changed); got != "pf-set(change)" || strings.Join(cmp.Flows.Changed[0].Fields, ",") != "rules" {
		t.Errorf("changed %s %v, want pf-set(change) [rules]", got, cmp.Flows.Changed)
	}
	if got := ids(cmp.Flows.Removed); got != "sn-debug(debug)" || cmp.Flows.Removed[0].Name != "trace" {
		t.Errorf("removed %s, want sn-debug(debug) named trace", got)
	}
	if len(cmp.Settings) != 1 || cmp.Settings[0].Setting != "env.MODE" || cmp.Settings[0].From != "a" || cmp.Settings[0].To != "b" {
		t.Errorf("settings %+v, want env.MODE a → b", cmp.Settings)
	}
	h.JSON(t, "POST", "/api/instances/snap/snapshots", map[string]any{"name": "after"}, 201, &view)
	var between comparison
	h.JSON(t, "GET", "/api/instances/snap/snapshots/"+before+"/compare?with="+view.ID, nil, 200, &between)
	if ids(between.Flows.Added) != ids(cmp.Flows.Added) || ids(between.Flows.Changed) != ids(cmp.Flows.Changed) || ids(between.Flows.Removed) != ids(cmp.Flows.Removed) {
		t.Errorf("compare with the later snapshot %+v differs from compare with current %+v", between.Flows, cmp.Flows)
	}
	var list struct {
		Snapshots []struct{ Name string } `json:"snapshots"`
	}
	h.JSON(t, "GET", "/api/instances/snap/snapshots", nil, 200, &list)
	if len(list.Snapshots) != 2 || list.Snapshots[0].Name != "after" {
		t.Errorf("snapshots listed %+v, want after then before the change", list.Snapshots)
	}
	for _, bad := range []string{"/api/instances/snap/snapshots/nope/compare", "/api/instances/snap/snapshots/" + before + "/compare?with=nope"} {
		if code, b := h.Do(t, "GET", bad, h.AdminToken, nil); code != 404 {
			t.Errorf("GET %s = %d %s, want 404", bad, code, b)
		}
	}
	if code, b := h.Do(t, "POST", "/api/instances/snap/snapshots", h.AdminToken, map[string]any{"name": ""}); code != 400 || !strings.Contains(string(b), `"field":"name"`) {
		t.Errorf("unnamed snapshot = %d %s", code, b)
	}

	// Roll back to the snapshot: blue-green, then v1, the debug node and
	// the credentials are back, and so is the setting.
	var rb struct {
		Deployment bgDeployment `json:"deployment"`
	}
	h.JSON(t, "POST", "/api/instances/snap/snapshots/"+before+"/rollback", map[string]any{"rollback_window": "0s"}, 202, &rb)
	d := waitDeployment(t, h, rb.Deployment.ID)
	if d.Status != "succeeded" {
		t.Fatalf("rollback to the snapshot: %s %s", d.Status, d.Error)
	}
	if code, body, err := get(h.URL + "/i/snap/hello"); err != nil || !strings.Contains(body, "v1") {
		t.Errorf("after the rollback /hello = %d %s %v, want v1", code, body, err)
	}
	h.JSON(t, "GET", "/api/instances/snap/snapshots/"+before+"/compare", nil, 200, &cmp)
	if len(cmp.Flows.Added)+len(cmp.Flows.Changed)+len(cmp.Flows.Removed)+len(cmp.Settings) != 0 {
		t.Errorf("after rolling back to it, the snapshot still differs from what runs: %s", cmp.Summary)
	}
	e2 := openEditor(t, h, h.AdminToken, "snap")
	testenv.WaitFor(t, time.Minute, "the credentials in the new runtime", func() error {
		code, body, _ := e2.do(t, "GET", "/credentials/http-request/sn-req", nil, nil)
		if code != 200 || !strings.Contains(body, `"user":"svc"`) || !strings.Contains(body, `"has_password":true`) {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	code, ab := h.Do(t, "GET", "/api/audit?action=SNAPSHOT_ROLLED_BACK", h.AdminToken, nil)
	if code != 200 || !strings.Contains(string(ab), before) || strings.Contains(string(ab), "s3cret-upstream") {
		t.Errorf("SNAPSHOT_ROLLED_BACK audit: %d %.300s", code, ab)
	}
}
