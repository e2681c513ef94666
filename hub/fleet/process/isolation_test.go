package process_test

import (
	"context"
	"fmt"
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
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

// TestIsolation is the exec probe of issue 13: an OPERATOR's flow (a
// function node with fs, and an exec node running a shell) in instance A
// tries to read the hub's data dir and instance B's user dir. As root the
// runtime has its own uid (and Landlock on top where the kernel has it);
// with SameUser, the path of a hub that cannot switch users, Landlock alone
// keeps it out.
func TestIsolation(t *testing.T) {
	t.Run("OwnUID", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("runtimes get their own uids only when the hub is root")
		}
		testIsolation(t, false)
	})
	t.Run("LandlockOnly", func(t *testing.T) {
		if sandbox.LandlockABI() == 0 {
			t.Skip("this kernel offers no Landlock")
		}
		testIsolation(t, true)
	})
}

func testIsolation(t *testing.T, sameUser bool) {
	dataDir := t.TempDir()
	marker := fleettest.PlantHubFiles(t, dataDir)
	cfg := newConfig(t, fleettest.NewHubID(), dataDir)
	cfg.SameUser = sameUser
	d := open(t, cfg)
	ctx := context.Background()
	a, b := fleettest.NewSpec(t, "probe-a"), fleettest.NewSpec(t, "probe-b")
	for _, spec := range []fleet.Spec{a, b} {
		if _, err := d.Create(ctx, spec); err != nil {
			t.Fatalf("Create %s: %v", spec.InstanceID, err)
		}
		t.Cleanup(func() { _ = d.Remove(context.Background(), spec.InstanceID) })
		if err := d.Start(ctx, spec.InstanceID); err != nil {
			t.Fatalf("Start %s: %v", spec.InstanceID, err)
		}
	}
	fleettest.WaitHealthy(t, a)
	fleettest.WaitHealthy(t, b)
	userA, userB := d.UserDir(a.InstanceID), d.UserDir(b.InstanceID)
	raftDB := filepath.Join(dataDir, "raft", "raft.db")
	rtB, err := d.Inspect(ctx, b.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	foreign := map[string][]string{
		"read": {raftDB, filepath.Join(dataDir, "hub.db"), filepath.Join(dataDir, "instances", b.InstanceID, "runtime.json"),
			filepath.Join(dataDir, "instances", a.InstanceID, process.LogFile),
			filepath.Join(userB, fleet.SettingsFile), filepath.Join(userB, fleet.CredentialSecretFile)},
		"list":  {dataDir, filepath.Join(dataDir, "instances"), userB},
		"write": {filepath.Join(dataDir, "planted"), filepath.Join(userB, "planted")},
	}
	if !sameUser || os.Geteuid() != 0 {
		// The environments (secrets) of the hub (this test) and of B. A
		// runtime that is root (SameUser as root, the simulation) keeps
		// CAP_SYS_PTRACE, which reads them past Landlock; a non-root hub's
		// runtimes are kept out (sandbox.TestLandlockKeepsOutSameUser).
		foreign["read"] = append(foreign["read"], fmt.Sprintf("/proc/%d/environ", os.Getpid()), "/proc/"+rtB.RuntimeID+"/environ")
	}
	res := fleettest.Probe(t, a, fleettest.ProbeRequest{
		Read: foreign["read"], List: append(foreign["list"], userA),
		Write: append(foreign["write"], filepath.Join(userA, "mine.txt")),
		Shell: fmt.Sprintf("id -u; cat %s 2>&1; ls %s 2>&1; ls %s 2>&1; true", raftDB, dataDir, userB),
	})
	t.Logf("probe in %s: uid %d, no_new_privs %s, %v\nshell:\n%s", a.InstanceID, res.UID, res.NoNewPrivs, res.Paths, res.Shell)

	if sameUser {
		if res.UID != os.Geteuid() {
			t.Errorf("runtime uid %d, want the hub's %d (SameUser)", res.UID, os.Geteuid())
		}
	} else {
		if res.UID == 0 || res.UID == os.Geteuid() || res.UID < process.DefaultUIDBase || res.UID >= process.DefaultUIDBase+process.DefaultUIDCount {
			t.Errorf("runtime uid %d: want one of its own in %d+%d, not root nor the hub's", res.UID, process.DefaultUIDBase, process.DefaultUIDCount)
		}
		if uidB := processUID(t, d, b.InstanceID); uidB == res.UID {
			t.Errorf("instances %s and %s share uid %d", a.InstanceID, b.InstanceID, uidB)
		}
	}
	if res.NoNewPrivs != "1" {
		t.Errorf("runtime runs without no_new_privs (%q)", res.NoNewPrivs)
	}
	for op, paths := range foreign {
		for _, p := range paths {
			if !res.Denied(op, p) {
				t.Errorf("the runtime could %s %s: %q", op, p, res.Paths[op+" "+p])
			}
		}
	}
	for _, own := range []string{"list " + userA, "write " + filepath.Join(userA, "mine.txt")} {
		if !strings.HasPrefix(res.Paths[own], "ok:") {
			t.Errorf("the runtime could not %s: %q", own, res.Paths[own])
		}
	}
	for _, f := range []string{filepath.Join(dataDir, "planted"), filepath.Join(userB, "planted")} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("the runtime created %s", f)
		}
	}
	lines := strings.Split(strings.TrimSpace(res.Shell), "\n")
	if lines[0] != strconv.Itoa(res.UID) {
		t.Errorf("exec node: id -u printed %q, want %d", lines[0], res.UID)
	}
	if n := strings.Count(res.Shell, "Permission denied"); n != 3 {
		t.Errorf("exec node: %d of cat, ls, ls were denied, want 3:\n%s", n, res.Shell)
	}
	for _, v := range append([]string{res.Shell}, values(res.Paths)...) {
		if strings.Contains(v, marker) {
			t.Fatalf("the runtime read the hub's raft.db: %q", v)
		}
	}
}

// processUID is the real uid of the instance's process.
func processUID(t *testing.T, d *process.Driver, id string) int {
	t.Helper()
	rt, err := d.Inspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(strings.SplitN(strings.SplitN(procLine(t, rt.RuntimeID, "status"), "Uid:", 2)[1], "\n", 2)[0])
	uid, _ := strconv.Atoi(f[0])
	return uid
}

func values(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// TestOwnUIDForOlderInstances: an instance made when runtimes ran as the
// hub's user (uid 0 in runtime.json, user dir in the data dir) gets its
// own uid and moves its user dir, flows and all, on its next start.
func TestOwnUIDForOlderInstances(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("runtimes get their own uids only when the hub is root")
	}
	t.Run("SameFilesystem", func(t *testing.T) { ownUIDForOlderInstance(t, t.TempDir()) })
	// The old user dir on a filesystem of its own: the move is a copy.
	t.Run("AcrossFilesystems", func(t *testing.T) { ownUIDForOlderInstance(t, testenv.Tmpfs(t, "256m")) })
}

// ownUIDForOlderInstance runs an instance made by a hub that kept runtimes
// under its own uid, with its data dir in dataDir, then starts it with a
// hub that gives each runtime its own uid: the user dir moves out of the
// data dir, flows and all.
func ownUIDForOlderInstance(t *testing.T, dataDir string) {
	hubID := fleettest.NewHubID()
	ctx := context.Background()
	oldCfg := newConfig(t, hubID, dataDir)
	oldCfg.SameUser = true // as the hub kept runtimes before
	old := open(t, oldCfg)
	spec := fleettest.NewSpec(t, "older")
	if _, err := old.Create(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := old.Start(ctx, spec.InstanceID); err != nil {
		t.Fatal(err)
	}
	fleettest.WaitHealthy(t, spec)
	if _, err := fleettest.Client(t, spec).DeployFlows(ctx, fleettest.HelloFlow("kept"), "", nodered.DeployFull); err != nil {
		t.Fatal(err)
	}
	if err := old.Stop(ctx, spec.InstanceID, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	d := open(t, newConfig(t, hubID, dataDir))
	t.Cleanup(func() { _ = d.Remove(context.Background(), spec.InstanceID) })
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start by a hub that gives runtimes their own uids: %v", err)
	}
	fleettest.WaitHealthy(t, spec)
	if uid := processUID(t, d, spec.InstanceID); uid < process.DefaultUIDBase {
		t.Errorf("the older instance still runs as uid %d", uid)
	}
	flows, err := fleettest.Client(t, spec).GetFlows(ctx)
	if err != nil || len(flows.Flows) != len(fleettest.HelloFlow("kept")) {
		t.Errorf("flows after the move: %d nodes, %v", len(flows.Flows), err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "instances", spec.InstanceID, "userdir")); err == nil {
		t.Error("the user dir is still in the data dir")
	}
}
