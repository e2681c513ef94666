package testenv

import (
	"bufio"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis starts a private redis-server on a free 127.0.0.1 port, with no
// persistence and a temp dir, waits until it answers PING and returns its
// URL, redis://127.0.0.1:PORT/0. The server is stopped by tb.Cleanup. It
// fails the test when redis-server is not available or does not start.
func Redis(tb testing.TB) string {
	tb.Helper()
	bin := mustExecutable(tb, "redis-server", keyRedisServer)
	port, _ := startServer(tb, server{
		what:    "redis",
		path:    bin,
		timeout: defaultStartWait,
		args: func(dir string, port int) ([]string, error) {
			return []string{"--save", "", "--appendonly", "no", "--port", strconv.Itoa(port),
				"--bind", "127.0.0.1", "--dir", dir}, nil
		},
		ready: redisPing,
	})
	return fmt.Sprintf("redis://127.0.0.1:%d/0", port)
}

// redisPing sends an inline PING and expects +PONG.
func redisPing(port int) error {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}
