// Package testenv starts and hands out the real components that the
// project's tests run against: PostgreSQL 15, Redis 7, Mosquitto, a private
// dockerd, Node-RED 4.1 (as a process and as the local Docker image),
// Chromium, qemu-user-static and protoc. There are no mocks here.
//
// Shared, slow-to-build components (the Postgres server, dockerd, the npm
// install of Node-RED and its image) are built once by `make test-env`
// (internal/testenv/provision.sh), which writes their locations to an env
// file. The helpers read that file; per-test components (a database, a
// Redis or Mosquitto server, a Node-RED process) are created on demand and
// removed by tb.Cleanup.
//
// A helper whose component is missing fails the test with a message that
// says to run `make test-env`; it never skips.
//
// The env file is $REDFORGE_TESTENV when set, else
// ${REDFORGE_CACHE:-$HOME/.cache/redforge}/run/testenv.env. A variable set in
// the process environment overrides the file's value of the same name.
package testenv

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Keys of the env file written by provision.sh.
const (
	keyPGDSN         = "REDFORGE_TEST_PG_DSN"
	keyDockerHost    = "REDFORGE_TEST_DOCKER_HOST"
	keyNodeREDDir    = "REDFORGE_TEST_NODERED_DIR"
	keyNodeREDImage  = "REDFORGE_TEST_NODERED_IMAGE"
	keyNode          = "REDFORGE_TEST_NODE"
	keyRedisServer   = "REDFORGE_TEST_REDIS_SERVER"
	keyMosquitto     = "REDFORGE_TEST_MOSQUITTO"
	keyChromium      = "REDFORGE_TEST_CHROMIUM"
	keyQemuAarch64   = "REDFORGE_TEST_QEMU_AARCH64"
	keyQemuArm       = "REDFORGE_TEST_QEMU_ARM"
	keyProtoc        = "REDFORGE_TEST_PROTOC"
	envFileVar       = "REDFORGE_TESTENV"
	cacheVar         = "REDFORGE_CACHE"
	defaultCacheDir  = ".cache/redforge"
	envFileName      = "run/testenv.env"
	unavailableHint  = "run `make test-env`"
	pollMinInterval  = 20 * time.Millisecond
	pollMaxInterval  = 200 * time.Millisecond
	startupAttempts  = 3
	defaultStartWait = 30 * time.Second
)

// EnvFile returns the path of the env file written by provision.sh.
func EnvFile() string {
	if p := os.Getenv(envFileVar); p != "" {
		return p
	}
	cache := os.Getenv(cacheVar)
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "/root"
		}
		cache = filepath.Join(home, defaultCacheDir)
	}
	return filepath.Join(cache, envFileName)
}

// readEnvFile parses KEY=VALUE lines; blank lines and # comments are ignored.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	vals := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: malformed line %q", path, line)
		}
		vals[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return vals, sc.Err()
}

// lookup returns the value of key from the process environment or the env
// file, or an error saying why it is unknown.
func lookup(key string) (string, error) {
	if v := os.Getenv(key); v != "" {
		return v, nil
	}
	path := EnvFile()
	vals, err := readEnvFile(path)
	if err != nil {
		return "", fmt.Errorf("read env file: %w", err)
	}
	v := vals[key]
	if v == "" {
		return "", fmt.Errorf("%s is not set in %s", key, path)
	}
	return v, nil
}

// unavailable fails the test because component what cannot be used.
func unavailable(tb testing.TB, what string, err error) {
	tb.Helper()
	tb.Fatalf("testenv: %s is not available (%v); %s", what, err, unavailableHint)
}

// mustLookup returns the env value for key or fails the test naming what.
func mustLookup(tb testing.TB, what, key string) string {
	tb.Helper()
	v, err := lookup(key)
	if err != nil {
		unavailable(tb, what, err)
	}
	return v
}

// mustExecutable returns the env value for key after checking that it names
// an executable file, or fails the test naming what.
func mustExecutable(tb testing.TB, what, key string) string {
	tb.Helper()
	path := mustLookup(tb, what, key)
	if err := checkExecutable(path); err != nil {
		unavailable(tb, what, err)
	}
	return path
}

func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago: it
// listens on port 0, reads the port and closes the listener. Another process
// may take the port before the caller binds it; helpers that start servers
// retry with a new port when that happens.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := freePort()
	if err != nil {
		tb.Fatalf("testenv: free port: %v", err)
	}
	return port
}

// PortRange returns a random range of width ports on 127.0.0.1 for a
// server that hands out ports itself (a test hub's Node-RED instances),
// from 20000 up to below the kernel's ephemeral ports (FreePort's, and every
// outgoing connection's local port, 32768 and up by default): a port
// there can be taken between the server's check and its instance's bind
// by any connection any test opens, and stays taken as long as that
// connection lives. The range is random so that hubs of tests running in
// parallel rarely share one; a server still checks each port before use.
func PortRange(width int) (lo, hi int) {
	top := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				top = v
			}
		}
	}
	const bottom = 20000
	n := max((top-bottom)/width, 1)
	lo = bottom + rand.IntN(n)*width
	return lo, lo + width - 1
}

func freePort() (int, error) { return freePortOn("127.0.0.1") }

// Ports FreePort hands out: below PortRange's (and the production Node-RED
// range, 18800-19799) and below the kernel's ephemeral ports. A port picked
// by binding :0 comes from the ephemeral range, where any outgoing
// connection on the machine may take it as its local port between the
// pick and the server's bind ("address already in use" on a loaded
// machine); nothing takes a port down here unasked.
const freeLo, freeHi = 10000, 18000

// freePortOn returns a port of host's that was free a moment ago, chosen at
// random from [freeLo, freeHi) among those no test process on this machine
// was handed yet (claimPort); it falls back to one the kernel picks.
func freePortOn(host string) (int, error) {
	for range 256 {
		port := freeLo + rand.IntN(freeHi-freeLo)
		if !claimPort(port) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			continue
		}
		l.Close()
		return port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitFor calls cond until it returns nil, sleeping 20 ms at first and up to
// 200 ms between calls. If cond has not succeeded after timeout, WaitFor
// fails the test with a message naming what and cond's last error.
func WaitFor(tb testing.TB, timeout time.Duration, what string, cond func() error) {
	tb.Helper()
	if err := poll(timeout, cond, nil); err != nil {
		tb.Fatalf("testenv: waiting for %s: %v", what, err)
	}
}

// errAborted wraps the error of poll's abort function.
var errAborted = errors.New("aborted")

// poll calls cond with backoff until it returns nil or timeout passes. If
// abort is not nil and returns an error, poll stops at once with that error
// (used to stop waiting for a server whose process has exited).
func poll(timeout time.Duration, cond func() error, abort func() error) error {
	deadline := time.Now().Add(timeout)
	interval := pollMinInterval
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if abort != nil {
			if aerr := abort(); aerr != nil {
				return fmt.Errorf("%w: %v (last check: %v)", errAborted, aerr, err)
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", timeout, err)
		}
		time.Sleep(interval)
		interval = min(interval*3/2, pollMaxInterval)
	}
}
