package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// baseArgs are flags for a hub on private ports in a temp data dir.
func baseArgs(t *testing.T) []string {
	return []string{
		"--listen", "127.0.0.1:0",
		"--data-dir", t.TempDir(),
		"--raft-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		"--mqtt-listen", "127.0.0.1:0",
	}
}

func noEnv(string) string { return "" }

// startHub runs Main in-process and returns it once it serves requests.
func startHub(t *testing.T, args ...string) *Main {
	t.Helper()
	logs := &testenv.Buffer{}
	m := &Main{Stdout: logs, Stderr: logs, Getenv: noEnv, Ready: make(chan struct{})}
	if err := m.ParseFlags(args); err != nil {
		t.Fatalf("ParseFlags: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Ready:
	case err := <-done:
		cancel()
		t.Fatalf("hub did not start: %v\n%s", err, logs)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("hub not ready after 60s\n%s", logs)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub shutdown: %v", err)
		}
	})
	return m
}

type health struct {
	Status     string   `json:"status"`
	Failed     []string `json:"failed"`
	Components map[string]struct {
		Status string `json:"status"`
		Error  string `json:"error"`
	} `json:"components"`
}

func getHealth(t *testing.T, base string) (int, health) {
	t.Helper()
	resp, err := http.Get(base + "/api/health")
	if err != nil {
		t.Fatalf("GET /api/health: %v", err)
	}
	defer resp.Body.Close()
	var h health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("decode health: %v", err)
	}
	return resp.StatusCode, h
}

func TestHealthyOnEmbeddedDefaults(t *testing.T) {
	m := startHub(t, baseArgs(t)...)
	base := m.Hub.URL()
	code, h := getHealth(t, base)
	if code != http.StatusOK || h.Status != "ok" {
		t.Fatalf("health = %d %+v, want 200 ok", code, h)
	}
	for _, c := range []string{"raft", "store", "coord", "broker"} {
		if h.Components[c].Status != "ok" {
			t.Errorf("component %s = %+v, want ok", c, h.Components[c])
		}
	}
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "hub.db")); err != nil {
		t.Errorf("embedded SQLite store not in data dir: %v", err)
	}

	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`controltower_component_up{component="store"} 1`,
		`controltower_http_requests_total{method="GET",route="/api/health",status="200"} 1`,
		"controltower_build_info",
		"go_goroutines",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	resp, err = http.Get(base + "/api/no-such-route")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"not_found"`) || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("unknown route = %d %s (request id %q), want 404 not_found with a request id",
			resp.StatusCode, body, resp.Header.Get("X-Request-Id"))
	}
}

// TestHealthNamesUnreachableStore runs the hub on PostgreSQL behind a TCP
// proxy, cuts the link, and expects the store degraded (200, the reason
// given) while writes are retried (--store-retry), then 503 naming the
// store, then 200 again.
func TestHealthNamesUnreachableStore(t *testing.T) {
	dsn := testenv.Postgres(t)
	link := testenv.Proxy(t, hostPort(t, dsn))
	viaProxy := strings.Replace(dsn, hostPort(t, dsn), link.Addr(), 1)
	m := startHub(t, append(baseArgs(t), "--store", viaProxy, "--store-retry", "4s")...)
	base := m.Hub.URL()
	if code, h := getHealth(t, base); code != 200 {
		t.Fatalf("health before the cut = %d %+v", code, h)
	}

	link.Cut()
	testenv.WaitFor(t, 10*time.Second, "health 200 with the store degraded", func() error {
		code, h := getHealth(t, base)
		if code != http.StatusOK || h.Status != "degraded" || h.Components["store"].Status != "degraded" || h.Components["store"].Error == "" {
			return fmt.Errorf("health = %d %+v", code, h)
		}
		return nil
	})
	testenv.WaitFor(t, 20*time.Second, "health 503 naming the store", func() error {
		code, h := getHealth(t, base)
		if code != http.StatusServiceUnavailable || len(h.Failed) != 1 || h.Failed[0] != "store" || h.Components["store"].Error == "" {
			return fmt.Errorf("health = %d %+v", code, h)
		}
		if h.Components["raft"].Status != "ok" || h.Components["coord"].Status != "ok" {
			return fmt.Errorf("other components failed too: %+v", h)
		}
		return nil
	})

	link.Restore()
	testenv.WaitFor(t, 20*time.Second, "health 200 after the link is back", func() error {
		if code, h := getHealth(t, base); code != 200 {
			return fmt.Errorf("health = %d %+v", code, h)
		}
		return nil
	})
}

func TestProductionBackends(t *testing.T) {
	m := startHub(t, append(baseArgs(t),
		"--store", testenv.Postgres(t),
		"--redis", testenv.Redis(t),
		"--mqtt", testenv.Mosquitto(t))...)
	if code, h := getHealth(t, m.Hub.URL()); code != 200 {
		t.Fatalf("health on postgres+redis+mosquitto = %d %+v", code, h)
	}
}

func TestBadConfigNamesTheField(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--driver", "kubernetes"}, []string{"--driver", "kubernetes"}},
		{[]string{"--store", "mysql://x"}, []string{"--store"}},
		{[]string{"--redis", "http://x"}, []string{"--redis"}},
		{[]string{"--listen", "3000", "--log-level", "loud"}, []string{"--listen", "--log-level"}},
		{[]string{"--raft-listen", ":7000"}, []string{"--raft-listen"}},
		{[]string{"--no-such-flag"}, []string{"no-such-flag"}},
	}
	for _, c := range cases {
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv}
		err := m.ParseFlags(c.args)
		if err == nil {
			t.Errorf("%v: accepted", c.args)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%v: error %q does not name %q", c.args, err, w)
			}
		}
	}
}

func TestEnvAndFileConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "hub.json")
	if err := os.WriteFile(file, []byte(`{"region":"eu","log_level":"debug","listen":"127.0.0.1:3100"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"REDFORGE_CONFIG": file, "REDFORGE_REGION": "us"}
	m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string { return env[k] }}
	if err := m.ParseFlags([]string{"--listen", "127.0.0.1:3200"}); err != nil {
		t.Fatal(err)
	}
	c := m.Config
	if c.Region != "us" || c.LogLevel != "debug" || c.Listen != "127.0.0.1:3200" {
		t.Fatalf("precedence flags > env > file > defaults broken: %+v", c)
	}
	if err := os.WriteFile(file, []byte(`{"regoin":"eu"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.ParseFlags(nil); err == nil || !strings.Contains(err.Error(), "regoin") {
		t.Fatalf("unknown config file field accepted: %v", err)
	}
}

// TestUnreachableBackendExits checks that a hub pointed at dead backends
// fails fast with one line naming the backend and no secret.
func TestUnreachableBackendExits(t *testing.T) {
	dead := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cases := []struct{ flag, value, want string }{
		{"--redis", "redis://:s3cret@" + dead + "/0", "redis redis://:xxxxx@" + dead},
		{"--store", "postgres://u:s3cret@" + dead + "/db?sslmode=disable&connect_timeout=3", "store postgres://u:xxxxx@" + dead},
		{"--mqtt", "tcp://" + dead, "mqtt tcp://" + dead},
	}
	for _, c := range cases {
		m := &Main{Stdout: io.Discard, Stderr: io.Discard, Getenv: noEnv}
		if err := m.ParseFlags(append(baseArgs(t), c.flag, c.value)); err != nil {
			t.Fatalf("%s: %v", c.flag, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := m.Run(ctx)
		cancel()
		if err == nil {
			t.Errorf("%s %s: hub started", c.flag, c.value)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, c.want) || strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error %q: want one line starting %q without the password", c.flag, msg, c.want)
		}
	}
}

// TestBinaryGracefulShutdown builds redforge-hub, runs it with no flags but
// a data dir and ports, and expects a clean exit on SIGTERM.
func TestBinaryGracefulShutdown(t *testing.T) {
	bin := hubBinary(t)
	port := testenv.FreePort(t)
	cmd := exec.Command(bin, "--listen", fmt.Sprintf("127.0.0.1:%d", port), "--data-dir", t.TempDir(),
		"--raft-listen", fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), "--mqtt-listen", "127.0.0.1:0")
	var out testenv.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	testenv.WaitFor(t, 60*time.Second, "hub binary healthy", func() error {
		resp, err := http.Get(base + "/api/health")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM\n%s", out.String())
	}
	if _, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		t.Fatal("port still bound after exit")
	}
}

func hostPort(t *testing.T, dsn string) string {
	t.Helper()
	at := strings.LastIndex(dsn, "@")
	rest := dsn[at+1:]
	if i := strings.IndexAny(rest, "/?"); i >= 0 {
		rest = rest[:i]
	}
	if _, _, err := net.SplitHostPort(rest); err != nil {
		t.Fatalf("dsn %q has no host:port", dsn)
	}
	return rest
}
