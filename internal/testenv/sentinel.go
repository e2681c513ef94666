package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// keyRedisSentinel is the env key of the redis-sentinel executable
// (Debian's redis-sentinel package). Without it, redis-server runs in
// Sentinel mode (--sentinel), which is the same program.
const keyRedisSentinel = "REDFORGE_TEST_REDIS_SENTINEL"

// Sentinel timings of a test cluster: a master is subjectively down after
// SentinelDownAfter without an answer, and a failover is given up and
// retried after SentinelFailoverTimeout.
const (
	SentinelDownAfter       = time.Second
	SentinelFailoverTimeout = 5 * time.Second
	SentinelMaster          = "mymaster"
)

// SentinelOptions configures RedisSentinel.
type SentinelOptions struct {
	// Password, when set, is required by the master and replicas
	// (requirepass, masterauth) and given to the Sentinels (auth-pass).
	Password string
}

// SentinelCluster is a private Redis master with two replicas, watched by
// three Sentinels, all on free 127.0.0.1 ports.
type SentinelCluster struct {
	// URL is the redis-sentinel:// URL of the cluster (with the password).
	URL string
	// Master is the name the Sentinels monitor (SentinelMaster).
	Master string
	// Sentinels are the host:port of the three Sentinels.
	Sentinels []string
	password  string

	mu    sync.Mutex
	nodes map[string]*proc // by host:port: the master and the replicas
}

// RedisSentinel starts 1 Redis master, 2 replicas and 3 Sentinels (quorum
// 2, down-after SentinelDownAfter, failover-timeout SentinelFailoverTimeout)
// on free loopback ports, without persistence, and waits until both
// replicas are in sync and every Sentinel knows the replicas and the other
// Sentinels. Everything is stopped by tb.Cleanup.
func RedisSentinel(tb testing.TB, opts SentinelOptions) *SentinelCluster {
	tb.Helper()
	bin := mustExecutable(tb, "redis", keyRedisServer)
	sbin, sentinelMode := bin, true
	if p, err := lookup(keyRedisSentinel); err == nil && checkExecutable(p) == nil {
		sbin, sentinelMode = p, false
	}
	c := &SentinelCluster{Master: SentinelMaster, password: opts.Password, nodes: map[string]*proc{}}
	auth := func(args []string) []string {
		if opts.Password != "" {
			args = append(args, "--requirepass", opts.Password, "--masterauth", opts.Password)
		}
		return args
	}
	data := func(dir string, port int) []string {
		return auth([]string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
			"--repl-ping-replica-period", "1", "--dbfilename", fmt.Sprintf("dump-%d.rdb", port)})
	}
	masterPort, mp := startServer(tb, server{what: "redis-master", path: bin, timeout: defaultStartWait,
		args:  func(dir string, port int) ([]string, error) { return data(dir, port), nil },
		ready: func(port int) error { return c.ping(port) }})
	c.nodes[hostPort(masterPort)] = mp
	for i := 1; i <= 2; i++ {
		port, p := startServer(tb, server{what: fmt.Sprintf("redis-replica%d", i), path: bin, timeout: defaultStartWait,
			args: func(dir string, port int) ([]string, error) {
				return append(data(dir, port), "--replicaof", "127.0.0.1", strconv.Itoa(masterPort)), nil
			},
			ready: func(port int) error { return c.replicaInSync(port) }})
		c.nodes[hostPort(port)] = p
	}
	for i := 1; i <= 3; i++ {
		port, _ := startServer(tb, server{what: fmt.Sprintf("redis-sentinel%d", i), path: sbin, timeout: defaultStartWait,
			args: func(dir string, port int) ([]string, error) {
				conf := filepath.Join(dir, fmt.Sprintf("sentinel-%d.conf", port))
				lines := []string{
					"port " + strconv.Itoa(port),
					"bind 127.0.0.1",
					"dir " + dir,
					fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d 2", SentinelMaster, masterPort),
					fmt.Sprintf("sentinel down-after-milliseconds %s %d", SentinelMaster, SentinelDownAfter.Milliseconds()),
					fmt.Sprintf("sentinel failover-timeout %s %d", SentinelMaster, SentinelFailoverTimeout.Milliseconds()),
					fmt.Sprintf("sentinel parallel-syncs %s 2", SentinelMaster),
				}
				if opts.Password != "" {
					lines = append(lines, fmt.Sprintf("sentinel auth-pass %s %s", SentinelMaster, opts.Password))
				}
				if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
					return nil, err
				}
				if sentinelMode {
					return []string{conf, "--sentinel"}, nil
				}
				return []string{conf}, nil
			},
			ready: func(port int) error { _, err := resp(hostPort(port), "", "PING"); return err }})
		c.Sentinels = append(c.Sentinels, hostPort(port))
	}
	WaitFor(tb, 30*time.Second, "the Sentinels to know the replicas and each other", func() error {
		for _, s := range c.Sentinels {
			m, err := sentinelMaster(s)
			if err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
			if m["num-slaves"] != "2" || m["num-other-sentinels"] != "2" {
				return fmt.Errorf("%s sees %s replicas and %s other sentinels", s, m["num-slaves"], m["num-other-sentinels"])
			}
		}
		return nil
	})
	userinfo := ""
	if opts.Password != "" {
		userinfo = ":" + opts.Password + "@"
	}
	c.URL = fmt.Sprintf("redis-sentinel://%s%s/%s/0", userinfo, strings.Join(c.Sentinels, ","), SentinelMaster)
	return c
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// ping checks that the Redis on port answers PING (after AUTH).
func (c *SentinelCluster) ping(port int) error {
	_, err := resp(hostPort(port), c.password, "PING")
	return err
}

// replicaInSync checks that the Redis on port is a replica whose link to
// its master is up.
func (c *SentinelCluster) replicaInSync(port int) error {
	info, err := resp(hostPort(port), c.password, "INFO", "replication")
	if err != nil {
		return err
	}
	s, _ := info.(string)
	if !strings.Contains(s, "master_link_status:up") {
		return errors.New("replica not in sync yet")
	}
	return nil
}

// SyncReplicas waits until every replica has acknowledged the master's
// replication stream up to where it was when called: a write acknowledged
// before the call then survives the master's death.
func (c *SentinelCluster) SyncReplicas(tb testing.TB) {
	tb.Helper()
	master := c.MasterAddr(tb)
	info, err := resp(master, c.password, "INFO", "replication")
	if err != nil {
		tb.Fatalf("INFO replication on %s: %v", master, err)
	}
	v, err := replField(info, "master_repl_offset")
	if err != nil {
		tb.Fatal(err)
	}
	want, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		tb.Fatalf("master_repl_offset %q: %v", v, err)
	}
	WaitFor(tb, 30*time.Second, "the replicas to reach offset "+v, func() error {
		info, err := resp(master, c.password, "INFO", "replication")
		if err != nil {
			return err
		}
		s, _ := info.(string)
		n := 0
		for _, line := range strings.Split(s, "\n") {
			if !strings.HasPrefix(line, "slave") || !strings.Contains(line, "offset=") {
				continue
			}
			for _, kv := range strings.Split(strings.TrimSpace(line[strings.Index(line, ":")+1:]), ",") {
				if v, ok := strings.CutPrefix(kv, "offset="); ok {
					if got, _ := strconv.ParseInt(v, 10, 64); got < want {
						return fmt.Errorf("a replica is at %s", v)
					}
					n++
				}
			}
		}
		if n < 2 {
			return fmt.Errorf("%d replicas connected", n)
		}
		return nil
	})
}

// replField returns field's value in an INFO answer.
func replField(info any, field string) (string, error) {
	s, _ := info.(string)
	for _, line := range strings.Split(s, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return v, nil
		}
	}
	return "", fmt.Errorf("INFO has no %s", field)
}

// MasterAddr returns the master's host:port as the first Sentinel that
// answers sees it.
func (c *SentinelCluster) MasterAddr(tb testing.TB) string {
	tb.Helper()
	var errs []error
	for _, s := range c.Sentinels {
		m, err := sentinelMaster(s)
		if err == nil {
			return net.JoinHostPort(m["ip"], m["port"])
		}
		errs = append(errs, err)
	}
	tb.Fatalf("testenv: no Sentinel answers: %v", errors.Join(errs...))
	return ""
}

// KillMaster SIGKILLs the current master and returns its address and the
// time of the kill. The Sentinels then promote a replica
// (WaitFailover).
func (c *SentinelCluster) KillMaster(tb testing.TB) (addr string, at time.Time) {
	tb.Helper()
	addr = c.MasterAddr(tb)
	c.mu.Lock()
	p := c.nodes[addr]
	delete(c.nodes, addr)
	c.mu.Unlock()
	if p == nil {
		tb.Fatalf("testenv: master %s is not one of this cluster's Redis servers", addr)
	}
	at = time.Now()
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	return addr, at
}

// KillReplicas SIGKILLs every Redis server of the cluster but the
// current master.
func (c *SentinelCluster) KillReplicas(tb testing.TB) {
	tb.Helper()
	master := c.MasterAddr(tb)
	c.mu.Lock()
	var ps []*proc
	for addr, p := range c.nodes {
		if addr != master {
			ps = append(ps, p)
			delete(c.nodes, addr)
		}
	}
	c.mu.Unlock()
	for _, p := range ps {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// WaitFailover waits until every Sentinel names a master other than old
// whose replication role is master, and returns the new master's address.
func (c *SentinelCluster) WaitFailover(tb testing.TB, old string, timeout time.Duration) string {
	tb.Helper()
	var master string
	WaitFor(tb, timeout, "the Sentinels to promote a replica", func() error {
		var err error
		master, err = c.Promoted(old)
		return err
	})
	return master
}

// Promoted returns the new master if every Sentinel names one other than
// old and that server says it is a master, else an error saying what is
// missing.
func (c *SentinelCluster) Promoted(old string) (string, error) {
	master := ""
	for _, s := range c.Sentinels {
		m, err := sentinelMaster(s)
		if err != nil {
			return "", fmt.Errorf("%s: %w", s, err)
		}
		addr := net.JoinHostPort(m["ip"], m["port"])
		if addr == old {
			return "", fmt.Errorf("%s still names %s (%s)", s, old, m["flags"])
		}
		if master != "" && addr != master {
			return "", fmt.Errorf("sentinels disagree: %s vs %s", master, addr)
		}
		master = addr
	}
	info, err := resp(master, c.password, "INFO", "replication")
	if err != nil {
		return "", err
	}
	if s, _ := info.(string); !strings.Contains(s, "role:master") {
		return "", fmt.Errorf("%s is not a master yet", master)
	}
	return master, nil
}

// Switched returns the new master as soon as one Sentinel names a master
// other than old (the leader's +switch-master) and that server says it is
// a master; Promoted waits for every Sentinel.
func (c *SentinelCluster) Switched(old string) (string, error) {
	var errs []error
	for _, s := range c.Sentinels {
		m, err := sentinelMaster(s)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		addr := net.JoinHostPort(m["ip"], m["port"])
		if addr == old {
			errs = append(errs, fmt.Errorf("%s still names %s", s, old))
			continue
		}
		info, err := resp(addr, c.password, "INFO", "replication")
		if err != nil {
			return "", err
		}
		if s, _ := info.(string); !strings.Contains(s, "role:master") {
			return "", fmt.Errorf("%s is not a master yet", addr)
		}
		return addr, nil
	}
	return "", errors.Join(errs...)
}

// Failover waits for the failover after a master kill at killed and
// returns the new master and how long the Sentinels took: from the kill
// until every Sentinel names a promoted master.
func (c *SentinelCluster) Failover(tb testing.TB, old string, killed time.Time) (string, time.Duration) {
	tb.Helper()
	m := c.WaitFailover(tb, old, 60*time.Second)
	return m, time.Since(killed)
}

// sentinelMaster returns SENTINEL MASTER mymaster of the Sentinel at addr.
func sentinelMaster(addr string) (map[string]string, error) {
	v, err := resp(addr, "", "SENTINEL", "MASTER", SentinelMaster)
	if err != nil {
		return nil, err
	}
	a, ok := v.([]any)
	if !ok || len(a)%2 != 0 {
		return nil, fmt.Errorf("SENTINEL MASTER answered %v", v)
	}
	m := map[string]string{}
	for i := 0; i+1 < len(a); i += 2 {
		k, _ := a[i].(string)
		val, _ := a[i+1].(string)
		m[k] = val
	}
	return m, nil
}

// resp sends one command (after AUTH password, when set) to the Redis at
// addr and returns its reply: a string, an int64, nil or a []any. An error
// reply is an error.
func resp(addr, password string, args ...string) (any, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	r := bufio.NewReader(conn)
	send := func(args ...string) (any, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := conn.Write([]byte(b.String())); err != nil {
			return nil, err
		}
		return readReply(r)
	}
	if password != "" {
		if _, err := send("AUTH", password); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	return send(args...)
}

func readReply(r *bufio.Reader) (any, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return nil, errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return nil, errors.New(line[1:])
	case ':':
		return strconv.ParseInt(line[1:], 10, 64)
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return nil, err
		}
		out := make([]any, 0, n)
		for range n {
			v, err := readReply(r)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unexpected reply %q", line)
}
