package main

import (
	"bytes"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestRaiseOpenFiles runs the hub's start-up step in a child process
// started with a low open-file limit (prlimit), so the test's own limit
// is left alone: the child ends with its soft limit at its hard limit or
// above (with CAP_SYS_RESOURCE, the hard limit raised too), and logs it.
func TestRaiseOpenFiles(t *testing.T) {
	if os.Getenv("REDFORGE_RLIMIT_CHILD") == "1" {
		var buf bytes.Buffer
		got := raiseOpenFiles(slog.New(slog.NewTextHandler(&buf, nil)))
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			t.Fatal(err)
		}
		if got != lim.Cur || lim.Cur < 4096 || !strings.Contains(buf.String(), "open-file limit") {
			t.Fatalf("raiseOpenFiles = %d, limit now %+v, log %q", got, lim, buf.String())
		}
		if capSysResource() && lim.Max <= 4096 {
			t.Fatalf("with CAP_SYS_RESOURCE the hard limit stays %d; want it raised", lim.Max)
		}
		t.Logf("limit now %+v", lim)
		return
	}
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) not installed")
	}
	cmd := exec.Command(prlimit, "--nofile=256:4096", os.Args[0], "-test.run=^TestRaiseOpenFiles$", "-test.v")
	cmd.Env = append(os.Environ(), "REDFORGE_RLIMIT_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "limit now") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// capSysResource says whether this process has CAP_SYS_RESOURCE (bit 24
// of CapEff): root in a container often does not.
func capSysResource() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && n&(1<<24) != 0
		}
	}
	return false
}
