package testenv

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// A highly available PostgreSQL of one test, from Debian's packages:
// etcd 3.4 (3 members), Patroni 3.0 managing 2-3 PostgreSQL 15 servers on
// loopback ports (synchronous_mode: true), HAProxy routing to whichever is
// the primary (Patroni's REST /primary as its health check), and, when
// asked, PgBouncer in transaction pooling mode in front of HAProxy. What a
// production topology looks like (README, "PostgreSQL in production"),
// on one machine.

// Debian locations of the HA components (provision.sh installs them).
const (
	keyEtcd      = "REDFORGE_TEST_ETCD"
	keyPatroni   = "REDFORGE_TEST_PATRONI"
	keyPgBouncer = "REDFORGE_TEST_PGBOUNCER"
	keyHAProxy   = "REDFORGE_TEST_HAPROXY"
)

// haBinary returns the path of a Debian HA component: from the env file
// or its package's standard location.
func haBinary(tb testing.TB, key, def, pkg string) string {
	tb.Helper()
	p, err := lookup(key)
	if err != nil {
		p = def
	}
	if err := checkExecutable(p); err != nil {
		unavailable(tb, pkg, err)
	}
	return p
}

// PGHAOptions shape a PGHA cluster.
type PGHAOptions struct {
	// Nodes is the number of PostgreSQL servers (2 or 3; default 2).
	Nodes int
	// PgBouncer starts PgBouncer (transaction pooling) in front of HAProxy.
	PgBouncer bool
	// Async turns Patroni's synchronous_mode off.
	Async bool
	// TTL is Patroni's leader key TTL in seconds (default 6; loop_wait 1,
	// retry_timeout 2): how long a dead primary holds the leader key.
	TTL int
	// ReplicationLinks puts a toxiproxy Link in front of each node's
	// PostgreSQL port and has the node advertise it as its Patroni
	// postgresql.connect_address: the conn_url in its member key, from
	// which Patroni writes the standbys' primary_conninfo (and takes the
	// source of pg_basebackup and pg_rewind). So every standby streams
	// WAL from the primary through the primary's Link, which can add a
	// region's latency or cut the path, while clients (DSN, HAProxy) keep
	// connecting straight to the node's port.
	ReplicationLinks bool
}

// PGHA is a running cluster.
type PGHA struct {
	Scope string
	Nodes []*PatroniNode
	// EtcdClients are the etcd members' client URLs.
	EtcdClients []string
	// HAProxy is host:port of the HAProxy frontend that leads to the
	// primary; PgBouncer host:port of PgBouncer in front of it ("" when
	// not started).
	HAProxy, PgBouncer string
	root               string
	tb                 testing.TB
	mu                 sync.Mutex
	procs              []*haProc
}

// PatroniNode is one PostgreSQL server and its Patroni.
type PatroniNode struct {
	Name     string
	PGPort   int
	RESTPort int
	DataDir  string
	Config   string // patroni.yml
	// Link is the path the standbys replicate from this node through
	// (PGHAOptions.ReplicationLinks), nil without.
	Link    *Link
	patroni *haProc
	killed  bool
}

// Addr is the node's PostgreSQL host:port.
func (n *PatroniNode) Addr() string { return fmt.Sprintf("127.0.0.1:%d", n.PGPort) }

// REST is the node's Patroni REST base URL.
func (n *PatroniNode) REST() string { return fmt.Sprintf("http://127.0.0.1:%d", n.RESTPort) }

// haProc is a process of the cluster (etcd, Patroni, HAProxy, PgBouncer).
type haProc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

func (p *haProc) exited() error {
	select {
	case <-p.done:
		b, _ := os.ReadFile(p.log)
		return fmt.Errorf("%s exited; its log ends:\n%s", p.name, tail(b))
	default:
		return nil
	}
}

// kill SIGKILLs the process group and waits for the leader to be reaped.
func (p *haProc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// startAs starts a process in its own group, as the postgres user when
// asPG, output to dir/name.log.
func (c *PGHA) startAs(asPG bool, name string, path string, args ...string) *haProc {
	c.tb.Helper()
	logPath := filepath.Join(c.root, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.tb.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(path, args...)
	cmd.Dir = c.root
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if asPG {
		u, err := user.Lookup("postgres")
		if err != nil {
			unavailable(c.tb, "postgres user", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + c.root, "LANG=C.UTF-8"}
	}
	if err := cmd.Start(); err != nil {
		unavailable(c.tb, name, err)
	}
	p := &haProc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	return p
}

// StartPGHA starts, for one test, etcd (3 members), Patroni over opts.Nodes
// PostgreSQL 15 servers, HAProxy and (opts.PgBouncer) PgBouncer, waits
// until there is a leader and every replica streams (with a synchronous
// standby in synchronous mode), and stops it all at cleanup.
func StartPGHA(tb testing.TB, opts PGHAOptions) *PGHA {
	tb.Helper()
	if opts.Nodes == 0 {
		opts.Nodes = 2
	}
	if opts.TTL == 0 {
		opts.TTL = 6
	}
	etcd := haBinary(tb, keyEtcd, "/usr/bin/etcd", "etcd-server")
	patroni := haBinary(tb, keyPatroni, "/usr/bin/patroni", "patroni")
	haproxy := haBinary(tb, keyHAProxy, "/usr/sbin/haproxy", "haproxy")
	PGBin(tb)
	c := &PGHA{Scope: "t" + randomHex(6), root: PostgresUserDir(tb), tb: tb}
	tb.Cleanup(c.stopAll)
	c.startEtcd(etcd)
	for i := range opts.Nodes {
		n := &PatroniNode{Name: fmt.Sprintf("pg%d", i), PGPort: FreePort(tb), RESTPort: FreePort(tb)}
		n.DataDir = filepath.Join(c.root, n.Name)
		if opts.ReplicationLinks {
			n.Link = Proxy(tb, n.Addr())
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, n := range c.Nodes {
		c.writePatroniConfig(n, opts)
	}
	// The first node bootstraps alone (no race for the initialize key,
	// which would leave the losers waiting a loop); the others then clone
	// it with pg_basebackup.
	c.Nodes[0].patroni = c.startAs(true, "patroni-"+c.Nodes[0].Name, patroni, c.Nodes[0].Config)
	c.WaitLeader(90 * time.Second)
	for _, n := range c.Nodes[1:] {
		n.patroni = c.startAs(true, "patroni-"+n.Name, patroni, n.Config)
	}
	c.startHAProxy(haproxy)
	if opts.PgBouncer {
		c.PgBouncer = c.startPgBouncer(c.HAProxy)
	}
	c.WaitHealthy(120*time.Second, !opts.Async)
	return c
}

// startEtcd starts a 3-member etcd cluster on loopback ports.
func (c *PGHA) startEtcd(bin string) {
	c.tb.Helper()
	type member struct {
		name         string
		client, peer int
	}
	var ms []member
	var initial []string
	for i := range 3 {
		m := member{fmt.Sprintf("e%d", i), FreePort(c.tb), FreePort(c.tb)}
		ms = append(ms, m)
		initial = append(initial, fmt.Sprintf("%s=http://127.0.0.1:%d", m.name, m.peer))
	}
	var procs []*haProc
	for _, m := range ms {
		client := fmt.Sprintf("http://127.0.0.1:%d", m.client)
		peer := fmt.Sprintf("http://127.0.0.1:%d", m.peer)
		c.EtcdClients = append(c.EtcdClients, client)
		procs = append(procs, c.startAs(false, "etcd-"+m.name, bin, "--name", m.name,
			"--data-dir", filepath.Join(c.root, "etcd-"+m.name),
			"--listen-client-urls", client, "--advertise-client-urls", client,
			"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-token", c.Scope,
			"--initial-cluster-state", "new", "--log-level", "warn", "--logger", "zap",
			"--heartbeat-interval", "100", "--election-timeout", "1000"))
	}
	err := poll(60*time.Second, func() error {
		for _, u := range c.EtcdClients {
			resp, err := http.Get(u + "/health")
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("%s/health: %s", u, resp.Status)
			}
		}
		return nil
	}, func() error {
		for _, p := range procs {
			if err := p.exited(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.tb.Fatalf("testenv: etcd did not start: %v", err)
	}
}

// writePatroniConfig writes n's patroni.yml (JSON, which YAML reads).
func (c *PGHA) writePatroniConfig(n *PatroniNode, opts PGHAOptions) {
	c.tb.Helper()
	sock := filepath.Join(c.root, "sock-"+n.Name)
	if err := os.MkdirAll(sock, 0o700); err != nil {
		c.tb.Fatal(err)
	}
	var hosts []string
	for _, u := range c.EtcdClients {
		hosts = append(hosts, strings.TrimPrefix(u, "http://"))
	}
	hba := []string{"local all all trust", "host all all 127.0.0.1/32 trust", "host replication all 127.0.0.1/32 trust"}
	auth := map[string]any{"username": "postgres", "password": "postgres"}
	advertise := n.Addr()
	if n.Link != nil {
		advertise = n.Link.Addr()
	}
	params := map[string]any{
		"shared_buffers": "16MB", "max_connections": 100, "fsync": "on", "wal_level": "replica",
		"hot_standby": "on", "max_wal_senders": 10, "max_replication_slots": 10, "wal_keep_size": "64MB",
		"wal_log_hints": "on", "log_min_messages": "warning", "unix_socket_directories": sock,
		"wal_receiver_status_interval": "1s", "hot_standby_feedback": "on",
	}
	cfg := map[string]any{
		"scope": c.Scope, "namespace": "/redforge/", "name": n.Name,
		"log":     map[string]any{"level": "WARNING"},
		"restapi": map[string]any{"listen": fmt.Sprintf("127.0.0.1:%d", n.RESTPort), "connect_address": fmt.Sprintf("127.0.0.1:%d", n.RESTPort)},
		"etcd3":   map[string]any{"hosts": hosts},
		"bootstrap": map[string]any{
			"dcs": map[string]any{
				"ttl": opts.TTL, "loop_wait": 1, "retry_timeout": max(2, (opts.TTL-1)/2),
				"maximum_lag_on_failover": 16 << 20, "synchronous_mode": !opts.Async,
				"postgresql": map[string]any{"use_pg_rewind": true, "use_slots": true, "parameters": params},
			},
			"initdb":  []any{map[string]any{"encoding": "UTF8"}, map[string]any{"locale": "C"}},
			"pg_hba":  hba,
			"options": nil,
		},
		"postgresql": map[string]any{
			"listen": fmt.Sprintf("127.0.0.1:%d", n.PGPort), "connect_address": advertise,
			"data_dir": n.DataDir, "bin_dir": PGBin(c.tb), "pgpass": filepath.Join(c.root, "pgpass-"+n.Name),
			"authentication": map[string]any{"superuser": auth, "replication": auth, "rewind": auth},
			"parameters":     map[string]any{"unix_socket_directories": sock},
			"pg_hba":         hba,
		},
		"tags": map[string]any{"nofailover": false, "noloadbalance": false, "clonefrom": false, "nosync": false},
	}
	delete(cfg["bootstrap"].(map[string]any), "options")
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		c.tb.Fatal(err)
	}
	n.Config = filepath.Join(c.root, n.Name+".yml")
	if err := os.WriteFile(n.Config, b, 0o644); err != nil {
		c.tb.Fatal(err)
	}
	for _, p := range []string{sock, n.Config} {
		_ = exec.Command("chown", "postgres:postgres", p).Run()
	}
}

// startHAProxy starts HAProxy on a free port, sending connections to the
// node whose Patroni answers 200 on /primary; sessions to a node that
// stops being the primary are shut down.
func (c *PGHA) startHAProxy(bin string) {
	c.tb.Helper()
	port := FreePort(c.tb)
	var b strings.Builder
	fmt.Fprintf(&b, "global\n\tmaxconn 1000\ndefaults\n\tmode tcp\n\ttimeout connect 2s\n\ttimeout client 30m\n\ttimeout server 30m\n\ttimeout check 1s\n")
	fmt.Fprintf(&b, "listen primary\n\tbind 127.0.0.1:%d\n\toption httpchk GET /primary\n\thttp-check expect status 200\n", port)
	fmt.Fprintf(&b, "\tdefault-server inter 300ms fastinter 200ms downinter 300ms fall 2 rise 1 on-marked-down shutdown-sessions\n")
	for _, n := range c.Nodes {
		fmt.Fprintf(&b, "\tserver %s 127.0.0.1:%d check port %d\n", n.Name, n.PGPort, n.RESTPort)
	}
	cfg := filepath.Join(c.root, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o644); err != nil {
		c.tb.Fatal(err)
	}
	p := c.startAs(false, "haproxy", bin, "-f", cfg, "-db")
	c.HAProxy = fmt.Sprintf("127.0.0.1:%d", port)
	if err := poll(30*time.Second, func() error { return c.ping(c.HAProxy) }, p.exited); err != nil {
		c.tb.Fatalf("testenv: haproxy: %v", err)
	}
}

// PgBouncer starts PgBouncer in transaction pooling mode in front of
// upstream (host:port; every database, trust authentication for user
// postgres) for one test and returns its host:port.
func PgBouncer(tb testing.TB, upstream string) string {
	tb.Helper()
	c := &PGHA{root: PostgresUserDir(tb), tb: tb}
	tb.Cleanup(c.stopAll)
	return c.startPgBouncer(upstream)
}

func (c *PGHA) startPgBouncer(upstream string) string {
	c.tb.Helper()
	bin := haBinary(c.tb, keyPgBouncer, "/usr/sbin/pgbouncer", "pgbouncer")
	host, port, _ := strings.Cut(upstream, ":")
	users := filepath.Join(c.root, "pgbouncer-users.txt")
	if err := os.WriteFile(users, []byte(`"postgres" ""`+"\n"), 0o644); err != nil {
		c.tb.Fatal(err)
	}
	var lastErr error
	for range startupAttempts {
		listen := FreePort(c.tb)
		ini := fmt.Sprintf(`[databases]
* = host=%s port=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
admin_users = postgres
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
max_db_connections = 80
server_login_retry = 1
server_connect_timeout = 2
query_wait_timeout = 30
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
`, host, port, listen, users)
		path := filepath.Join(c.root, fmt.Sprintf("pgbouncer-%d.ini", listen))
		if err := os.WriteFile(path, []byte(ini), 0o644); err != nil {
			c.tb.Fatal(err)
		}
		p := c.startAs(true, fmt.Sprintf("pgbouncer-%d", listen), bin, path)
		addr := fmt.Sprintf("127.0.0.1:%d", listen)
		// Its admin console answers only PgBouncer: a server that took the
		// port first does not pass for it.
		lastErr = poll(30*time.Second, func() error { return c.pingBouncer(addr) }, p.exited)
		if lastErr == nil {
			return addr
		}
		p.kill()
	}
	c.tb.Fatalf("testenv: pgbouncer did not start: %v", lastErr)
	return ""
}

// ping connects to addr's postgres database and runs SELECT 1.
func (c *PGHA) ping(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@"+addr+"/postgres?sslmode=disable&default_query_exec_mode=exec")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SELECT 1")
	return err
}

// pingBouncer asks PgBouncer's admin console at addr for its version.
func (c *PGHA) pingBouncer(addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://postgres@"+addr+"/pgbouncer?sslmode=disable&default_query_exec_mode=simple_protocol")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "SHOW VERSION")
	return err
}

// DSN is a multi-host URL of database db over every node, for the
// read-write server (pgx's target_session_attrs).
func (c *PGHA) DSN(db string) string {
	var hosts []string
	for _, n := range c.Nodes {
		hosts = append(hosts, n.Addr())
	}
	return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&target_session_attrs=read-write&connect_timeout=2", strings.Join(hosts, ","), db)
}

// CreateDatabase creates database name on the primary.
func (c *PGHA) CreateDatabase(name string) {
	c.tb.Helper()
	if err := pgExec(c.DSN("postgres"), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		c.tb.Fatalf("testenv: create database %s: %v", name, err)
	}
}

// Member is one entry of Patroni's GET /cluster.
type Member struct {
	Name  string `json:"name"`
	Role  string `json:"role"` // leader, sync_standby, replica
	State string `json:"state"`
	Host  string `json:"host"`
	Port  int    `json:"port"`
	Lag   any    `json:"lag"`
}

// Members asks the Patroni of a live node for the cluster's members.
func (c *PGHA) Members() ([]Member, error) {
	var lastErr error = errors.New("no live node")
	for _, n := range c.Nodes {
		if n.killed {
			continue
		}
		cl := http.Client{Timeout: 2 * time.Second}
		resp, err := cl.Get(n.REST() + "/cluster")
		if err != nil {
			lastErr = err
			continue
		}
		var body struct{ Members []Member }
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if err != nil {
			lastErr = err
			continue
		}
		return body.Members, nil
	}
	return nil, lastErr
}

// Leader returns the node Patroni reports as the running leader, or an
// error.
func (c *PGHA) Leader() (*PatroniNode, error) {
	ms, err := c.Members()
	if err != nil {
		return nil, err
	}
	for _, m := range ms {
		if m.Role == "leader" && m.State == "running" {
			if n := c.Node(m.Name); n != nil && !n.killed {
				return n, nil
			}
		}
	}
	return nil, fmt.Errorf("no running leader among %+v", ms)
}

// Node returns the node named name.
func (c *PGHA) Node(name string) *PatroniNode {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// WaitLeader waits until a leader is running and takes writes.
func (c *PGHA) WaitLeader(timeout time.Duration) *PatroniNode {
	c.tb.Helper()
	var leader *PatroniNode
	err := poll(timeout, func() error {
		n, err := c.Leader()
		if err != nil {
			return err
		}
		if err := pgExec(fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable&target_session_attrs=read-write", n.Addr()), "SELECT 1"); err != nil {
			return err
		}
		leader = n
		return nil
	}, c.anyExited)
	if err != nil {
		c.tb.Fatalf("testenv: waiting for a Patroni leader: %v", err)
	}
	return leader
}

// WaitHealthy waits until every live node runs: a leader, the others
// streaming from it, one of them the synchronous standby when sync.
func (c *PGHA) WaitHealthy(timeout time.Duration, sync bool) {
	c.tb.Helper()
	err := poll(timeout, func() error {
		ms, err := c.Members()
		if err != nil {
			return err
		}
		live := 0
		for _, n := range c.Nodes {
			if !n.killed {
				live++
			}
		}
		var leaders, syncs, streaming int
		for _, m := range ms {
			if n := c.Node(m.Name); n == nil || n.killed {
				continue
			}
			switch {
			case m.Role == "leader" && m.State == "running":
				leaders++
			case m.State == "streaming" || m.State == "running":
				streaming++
				if m.Role == "sync_standby" {
					syncs++
				}
			}
		}
		if leaders != 1 || streaming != live-1 || (sync && live > 1 && syncs == 0) {
			return fmt.Errorf("members %+v", ms)
		}
		return nil
	}, c.anyExited)
	if err != nil {
		c.tb.Fatalf("testenv: waiting for the Patroni cluster to be healthy: %v", err)
	}
}

// anyExited reports a Patroni that exited without being killed.
func (c *PGHA) anyExited() error {
	for _, n := range c.Nodes {
		if n.patroni != nil && !n.killed {
			if err := n.patroni.exited(); err != nil {
				return err
			}
		}
	}
	return nil
}

// PostmasterPID reads the PID of n's postmaster from its data directory.
func (n *PatroniNode) PostmasterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

// Kill SIGKILLs n's Patroni and its postmaster at once, as a crash of
// that machine would leave them; the postmaster's backends exit when they
// notice. The node stays dead.
func (c *PGHA) Kill(n *PatroniNode) {
	c.tb.Helper()
	pid, err := n.PostmasterPID()
	if err != nil {
		c.tb.Fatalf("testenv: postmaster of %s: %v", n.Name, err)
	}
	n.killed = true
	_ = syscall.Kill(pid, syscall.SIGKILL)
	n.patroni.kill()
}

// KillMachine is Kill with every process of the server SIGKILLed at the
// same moment too (backends, WAL sender), as the death of the machine
// would leave them: no WAL still in flight to a standby gets sent.
func (c *PGHA) KillMachine(n *PatroniNode) {
	c.tb.Helper()
	c.KillMachineWith(n, nil)
}

// KillMachineWith is KillMachine calling also (when not nil) at the moment
// the server stops (before its postmaster is stopped and its backends and
// WAL senders are killed; e.g. cutting a Link, for a region whose network
// dies with the machine), and returns that moment: no write is
// acknowledged after it.
func (c *PGHA) KillMachineWith(n *PatroniNode, also func()) time.Time {
	c.tb.Helper()
	pid, err := n.PostmasterPID()
	if err != nil {
		c.tb.Fatalf("testenv: postmaster of %s: %v", n.Name, err)
	}
	children := func() []int {
		out, _ := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output()
		var pids []int
		for _, f := range strings.Fields(string(out)) {
			if child, err := strconv.Atoi(f); err == nil {
				pids = append(pids, child)
			}
		}
		return pids
	}
	// The children are listed first (pgrep takes milliseconds, during
	// which the server would go on acknowledging), then everything stops
	// within microseconds; a child forked meanwhile is found after the
	// postmaster is stopped (no new children from there on).
	before := children()
	at := time.Now()
	if also != nil {
		also()
	}
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	for _, child := range before {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	for _, child := range children() {
		_ = syscall.Kill(child, syscall.SIGKILL)
	}
	c.Kill(n)
	return at
}

// Patronictl runs patronictl with n's config and returns its output.
func (c *PGHA) Patronictl(n *PatroniNode, args ...string) (string, error) {
	cmd := exec.Command("patronictl", append([]string{"-c", n.Config}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+c.root)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// Logs returns the end of every log of the cluster, for a failing test.
func (c *PGHA) Logs() string {
	var b strings.Builder
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.procs {
		lb, _ := os.ReadFile(p.log)
		fmt.Fprintf(&b, "--- %s ---\n%s\n", p.name, tail(lb))
	}
	return b.String()
}

// shmID reads the SysV shared memory id of n's postmaster (line 7 of
// postmaster.pid: key and id).
func (n *PatroniNode) shmID() string {
	b, err := os.ReadFile(filepath.Join(n.DataDir, "postmaster.pid"))
	if err != nil {
		return ""
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return ""
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return ""
	}
	return f[1]
}

// stopAll stops every process the cluster started: Patroni first (so it
// restarts nothing), then each postmaster with an immediate shutdown, then
// the rest; the SysV segment of a postmaster that was SIGKILLed is
// removed too.
func (c *PGHA) stopAll() {
	if c.tb.Failed() {
		c.tb.Logf("testenv: PGHA logs:\n%s", c.Logs())
	}
	var shm []string
	var pids []int
	for _, n := range c.Nodes {
		if id := n.shmID(); id != "" {
			shm = append(shm, id)
		}
		if pid, err := n.PostmasterPID(); err == nil {
			pids = append(pids, pid)
		}
	}
	for _, n := range c.Nodes {
		if n.patroni != nil {
			n.patroni.kill()
		}
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGQUIT)
	}
	_ = poll(10*time.Second, func() error {
		for _, pid := range pids {
			if syscall.Kill(pid, 0) == nil {
				return fmt.Errorf("postmaster %d still runs", pid)
			}
		}
		return nil
	}, nil)
	c.mu.Lock()
	procs := c.procs
	c.mu.Unlock()
	for _, p := range procs {
		p.kill()
	}
	for _, id := range shm {
		_ = exec.Command("ipcrm", "-m", id).Run()
	}
}
