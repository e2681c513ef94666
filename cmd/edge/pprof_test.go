package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// TestDebugPprof: without --debug-pprof the edge serves no profiles; with
// it on a loopback --listen it serves them; with it on any other address
// the edge refuses to start, naming the flag.
func TestDebugPprof(t *testing.T) {
	off := MustRunMain(t, io.Discard)
	if code, _ := get(t, off, "/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/ without --debug-pprof = %d, want 404", code)
	}
	if code, _ := get(t, off, "/debug/pprof/heap"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/heap without --debug-pprof = %d, want 404", code)
	}

	on := MustRunMain(t, io.Discard, "--debug-pprof")
	if code, body := get(t, on, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Fatalf("/debug/pprof/ with --debug-pprof = %d %.200s", code, body)
	}
	if code, body := get(t, on, "/debug/pprof/heap"); code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("/debug/pprof/heap = %d, not a gzipped profile: %.20q", code, body)
	}
	if code, body := get(t, on, "/debug/pprof/profile?seconds=1"); code != http.StatusOK || !strings.HasPrefix(body, "\x1f\x8b") {
		t.Fatalf("/debug/pprof/profile?seconds=1 = %d %.20q", code, body)
	}
	if code, _ := get(t, on, "/debug/pprof/nosuch"); code != http.StatusNotFound {
		t.Fatalf("/debug/pprof/nosuch = %d, want 404", code)
	}
	if code, _ := get(t, on, "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz with --debug-pprof = %d", code)
	}

	for _, listen := range []string{":0", "0.0.0.0:0", "[::]:0", "192.0.2.1:9464", "edge.example.net:9464"} {
		m := NewMain()
		m.Stdout, m.Stderr = io.Discard, io.Discard
		m.LookupEnv = func(string) (string, bool) { return "", false }
		err := m.ParseFlags(context.Background(), []string{"--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--mqtt-allow-anonymous", "--listen", listen, "--debug-pprof"})
		if err == nil || !strings.Contains(err.Error(), "debug-pprof") || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("--debug-pprof --listen %s: ParseFlags = %v, want a refusal naming debug-pprof", listen, err)
		}
		if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "debug-pprof") {
			m.Close()
			t.Errorf("--debug-pprof --listen %s: Run = %v, want a refusal to start", listen, err)
		}
	}
	for _, listen := range []string{"127.0.0.1:9464", "[::1]:9464", "localhost:9464", "127.0.0.2:1"} {
		if c := (Config{Listen: listen}); !isLoopbackListen(c.Listen) {
			t.Errorf("isLoopbackListen(%s) = false", listen)
		}
	}
}

func TestRedactArgs(t *testing.T) {
	got := redactArgs([]string{"redforge-edge", "--token", "rfe_secret", "-token=rfe_2", "--hub", "https://hub", "--name", "token"})
	want := []string{"redforge-edge", "--token", "[redacted]", "-token=[redacted]", "--hub", "https://hub", "--name", "token"}
	if !slices.Equal(got, want) {
		t.Fatalf("redactArgs = %q, want %q", got, want)
	}
}
