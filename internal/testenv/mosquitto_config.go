package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// MosquittoWithConfig starts a private Mosquitto broker like Mosquitto, but
// with extra appended to its generated config (listener on a free
// 127.0.0.1 port, anonymous access, logs to stderr). extra gets the broker's
// own directory, for persistence files. It returns tcp://127.0.0.1:PORT;
// the broker is stopped by tb.Cleanup. Benchmarks use it to build a
// Mosquitto bridge with persistence.
func MosquittoWithConfig(tb testing.TB, extra func(dir string) string) string {
	tb.Helper()
	bin := mustExecutable(tb, "mosquitto", keyMosquitto)
	port, _ := startServer(tb, server{
		what:    "mosquitto",
		path:    bin,
		timeout: defaultStartWait,
		args: func(dir string, port int) ([]string, error) {
			conf := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.conf", port))
			body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type error\nlog_type warning\n%s\n", port, extra(dir))
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				return nil, err
			}
			return []string{"-c", conf}, nil
		},
		ready: tcpReady,
	})
	return fmt.Sprintf("tcp://127.0.0.1:%d", port)
}
