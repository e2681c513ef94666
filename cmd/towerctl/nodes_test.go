package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

const cliFlowV1 = `[{"id":"t","type":"tab","label":"cli"},
 {"id":"in","type":"http in","z":"t","url":"/hello","method":"get","wires":[["set"]]},
 {"id":"set","type":"change","z":"t","name":"reply","rules":[{"t":"set","p":"payload","pt":"msg","to":"v1","tot":"str"}],"wires":[["out"]]},
 {"id":"out","type":"http response","z":"t","wires":[]}]`

const cliFlowV2 = `[{"id":"t","type":"tab","label":"cli"},
 {"id":"in","type":"http in","z":"t","url":"/hello","method":"get","wires":[["set"]]},
 {"id":"set","type":"change","z":"t","name":"reply","rules":[{"t":"set","p":"payload","pt":"msg","to":"v2","tot":"str"}],"wires":[["out"]]},
 {"id":"out","type":"http response","z":"t","wires":[]},
 {"id":"dbg","type":"debug","z":"t","name":"watch","wires":[]}]`

// TestTowerctlNodesAndSnapshots: towerctl installs a node package from a
// tarball (no registry reachable) with --wait, lists it, refuses a
// package the policy denies, takes a snapshot, shows how the instance
// moved on from it, and rolls back to it.
func TestTowerctlNodesAndSnapshots(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) { c.NPMRegistry = "http://127.0.0.1:9/" })
	session := filepath.Join(t.TempDir(), "session.json")
	env := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	must := func(want string, args ...string) string {
		t.Helper()
		code, out := run(t, h, session, env, args...)
		if code != 0 || !strings.Contains(out, want) {
			t.Fatalf("towerctl %s = %d, want %q:\n%s", strings.Join(args, " "), code, want, out)
		}
		return out
	}
	must("", "instances", "create", "cli-nodes")
	must("", "instances", "flows", "deploy", "cli-nodes", write("v1.json", cliFlowV1))

	pkg := testenv.NodePackage{Name: "node-red-contrib-cli", Version: "1.2.3", Type: "cli-node", Reply: "from the cli"}
	tgz := write("pkg.tgz", string(pkg.Tarball(t)))
	out := must("succeeded", "nodes", "install", "cli-nodes", "--tarball", tgz, "--wait", "--rollback-window", "0s")
	if !strings.Contains(out, "smoke nodes  ok") {
		t.Errorf("install output lacks the nodes smoke test:\n%s", out)
	}
	must("node-red-contrib-cli  1.2.3", "nodes", "list", "cli-nodes")
	must("deny node-red-contrib-evil*", "nodes", "policy", "set", "--deny", "node-red-contrib-evil*")
	if code, out := run(t, h, session, env, "nodes", "install", "cli-nodes", "node-red-contrib-evil-twin@1.0.0"); code != 1 || !strings.Contains(out, "deny-list (node-red-contrib-evil*)") {
		t.Errorf("denied install = %d:\n%s", code, out)
	}

	out = must("snapshot ", "snapshots", "create", "cli-nodes", "--name", "v1 with the cli node")
	id := strings.Fields(out)[1]
	must("", "instances", "flows", "deploy", "cli-nodes", write("v2.json", cliFlowV2))
	out = must("1 nodes added, 1 changed, 0 removed", "snapshots", "compare", "cli-nodes", id)
	for _, want := range []string{"+ debug", "watch", "~ change", "reply", "[rules]"} {
		if !strings.Contains(out, want) {
			t.Errorf("compare output lacks %q:\n%s", want, out)
		}
	}
	must("v1 with the cli node", "snapshots", "list", "cli-nodes")
	must("succeeded", "snapshots", "rollback", "cli-nodes", id, "--wait", "--rollback-window", "0s")
	must("0 nodes added, 0 changed, 0 removed", "snapshots", "compare", "cli-nodes", id)
}
