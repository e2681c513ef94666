package docker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/fleet/docker"
	"github.com/redforge/controltower/hub/fleet/fleettest"
	"github.com/redforge/controltower/internal/testenv"
)

// newDriver opens a docker driver on the test dockerd with host networking
// and the local Node-RED image; its containers carry the test's label.
func newDriver(tb testing.TB, hubID, dataDir string) fleet.Driver {
	return openDriver(tb, hubID, dataDir)
}

func openDriver(tb testing.TB, hubID, dataDir string) *docker.Driver {
	tb.Helper()
	host := testenv.Docker(tb)
	image := testenv.NodeREDImage(tb)
	key, value := testenv.TestLabel(tb)
	d := docker.New(docker.Config{
		Host: host, HubID: hubID, DataDir: dataDir, DefaultImage: image,
		Network: docker.NetworkHost, StopTimeout: 10 * time.Second,
		ExtraLabels: map[string]string{key: value},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Open(ctx); err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { d.Close() })
	return d
}

// dockerClient is a client of its own, to act behind the driver's back.
func dockerClient(tb testing.TB) *client.Client {
	tb.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost(testenv.Docker(tb)), client.WithAPIVersionNegotiation())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

func harness(tb testing.TB) fleettest.Harness {
	cli := dockerClient(tb)
	return fleettest.Harness{
		New: newDriver,
		Kill: func(tb testing.TB, rt fleet.Runtime) {
			if err := cli.ContainerKill(context.Background(), rt.RuntimeID, "SIGKILL"); err != nil {
				tb.Fatalf("kill container %s: %v", rt.RuntimeID, err)
			}
		},
		Gone: func(rt fleet.Runtime) error {
			_, err := cli.ContainerInspect(context.Background(), rt.RuntimeID)
			if cerrdefs.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("container %s still exists (inspect: %v)", rt.RuntimeID, err)
		},
	}
}

func TestDriverContract(t *testing.T) {
	fleettest.Run(t, harness(t))
}

// TestLimitsApplied: CPU and memory limits, no swap, restart policy "no",
// the labels, env and the user dir mount reach the container, and the
// kernel's memory limit shows in Docker's stats.
func TestLimitsApplied(t *testing.T) {
	d := openDriver(t, fleettest.NewHubID(), t.TempDir())
	ctx := context.Background()
	spec := fleettest.NewSpec(t, "limits")
	spec.CPU, spec.MemoryMB = 0.5, 256
	rt, err := d.Create(ctx, spec)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { _ = d.Remove(context.Background(), spec.InstanceID) })
	cli := dockerClient(t)
	c, err := cli.ContainerInspect(ctx, rt.RuntimeID)
	if err != nil {
		t.Fatal(err)
	}
	hc := c.HostConfig
	if hc.Memory != 256<<20 || hc.MemorySwap != 256<<20 || hc.NanoCPUs != 500_000_000 {
		t.Errorf("limits: memory %d swap %d nano-cpus %d; want %d, %d, 5e8", hc.Memory, hc.MemorySwap, hc.NanoCPUs, 256<<20, 256<<20)
	}
	if hc.RestartPolicy.Name != container.RestartPolicyDisabled {
		t.Errorf("restart policy %q, want no", hc.RestartPolicy.Name)
	}
	if c.Name != "/"+docker.ContainerName(spec.InstanceID) {
		t.Errorf("container name %q", c.Name)
	}
	labels := c.Config.Labels
	if labels[docker.LabelInstance] != spec.InstanceID || labels[docker.LabelManaged] != "true" || labels[docker.LabelHub] == "" {
		t.Errorf("labels %v", labels)
	}
	if want := "REDFORGE_GREETING=" + spec.Env["REDFORGE_GREETING"]; !slices.Contains(c.Config.Env, want) {
		t.Errorf("env %v lacks %q", c.Config.Env, want)
	}
	if len(hc.Binds) != 1 || !strings.HasSuffix(hc.Binds[0], "/instances/"+spec.InstanceID+"/userdir:/data") {
		t.Errorf("binds %v", hc.Binds)
	}

	if err := d.Start(ctx, spec.InstanceID); err != nil {
		t.Fatalf("Start: %v", err)
	}
	fleettest.WaitHealthy(t, spec)
	resp, err := cli.ContainerStatsOneShot(ctx, rt.RuntimeID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	if s.MemoryStats.Limit != 256<<20 {
		t.Errorf("cgroup memory limit %d, want %d", s.MemoryStats.Limit, 256<<20)
	}
	st, err := d.Stats(ctx, spec.InstanceID)
	if err != nil || st.MemoryLimitBytes != 256<<20 || st.MemoryBytes == 0 || st.MemoryBytes > 256<<20 {
		t.Errorf("Stats = %+v, %v", st, err)
	}
}

// TestOpenNamesTheSocket: a daemon that does not answer gives an error
// naming where the driver looked.
func TestOpenNamesTheSocket(t *testing.T) {
	sock := "unix://" + t.TempDir() + "/no-docker.sock"
	d := docker.New(docker.Config{Host: sock, HubID: "h", DataDir: t.TempDir()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := d.Open(ctx)
	if err == nil || !strings.Contains(err.Error(), sock) {
		t.Fatalf("Open = %v, want an error naming %s", err, sock)
	}
	if err := docker.New(docker.Config{Network: "overlay"}).Open(ctx); err == nil ||
		!strings.Contains(err.Error(), "hub_id") || !strings.Contains(err.Error(), "data_dir") || !strings.Contains(err.Error(), "network") {
		t.Fatalf("Open with a bad config = %v, want every problem named", err)
	}
}

func BenchmarkCreateToHealthy(b *testing.B) {
	for _, n := range []int{1, 20} {
		b.Run(fmt.Sprintf("instances=%d", n), func(b *testing.B) {
			fleettest.BenchCreateToHealthy(b, harness(b), n)
		})
	}
}

// TestIsolation is the probe of issue 13 on the docker driver: an
// OPERATOR's flow in instance A (a function node with fs; the local image
// has no shell for an exec node) runs as a non-root user with no
// capabilities and no new privileges, on a read-only root, and finds
// neither the hub's data dir nor instance B's user dir.
func TestIsolation(t *testing.T) {
	dataDir := t.TempDir()
	marker := fleettest.PlantHubFiles(t, dataDir)
	d := openDriver(t, fleettest.NewHubID(), dataDir)
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
	userB := filepath.Join(dataDir, "instances", b.InstanceID, "userdir")
	foreign := map[string][]string{
		"read": {filepath.Join(dataDir, "raft", "raft.db"), filepath.Join(dataDir, "hub.db"), filepath.Join(userB, fleet.SettingsFile)},
		"list": {dataDir, userB},
		// The root filesystem is read-only, for the image's own files too.
		"write": {"/probe", "/usr/src/node-red/probe", "/etc/probe"},
	}
	res := fleettest.Probe(t, a, fleettest.ProbeRequest{
		Read: append(foreign["read"], "/data/"+fleet.SettingsFile), List: append(foreign["list"], "/data"),
		Write: append(foreign["write"], "/data/mine.txt", "/tmp/mine.txt"),
	})
	t.Logf("probe in %s: uid %d, CapEff %s, CapBnd %s, no_new_privs %s, root %s, %v",
		a.InstanceID, res.UID, res.CapEff, res.CapBnd, res.NoNewPrivs, res.RootMount, res.Paths)
	if res.UID == 0 {
		t.Error("Node-RED runs as root in its container")
	}
	if strings.Trim(res.CapEff, "0") != "" || strings.Trim(res.CapBnd, "0") != "" {
		t.Errorf("capabilities: effective %s, bounding %s; want none", res.CapEff, res.CapBnd)
	}
	if res.NoNewPrivs != "1" {
		t.Errorf("no_new_privs %q, want 1", res.NoNewPrivs)
	}
	if !strings.HasPrefix(res.RootMount, "ro") {
		t.Errorf("root filesystem mounted %q, want read-only", res.RootMount)
	}
	for op, paths := range foreign {
		for _, p := range paths {
			if !res.Denied(op, p) {
				t.Errorf("the runtime could %s %s: %q", op, p, res.Paths[op+" "+p])
			}
		}
	}
	for _, own := range []string{"read /data/" + fleet.SettingsFile, "list /data", "write /data/mine.txt", "write /tmp/mine.txt"} {
		if !strings.HasPrefix(res.Paths[own], "ok:") {
			t.Errorf("the runtime could not %s: %q", own, res.Paths[own])
		}
	}
	for _, v := range res.Paths {
		if strings.Contains(v, marker) {
			t.Fatalf("the runtime read the hub's files: %q", v)
		}
	}
	// Nothing of the hub is mounted: only the instance's own user dir.
	c, err := dockerClient(t).ContainerInspect(ctx, docker.ContainerName(a.InstanceID))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Mounts {
		if m.Destination != "/data" && m.Destination != "/tmp" {
			t.Errorf("mount %s → %s: the container has more than its user dir", m.Source, m.Destination)
		}
	}
}
