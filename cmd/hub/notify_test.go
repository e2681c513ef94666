package main

import (
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSystemdNotifyHub: the hub binary under a Type=notify unit with
// WatchdogSec=1s sends READY=1 once it serves, WATCHDOG=1 about every
// 500 ms while its API answers, and STOPPING=1 on SIGTERM.
func TestSystemdNotifyHub(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdnotify")
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
	o := clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Hour,
		env: []string{"NOTIFY_SOCKET=" + sock, "WATCHDOG_USEC=1000000"}}
	h := startHubProc(t, "hub-n", "us", "", o) // returns once /api/health answers
	read := func() string {
		t.Helper()
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v\n%s", err, h.logs.String())
		}
		return string(buf[:n])
	}
	if m := read(); m != "READY=1" {
		t.Fatalf("first notification %q, want READY=1", m)
	}
	for range 3 {
		if m := read(); m != "WATCHDOG=1" {
			t.Fatalf("notification %q, want WATCHDOG=1", m)
		}
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	for m := read(); m != "STOPPING=1"; m = read() {
		if m != "WATCHDOG=1" {
			t.Fatalf("after SIGTERM: %q, want STOPPING=1", m)
		}
	}
}
