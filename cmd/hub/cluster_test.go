package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// Multi-hub tests: each hub is a separate redforge-hub process on
// 127.0.0.1 ports, with real Raft between them; faults are SIGKILL and
// toxiproxy links (testenv.Proxy) on the Raft and API addresses.

const (
	clusterSecret = "multi-hub-test-secret-0123456789"
	adminPassword = "multi-hub-admin-password"
)

// hubBinary builds cmd/hub once per test binary.
func hubBinary(t testing.TB) string {
	t.Helper()
	return testenv.GoBinary(t, "github.com/redforge/controltower/cmd/hub")
}

// hubProc is one hub process. Other hubs reach its Raft and API through
// Links (raft, api), so a test can cut or slow them.
type hubProc struct {
	t        testing.TB
	id       string
	region   string
	api      string // as clients reach it directly
	apiLink  *testenv.Link
	raftLink *testenv.Link
	args     []string
	env      []string // more environment, after the defaults (a later entry wins)
	cmd      *exec.Cmd
	logs     *testenv.Buffer
	exited   chan struct{}
}

type clusterOpts struct {
	heartbeat time.Duration // raft heartbeat = election timeout; lease is half
	deadAfter time.Duration
	extra     []string // more flags (a later flag wins: --store, --redis, --driver …)
	env       []string // more environment (REDFORGE_CLUSTER_SECRET of the test's own …)
}

// startHubProc starts hub id in region, joining via join when set.
func startHubProc(t testing.TB, id, region, join string, o clusterOpts) *hubProc {
	t.Helper()
	h := newHubProc(t, id, region, join, o)
	h.start()
	return h
}

// newHubProc prepares hub id (ports, links, flags) without starting it.
func newHubProc(t testing.TB, id, region, join string, o clusterOpts) *hubProc {
	t.Helper()
	apiPort, raftPort := testenv.FreePort(t), testenv.FreePort(t)
	h := &hubProc{t: t, id: id, region: region, api: fmt.Sprintf("http://127.0.0.1:%d", apiPort), env: o.env}
	h.apiLink = testenv.Proxy(t, fmt.Sprintf("127.0.0.1:%d", apiPort))
	h.raftLink = testenv.Proxy(t, fmt.Sprintf("127.0.0.1:%d", raftPort))
	h.args = []string{
		"--listen", fmt.Sprintf("127.0.0.1:%d", apiPort),
		"--advertise", "http://" + h.apiLink.Addr(),
		"--raft-listen", fmt.Sprintf("127.0.0.1:%d", raftPort),
		"--raft-advertise", h.raftLink.Addr(),
		"--data-dir", t.TempDir(),
		"--mqtt-listen", "127.0.0.1:0",
		"--node-id", id, "--region", region,
		"--driver", "process", "--node-red", testenv.NodeREDPaths(t).RedJS,
		"--raft-heartbeat-timeout", o.heartbeat.String(), "--raft-election-timeout", o.heartbeat.String(),
		"--raft-lease-timeout", (o.heartbeat / 2).String(),
		"--dead-server-timeout", o.deadAfter.String(),
		"--log-level", "info",
	}
	if join != "" {
		h.args = append(h.args, "--join", join)
	}
	h.args = append(h.args, o.extra...)
	return h
}

func (h *hubProc) start() {
	t := h.t
	t.Helper()
	h.logs = &testenv.Buffer{}
	h.cmd = exec.Command(hubBinary(t), h.args...)
	h.cmd.Env = append(append(os.Environ(), "REDFORGE_CLUSTER_SECRET="+clusterSecret, "REDFORGE_ADMIN_PASSWORD="+adminPassword), h.env...)
	h.cmd.Stdout, h.cmd.Stderr = h.logs, h.logs
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()
	t.Cleanup(func() {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
		}
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", h.id, h.logs.String())
		}
	})
	testenv.WaitFor(t, 60*time.Second, h.id+" healthy", func() error {
		select {
		case <-h.exited:
			t.Fatalf("%s exited:\n%s", h.id, h.logs.String())
		default:
		}
		code, _, _, err := h.do("GET", "/api/health", "", nil)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("health %d", code)
		}
		return nil
	})
}

// kill SIGKILLs the hub.
func (h *hubProc) kill() {
	_ = h.cmd.Process.Kill()
	<-h.exited
}

var client = &http.Client{Timeout: 15 * time.Second}

// do calls the hub's API directly.
func (h *hubProc) do(method, path, token string, body any) (int, []byte, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.api+path, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header, nil
}

// login logs in as the admin; a login is a Raft write, so while the
// cluster is still settling (an election under load) it is retried.
func (h *hubProc) login(t testing.TB) string {
	t.Helper()
	var code int
	var b []byte
	var err error
	testenv.WaitFor(t, 30*time.Second, "login on "+h.id, func() error {
		code, b, _, err = h.do("POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": adminPassword})
		if err == nil && code == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s", code, b)
		}
		return nil
	})
	if err != nil || code != 200 {
		t.Fatalf("login on %s: %d %s %v", h.id, code, b, err)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(b, &out)
	return out.AccessToken
}

type clusterView struct {
	NodeID   string `json:"node_id"`
	State    string `json:"state"`
	LeaderID string `json:"leader_id"`
	Servers  []struct {
		ID    string `json:"id"`
		Voter bool   `json:"voter"`
	} `json:"servers"`
}

func (h *hubProc) cluster(token string) (clusterView, error) {
	var v clusterView
	code, b, _, err := h.do("GET", "/api/cluster", token, nil)
	if err != nil {
		return v, err
	}
	if code != 200 {
		return v, fmt.Errorf("GET /api/cluster on %s: %d %s", h.id, code, b)
	}
	return v, json.Unmarshal(b, &v)
}

// startCluster starts three hubs in three regions: h[0] bootstraps, the
// others join through the previous one (a follower forwards the join).
func startCluster(t testing.TB, o clusterOpts) ([]*hubProc, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-hub process test (-short)")
	}
	hubs := []*hubProc{startHubProc(t, "hub-us", "us", "", o)}
	hubs = append(hubs, startHubProc(t, "hub-eu", "eu", hubs[0].api, o))
	hubs = append(hubs, startHubProc(t, "hub-apac", "apac", hubs[1].api, o))
	token := hubs[0].login(t)
	testenv.WaitFor(t, 30*time.Second, "three voters seen by every hub", func() error {
		for _, h := range hubs {
			v, err := h.cluster(token)
			if err != nil {
				return err
			}
			voters := 0
			for _, s := range v.Servers {
				if s.Voter {
					voters++
				}
			}
			if voters != 3 || v.LeaderID == "" {
				return fmt.Errorf("%s sees %d voters, leader %q", h.id, voters, v.LeaderID)
			}
		}
		return nil
	})
	return hubs, token
}

func leaderOf(t testing.TB, hubs []*hubProc, token string) (*hubProc, []*hubProc) {
	t.Helper()
	v, err := hubs[0].cluster(token)
	if err != nil {
		t.Fatal(err)
	}
	var leader *hubProc
	var rest []*hubProc
	for _, h := range hubs {
		if h.id == v.LeaderID {
			leader = h
		} else {
			rest = append(rest, h)
		}
	}
	if leader == nil {
		t.Fatalf("leader %q is not one of the hubs", v.LeaderID)
	}
	return leader, rest
}

// createInstance POSTs a stopped instance through h.
func createInstance(h *hubProc, token, name string) (int, []byte, error) {
	code, b, _, err := h.do("POST", "/api/instances", token, map[string]any{"name": name, "desired_state": "stopped"})
	return code, b, err
}

func instanceNames(t testing.TB, h *hubProc, token, query string) (map[string]bool, http.Header, int) {
	t.Helper()
	code, b, hdr, err := h.do("GET", "/api/instances"+query, token, nil)
	if err != nil {
		t.Fatalf("list on %s: %v", h.id, err)
	}
	names := map[string]bool{}
	if code != 200 {
		return names, hdr, code
	}
	var out struct {
		Instances []struct {
			Name string `json:"name"`
		} `json:"instances"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("list on %s: %v: %s", h.id, err, b)
	}
	for _, i := range out.Instances {
		names[i.Name] = true
	}
	return names, hdr, code
}

// TestClusterLeaderKilled: three hub processes; writes through every hub
// (followers forward); SIGKILL the leader; a new leader is elected and a
// write through each surviving hub succeeds; no acknowledged write is lost.
func TestClusterLeaderKilled(t *testing.T) {
	hubs, token := startCluster(t, clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Minute})
	var written []string
	for i, h := range hubs {
		name := fmt.Sprintf("before-%d", i)
		if code, b, err := createInstance(h, token, name); err != nil || code != 201 {
			t.Fatalf("write through %s: %d %s %v", h.id, code, b, err)
		}
		written = append(written, name)
	}
	// A token issued by one hub works on the others (replicated keys).
	if code, b, _, _ := hubs[2].do("GET", "/api/cluster", token, nil); code != 200 {
		t.Fatalf("token on another hub: %d %s", code, b)
	}
	checkRegionsAndRoute(t, hubs, token)
	leader, survivors := leaderOf(t, hubs, token)
	start := time.Now()
	leader.kill()
	var failover time.Duration
	for i, h := range survivors {
		name := fmt.Sprintf("after-%d", i)
		testenv.WaitFor(t, 20*time.Second, "write through "+h.id+" after the leader died", func() error {
			code, b, err := createInstance(h, token, name)
			if err != nil {
				return err
			}
			if code == 409 { // an earlier attempt's outcome was unknown but it applied
				return nil
			}
			if code != 201 {
				return fmt.Errorf("%d %s", code, b)
			}
			return nil
		})
		if i == 0 {
			failover = time.Since(start)
		}
		written = append(written, name)
	}
	t.Logf("leader %s SIGKILLed: first write through a survivor after %s", leader.id, failover.Round(time.Millisecond))
	v, err := survivors[0].cluster(token)
	if err != nil || v.LeaderID == "" || v.LeaderID == leader.id {
		t.Fatalf("after failover: leader %q, err %v", v.LeaderID, err)
	}
	for _, h := range survivors {
		names, hdr, code := instanceNames(t, h, token, "?consistent=1")
		if code != 200 {
			t.Fatalf("consistent list on %s: %d", h.id, code)
		}
		if hdr.Get("X-Redforge-Stale-Ms") != "0" {
			t.Errorf("consistent read on %s: stale header %q, want 0", h.id, hdr.Get("X-Redforge-Stale-Ms"))
		}
		for _, w := range written {
			if !names[w] {
				t.Errorf("%s lost acknowledged write %s", h.id, w)
			}
		}
	}
}

// TestClusterRegionCut: one follower hub (a region) is cut off from the
// others (its Raft and API links); the other two keep accepting writes; the
// cut hub serves stale reads with a growing X-Redforge-Stale-Ms and refuses
// ?consistent=1 reads with 503 leader_unreachable; after the heal it
// catches up.
func TestClusterRegionCut(t *testing.T) {
	hubs, token := startCluster(t, clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Minute})
	_, followers := leaderOf(t, hubs, token)
	cut := followers[0]
	var others []*hubProc
	for _, h := range hubs {
		if h != cut {
			others = append(others, h)
		}
	}
	if code, b, err := createInstance(others[0], token, "before-cut"); err != nil || code != 201 {
		t.Fatalf("write before the cut: %d %s %v", code, b, err)
	}
	testenv.WaitFor(t, 10*time.Second, "cut hub has the first write", func() error {
		if names, _, _ := instanceNames(t, cut, token, ""); !names["before-cut"] {
			return errors.New("not yet")
		}
		return nil
	})
	cut.raftLink.Cut()
	cut.apiLink.Cut()
	for i, h := range others {
		name := fmt.Sprintf("during-cut-%d", i)
		testenv.WaitFor(t, 15*time.Second, "write through "+h.id+" during the cut", func() error {
			code, b, err := createInstance(h, token, name)
			if err != nil || (code != 201 && code != 409) {
				return fmt.Errorf("%d %s %v", code, b, err)
			}
			return nil
		})
	}
	// Stale reads: served, without the writes made during the cut, with a
	// staleness that grows past the heartbeat timeout.
	testenv.WaitFor(t, 10*time.Second, "stale header grows on the cut hub", func() error {
		names, hdr, code := instanceNames(t, cut, token, "")
		ms, _ := strconv.Atoi(hdr.Get("X-Redforge-Stale-Ms"))
		if code != 200 || !names["before-cut"] || names["during-cut-0"] {
			return fmt.Errorf("stale read: %d %v", code, names)
		}
		if ms < 1000 {
			return fmt.Errorf("stale %d ms", ms)
		}
		return nil
	})
	start := time.Now()
	code, b, _, err := cut.do("GET", "/api/instances?consistent=1", token, nil)
	if err != nil || code != 503 || !bytes.Contains(b, []byte("leader_unreachable")) {
		t.Fatalf("consistent read on the cut hub = %d %s %v, want 503 leader_unreachable", code, b, err)
	}
	t.Logf("cut hub refused a consistent read in %s: %s", time.Since(start).Round(time.Millisecond), b)
	cut.raftLink.Restore()
	cut.apiLink.Restore()
	testenv.WaitFor(t, 20*time.Second, "cut hub catches up after the heal", func() error {
		names, hdr, code := instanceNames(t, cut, token, "?consistent=1")
		if code != 200 || !names["during-cut-0"] || !names["during-cut-1"] {
			return fmt.Errorf("%d %v stale=%s", code, names, hdr.Get("X-Redforge-Stale-Ms"))
		}
		return nil
	})
}

// checkRegionsAndRoute: GET /api/regions groups the hubs by region with the
// leader and a full RTT matrix; GET /api/route puts the caller's region
// first, then this hub, then the others.
func checkRegionsAndRoute(t *testing.T, hubs []*hubProc, token string) {
	t.Helper()
	var regions struct {
		LeaderID string `json:"leader_id"`
		Regions  []struct {
			Name string `json:"name"`
			Up   bool   `json:"up"`
			Hubs []struct {
				ID     string `json:"id"`
				Voter  bool   `json:"voter"`
				Leader bool   `json:"leader"`
			} `json:"hubs"`
		} `json:"regions"`
		RTTMS map[string]map[string]float64 `json:"rtt_ms"`
	}
	testenv.WaitFor(t, 20*time.Second, "a full RTT matrix", func() error {
		code, b, _, err := hubs[0].do("GET", "/api/regions", token, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %s %v", code, b, err)
		}
		if err := json.Unmarshal(b, &regions); err != nil {
			return err
		}
		if len(regions.RTTMS) != 3 {
			return fmt.Errorf("rows %v", regions.RTTMS)
		}
		for id, row := range regions.RTTMS {
			if len(row) != 2 {
				return fmt.Errorf("row %s = %v", id, row)
			}
		}
		return nil
	})
	t.Logf("RTT matrix (ms): %v", regions.RTTMS)
	if len(regions.Regions) != 3 || regions.LeaderID == "" {
		t.Fatalf("regions = %+v", regions)
	}
	leaders := 0
	for _, r := range regions.Regions {
		if len(r.Hubs) != 1 || !r.Up || !r.Hubs[0].Voter {
			t.Errorf("region %s = %+v", r.Name, r)
		}
		if r.Hubs[0].Leader {
			leaders++
		}
	}
	if leaders != 1 {
		t.Errorf("%d leaders in /api/regions", leaders)
	}
	code, b, _, err := hubs[0].do("GET", "/api/route?region=apac", "", nil)
	var route struct {
		Hubs []struct {
			ID    string `json:"id"`
			State string `json:"state"`
		} `json:"hubs"`
	}
	if err != nil || code != 200 || json.Unmarshal(b, &route) != nil || len(route.Hubs) != 3 {
		t.Fatalf("GET /api/route = %d %s %v", code, b, err)
	}
	if route.Hubs[0].ID != "hub-apac" || route.Hubs[1].ID != "hub-us" {
		t.Errorf("route for apac asked at hub-us = %+v, want hub-apac, hub-us, hub-eu", route.Hubs)
	}
	// Hub-to-hub calls need the cluster secret.
	code, b, _, _ = hubs[1].do("POST", "/api/cluster/apply", token, map[string]string{})
	if code != 401 || !bytes.Contains(b, []byte("cluster secret")) {
		t.Errorf("cluster apply without the secret = %d %s, want 401", code, b)
	}
}

// TestClusterDeadHubRemovedAndRejoins: a hub down for longer than
// --dead-server-timeout is removed from the Raft configuration and the
// directory; restarted on its data it joins again by itself (its --join)
// and catches up.
func TestClusterDeadHubRemovedAndRejoins(t *testing.T) {
	hubs, token := startCluster(t, clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: 3 * time.Second})
	_, followers := leaderOf(t, hubs, token)
	gone := followers[0]
	var other *hubProc
	for _, h := range hubs {
		if h != gone {
			other = h
			break
		}
	}
	gone.kill()
	start := time.Now()
	members := func() (map[string]bool, error) {
		v, err := other.cluster(token)
		if err != nil {
			return nil, err
		}
		m := map[string]bool{}
		for _, s := range v.Servers {
			m[s.ID] = s.Voter
		}
		return m, nil
	}
	testenv.WaitFor(t, 20*time.Second, gone.id+" removed", func() error {
		m, err := members()
		if err != nil {
			return err
		}
		if _, ok := m[gone.id]; ok || len(m) != 2 {
			return fmt.Errorf("members %v", m)
		}
		return nil
	})
	t.Logf("%s removed %s after it died (timeout 3s)", gone.id, time.Since(start).Round(time.Millisecond))
	if code, b, err := createInstance(other, token, "while-gone"); err != nil || code != 201 {
		t.Fatalf("write while the hub is gone: %d %s %v", code, b, err)
	}
	gone.start()
	testenv.WaitFor(t, 30*time.Second, gone.id+" rejoined as a voter and caught up", func() error {
		m, err := members()
		if err != nil {
			return err
		}
		if !m[gone.id] || len(m) != 3 {
			return fmt.Errorf("members %v", m)
		}
		names, _, code := instanceNames(t, gone, token, "?consistent=1")
		if code != 200 || !names["while-gone"] {
			return fmt.Errorf("rejoined hub: %d %v", code, names)
		}
		return nil
	})
}
