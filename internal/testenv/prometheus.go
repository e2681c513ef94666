package testenv

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Keys of the Prometheus tools (Debian's prometheus and
// prometheus-alertmanager packages) in the env file.
const (
	keyPrometheus   = "REDFORGE_TEST_PROMETHEUS"
	keyPromtool     = "REDFORGE_TEST_PROMTOOL"
	keyAlertmanager = "REDFORGE_TEST_ALERTMANAGER"
)

// Promtool returns the path of promtool (Debian's prometheus package). It
// fails the test when promtool is not available.
func Promtool(tb testing.TB) string {
	tb.Helper()
	return mustExecutable(tb, "promtool", keyPromtool)
}

// Prometheus starts a private Prometheus on a free 127.0.0.1 port with the
// configuration config (prometheus.yml text; config(dir) may also write
// files it names, such as rule files or credentials, into dir), waits until
// it is ready and returns its URL. It is stopped by tb.Cleanup.
func Prometheus(tb testing.TB, config func(dir string) string) string {
	tb.Helper()
	bin := mustExecutable(tb, "prometheus", keyPrometheus)
	port, _ := startServer(tb, server{
		what:    "prometheus",
		path:    bin,
		timeout: defaultStartWait,
		args: func(dir string, port int) ([]string, error) {
			cfg := filepath.Join(dir, "prometheus.yml")
			if err := os.WriteFile(cfg, []byte(config(dir)), 0o600); err != nil {
				return nil, err
			}
			return []string{"--config.file=" + cfg, "--storage.tsdb.path=" + filepath.Join(dir, "data-"+strconv.Itoa(port)),
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(port), "--web.enable-lifecycle"}, nil
		},
		ready: httpReady("/-/ready"),
	})
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// Alertmanager starts a private Alertmanager (no clustering) on a free
// 127.0.0.1 port with the configuration config (alertmanager.yml text),
// waits until it is ready and returns its URL. It is stopped by
// tb.Cleanup.
func Alertmanager(tb testing.TB, config string) string {
	tb.Helper()
	bin := mustExecutable(tb, "alertmanager", keyAlertmanager)
	port, _ := startServer(tb, server{
		what:    "alertmanager",
		path:    bin,
		timeout: defaultStartWait,
		args: func(dir string, port int) ([]string, error) {
			cfg := filepath.Join(dir, "alertmanager.yml")
			if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
				return nil, err
			}
			return []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data-"+strconv.Itoa(port)),
				"--web.listen-address=127.0.0.1:" + strconv.Itoa(port), "--cluster.listen-address="}, nil
		},
		ready: httpReady("/-/ready"),
	})
	return fmt.Sprintf("http://127.0.0.1:%d", port)
}

// httpReady checks that GET path on the port answers 200.
func httpReady(path string) func(port int) error {
	return func(port int) error {
		c := http.Client{Timeout: time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return nil
	}
}
