package metrics

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/testenv"
)

// nodesScript drives packaging/nodered/runtime's metrics registry (what
// the workflow and LLM usage nodes write to) with a stand-in for
// Node-RED's RED object, and prints its exposition.
const nodesScript = `
const RED = { httpAdmin: { get() {} }, auth: { needsPermission() { return (q, r, n) => n(); } }, log: { warn() {} } };
const m = require(process.argv[1]).init(RED);
let t = 1000; Date.now = () => t;
m.prices = { currency: 'USD', prices: [{ model: 'gpt-4o', prompt_per_million: 2.5, completion_per_million: 10 }] };
m.start('a', 'triage', 60); t += 700; m.finish('a', 'ok');
m.start('b', 'triage', 60); t += 3000; m.finish('b', 'error');
m.start('late', 'triage', 1); t += 2000; m.sweep();            // timed out: an error
m.start('open', 'triage', 60);                                  // still in flight
for (let i = 0; i < 120; i++) { m.start('f' + i, 'flow\n' + i, 60); m.finish('f' + i, 'ok'); }
m.llm('gpt-4o-2024-08-06', 1000, 500);
m.llm('x'.repeat(200) + '"}\n', 10, 10);
for (let i = 0; i < 40; i++) m.llm('model-' + i, 1, 1);
m.loop = null;
process.stdout.write(m.expose());
`

// TestRuntimeNodesAgreeWithTheHub: what the runtime nodes serve parses
// with ParseUsage into what they recorded: durations in the right
// buckets, a workflow past its timeout counted as an error, the flows and
// models past the caps under _other, label values sanitized the same way,
// and cost from the hub's price table with prefix matching.
func TestRuntimeNodesAgreeWithTheHub(t *testing.T) {
	node := testenv.NodeREDPaths(t).Node
	lib, err := filepath.Abs("../../packaging/nodered/runtime/nodes/lib/agent-metrics.js")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "-e", nodesScript, lib)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s", err, errb.String())
	}
	u, err := ParseUsage(&out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	tri := u.Flows["triage"]
	if tri == nil || tri.Count != 3 || tri.Errors != 2 || tri.Active != 1 {
		t.Fatalf("triage = %+v", tri)
	}
	if tri.Buckets[2] != 1 || tri.Buckets[4] != 3 { // 0.7 s ≤ 1; 3 s and the 2 s timeout ≤ 5
		t.Errorf("triage buckets = %v", tri.Buckets)
	}
	if len(u.Flows) != MaxFlowsPerRuntime+1 || u.Flows[OtherLabel] == nil {
		t.Errorf("%d flows kept (want %d and _other)", len(u.Flows), MaxFlowsPerRuntime)
	}
	for name := range u.Flows {
		if strings.ContainsAny(name, "\n") || len(name) > MaxLabelValueBytes {
			t.Errorf("flow %q not sanitized", name)
		}
	}
	if g := u.Models["gpt-4o-2024-08-06"]; g == nil || g.CostUSD != (1000*2.5+500*10)/1e6 {
		t.Errorf("gpt-4o-2024-08-06 = %+v, want priced as gpt-4o", g)
	}
	if len(u.Models) != MaxModelsPerRuntime+1 || u.Models[OtherLabel] == nil {
		t.Errorf("%d models kept (want %d and _other)", len(u.Models), MaxModelsPerRuntime)
	}
	for name := range u.Models {
		if name != Sanitize(name) {
			t.Errorf("model %q not sanitized as the hub does", name)
		}
	}
}
