package hub_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/fleet/fleettest"
	"github.com/redforge/controltower/hub/fleet/process"
	"github.com/redforge/controltower/hub/fleet/sandbox"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestRuntimeIsolation is issue 13's probe through a real hub on the
// process driver: an OPERATOR deploys http in → exec (id -u; cat
// DATA_DIR/raft/raft.db; ls DATA_DIR; ls OTHER_USERDIR) and a function node
// with fs, and calls them through /i/{name}/. The runtime has its own uid
// (the hub here is root) and reads neither the hub's data dir nor the other
// instance's user dir.
func TestRuntimeIsolation(t *testing.T) {
	if os.Geteuid() != 0 && sandbox.LandlockABI() == 0 {
		t.Skip("neither root nor Landlock: runtimes cannot be confined here (the hub warns)")
	}
	h := hubtest.Start(t)
	dataDir := h.Config.DataDir
	// Only the data dir's own protection keeps runtimes out, as for a data
	// dir under /var/lib (the test's temp parent is 0700 otherwise).
	if err := os.Chmod(filepath.Dir(dataDir), 0o711); err != nil {
		t.Fatal(err)
	}
	operator := h.CreateUser(t, "isolation-op", "OPERATOR")
	ports := map[string]int{}
	for _, name := range []string{"attacker", "victim"} {
		if code, body := h.Do(t, http.MethodPost, "/api/instances", operator, map[string]any{"name": name}); code != http.StatusCreated {
			t.Fatalf("OPERATOR creates %s: %d %s", name, code, body)
		}
		testenv.WaitFor(t, 90*time.Second, name+" running", func() error {
			var inst instance
			h.JSON(t, http.MethodGet, "/api/instances/"+name, nil, http.StatusOK, &inst)
			if inst.Observed.Status != fleet.StatusRunning {
				return fmt.Errorf("%s is %s %s", name, inst.Observed.Status, inst.Observed.Message)
			}
			ports[name] = inst.Observed.Port
			return nil
		})
	}
	victimDir := ""
	rts, err := h.Driver.List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, rt := range rts {
		if rt.Port == ports["victim"] {
			victimDir = h.Driver.(*process.Driver).UserDir(rt.InstanceID)
		}
	}
	if victimDir == "" {
		t.Fatalf("no runtime of the victim on port %d among %+v", ports["victim"], rts)
	}
	raftDB := filepath.Join(dataDir, "raft", "raft.db")
	req := fleettest.ProbeRequest{
		Read:  []string{raftDB, filepath.Join(dataDir, "hub.db"), filepath.Join(victimDir, fleet.SettingsFile)},
		List:  []string{dataDir, filepath.Join(dataDir, "raft"), victimDir},
		Shell: fmt.Sprintf("id -u; cat %s 2>&1 | head -c 100; ls %s 2>&1; ls %s 2>&1; true", raftDB, dataDir, victimDir),
	}
	flows, err := json.Marshal(fleettest.ProbeFlow(req))
	if err != nil {
		t.Fatal(err)
	}
	if code, body := h.Do(t, http.MethodPut, "/api/instances/attacker/flows", operator, flows); code != http.StatusOK {
		t.Fatalf("OPERATOR deploys the probe: %d %s", code, body)
	}
	var res fleettest.ProbeResult
	testenv.WaitFor(t, time.Minute, "GET /i/attacker/probe", func() error {
		code, body := h.Do(t, http.MethodGet, "/i/attacker/probe", "", nil)
		if code != http.StatusOK {
			return fmt.Errorf("GET /i/attacker/probe = %d %.200s", code, body)
		}
		res, err = fleettest.ParseProbe(body)
		return err
	})
	code, shell := h.Do(t, http.MethodGet, "/i/attacker/exec", "", nil)
	if code != http.StatusOK {
		t.Fatalf("GET /i/attacker/exec = %d %s", code, shell)
	}
	t.Logf("exec node through /i/attacker/exec:\n%s\nfunction node: uid %d, %v", shell, res.UID, res.Paths)

	lines := strings.Split(strings.TrimSpace(string(shell)), "\n")
	if lines[0] != strconv.Itoa(res.UID) {
		t.Errorf("id -u = %q, the function node saw uid %d", lines[0], res.UID)
	}
	if os.Geteuid() == 0 && (res.UID == 0 || res.UID < process.DefaultUIDBase) {
		t.Errorf("the runtime of a root hub runs as uid %d, want its own from %d", res.UID, process.DefaultUIDBase)
	}
	if n := strings.Count(string(shell), "Permission denied"); n != 3 {
		t.Errorf("exec node: %d of cat raft.db, ls DATA_DIR, ls the victim's user dir were denied, want 3", n)
	}
	for _, leak := range []string{"hub.db", "raft", "settings.js"} {
		for _, line := range lines[1:] {
			if !strings.Contains(line, "Permission denied") && strings.Contains(line, leak) {
				t.Errorf("exec node listed %q: %q", leak, line)
			}
		}
	}
	for op, paths := range map[string][]string{"read": req.Read, "list": req.List} {
		for _, p := range paths {
			if !res.Denied(op, p) {
				t.Errorf("the runtime could %s %s: %.100q", op, p, res.Paths[op+" "+p])
			}
		}
	}
}
