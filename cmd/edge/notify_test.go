package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// TestSystemdNotifyAndWatchdog runs the real edge binary as systemd runs
// it with Type=notify and WatchdogSec (packaging/systemd): NOTIFY_SOCKET
// is a unixgram socket this test listens on and WATCHDOG_USEC is 1 s. The
// edge must send READY=1 once serving, then WATCHDOG=1 about every
// WATCHDOG_USEC/2, and STOPPING=1 on SIGTERM.
func TestSystemdNotifyAndWatchdog(t *testing.T) {
	const watchdog = time.Second
	dir, err := os.MkdirTemp("", "sdnotify") // short: a socket path has 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	type msg struct {
		at   time.Time
		text string
	}
	msgs := make(chan msg, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- msg{time.Now(), string(buf[:n])}
		}
	}()

	bin := buildEdge(t, runtime.GOARCH, "")
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var logs testenv.Buffer
	cmd := exec.Command(bin, "--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--listen", httpAddr)
	cmd.Env = append(withoutEdgeEnv(os.Environ()), "NOTIFY_SOCKET="+sock, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	cmd.Stdout, cmd.Stderr = &logs, &logs
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { cmd.Process.Kill() })

	next := func(within time.Duration) msg {
		t.Helper()
		select {
		case m := <-msgs:
			return m
		case err := <-exited:
			t.Fatalf("edge exited: %v\n%s", err, logs.String())
		case <-time.After(within):
			t.Fatalf("no notification within %s\n%s", within, logs.String())
		}
		return msg{}
	}
	first := next(30 * time.Second)
	if first.text != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", first.text)
	}
	// READY=1 means serving: /healthz answers at once.
	if err := healthy(&http.Client{Timeout: 5 * time.Second}, "http://"+httpAddr+"/healthz"); err != nil {
		t.Fatalf("READY=1 sent before the edge serves: %v", err)
	}
	var gaps []time.Duration
	last := first.at
	for range 4 {
		m := next(watchdog)
		if m.text != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", m.text)
		}
		gaps = append(gaps, m.at.Sub(last))
		last = m.at
	}
	slices.Sort(gaps)
	median := gaps[len(gaps)/2]
	if median < watchdog/4 || median >= watchdog {
		t.Errorf("watchdog pings every %s (median of %v), want about WATCHDOG_USEC/2 = %s", median, gaps, watchdog/2)
	}
	t.Logf("READY=1 %s after start; WATCHDOG=1 gaps %v", first.at.Sub(started).Round(time.Millisecond), gaps)

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		m := next(10 * time.Second)
		if m.text == "STOPPING=1" {
			break
		}
		if !strings.HasPrefix(m.text, "WATCHDOG=1") {
			t.Fatalf("after SIGTERM: %q, want STOPPING=1", m.text)
		}
	}
	if err := <-exited; err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs.String())
	}
}
