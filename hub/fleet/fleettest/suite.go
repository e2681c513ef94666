package fleettest

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

// testLifecycle walks one instance through its whole life.
func testLifecycle(t *testing.T, h Harness) {
	dataDir := t.TempDir()
	d := NewDriver(t, h, NewHubID(), dataDir)
	ctx := ctxT(t)
	spec := NewSpec(t, "life")
	url := baseURL(spec.Port)

	created, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.InstanceID != spec.InstanceID || created.State != fleet.StateCreated || created.Port != spec.Port {
		t.Fatalf("Create = %+v, want %s created on port %d", created, spec.InstanceID, spec.Port)
	}
	settings, err := os.ReadFile(filepath.Join(h.userDir(d, dataDir, spec.InstanceID), fleet.SettingsFile))
	if err != nil {
		t.Fatalf("settings.js in the user dir: %v", err)
	}
	if strings.Contains(string(settings), spec.AdminPassword) {
		t.Fatal("settings.js holds the plaintext admin password")
	}
	mustInspect(t, d, spec.InstanceID, fleet.StateCreated)

	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	rt := mustInspect(t, d, spec.InstanceID, fleet.StateRunning)
	if rt.RuntimeID == "" || rt.StartedAt.IsZero() || rt.Port != spec.Port {
		t.Fatalf("running runtime %+v lacks id, start time or port", rt)
	}
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start of a running instance: %v", err)
	}
	WaitHealthy(t, spec)
	checkAdminAuth(t, spec)

	// Follow the log while deploying: the deploy's lines must arrive.
	follow, err := d.Logs(ctx, spec.InstanceID, 1, true)
	if err != nil {
		t.Fatalf("Logs follow: %v", err)
	}
	var followed logBuffer
	copied := make(chan error, 1)
	go func() { _, err := io.Copy(&followed, follow); copied <- err }()

	c := Client(t, spec)
	if _, err := c.DeployFlows(ctx, HelloFlow("v1"), "", nodered.DeployFull); err != nil {
		t.Fatalf("DeployFlows: %v", err)
	}
	waitBody(t, url+"/hello", "v1")
	waitBody(t, url+"/env", spec.Env["REDFORGE_GREETING"])
	testenv.WaitFor(t, opTimeout, "followed log shows the deploy", func() error {
		if s := followed.String(); !strings.Contains(s, "Started flows") {
			return fmt.Errorf("followed so far: %q", s)
		}
		return nil
	})
	follow.Close()
	select {
	case <-copied:
	case <-time.After(opTimeout):
		t.Fatal("closing a following log reader did not end the stream")
	}

	checkStats(t, d, spec)
	checkLogs(t, d, spec)

	// Stop: the port goes quiet and the instance has exited cleanly.
	if err := d.Stop(ctx, spec.InstanceID, 20*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if portAnswers(spec.Port) {
		t.Fatalf("port %d still answers after Stop", spec.Port)
	}
	stopped := mustInspect(t, d, spec.InstanceID, fleet.StateExited)
	if stopped.ExitCode != 0 {
		t.Errorf("graceful stop: exit code %d, want 0", stopped.ExitCode)
	}
	if err := d.Stop(ctx, spec.InstanceID, time.Second); err != nil {
		t.Fatalf("Stop of a stopped instance: %v", err)
	}
	if _, err := d.Stats(ctx, spec.InstanceID); err == nil {
		t.Error("Stats of a stopped instance: no error")
	}

	// Start again: the flows persisted in the user dir.
	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start after Stop: %v", err)
	}
	WaitHealthy(t, spec)
	flows, err := Client(t, spec).GetFlows(ctx)
	if err != nil || len(flows.Flows) != len(HelloFlow("v1")) {
		t.Fatalf("flows after restart: %d nodes, %v; want %d", len(flows.Flows), err, len(HelloFlow("v1")))
	}
	waitBody(t, url+"/hello", "v1")

	if err := d.Restart(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	WaitHealthy(t, spec)
	rt = mustInspect(t, d, spec.InstanceID, fleet.StateRunning)
	if rt.Restarts != 2 {
		t.Errorf("Restarts = %d after a Start after Stop and a Restart, want 2", rt.Restarts)
	}

	// Killed behind the driver's back: Inspect sees it.
	h.Kill(t, rt)
	testenv.WaitFor(t, opTimeout, "Inspect reports the killed runtime", func() error {
		got, err := d.Inspect(ctx, spec.InstanceID)
		if err != nil {
			return err
		}
		if got.State == fleet.StateRunning {
			return errors.New("still running")
		}
		if got.State != fleet.StateExited || got.ExitCode != 137 {
			return fmt.Errorf("killed runtime: state %q exit code %d, want exited 137", got.State, got.ExitCode)
		}
		return nil
	})

	checkRemove(t, h, d, dataDir, spec, rt)
}

// checkAdminAuth: the admin API refuses anonymous and wrong credentials.
func checkAdminAuth(t *testing.T, spec fleet.Spec) {
	t.Helper()
	ctx := ctxT(t)
	anon, _ := nodered.New(adminURL(spec.Port), "", "")
	if _, err := anon.GetFlows(ctx); !errors.Is(err, nodered.ErrUnauthorized) {
		t.Errorf("GetFlows without credentials: %v, want ErrUnauthorized", err)
	}
	wrong, _ := nodered.New(adminURL(spec.Port), spec.AdminUser, spec.AdminPassword+"x")
	if _, err := wrong.GetFlows(ctx); !errors.Is(err, nodered.ErrUnauthorized) {
		t.Errorf("GetFlows with a wrong password: %v, want ErrUnauthorized", err)
	}
}

func checkStats(t *testing.T, d fleet.Driver, spec fleet.Spec) {
	t.Helper()
	ctx := ctxT(t)
	for i := range 2 { // the second call measures CPU against the first
		st, err := d.Stats(ctx, spec.InstanceID)
		if err != nil {
			t.Fatalf("Stats #%d: %v", i+1, err)
		}
		if st.MemoryBytes == 0 || st.At.IsZero() || st.CPUPercent < 0 {
			t.Fatalf("Stats #%d = %+v: want memory, a time and CPU >= 0", i+1, st)
		}
		if want := uint64(spec.MemoryMB) << 20; st.MemoryLimitBytes != want {
			t.Errorf("Stats #%d: memory limit %d, want %d", i+1, st.MemoryLimitBytes, want)
		}
	}
}

func checkLogs(t *testing.T, d fleet.Driver, spec fleet.Spec) {
	t.Helper()
	ctx := ctxT(t)
	logs := func(tail int) string {
		rc, err := d.Logs(ctx, spec.InstanceID, tail, false)
		return readAll(t, rc, err)
	}
	testenv.WaitFor(t, opTimeout, "startup lines in the log", func() error {
		all := logs(0)
		for _, want := range []string{"Welcome to Node-RED", "Server now running at"} {
			if !strings.Contains(all, want) {
				return fmt.Errorf("log lacks %q:\n%s", want, all)
			}
		}
		return nil
	})
	tail := logs(3)
	if n := strings.Count(strings.TrimSuffix(tail, "\n"), "\n") + 1; n != 3 {
		t.Errorf("Logs tail 3 returned %d lines:\n%s", n, tail)
	}
}

// checkRemove removes the instance and checks nothing of it is left.
func checkRemove(t *testing.T, h Harness, d fleet.Driver, dataDir string, spec fleet.Spec, rt fleet.Runtime) {
	t.Helper()
	ctx := ctxT(t)
	if err := d.Remove(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := d.Inspect(ctx, spec.InstanceID); !isNotFound(err) {
		t.Fatalf("Inspect after Remove: %v, want ErrNotFound", err)
	}
	if slices.Contains(listIDs(t, d), spec.InstanceID) {
		t.Fatal("List still has the removed instance")
	}
	testenv.WaitFor(t, opTimeout, "runtime gone", func() error { return h.Gone(rt) })
	if err := portFree(spec.Port); err != nil {
		t.Fatalf("port %d not free after Remove: %v", spec.Port, err)
	}
	for _, dir := range []string{instanceDir(dataDir, spec.InstanceID), h.userDir(d, dataDir, spec.InstanceID)} {
		if err := dirGone(dir); err != nil {
			t.Fatalf("after Remove: %v", err)
		}
	}
	if err := d.Remove(ctx, spec.InstanceID); err != nil {
		t.Fatalf("second Remove: %v, want nil", err)
	}
	for _, op := range []func() error{
		func() error { return d.Start(ctx, spec.InstanceID) },
		func() error { return d.Stop(ctx, spec.InstanceID, time.Second) },
		func() error { _, err := d.Stats(ctx, spec.InstanceID); return err },
		func() error { _, err := d.Logs(ctx, spec.InstanceID, 1, false); return err },
	} {
		if err := op(); !isNotFound(err) {
			t.Errorf("operation on a removed instance: %v, want ErrNotFound", err)
		}
	}
}

func testCreateTwice(t *testing.T, h Harness) {
	dataDir := t.TempDir()
	d := NewDriver(t, h, NewHubID(), dataDir)
	ctx := ctxT(t)
	spec := NewSpec(t, "twice")
	if _, err := d.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	settings := filepath.Join(h.userDir(d, dataDir, spec.InstanceID), fleet.SettingsFile)
	before, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	again := spec
	again.AdminPassword = "another-password"
	if _, err := d.Create(ctx, again); !errors.Is(err, fleet.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	if after, err := os.ReadFile(settings); err != nil || string(after) != string(before) {
		t.Fatalf("a refused Create touched the existing settings.js (%v)", err)
	}
	if ids := listIDs(t, d); !slices.Equal(ids, []string{spec.InstanceID}) {
		t.Fatalf("List = %v, want just %s", ids, spec.InstanceID)
	}
}

func testInvalidSpec(t *testing.T, h Harness) {
	dataDir := t.TempDir()
	d := NewDriver(t, h, NewHubID(), dataDir)
	ctx := ctxT(t)
	cases := []struct {
		name  string
		edit  func(*fleet.Spec)
		field string
	}{
		{"memory below 128 MB", func(s *fleet.Spec) { s.MemoryMB = 64 }, "memory_mb"},
		{"negative memory", func(s *fleet.Spec) { s.MemoryMB = -1 }, "memory_mb"},
		{"more CPUs than the host", func(s *fleet.Spec) { s.CPU = 4096 }, "cpu"},
		{"negative CPU", func(s *fleet.Spec) { s.CPU = -0.5 }, "cpu"},
		{"no port", func(s *fleet.Spec) { s.Port = 0 }, "port"},
		{"port out of range", func(s *fleet.Spec) { s.Port = 70000 }, "port"},
		{"bad env name", func(s *fleet.Spec) { s.Env = map[string]string{"1BAD-NAME": "x"} }, "env.1BAD-NAME"},
		{"env name with =", func(s *fleet.Spec) { s.Env = map[string]string{"A=B": "x"} }, "env.A=B"},
		{"path in instance id", func(s *fleet.Spec) { s.InstanceID = "../escape" }, "instance_id"},
		{"empty instance id", func(s *fleet.Spec) { s.InstanceID = "" }, "instance_id"},
		{"no admin user", func(s *fleet.Spec) { s.AdminUser = "" }, "admin_user"},
		{"no admin password", func(s *fleet.Spec) { s.AdminPassword = "" }, "admin_password"},
		{"reserved extra setting", func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"adminAuth": nil} }, "extra_settings.adminAuth"},
		{"unencodable extra setting", func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"x": func() {}} }, "extra_settings.x"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			spec := NewSpec(t, "bad")
			tc.edit(&spec)
			_, err := d.Create(ctx, spec)
			var se *fleet.SpecError
			if !errors.Is(err, fleet.ErrInvalidSpec) || !errors.As(err, &se) || se.Field != tc.field {
				t.Fatalf("Create: %v, want ErrInvalidSpec naming %s", err, tc.field)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name the field %s", err, tc.field)
			}
		})
	}
	if ids := listIDs(t, d); len(ids) != 0 {
		t.Fatalf("invalid specs created %v", ids)
	}
	entries, _ := os.ReadDir(filepath.Join(dataDir, "instances"))
	if len(entries) != 0 {
		t.Fatalf("invalid specs left %d entries in the data dir", len(entries))
	}
	// The docker default for a missing field must not matter: CPU 0 and
	// memory 0 mean unlimited and are valid.
	ok := NewSpec(t, "unlimited")
	ok.MemoryMB, ok.CPU = 0, 0
	if _, err := d.Create(ctx, ok); err != nil {
		t.Fatalf("Create with no limits: %v", err)
	}
}

// testListIsPerHub: two hubs on one data dir (and one dockerd) each list
// only their own instances and cannot touch the other's.
func testListIsPerHub(t *testing.T, h Harness) {
	dataDir := t.TempDir()
	a := NewDriver(t, h, NewHubID(), dataDir)
	b := NewDriver(t, h, NewHubID(), dataDir)
	ctx := ctxT(t)
	var mine []string
	for range 2 {
		spec := NewSpec(t, "hub-a")
		if _, err := a.Create(ctx, spec); err != nil {
			t.Fatalf("Create on hub A: %v", err)
		}
		mine = append(mine, spec.InstanceID)
	}
	other := NewSpec(t, "hub-b")
	if _, err := b.Create(ctx, other); err != nil {
		t.Fatalf("Create on hub B: %v", err)
	}
	slices.Sort(mine)
	if ids := listIDs(t, a); !slices.Equal(ids, mine) {
		t.Fatalf("hub A List = %v, want %v", ids, mine)
	}
	if ids := listIDs(t, b); !slices.Equal(ids, []string{other.InstanceID}) {
		t.Fatalf("hub B List = %v, want [%s]", ids, other.InstanceID)
	}
	if _, err := b.Inspect(ctx, mine[0]); !isNotFound(err) {
		t.Fatalf("hub B Inspect of hub A's instance: %v, want ErrNotFound", err)
	}
	if err := b.Start(ctx, mine[0]); !isNotFound(err) {
		t.Fatalf("hub B Start of hub A's instance: %v, want ErrNotFound", err)
	}
	if err := b.Remove(ctx, mine[0]); err != nil {
		t.Fatalf("hub B Remove of hub A's instance: %v, want nil (nothing of B's)", err)
	}
	mustInspect(t, a, mine[0], fleet.StateCreated)
}

// testAdoption: a new driver value on the same data dir and hub id (a
// restarted hub) finds the running instance and can stop and remove it.
func testAdoption(t *testing.T, h Harness) {
	dataDir := t.TempDir()
	hubID := NewHubID()
	first := NewDriver(t, h, hubID, dataDir)
	ctx := ctxT(t)
	spec := NewSpec(t, "adopt")
	if _, err := first.Create(ctx, spec); err != nil {
		t.Fatalf("Create: %v", err)
	}
	if err := first.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	WaitHealthy(t, spec)
	orig := mustInspect(t, first, spec.InstanceID, fleet.StateRunning)

	second := NewDriver(t, h, hubID, dataDir)
	rts, err := second.List(ctx)
	if err != nil || len(rts) != 1 || rts[0].InstanceID != spec.InstanceID || rts[0].State != fleet.StateRunning {
		t.Fatalf("adopting List = %+v, %v; want %s running", rts, err, spec.InstanceID)
	}
	if rts[0].RuntimeID != orig.RuntimeID || rts[0].Port != spec.Port {
		t.Fatalf("adopted %+v, want runtime %s on port %d", rts[0], orig.RuntimeID, spec.Port)
	}
	if _, err := second.Stats(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Stats of an adopted instance: %v", err)
	}
	if err := second.Stop(ctx, spec.InstanceID, 20*time.Second); err != nil {
		t.Fatalf("Stop of an adopted instance: %v", err)
	}
	if portAnswers(spec.Port) {
		t.Fatal("port still answers after the adopting driver stopped the instance")
	}
	mustInspect(t, second, spec.InstanceID, fleet.StateExited)
	if err := second.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start by the adopting driver: %v", err)
	}
	WaitHealthy(t, spec)
	running := mustInspect(t, second, spec.InstanceID, fleet.StateRunning)
	// Removing a running instance stops it first.
	checkRemove(t, h, second, dataDir, spec, running)
	if _, err := first.Inspect(ctx, spec.InstanceID); !isNotFound(err) {
		t.Fatalf("first driver Inspect after removal: %v, want ErrNotFound", err)
	}
}
