package hub_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// noRegistry is an npm registry address where nothing answers: the hubs
// of these tests have no network for node packages.
const noRegistry = "http://127.0.0.1:9/"

// uploadTarball posts a package tarball to the hub as token.
func uploadTarball(t *testing.T, h *hubtest.Hub, token string, tgz []byte) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("POST", h.URL+"/api/nodes/tarballs", bytes.NewReader(tgz))
	req.Header.Set("Content-Type", "application/gzip")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &out)
	if out == nil {
		out = map[string]any{"body": string(b)}
	}
	return resp.StatusCode, out
}

// waitDeployment waits until the deployment ends and returns it.
func waitDeployment(t *testing.T, h *hubtest.Hub, id string) bgDeployment {
	t.Helper()
	var d bgDeployment
	testenv.WaitFor(t, 3*time.Minute, "deployment "+id+" to end", func() error {
		h.JSON(t, "GET", "/api/deployments/"+id, nil, 200, &d)
		switch d.Status {
		case "succeeded", "rolled_back", "failed":
			return nil
		}
		return fmt.Errorf("%s %s %d%%", d.Status, d.Phase, d.Progress)
	})
	t.Logf("deployment %s: %s %s smoke %s", id, d.Status, d.Error, d.Smoke)
	return d
}

// installNode posts a node install and waits for its deployment.
func installNode(t *testing.T, h *hubtest.Hub, instance string, body map[string]any) bgDeployment {
	t.Helper()
	var res struct {
		Deployment bgDeployment `json:"deployment"`
	}
	h.JSON(t, "POST", "/api/instances/"+instance+"/nodes", body, 202, &res)
	return waitDeployment(t, h, res.Deployment.ID)
}

// greetFlow uses the greet node of node-red-contrib-greet: GET /greet →
// greet → http response.
const greetFlow = `[
 {"id":"gr-tab","type":"tab","label":"greet"},
 {"id":"gr-in","type":"http in","z":"gr-tab","url":"/greet","method":"get","wires":[["gr-node"]]},
 {"id":"gr-node","type":"greet","z":"gr-tab","name":"","wires":[["gr-out"]]},
 {"id":"gr-out","type":"http response","z":"gr-tab","wires":[]}
]`

// TestNodesInstallOffline: on a hub that reaches no npm registry, a node
// package uploaded as a tarball installs blue-green into the instance, and
// its node works in a deployed flow; a new replica gets it too. A package
// the cluster's deny-list (or allow-list) refuses is refused naming the
// list; a package that does not load, or cannot be installed, rolls back
// and the instance keeps its node set.
func TestNodesInstallOffline(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.NPMRegistry = noRegistry })
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "nod"}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/nod/flows", plainFlow("v1"), 200, nil)
	op := h.CreateUser(t, "oper", "OPERATOR")

	greet := testenv.NodePackage{Name: "node-red-contrib-greet", Version: "1.0.0", Type: "greet", Reply: "hello from an uploaded node"}
	code, up := uploadTarball(t, h, op, greet.Tarball(t))
	if code != 201 || up["name"] != greet.Name || up["version"] != "1.0.0" {
		t.Fatalf("upload = %d %v", code, up)
	}
	if code, bad := uploadTarball(t, h, op, []byte("not a tarball")); code != 400 || bad["error"] == nil {
		t.Errorf("upload of garbage = %d %v, want 400", code, bad)
	}
	d := installNode(t, h, "nod", map[string]any{"name": greet.Name, "version": "1.0.0", "tarball": up["sha256"], "rollback_window": "0s"})
	if d.Status != "succeeded" || !strings.Contains(string(d.Smoke), `"name":"nodes","ok":true`) {
		t.Fatalf("install deployment: %s %s %s", d.Status, d.Error, d.Smoke)
	}
	var list struct {
		Nodes []struct{ Name, Version, Source string } `json:"nodes"`
	}
	h.JSON(t, "GET", "/api/instances/nod/nodes", nil, 200, &list)
	if len(list.Nodes) != 1 || list.Nodes[0].Name != greet.Name || list.Nodes[0].Source != "upload" {
		t.Fatalf("node set after the install: %+v", list.Nodes)
	}
	h.JSON(t, "PUT", "/api/instances/nod/flows", json.RawMessage(greetFlow), 200, nil)
	testenv.WaitFor(t, time.Minute, "the uploaded node answering in a deployed flow", func() error {
		code, body, err := get(h.URL + "/i/nod/greet")
		if err != nil || code != 200 || !strings.Contains(body, greet.Reply) {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
	// A replica added later runs the node set too.
	h.JSON(t, "POST", "/api/instances/nod/scale", map[string]any{"replicas": 2}, 202, nil)
	testenv.WaitFor(t, 2*time.Minute, "both replicas answering /greet", func() error {
		var v struct {
			Allocations []struct {
				Address, Status string
			} `json:"allocations"`
		}
		h.JSON(t, "GET", "/api/instances/nod", nil, 200, &v)
		if len(v.Allocations) != 2 {
			return fmt.Errorf("%d replicas", len(v.Allocations))
		}
		for _, a := range v.Allocations {
			code, body, err := get("http://" + a.Address + "/greet")
			if err != nil || code != 200 || !strings.Contains(body, greet.Reply) {
				return fmt.Errorf("replica at %s (%s): %d %s %v", a.Address, a.Status, code, body, err)
			}
		}
		return nil
	})

	// The cluster's lists: only ADMIN sets them; a refused package is
	// refused naming the list.
	if code, body := h.Do(t, "PUT", "/api/nodes/policy", op, map[string]any{"deny": []string{"x"}}); code != 403 {
		t.Errorf("OPERATOR setting the node policy = %d %s, want 403", code, body)
	}
	h.JSON(t, "PUT", "/api/nodes/policy", map[string]any{"deny": []string{"node-red-contrib-bad*"}}, 200, nil)
	code, body := h.Do(t, "POST", "/api/instances/nod/nodes", op, map[string]any{"name": "node-red-contrib-bad-idea", "version": "1.0.0"})
	if code != 403 || !strings.Contains(string(body), "deny-list (node-red-contrib-bad*)") {
		t.Errorf("a denied package = %d %s, want 403 naming the deny-list", code, body)
	}
	h.JSON(t, "PUT", "/api/nodes/policy", map[string]any{"allow": []string{"node-red-contrib-*", "@acme/*"}}, 200, nil)
	code, body = h.Do(t, "POST", "/api/instances/nod/nodes", op, map[string]any{"name": "left-pad", "version": "1.3.0"})
	if code != 403 || !strings.Contains(string(body), "allow-list (node-red-contrib-*, @acme/*)") {
		t.Errorf("a package off the allow-list = %d %s, want 403 naming the allow-list", code, body)
	}
	if code, body := h.Do(t, "PUT", "/api/nodes/policy", h.AdminToken, map[string]any{"deny": []string{"[oops"}}); code != 400 || !strings.Contains(string(body), "deny[0]") {
		t.Errorf("a bad pattern = %d %s, want 400 naming deny[0]", code, body)
	}
	for _, bad := range []map[string]any{{"name": "Bad Name", "version": "1.0.0"}, {"name": "node-red-contrib-x", "version": "^1.0.0"}} {
		if code, body := h.Do(t, "POST", "/api/instances/nod/nodes", op, bad); code != 400 {
			t.Errorf("install %v = %d %s, want 400", bad, code, body)
		}
	}

	// A package whose node does not load rolls back.
	broken := testenv.NodePackage{Name: "node-red-contrib-broken", Version: "0.1.0", Type: "broken", Reply: "x", Require: "no-such-module-anywhere"}
	_, bup := uploadTarball(t, h, op, broken.Tarball(t))
	d = installNode(t, h, "nod", map[string]any{"name": broken.Name, "version": "0.1.0", "tarball": bup["sha256"]})
	if d.Status != "rolled_back" || !strings.Contains(d.Error, "node-red-contrib-broken") {
		t.Errorf("installing a package that does not load: %s %q, want rolled back naming it", d.Status, d.Error)
	}
	// A registry package cannot be installed without a registry: rolls back.
	d = installNode(t, h, "nod", map[string]any{"name": "node-red-contrib-unreachable", "version": "1.0.0"})
	if d.Status != "rolled_back" || !strings.Contains(d.Error, "npm install") {
		t.Errorf("installing from an unreachable registry: %s %q, want rolled back with npm's error", d.Status, d.Error)
	}
	h.JSON(t, "GET", "/api/instances/nod/nodes", nil, 200, &list)
	if len(list.Nodes) != 1 || list.Nodes[0].Name != greet.Name {
		t.Errorf("node set after the failed installs: %+v, want greet only", list.Nodes)
	}
	if code, body, err := get(h.URL + "/i/nod/greet"); err != nil || code != 200 || !strings.Contains(body, greet.Reply) {
		t.Errorf("after the rollbacks /greet = %d %s %v", code, body, err)
	}
	code, body = h.Do(t, "GET", "/api/audit?action=NODES_INSTALLED", h.AdminToken, nil)
	if code != 200 || !strings.Contains(string(body), greet.Name) || !strings.Contains(string(body), `"username":"admin"`) {
		t.Errorf("NODES_INSTALLED audit: %d %.300s", code, body)
	}
}

// TestNodesInstallDocker: with the docker driver (read-only root, the
// user dir mounted at /data), an uploaded node package is installed into
// the container's user dir and its node works in a deployed flow.
func TestNodesInstallDocker(t *testing.T) {
	h := hubtest.Start(t, withDriver(t, "docker"), func(c *hub.Config) { c.NPMRegistry = noRegistry })
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "dnod"}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/dnod/flows", plainFlow("v1"), 200, nil)
	greet := testenv.NodePackage{Name: "node-red-contrib-greet", Version: "1.0.1", Type: "greet", Reply: "hello from a container"}
	code, up := uploadTarball(t, h, h.AdminToken, greet.Tarball(t))
	if code != 201 {
		t.Fatalf("upload = %d %v", code, up)
	}
	d := installNode(t, h, "dnod", map[string]any{"name": greet.Name, "version": greet.Version, "tarball": up["sha256"], "rollback_window": "0s"})
	if d.Status != "succeeded" {
		t.Fatalf("install deployment: %s %s %s", d.Status, d.Error, d.Smoke)
	}
	h.JSON(t, "PUT", "/api/instances/dnod/flows", json.RawMessage(greetFlow), 200, nil)
	testenv.WaitFor(t, time.Minute, "the uploaded node answering in a container", func() error {
		code, body, err := get(h.URL + "/i/dnod/greet")
		if err != nil || code != 200 || !strings.Contains(body, greet.Reply) {
			return fmt.Errorf("%d %s %v", code, body, err)
		}
		return nil
	})
}
