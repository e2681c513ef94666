package process_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/fleet/fleettest"
	"github.com/redforge/controltower/hub/fleet/process"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

func newConfig(tb testing.TB, hubID, dataDir string) process.Config {
	tb.Helper()
	paths := testenv.NodeREDPaths(tb)
	return process.Config{DataDir: dataDir, Node: paths.Node, RedJS: paths.RedJS, HubID: hubID, StopTimeout: 10 * time.Second}
}

func open(tb testing.TB, cfg process.Config) *process.Driver {
	tb.Helper()
	d := process.New(cfg)
	if err := d.Open(context.Background()); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

func newDriver(tb testing.TB, hubID, dataDir string) fleet.Driver {
	return open(tb, newConfig(tb, hubID, dataDir))
}

var harness = fleettest.Harness{
	New: newDriver,
	Kill: func(tb testing.TB, rt fleet.Runtime) {
		pid, err := strconv.Atoi(rt.RuntimeID)
		if err != nil {
			tb.Fatalf("runtime id %q is not a pid", rt.RuntimeID)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			tb.Fatalf("kill %d: %v", pid, err)
		}
	},
	Gone:    func(rt fleet.Runtime) error { return processGone(rt, false) },
	UserDir: func(d fleet.Driver, _, id string) string { return d.(*process.Driver).UserDir(id) },
}

// processGone returns an error while the runtime's pid exists (or, with
// zombieOK, runs) or any process has the instance's user dir on its
// command line.
func processGone(rt fleet.Runtime, zombieOK bool) error {
	pid, _ := strconv.Atoi(rt.RuntimeID)
	if pid > 0 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		zombie := err == nil && bytes.Contains(stat, []byte(") Z "))
		if err == nil && !(zombieOK && zombie) {
			return fmt.Errorf("pid %d still exists: %s", pid, stat)
		}
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	needle := []byte("/" + rt.InstanceID + "/userdir")
	for _, p := range procs {
		if cmd, err := os.ReadFile(p); err == nil && bytes.Contains(cmd, needle) {
			return fmt.Errorf("%s runs %q", p, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
	return nil
}

func TestDriverContract(t *testing.T) {
	fleettest.Run(t, harness)
}

// TestProcessDetails: node gets the soft heap limit, a clean environment
// (none of the hub's other variables), and node-red.log rotates without
// losing the ability to tail it or corrupting it.
func TestProcessDetails(t *testing.T) {
	t.Setenv("REDFORGE_HUB_SECRET", "must-not-leak")
	dataDir := t.TempDir()
	cfg := newConfig(t, fleettest.NewHubID(), dataDir)
	cfg.LogMaxBytes = 512 // Node-RED's start-up banner alone is longer
	d := open(t, cfg)
	ctx := context.Background()
	spec := fleettest.NewSpec(t, "details")
	spec.MemoryMB = 256
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = d.Remove(context.Background(), spec.InstanceID) })
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	fleettest.WaitHealthy(t, spec)
	rt, err := d.Inspect(ctx, spec.InstanceID)
	if err != nil {
		t.Fatal(err)
	}
	// Node-RED replaced its command line by its title; the heap limit is
	// among node's own flags, which process.execArgv shows.
	userDir := d.UserDir(spec.InstanceID)
	if !strings.Contains(procLine(t, rt.RuntimeID, "cmdline"), "node-red:"+userDir) {
		t.Errorf("process title %q does not name the user dir", procLine(t, rt.RuntimeID, "cmdline"))
	}
	environ, err := os.ReadFile("/proc/" + rt.RuntimeID + "/environ")
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Split(string(environ), "\x00")
	for _, want := range []string{"HOME=" + userDir, "TMPDIR=" + filepath.Join(filepath.Dir(userDir), "tmp"),
		"REDFORGE_GREETING=" + spec.Env["REDFORGE_GREETING"]} {
		if !contains(env, want) {
			t.Errorf("environment lacks %q: %q", want, env)
		}
	}
	if strings.Contains(string(environ), "must-not-leak") {
		t.Error("the hub's environment leaked into the instance")
	}

	// Inspect rotated the log (the banner passed 512 bytes); new output lands at
	// the start of the emptied file, with no hole of NUL bytes. The log is
	// on the hub's side, out of the runtime's reach.
	log := filepath.Join(dataDir, "instances", spec.InstanceID, process.LogFile)
	if _, err := os.Stat(log + ".1"); err != nil {
		b, _ := os.ReadFile(log)
		t.Fatalf("no rotated log: %v\n%s", err, b)
	}
	c := fleettest.Client(t, spec)
	if _, err := c.DeployFlows(ctx, fleettest.HelloFlow("rotated"), "", nodered.DeployFull); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, time.Minute, "deploy logged after rotation", func() error {
		b, err := os.ReadFile(log)
		if err != nil {
			return err
		}
		if bytes.IndexByte(b, 0) >= 0 {
			return errors.New("log has NUL bytes: the process did not append")
		}
		if !bytes.Contains(b, []byte("Started flows")) {
			return fmt.Errorf("log so far: %q", b)
		}
		return nil
	})
	rc, err := d.Logs(ctx, spec.InstanceID, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	all, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Contains(all, []byte("Started flows")) {
		t.Errorf("Logs after rotation lacks the new lines:\n%s", all)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// helperEnv tells the test binary, re-executed, to act as a short-lived
// hub: create and start one instance, then exit.
const helperEnv = "REDFORGE_FLEET_PROCESS_HELPER"

type helperArgs struct {
	Config process.Config
	Spec   fleet.Spec
}

// TestMain runs the test binary as a short-lived hub when helperEnv is
// set (see TestInstanceOutlivesHub).
func TestMain(m *testing.M) {
	if raw := os.Getenv(helperEnv); raw != "" {
		if err := helperHub(raw); err != nil {
			fmt.Fprintln(os.Stderr, "helper hub:", err)
			os.Exit(1)
		}
		os.Exit(0) // a hub that exits, abruptly, with its instance running
	}
	os.Exit(m.Run())
}

func helperHub(raw string) error {
	var args helperArgs
	if err := json.Unmarshal([]byte(raw), &args); err != nil {
		return err
	}
	d := process.New(args.Config)
	ctx := context.Background()
	if _, err := d.Create(ctx, args.Spec); err != nil {
		return err
	}
	return d.Start(ctx, args.Spec.InstanceID)
}

// TestInstanceOutlivesHub: a hub process starts an instance and exits; the
// instance keeps serving, and a new hub (driver) adopts, stops and removes
// it.
func TestInstanceOutlivesHub(t *testing.T) {
	dataDir := t.TempDir()
	cfg := newConfig(t, fleettest.NewHubID(), dataDir)
	spec := fleettest.NewSpec(t, "outlive")
	raw, _ := json.Marshal(helperArgs{Config: cfg, Spec: spec})
	hub := exec.Command(os.Args[0])
	hub.Env = append(os.Environ(), helperEnv+"="+string(raw))
	out, err := hub.CombinedOutput()
	if err != nil {
		t.Fatalf("helper hub: %v\n%s", err, out)
	}
	d := open(t, cfg)
	ctx := context.Background()
	t.Cleanup(func() { _ = d.Remove(context.Background(), spec.InstanceID) })
	fleettest.WaitHealthy(t, spec)
	rts, err := d.List(ctx)
	if err != nil || len(rts) != 1 || rts[0].State != fleet.StateRunning {
		t.Fatalf("List after the hub exited = %+v, %v; want the instance running", rts, err)
	}
	if err := d.Stop(ctx, spec.InstanceID, 20*time.Second); err != nil {
		t.Fatalf("Stop of the orphaned instance: %v", err)
	}
	rt, err := d.Inspect(ctx, spec.InstanceID)
	if err != nil || rt.State != fleet.StateExited {
		t.Fatalf("Inspect after Stop = %+v, %v; want exited", rt, err)
	}
	if err := d.Remove(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	// Its parent is gone, so whether it is reaped is up to init; a zombie
	// holds no port and no files.
	if err := processGone(rts[0], true); err != nil {
		t.Fatal(err)
	}
}

func BenchmarkCreateToHealthy(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			fleettest.BenchCreateToHealthy(b, harness, n)
		})
	}
}

// BenchmarkBareNodeRED is the baseline for BenchmarkCreateToHealthy: node
// red.js spawned directly on a fresh user dir with minimal settings (no
// adminAuth, no driver), timed until GET / and then GET /settings answer.
func BenchmarkBareNodeRED(b *testing.B) {
	paths := testenv.NodeREDPaths(b)
	var httpSum, settingsSum float64
	for range b.N {
		dir := b.TempDir()
		port := testenv.FreePort(b)
		settings := fmt.Sprintf(`module.exports = {uiHost: "127.0.0.1", uiPort: %d, flowFile: "flows.json",
  credentialSecret: "bench", telemetry: {enabled: false, updateNotification: false},
  logging: {console: {level: "info", metrics: false, audit: false}}};`, port)
		if err := os.WriteFile(filepath.Join(dir, "settings.js"), []byte(settings), 0o600); err != nil {
			b.Fatal(err)
		}
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		t0 := time.Now()
		cmd := exec.Command(paths.Node, paths.RedJS, "--userDir", dir, "--settings", filepath.Join(dir, "settings.js"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		answered := func(path string) time.Duration {
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			deadline := time.Now().Add(fleettest.StartTimeout)
			for time.Now().Before(deadline) {
				if resp, err := http.Get(base + path); err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						return time.Since(t0)
					}
				}
				<-tick.C
			}
			b.Fatalf("bare Node-RED: GET %s did not answer", path)
			return 0
		}
		httpSum += answered("/").Seconds()
		settingsSum += answered("/settings").Seconds()
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	}
	b.ReportMetric(httpSum/float64(b.N), "s-http/inst")
	b.ReportMetric(settingsSum/float64(b.N), "s-settings/inst")
}

// procLine reads /proc/<pid>/<file> with NULs shown as spaces.
func procLine(t *testing.T, pid, file string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/" + pid + "/" + file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimRight(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})), " ")
}
