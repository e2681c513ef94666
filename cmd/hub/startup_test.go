package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// Start-up safety (issue 20 item 6): a hub that cannot start must not
// leave the cluster it tried to join with a dead voter.

// runToExit starts h and waits for it to exit on its own within limit;
// it returns the exit code and the logs.
func (h *hubProc) runToExit(t *testing.T, limit time.Duration) (int, string) {
	t.Helper()
	h.logs = &testenv.Buffer{}
	h.cmd = exec.Command(hubBinary(t), h.args...)
	h.cmd.Env = append(append(os.Environ(), "REDFORGE_CLUSTER_SECRET="+clusterSecret, "REDFORGE_ADMIN_PASSWORD="+adminPassword), h.env...)
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		_ = h.cmd.Process.Kill()
		<-done
		t.Fatalf("%s did not exit within %s:\n%s", h.id, limit, h.logs.String())
	}
	return h.cmd.ProcessState.ExitCode(), h.logs.String()
}

// serverIDs returns the Raft servers h's cluster view lists, sorted.
func serverIDs(h *hubProc, token string) ([]string, error) {
	v, err := h.cluster(token)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, s := range v.Servers {
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids, nil
}

func waitServers(t *testing.T, h *hubProc, token string, want ...string) {
	t.Helper()
	slices.Sort(want)
	testenv.WaitFor(t, 20*time.Second, fmt.Sprintf("%s lists servers %v", h.id, want), func() error {
		ids, err := serverIDs(h, token)
		if err != nil {
			return err
		}
		if !slices.Equal(ids, want) {
			return fmt.Errorf("servers %v", ids)
		}
		return nil
	})
}

// TestStartupJoinWithTakenMQTTPort: a hub started with --join whose MQTT
// port is taken exits before it joins; the one-hub cluster it tried to
// join keeps its single voter and accepts writes. (Before the fix it
// joined first, then exited: two voters, one dead, no quorum.)
func TestStartupJoinWithTakenMQTTPort(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-hub process test (-short)")
	}
	o := clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Hour}
	a := startHubProc(t, "hub-a", "us", "", o)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	ob := o
	ob.extra = []string{"--mqtt-listen", taken.Addr().String()}
	b := newHubProc(t, "hub-b", "eu", a.api, ob)
	code, logs := b.runToExit(t, 60*time.Second)
	if code == 0 || !strings.Contains(logs, "mqtt-listen "+taken.Addr().String()) {
		t.Fatalf("hub-b: exit %d, want a failure naming --mqtt-listen:\n%s", code, logs)
	}
	if strings.Contains(logs, "joined the cluster") {
		t.Errorf("hub-b joined before it found its MQTT port taken:\n%s", logs)
	}
	token := a.login(t) // a Raft write: needs the quorum
	waitServers(t, a, token, "hub-a")
	if code, body, err := createInstance(a, token, "after-failed-join"); err != nil || code != 201 {
		t.Fatalf("write after the failed join: %d %s %v", code, body, err)
	}
}

// TestStartupFailureAfterJoinLeaves: a hub whose start fails after it
// joined (here it cannot catch up: the leader cannot reach its Raft port,
// and --join-timeout passes) removes itself from the cluster before it
// exits and drops the Raft state of that start, so a later start with the
// same data dir joins afresh.
func TestStartupFailureAfterJoinLeaves(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-hub process test (-short)")
	}
	o := clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Hour}
	a := startHubProc(t, "hub-a", "us", "", o)
	c := startHubProc(t, "hub-c", "apac", a.api, o)
	token := a.login(t)
	waitServers(t, a, token, "hub-a", "hub-c")

	ob := o
	ob.extra = []string{"--join-timeout", "5s"}
	b := newHubProc(t, "hub-b", "eu", a.api, ob)
	b.raftLink.Cut() // the leader adds hub-b but never reaches it
	code, logs := b.runToExit(t, 90*time.Second)
	for _, want := range []string{"joined the cluster", "catch up with the leader", "left the cluster after a failed start"} {
		if code == 0 || !strings.Contains(logs, want) {
			t.Fatalf("hub-b: exit %d, logs lack %q:\n%s", code, want, logs)
		}
	}
	for _, h := range []*hubProc{a, c} {
		waitServers(t, h, token, "hub-a", "hub-c")
	}
	if code, body, err := createInstance(c, token, "after-failed-start"); err != nil || code != 201 {
		t.Fatalf("write after hub-b left: %d %s %v", code, body, err)
	}

	// The same data dir starts again, this time reachable: a fresh join.
	b.raftLink.Restore()
	b.start()
	waitServers(t, a, token, "hub-a", "hub-b", "hub-c")
	testenv.WaitFor(t, 20*time.Second, "hub-b has the write made while it was out", func() error {
		if names, _, _ := instanceNames(t, b, token, ""); !names["after-failed-start"] {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}

// TestStartupJoinSelfBootstraps: a hub whose --join is its own --advertise
// URL (every pod of the Kubernetes StatefulSet is given the first pod's
// URL) bootstraps a cluster, and a second hub joins it.
func TestStartupJoinSelfBootstraps(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-hub process test (-short)")
	}
	o := clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Hour}
	a := newHubProc(t, "hub-a", "us", "", o)
	seed := "http://" + a.apiLink.Addr() + "/"
	a.args = append(a.args, "--join", seed)
	a.start()
	b := startHubProc(t, "hub-b", "eu", seed, o)
	token := a.login(t)
	waitServers(t, b, token, "hub-a", "hub-b")
}
