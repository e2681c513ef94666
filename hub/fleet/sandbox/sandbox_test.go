package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet/sandbox"
	"github.com/redforge/controltower/internal/testenv"
)

// system is what a shell and coreutils need to run.
var system = []string{"/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc", "/proc"}

// run starts sh -c script through the launcher (this test binary, by
// Command's /proc/self/exe) and returns its combined output.
func run(t *testing.T, s sandbox.Spec, script string) string {
	t.Helper()
	cmd := sandbox.Command(s, "/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("launcher: %v\n%s", err, out)
	}
	return string(out)
}

// dirs makes a readable secret (0644: only Landlock can keep it from a
// process), a read-write dir and a file in neither.
func dirs(t *testing.T) (secret, rw string) {
	t.Helper()
	base := t.TempDir()
	// The test's own temp dirs (0700) become reachable for another uid.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret = filepath.Join(base, "secret")
	if err := os.WriteFile(secret, []byte("TOP-SECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rw = filepath.Join(base, "rw")
	if err := os.Mkdir(rw, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(rw, 0o777); err != nil {
		t.Fatal(err)
	}
	return secret, rw
}

func TestLandlock(t *testing.T) {
	if sandbox.LandlockABI() == 0 {
		t.Skip("this kernel offers no Landlock")
	}
	secret, rw := dirs(t)
	s := sandbox.Spec{Landlock: true, ReadOnly: system, ReadWrite: []string{rw}, ReadWriteFiles: []string{"/dev/null"}}
	out := run(t, s, "cat "+secret+" 2>&1; echo written > "+rw+"/f && cat "+rw+"/f; echo x > /dev/null && echo devnull-ok; touch "+filepath.Dir(rw)+"/new 2>&1; true")
	if strings.Contains(out, "TOP-SECRET") || !strings.Contains(out, "Permission denied") {
		t.Errorf("confined shell read a file outside its trees:\n%s", out)
	}
	if !strings.Contains(out, "written") || !strings.Contains(out, "devnull-ok") {
		t.Errorf("confined shell could not use its read-write dir or /dev/null:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(rw), "new")); err == nil {
		t.Error("confined shell created a file outside its read-write dir")
	}
	// Unconfined, the same script reads the secret: the test can fail.
	if out := run(t, sandbox.Spec{}, "cat "+secret); !strings.Contains(out, "TOP-SECRET") {
		t.Errorf("unconfined control run: %q", out)
	}
}

func TestSwitchUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("switching users needs root")
	}
	secret, rw := dirs(t)
	if err := os.Chmod(secret, 0o600); err != nil {
		t.Fatal(err)
	}
	const uid = 1999999999
	out := run(t, sandbox.Spec{UID: uid, GID: uid}, "id -u; id -G; cat "+secret+" 2>&1; touch "+rw+"/mine && stat -c '%u %a' "+rw+"/mine")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 4 || lines[0] != strconv.Itoa(uid) || lines[1] != strconv.Itoa(uid) {
		t.Fatalf("id -u, id -G = %q, want %d and only group %d", out, uid, uid)
	}
	if strings.Contains(out, "TOP-SECRET") {
		t.Errorf("uid %d read root's 0600 file:\n%s", uid, out)
	}
	// umask 077: what the program creates is its own.
	if lines[3] != strconv.Itoa(uid)+" 600" {
		t.Errorf("created file: owner and mode %q, want %d 600", lines[3], uid)
	}
}

// TestNoNewPrivs: the program runs with no_new_privs, so a setuid binary
// would not gain privileges.
func TestNoNewPrivs(t *testing.T) {
	out := run(t, sandbox.Spec{}, "grep NoNewPrivs /proc/self/status")
	if !strings.Contains(out, "NoNewPrivs:\t1") {
		t.Errorf("status: %q", out)
	}
}

func TestLauncherErrors(t *testing.T) {
	cmd := sandbox.Command(sandbox.Spec{}, "relative/program")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "usage") {
		t.Errorf("relative program: %v %q", err, out)
	}
	cmd = sandbox.Command(sandbox.Spec{Landlock: true, ReadWrite: []string{"/no/such/dir"}}, "/bin/true")
	out, err = cmd.CombinedOutput()
	if sandbox.LandlockABI() > 0 && (err == nil || !strings.Contains(string(out), "landlock")) {
		t.Errorf("missing read-write dir: %v %q", err, out)
	}
}

// TestLandlockKeepsOutSameUser is the case of a hub that is not root:
// runtime and hub share a uid, so only Landlock keeps a runtime from the
// hub's environment (its secrets) and from signalling it. The "hub" here is
// a process of uid 1999999998 outside any sandbox; the probe has the same
// uid, confined.
func TestLandlockKeepsOutSameUser(t *testing.T) {
	if os.Geteuid() != 0 || sandbox.LandlockABI() == 0 {
		t.Skip("needs root (to make processes of another uid) and Landlock")
	}
	const uid = 1999999998
	hub := sandbox.Command(sandbox.Spec{UID: uid, GID: uid}, "/usr/bin/sleep", "300")
	hub.Env = []string{"HUB_SECRET=hunter2"}
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Process.Kill(); _ = hub.Wait() })
	pid := strconv.Itoa(hub.Process.Pid)
	// Start returns once the launcher runs; it takes the uid and execs
	// sleep a moment later, and until then the process is root's.
	testenv.WaitFor(t, 10*time.Second, "the launcher to exec sleep as uid "+strconv.Itoa(uid), func() error {
		cmdline, err := os.ReadFile("/proc/" + pid + "/cmdline")
		if err != nil {
			return err
		}
		if !strings.HasPrefix(string(cmdline), "/usr/bin/sleep\x00") {
			return fmt.Errorf("cmdline %q", cmdline)
		}
		return nil
	})
	script := "tr '\\0' ' ' < /proc/" + pid + "/environ 2>&1; kill -0 " + pid + " 2>&1 && echo signalled; true"
	// Same uid, unconfined: the environment and signals are open.
	if out := run(t, sandbox.Spec{UID: uid, GID: uid}, script); !strings.Contains(out, "hunter2") || !strings.Contains(out, "signalled") {
		t.Fatalf("unconfined control run did not reach the process: %q", out)
	}
	s := sandbox.Spec{UID: uid, GID: uid, Landlock: true, ReadOnly: system}
	if out := run(t, s, script); strings.Contains(out, "hunter2") || strings.Contains(out, "signalled") {
		t.Errorf("a confined process of the same uid read the environment or signalled: %q", out)
	}
}
