package testenv

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Net is a test network of hosts: a Linux bridge in the test's own
// network namespace (the "gateway", which also reaches every host) and
// one network namespace per host, joined to the bridge by a veth pair.
// Each host has its own loopback, so a hub that dials 127.0.0.1 for
// another host's runtime fails as it would on real machines. It needs
// root (ip netns, ip link); everything is removed at cleanup.
type Net struct {
	tb      testing.TB
	Bridge  string // interface name of the bridge
	Gateway string // the bridge's IP: how hosts reach servers of the test
	prefix  string // "10.a.b."
	tag     string
	mu      sync.Mutex
	hosts   []*Host
}

// Host is one network namespace on a Net.
type Host struct {
	Name string // the namespace
	IP   string
	veth string // the end on the bridge (in the test's namespace)
	net  *Net
}

// netLockDir holds one lock file per /24 in use, so tests of parallel
// packages never pick the same subnet.
const netLockDir = "/tmp/redforge-netns"

// NewNet makes a bridge on a free 10.x.y.0/24 with the gateway at .1.
func NewNet(tb testing.TB) *Net {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("testenv: network namespaces need root; run the tests as root (make test does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		unavailable(tb, "iproute2 (ip)", err)
	}
	n := &Net{tb: tb, tag: strconv.FormatUint(rand.Uint64()%0xffffff, 36)}
	a, b := lockSubnet(tb)
	n.prefix = fmt.Sprintf("10.%d.%d.", a, b)
	n.Gateway = n.prefix + "1"
	n.Bridge = "rfb" + n.tag
	tb.Cleanup(n.close)
	n.ip("link", "add", n.Bridge, "type", "bridge")
	n.ip("addr", "add", n.Gateway+"/24", "dev", n.Bridge)
	n.ip("link", "set", n.Bridge, "up")
	return n
}

// lockSubnet claims 10.a.b.0/24 with an exclusive lock file holding the
// pid; a lock of a dead process is taken over.
func lockSubnet(tb testing.TB) (int, int) {
	if err := os.MkdirAll(netLockDir, 0o755); err != nil {
		tb.Fatalf("testenv: %v", err)
	}
	for range 1000 {
		a, b := 200+rand.IntN(50), rand.IntN(256)
		path := filepath.Join(netLockDir, fmt.Sprintf("10.%d.%d", a, b))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if errors.Is(err, fs.ErrExist) {
			if pid, _ := os.ReadFile(path); !alivePID(strings.TrimSpace(string(pid))) {
				_ = os.Remove(path)
			}
			continue
		}
		if err != nil {
			tb.Fatalf("testenv: lock subnet: %v", err)
		}
		fmt.Fprint(f, os.Getpid())
		f.Close()
		tb.Cleanup(func() { _ = os.Remove(path) })
		return a, b
	}
	tb.Fatalf("testenv: no free 10.200-249.x.0/24 subnet")
	return 0, 0
}

func alivePID(s string) bool {
	pid, err := strconv.Atoi(s)
	return err == nil && syscall.Kill(pid, 0) == nil
}

func (n *Net) ip(args ...string) {
	n.tb.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		n.tb.Fatalf("testenv: ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Host adds a namespace with the next address of the subnet.
func (n *Net) Host(name string) *Host {
	n.tb.Helper()
	n.mu.Lock()
	i := len(n.hosts) + 2
	h := &Host{Name: fmt.Sprintf("rf%s-%s", n.tag, name), IP: n.prefix + strconv.Itoa(i), net: n}
	n.hosts = append(n.hosts, h)
	n.mu.Unlock()
	h.veth = fmt.Sprintf("rfv%s%d", n.tag, i)
	peer := h.veth + "p"
	n.ip("netns", "add", h.Name)
	n.ip("link", "add", h.veth, "type", "veth", "peer", "name", peer)
	n.ip("link", "set", peer, "netns", h.Name)
	n.ip("link", "set", h.veth, "master", n.Bridge)
	n.ip("link", "set", h.veth, "up")
	n.ip("-n", h.Name, "addr", "add", h.IP+"/24", "dev", peer)
	n.ip("-n", h.Name, "link", "set", peer, "up")
	n.ip("-n", h.Name, "link", "set", "lo", "up")
	return h
}

// Command runs name in the host's namespace.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.Name, name}, args...)...)
}

// PIDs are the processes whose network namespace is the host's.
func (h *Host) PIDs() []int {
	out, err := exec.Command("ip", "netns", "pids", h.Name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if p, err := strconv.Atoi(f); err == nil {
			pids = append(pids, p)
		}
	}
	return pids
}

// Kill SIGKILLs every process of the host, as when the machine dies, and
// waits until none is left.
func (h *Host) Kill() {
	h.net.tb.Helper()
	WaitFor(h.net.tb, 30*time.Second, "every process of "+h.Name+" gone", func() error {
		pids := h.PIDs()
		for _, p := range pids {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		if len(pids) > 0 {
			return fmt.Errorf("%d processes left", len(pids))
		}
		return nil
	})
}

// Probe GETs http://addr/ from inside the host (its own loopback and
// links) and returns the status code; an error when nothing answers.
func (h *Host) Probe(addr string) (int, error) {
	out, err := h.Command("curl", "-s", "-m", "3", "-o", "/dev/null", "-w", "%{http_code}", "http://"+addr+"/").Output()
	code, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || code == 0 {
		return 0, fmt.Errorf("GET http://%s/ from %s: %v", addr, h.Name, err)
	}
	return code, nil
}

// Cut takes the host's link down (a cable pulled: nothing in or out).
func (h *Host) Cut() { h.net.ip("link", "set", h.veth, "down") }

// Restore brings the host's link back up.
func (h *Host) Restore() { h.net.ip("link", "set", h.veth, "up") }

func (n *Net) close() {
	n.mu.Lock()
	hosts := n.hosts
	n.mu.Unlock()
	for _, h := range hosts {
		for _, p := range h.PIDs() {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		_ = exec.Command("ip", "link", "del", h.veth).Run()
		_ = exec.Command("ip", "netns", "del", h.Name).Run()
	}
	_ = exec.Command("ip", "link", "del", n.Bridge).Run()
}

// Expose makes a server of the test's namespace (upstream, usually on
// 127.0.0.1) reachable from every host at the gateway, through a TCP
// forwarder (toxiproxy), and returns the gateway address (host:port).
func (n *Net) Expose(upstream string) *Link {
	n.tb.Helper()
	return ProxyOn(n.tb, n.Gateway, upstream)
}
