package fleettest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

// ProbeRequest is what an isolation probe flow tries from inside a
// runtime, as an OPERATOR's flow could.
type ProbeRequest struct {
	Read  []string // files to read
	List  []string // dirs to list
	Write []string // files to create
	// Shell, when set, is a command an exec node runs through the shell
	// (GET /exec answers its stdout); images without a shell leave it
	// empty.
	Shell string
}

// ProbeResult is what the probe's function node saw of its own process
// (from /proc/self/status and /proc/self/mounts) and of each path:
// "ok:<first bytes>" or "error:<errno name>".
type ProbeResult struct {
	UID        int               `json:"uid"`
	CapEff     string            `json:"capEff"`     // effective capabilities, hex
	CapBnd     string            `json:"capBnd"`     // bounding set, hex
	NoNewPrivs string            `json:"noNewPrivs"` // "1" when set
	RootMount  string            `json:"rootMount"`  // mount options of / as the process sees it
	Paths      map[string]string `json:"paths"`
	Shell      string            `json:"-"` // stdout of the shell command
}

// Denied reports whether op ("read", "list", "write") on path failed.
func (r ProbeResult) Denied(op, path string) bool {
	return strings.HasPrefix(r.Paths[op+" "+path], "error:")
}

// probeFunc is the function node's body; P is the request.
const probeFunc = `const out = {uid: -1, capEff: "", capBnd: "", noNewPrivs: "", rootMount: "", paths: {}};
const st = fs.readFileSync("/proc/self/status", "utf8");
const field = (k) => { const m = new RegExp("^" + k + ":\\s+(\\S+)", "m").exec(st); return m ? m[1] : ""; };
out.uid = Number(field("Uid")); out.capEff = field("CapEff"); out.capBnd = field("CapBnd"); out.noNewPrivs = field("NoNewPrivs");
for (const line of fs.readFileSync("/proc/self/mounts", "utf8").split("\n")) {
  const f = line.split(" ");
  if (f[1] === "/") out.rootMount = f[3];
}
const attempt = (f) => { try { return "ok:" + String(f()).slice(0, 200); } catch (e) { return "error:" + (e.code || e.message); } };
for (const p of P.Read || []) out.paths["read " + p] = attempt(() => fs.readFileSync(p, "utf8"));
for (const p of P.List || []) out.paths["list " + p] = attempt(() => fs.readdirSync(p).join(","));
for (const p of P.Write || []) out.paths["write " + p] = attempt(() => { fs.writeFileSync(p, "probe"); return "written"; });
msg.payload = out;
return msg;`

// ProbeFlow is a tab with GET /probe → a function node (with the fs
// module) that tries req's paths and answers a ProbeResult as JSON, and,
// when req.Shell is set, GET /exec → an exec node running it → its stdout.
func ProbeFlow(req ProbeRequest) []json.RawMessage {
	p, err := json.Marshal(req)
	if err != nil {
		panic(err)
	}
	nodes := []map[string]any{
		{"id": "ptab", "type": "tab", "label": "probe"},
		{"id": "pin", "type": "http in", "z": "ptab", "url": "/probe", "method": "get", "wires": [][]string{{"pfn"}}},
		{"id": "pfn", "type": "function", "z": "ptab", "func": "const P = " + string(p) + ";\n" + probeFunc, "outputs": 1,
			"libs": []map[string]string{{"var": "fs", "module": "fs"}}, "wires": [][]string{{"pout"}}},
		{"id": "pout", "type": "http response", "z": "ptab", "statusCode": "200", "wires": [][]string{}},
	}
	if req.Shell != "" {
		nodes = append(nodes,
			map[string]any{"id": "xin", "type": "http in", "z": "ptab", "url": "/exec", "method": "get", "wires": [][]string{{"xex"}}},
			map[string]any{"id": "xex", "type": "exec", "z": "ptab", "command": req.Shell, "addpay": "", "append": "",
				"useSpawn": "false", "timer": "30", "oldrc": false, "wires": [][]string{{"xout"}, {}, {}}},
			map[string]any{"id": "xout", "type": "http response", "z": "ptab", "statusCode": "200", "wires": [][]string{}},
		)
	}
	out := make([]json.RawMessage, len(nodes))
	for i, n := range nodes {
		out[i], _ = json.Marshal(n)
	}
	return out
}

// ParseProbe decodes GET /probe's answer.
func ParseProbe(body []byte) (ProbeResult, error) {
	var r ProbeResult
	if err := json.Unmarshal(body, &r); err != nil || r.Paths == nil {
		return r, fmt.Errorf("probe answered %.300q: %v", body, err)
	}
	return r, nil
}

// Probe deploys ProbeFlow(req) to the instance through its admin API and
// returns what the flow saw (GET /probe, and GET /exec for req.Shell).
func Probe(tb testing.TB, spec fleet.Spec, req ProbeRequest) ProbeResult {
	tb.Helper()
	if _, err := Client(tb, spec).DeployFlows(context.Background(), ProbeFlow(req), "", nodered.DeployFull); err != nil {
		tb.Fatalf("deploy the probe flow: %v", err)
	}
	var res ProbeResult
	testenv.WaitFor(tb, opTimeout, "GET /probe", func() error {
		code, body, err := get(baseURL(spec.Port) + "/probe")
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("GET /probe = %d %.300q", code, body)
		}
		res, err = ParseProbe([]byte(body))
		return err
	})
	if req.Shell != "" {
		code, body, err := get(baseURL(spec.Port) + "/exec")
		if err != nil || code != http.StatusOK {
			tb.Fatalf("GET /exec = %d %q %v", code, body, err)
		}
		res.Shell = body
	}
	return res
}

// PlantHubFiles puts files like a hub's into dataDir (raft/raft.db and
// hub.db holding the returned marker, 0600 in 0700 dirs, as a hub keeps
// them) and makes the dirs above dataDir traversable, so that only the
// data dir's own protection keeps a runtime out, as for a data dir under
// /var/lib.
func PlantHubFiles(tb testing.TB, dataDir string) (marker string) {
	tb.Helper()
	marker = "fleet-secret-" + randomHex(8)
	if err := os.MkdirAll(filepath.Join(dataDir, "raft"), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, f := range []string{"raft/raft.db", "hub.db"} {
		if err := os.WriteFile(filepath.Join(dataDir, f), []byte(marker+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(dataDir), 0o711); err != nil {
		tb.Fatal(err)
	}
	return marker
}
