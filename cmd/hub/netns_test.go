package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// Hubs on separate hosts: each hub runs in its own network namespace with
// its own loopback, joined to the others by a bridge (testenv.Net). The
// hubs share a Mosquitto bus and a PostgreSQL store that run in the
// test's namespace and are exposed at the bridge's gateway address.
// Runtimes listen on their hub's host address, so a hub that dialled
// 127.0.0.1 for another host's runtime would fail here as on real hosts.

// nsHub is one hub process on its own host.
type nsHub struct {
	t      testing.TB
	id     string
	region string
	host   *testenv.Host
	api    string
	args   []string
	cmd    *nsProc
	logs   *testenv.Buffer
	client *http.Client // default nsClient (plain HTTP)
	mu     sync.Mutex
}

// nsProc is a started hub process and its exit.
type nsProc struct {
	pid    int
	exited chan struct{}
}

// nsCluster is a set of hubs on one test network.
type nsCluster struct {
	t     testing.TB
	net   *testenv.Net
	bus   string // bus URL as the test reaches it (tcp://127.0.0.1:…)
	mqtt  string // bus URL as hubs reach it
	store string // store URL as hubs reach it
	hubs  []*nsHub
	token string
}

type nsOpts struct {
	lostAfter time.Duration // --hub-lost-timeout (default 3s)
	redis     bool          // a shared Redis for coordination
}

// newNSCluster starts one hub per region given ("us", "us", "eu" makes
// two hubs in us and one in eu), each on its own host; the first
// bootstraps and the others join it.
func newNSCluster(t testing.TB, o nsOpts, regions ...string) *nsCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("multi-host test (-short)")
	}
	if o.lostAfter == 0 {
		o.lostAfter = 3 * time.Second
	}
	n := testenv.NewNet(t)
	c := &nsCluster{t: t, net: n}
	c.bus = testenv.Mosquitto(t)
	c.mqtt = "tcp://" + n.Expose(strings.TrimPrefix(c.bus, "tcp://")).Addr()
	dsn := testenv.Postgres(t)
	c.store = exposeDSN(t, n, dsn)
	var extra []string
	if o.redis {
		addr := strings.TrimSuffix(strings.TrimPrefix(testenv.Redis(t), "redis://"), "/0")
		extra = append(extra, "--redis", "redis://"+n.Expose(addr).Addr()+"/0")
	}
	for i, r := range regions {
		join := ""
		if i > 0 {
			join = c.hubs[0].api
		}
		c.hubs = append(c.hubs, c.startHub(fmt.Sprintf("hub%d-%s", i+1, r), r, join, o, extra))
	}
	c.token = c.hubs[0].login(t)
	c.waitMembers(len(regions))
	return c
}

// exposeDSN makes a postgres:// DSN on 127.0.0.1 reachable from the hosts.
func exposeDSN(t testing.TB, n *testenv.Net, dsn string) string {
	t.Helper()
	i := strings.Index(dsn, "@")
	j := strings.Index(dsn[i:], "/")
	if i < 0 || j < 0 {
		t.Fatalf("unexpected DSN shape %q", dsn)
	}
	hostport := dsn[i+1 : i+j]
	return dsn[:i+1] + n.Expose(hostport).Addr() + dsn[i+j:]
}

func (c *nsCluster) startHub(id, region, join string, o nsOpts, extra []string) *nsHub {
	t := c.t
	t.Helper()
	host := c.net.Host(id)
	h := &nsHub{t: t, id: id, region: region, host: host, api: "http://" + host.IP + ":3000"}
	h.args = []string{
		"--listen", host.IP + ":3000", "--advertise", h.api,
		"--raft-listen", host.IP + ":7000",
		"--data-dir", t.TempDir(),
		"--mqtt", c.mqtt, "--store", c.store,
		"--node-id", id, "--region", region,
		"--driver", "process", "--node-red", testenv.NodeREDPaths(t).RedJS,
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--raft-lease-timeout", "250ms",
		"--hub-lost-timeout", o.lostAfter.String(), "--monitor-interval", "1s",
		"--log-level", "info",
	}
	if join != "" {
		h.args = append(h.args, "--join", join)
	}
	h.args = append(h.args, extra...)
	h.start()
	return h
}

func (h *nsHub) start() {
	t := h.t
	t.Helper()
	h.mu.Lock()
	h.logs = &testenv.Buffer{}
	cmd := h.host.Command(hubBinary(t), h.args...)
	cmd.Env = append(os.Environ(), "REDFORGE_CLUSTER_SECRET="+clusterSecret, "REDFORGE_ADMIN_PASSWORD="+adminPassword)
	cmd.Stdout, cmd.Stderr = h.logs, h.logs
	if err := cmd.Start(); err != nil {
		h.mu.Unlock()
		t.Fatal(err)
	}
	e := &nsProc{pid: cmd.Process.Pid, exited: make(chan struct{})}
	h.cmd = e
	h.mu.Unlock()
	go func() { _ = cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(e.pid, syscall.SIGTERM)
		select {
		case <-e.exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(e.pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", h.id, h.logs.String())
		}
	})
	testenv.WaitFor(t, 60*time.Second, h.id+" healthy", func() error {
		select {
		case <-e.exited:
			t.Fatalf("%s exited:\n%s", h.id, h.logs.String())
		default:
		}
		code, _, err := h.call("GET", "/api/health", "", nil)
		if err != nil {
			return err
		}
		if code != 200 {
			return fmt.Errorf("health %d", code)
		}
		return nil
	})
}

// kill is the host's death: every process of its namespace (the hub and
// the Node-RED runtimes it started) is SIGKILLed.
func (h *nsHub) kill() {
	h.host.Kill()
	h.mu.Lock()
	e := h.cmd
	h.mu.Unlock()
	<-e.exited
}

var nsClient = &http.Client{Timeout: 15 * time.Second}

// call calls the hub's API; body is JSON-encoded unless it is []byte.
func (h *nsHub) call(method, path, token string, body any) (int, []byte, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.api+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := nsClient
	if h.client != nil {
		client = h.client
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// must calls and decodes, failing the test on another status than want.
func (h *nsHub) must(method, path, token string, body any, want int, out any) {
	h.t.Helper()
	var code int
	var b []byte
	var err error
	testenv.WaitFor(h.t, 30*time.Second, method+" "+path+" on "+h.id, func() error {
		code, b, err = h.call(method, path, token, body)
		if err != nil || code == http.StatusServiceUnavailable {
			return fmt.Errorf("%d %s %v", code, b, err) // a leader election in progress: retry
		}
		return nil
	})
	if code != want {
		h.t.Fatalf("%s %s on %s: %d %s, want %d", method, path, h.id, code, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			h.t.Fatalf("%s %s: decode %s: %v", method, path, b, err)
		}
	}
}

func (h *nsHub) login(t testing.TB) string {
	t.Helper()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	h.must("POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": adminPassword}, 200, &out)
	return out.AccessToken
}

// hubView is one hub as GET /api/hubs shows it.
type hubView struct {
	ID          string `json:"id"`
	Region      string `json:"region"`
	State       string `json:"state"`
	Draining    bool   `json:"draining"`
	Leader      bool   `json:"leader"`
	Allocations int    `json:"allocations"`
	Running     int    `json:"running"`
}

func (c *nsCluster) hubsView(via *nsHub) []hubView {
	var out struct {
		Hubs []hubView `json:"hubs"`
	}
	via.must("GET", "/api/hubs", c.token, nil, 200, &out)
	return out.Hubs
}

// waitMembers waits until every hub is registered and up.
func (c *nsCluster) waitMembers(n int) {
	c.t.Helper()
	testenv.WaitFor(c.t, 60*time.Second, fmt.Sprintf("%d hubs up", n), func() error {
		var out struct {
			Hubs []hubView `json:"hubs"`
		}
		code, b, err := c.hubs[0].call("GET", "/api/hubs", c.token, nil)
		if err != nil || code != 200 {
			return fmt.Errorf("%d %s %v", code, b, err)
		}
		_ = json.Unmarshal(b, &out)
		up := 0
		for _, h := range out.Hubs {
			if h.State == "up" {
				up++
			}
		}
		if up != n {
			return fmt.Errorf("%d of %d hubs up: %+v", up, n, out.Hubs)
		}
		return nil
	})
}

// leader is the hub that leads now.
func (c *nsCluster) leader(exclude ...*nsHub) *nsHub {
	c.t.Helper()
	var found *nsHub
	testenv.WaitFor(c.t, 30*time.Second, "a leader", func() error {
		for _, h := range c.hubs {
			if slices.Contains(exclude, h) {
				continue
			}
			code, b, err := h.call("GET", "/api/cluster", c.token, nil)
			if err != nil || code != 200 {
				continue
			}
			var v clusterView
			_ = json.Unmarshal(b, &v)
			for _, o := range c.hubs {
				if o.id == v.LeaderID && !slices.Contains(exclude, o) {
					found = o
					return nil
				}
			}
		}
		return fmt.Errorf("no leader among the live hubs")
	})
	return found
}

func (c *nsCluster) hub(id string) *nsHub {
	for _, h := range c.hubs {
		if h.id == id {
			return h
		}
	}
	c.t.Fatalf("no hub %s", id)
	return nil
}

// replica is one allocation as GET /api/instances/:id shows it.
type replica struct {
	ID      string `json:"id"`
	Replica int    `json:"replica"`
	Hub     string `json:"hub"`
	Region  string `json:"region"`
	Color   string `json:"color"`
	Status  string `json:"status"`
	Address string `json:"address"`
	Reason  string `json:"reason"`
}

type instanceView struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Replicas    int       `json:"replicas"`
	Allocations []replica `json:"allocations"`
	Observed    struct {
		Status string `json:"status"`
	} `json:"observed"`
}

func (c *nsCluster) instance(via *nsHub, name string) (instanceView, error) {
	var v instanceView
	code, b, err := via.call("GET", "/api/instances/"+name, c.token, nil)
	if err != nil {
		return v, err
	}
	if code != 200 {
		return v, fmt.Errorf("GET %s: %d %s", name, code, b)
	}
	return v, json.Unmarshal(b, &v)
}

// waitRunning waits until n replicas of the instance run (seen through
// via) and returns the instance.
func (c *nsCluster) waitRunning(via *nsHub, name string, n int, within time.Duration) instanceView {
	c.t.Helper()
	var v instanceView
	testenv.WaitFor(c.t, within, fmt.Sprintf("%d replicas of %s running", n, name), func() error {
		var err error
		if v, err = c.instance(via, name); err != nil {
			return err
		}
		running := 0
		for _, a := range v.Allocations {
			if a.Status == "running" {
				running++
			}
		}
		if running != n || len(v.Allocations) != n {
			return fmt.Errorf("%d of %d running: %+v", running, len(v.Allocations), v.Allocations)
		}
		return nil
	})
	return v
}

// hostOf is the hub running a replica.
func (c *nsCluster) hostOf(r replica) *nsHub { return c.hub(r.Hub) }

// testenvMosquitto is the shared bus as the test reaches it.
func testenvMosquitto(c *nsCluster) string { return c.bus }
