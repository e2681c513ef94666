package testenv

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// GitRemote is a bare repository served by a private `git daemon`.
type GitRemote struct {
	// URL is git://127.0.0.1:PORT/flows.git, the repository's address.
	URL string
	// Dir is the bare repository on disk, for inspection with git.
	Dir string
	// Stop stops the daemon (pushes then fail); Start starts it again on
	// the same port.
	Stop, Start func()
}

// GitDaemon creates a bare repository and serves it, pushes allowed, with
// Debian's git daemon on a free 127.0.0.1 port. The daemon is stopped by
// tb.Cleanup. It fails the test when git is not available.
func GitDaemon(tb testing.TB) *GitRemote {
	tb.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		unavailable(tb, "git", err)
	}
	root := tb.TempDir()
	dir := filepath.Join(root, "flows.git")
	if out, err := exec.Command(git, "init", "--bare", "-q", "-b", "main", dir).CombinedOutput(); err != nil {
		tb.Fatalf("testenv: git init --bare: %v: %s", err, out)
	}
	g := &GitRemote{Dir: dir}
	var cur *proc
	port := 0
	start := func() {
		args := func(_ string, p int) ([]string, error) {
			return []string{"daemon", "--reuseaddr", "--listen=127.0.0.1", "--port=" + strconv.Itoa(p), "--base-path=" + root,
				"--export-all", "--enable=receive-pack", "--informative-errors", root}, nil
		}
		if port == 0 {
			p, pr := startServer(tb, server{what: "git-daemon", path: git, timeout: defaultStartWait, args: args, ready: tcpReady})
			port, cur = p, pr
			return
		}
		pr, err := startProc("git-daemon-"+strconv.Itoa(port), root, git, mustArgs(args(root, port))...)
		if err != nil {
			tb.Fatalf("testenv: restart git daemon: %v", err)
		}
		if err := poll(defaultStartWait, func() error { return tcpReady(port) }, pr.exited); err != nil {
			tb.Fatalf("testenv: restart git daemon: %v", err)
		}
		cur = pr
		tb.Cleanup(pr.stop)
	}
	start()
	g.URL = fmt.Sprintf("git://127.0.0.1:%d/flows.git", port)
	g.Stop = func() { cur.stop() }
	g.Start = start
	return g
}

func mustArgs(a []string, _ error) []string { return a }

// GitLog returns the commit subjects (`git log --all --format=%s`) and the
// tags of a bare repository, for assertions; empty when it cannot be read.
func GitLog(dir string) (subjects, tags string) {
	out, err := exec.Command("git", "--git-dir", dir, "log", "--all", "--format=%s").CombinedOutput()
	if err != nil {
		return "", ""
	}
	t, _ := exec.Command("git", "--git-dir", dir, "tag", "--list").CombinedOutput()
	return string(out), string(t)
}
