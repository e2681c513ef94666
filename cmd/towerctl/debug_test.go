package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlDebugPprof saves heap and CPU profiles of a real hub as the
// admin; an OPERATOR is refused with a clear 403, an unknown profile with
// a 404, and neither leaves a file behind.
func TestTowerctlDebugPprof(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	admin := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	dir := t.TempDir()

	file := filepath.Join(dir, "hub-heap.pprof")
	code, out := run(t, h, session, admin, "debug", "pprof", "heap", "-o", file)
	if code != 0 || !strings.Contains(out, "heap profile written to "+file) || !strings.Contains(out, "go tool pprof") {
		t.Fatalf("debug pprof heap = %d\n%s", code, out)
	}
	if p := parseProfileFile(t, file); len(p.Sample) == 0 {
		t.Fatal("heap profile has no samples")
	}

	cpu := filepath.Join(dir, "cpu.pprof")
	if code, out := run(t, h, session, admin, "debug", "pprof", "profile", "--seconds", "1", "-o", cpu); code != 0 || !strings.Contains(out, "profiling the hub for 1s") {
		t.Fatalf("debug pprof profile = %d\n%s", code, out)
	}
	if p := parseProfileFile(t, cpu); p.DurationNanos < 9e8 {
		t.Fatalf("CPU profile lasted %dns, want 1s", p.DurationNanos)
	}

	oper := map[string]string{"REDFORGE_TOKEN": h.CreateUser(t, "oper", "OPERATOR")}
	denied := filepath.Join(dir, "denied.pprof")
	if code, out := run(t, h, session, oper, "debug", "pprof", "heap", "-o", denied); code != 1 || !strings.Contains(out, "HTTP 403") || !strings.Contains(out, "ADMIN") {
		t.Fatalf("debug pprof as OPERATOR = %d\n%s", code, out)
	}
	unknown := filepath.Join(dir, "nosuch.pprof")
	if code, out := run(t, h, session, admin, "debug", "pprof", "nosuch", "-o", unknown); code != 1 || !strings.Contains(out, "HTTP 404") || !strings.Contains(out, "heap") {
		t.Fatalf("debug pprof nosuch = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, admin, "debug", "pprof", "profile", "--seconds", "500"); code != 1 || !strings.Contains(out, "--seconds") {
		t.Fatalf("debug pprof --seconds 500 = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, admin, "debug", "pprof"); code != 1 || !strings.Contains(out, "usage") {
		t.Fatalf("debug pprof without a name = %d\n%s", code, out)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 2 {
		t.Fatalf("files left in the output dir: %v, want only the two profiles", names)
	}
}

func parseProfileFile(t *testing.T, file string) *profile.Profile {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0x1f, 0x8b}) {
		t.Fatalf("%s is not a gzipped profile", file)
	}
	p, err := profile.ParseData(b)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return p
}
