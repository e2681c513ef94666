package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Mosquitto starts a private Mosquitto broker on a free 127.0.0.1 port with
// a generated config (anonymous access, no persistence), waits until a TCP
// connect succeeds and returns its address, tcp://127.0.0.1:PORT. The broker
// is stopped by tb.Cleanup. It fails the test when mosquitto is not
// available or does not start.
func Mosquitto(tb testing.TB) string {
	tb.Helper()
	bin := mustExecutable(tb, "mosquitto", keyMosquitto)
	port, _ := startServer(tb, server{
		what:    "mosquitto",
		path:    bin,
		timeout: defaultStartWait,
		args:    mosquittoArgs,
		ready:   tcpReady,
	})
	return fmt.Sprintf("tcp://127.0.0.1:%d", port)
}

// mosquittoArgs writes the broker's config into dir.
func mosquittoArgs(dir string, port int) ([]string, error) {
	conf := filepath.Join(dir, fmt.Sprintf("mosquitto-%d.conf", port))
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n", port)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	return []string{"-c", conf}, nil
}

// tcpReady succeeds once something accepts connections on the port.
func tcpReady(port int) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	return conn.Close()
}
