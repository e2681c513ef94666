package process

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet/sandbox"
	"github.com/redforge/controltower/internal/testenv"
)

func TestCommand(t *testing.T) {
	d := New(Config{Node: "/usr/bin/node", RedJS: "/nr/red.js", DataDir: "/data", HubID: "h", SameUser: true})
	r := record{InstanceID: "i1", UserDir: "/data/instances/i1/userdir", MemoryMB: 256, Env: map[string]string{"A": "1", "HOME": "/elsewhere"}}
	cmd := d.command(r)
	want := []string{"/usr/bin/node", "--max-old-space-size=192", "/nr/red.js", "--userDir", r.UserDir,
		"--settings", r.UserDir + "/settings.js", "--title", "node-red:" + r.UserDir}
	if !slices.Equal(cmd.Args, want) {
		t.Errorf("args %q, want %q", cmd.Args, want)
	}
	if !slices.Contains(cmd.Env, "A=1") || !slices.Contains(cmd.Env, "HOME=/elsewhere") || !slices.Contains(cmd.Env, "TMPDIR=/data/instances/i1/tmp") {
		t.Errorf("env %q: the spec's variables must win, TMPDIR is the runtime's own", cmd.Env)
	}
	r.MemoryMB = 0
	if args := d.command(r).Args; slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--max-old") }) {
		t.Errorf("unlimited memory still sets a heap limit: %q", args)
	}

	// Confined: the launcher runs first, with the uid and the trees, and
	// then the same node command line.
	d.landlockABI, d.readOnly = 1, []string{"/usr"}
	r.UID = DefaultUIDBase
	cmd = d.command(r)
	if cmd.Path != "/proc/self/exe" || cmd.Args[0] != sandbox.Argv0 {
		t.Fatalf("confined command %q %q does not start the launcher", cmd.Path, cmd.Args)
	}
	sep := slices.Index(cmd.Args, "--")
	if sep < 0 || !slices.Equal(cmd.Args[sep+1:], []string{"/usr/bin/node", "/nr/red.js", "--userDir", r.UserDir,
		"--settings", r.UserDir + "/settings.js", "--title", "node-red:" + r.UserDir}) {
		t.Errorf("launcher args %q do not end with the node command", cmd.Args)
	}
	for _, pair := range [][2]string{{"-uid", "1900000000"}, {"-rw", r.UserDir}, {"-rw", "/data/instances/i1/tmp"}, {"-ro", "/usr"}, {"-rwfile", "/dev/null"}} {
		i := slices.Index(cmd.Args[:sep], pair[0])
		for i >= 0 && cmd.Args[i+1] != pair[1] {
			j := slices.Index(cmd.Args[i+1:sep], pair[0])
			if j < 0 {
				i = -1
				break
			}
			i += 1 + j
		}
		if i < 0 {
			t.Errorf("launcher args %q lack %s %s", cmd.Args[:sep], pair[0], pair[1])
		}
	}
}

func TestProcReadsOfALiveProcess(t *testing.T) {
	// A command name with spaces and parentheses, in its own process group.
	dir := t.TempDir()
	bin := filepath.Join(dir, "node (red) x")
	if err := os.Symlink("/bin/sleep", bin); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	st, err := readStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	if st.pgrp != pid || st.startTicks == 0 || strings.ContainsRune("ZX", rune(st.state)) {
		t.Fatalf("readStat(%d) = %+v: want its own process group, a start time, not exited", pid, st)
	}
	started, err := startedAt(st.startTicks)
	if err != nil {
		t.Fatal(err)
	}
	if age := time.Since(started); age < -2*time.Second || age > time.Minute {
		t.Fatalf("started %s ago", age)
	}
	if ust, rss, err := readUsage(pid); err != nil || rss == 0 || ust.pgrp != pid || ust.startTicks != st.startTicks {
		t.Fatalf("readUsage = %+v, %d, %v: want the stat above and a resident size", ust, rss, err)
	}
	if !threadsLive(pid) {
		t.Fatal("threadsLive of a sleeping process is false")
	}
	if memTotalMB() <= 0 {
		t.Fatal("memTotalMB is 0")
	}
	cmd.Process.Kill()
	cmd.Wait()
	if threadsLive(pid) {
		t.Fatal("threadsLive of a reaped process is true")
	}
	if _, err := readStat(pid); err == nil {
		t.Fatal("readStat of a reaped process: no error")
	}
	if _, _, err := readUsage(pid); err == nil {
		t.Fatal("readUsage of a reaped process: no error")
	}
}

func writeLines(t *testing.T, path string, from, to int) {
	t.Helper()
	var b bytes.Buffer
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestTailLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "node-red.log")
	writeLines(t, log+".1", 1, 5000) // longer than one read chunk
	writeLines(t, log, 5001, 5003)
	cases := []struct {
		n     int
		first string
		lines int
	}{
		{1, "line 5003", 1},
		{3, "line 5001", 3},
		{5, "line 4999", 5},
		{4000, "line 1004", 4000},
		{0, "line 1", 5003},
		{9999, "line 1", 5003},
	}
	for _, tc := range cases {
		b, size, err := tailLog(log, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
		if len(lines) != tc.lines || lines[0] != tc.first || lines[len(lines)-1] != "line 5003" {
			t.Errorf("tail %d: %d lines from %q to %q; want %d from %q", tc.n, len(lines), lines[0], lines[len(lines)-1], tc.lines, tc.first)
		}
		if fi, _ := os.Stat(log); size != fi.Size() {
			t.Errorf("tail %d: size %d, want %d", tc.n, size, fi.Size())
		}
	}
	// A last line without a newline counts.
	if err := os.WriteFile(log, []byte("a\nb\npartial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _, _ := tailLog(log, 2); string(b) != "b\npartial" {
		t.Errorf("tail 2 with a partial line = %q", b)
	}
	if b, _, err := tailLog(filepath.Join(dir, "missing.log"), 5); err != nil || len(b) != 0 {
		t.Errorf("tail of a missing log = %q, %v", b, err)
	}
}

func TestRotateLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "node-red.log")
	d := New(Config{LogMaxBytes: 100})
	writeLines(t, log, 1, 5) // 35 bytes: stays
	d.rotateLog(log)
	if _, err := os.Stat(log + ".1"); err == nil {
		t.Fatal("rotated below the limit")
	}
	// A writer holding an O_APPEND descriptor, as the child process does.
	w, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 6; i <= 20; i++ {
		fmt.Fprintf(w, "line %d\n", i)
	}
	d.rotateLog(log)
	old, _ := os.ReadFile(log + ".1")
	if !bytes.HasPrefix(old, []byte("line 1\n")) || !bytes.HasSuffix(old, []byte("line 20\n")) {
		t.Fatalf("rotated file %q", old)
	}
	fmt.Fprintf(w, "after\n")
	cur, _ := os.ReadFile(log)
	if string(cur) != "after\n" {
		t.Fatalf("log after rotation = %q, want the new line at its start", cur)
	}
}

// TestFollowAcrossRotation: a following reader sees lines written after it
// started, including after the file was truncated by a rotation.
func TestFollowAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "node-red.log")
	writeLines(t, log, 1, 3)
	d := New(Config{LogMaxBytes: 1 << 20})
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// alive() is true for our own pid with our own cmdline in the record.
	self, _ := os.ReadFile("/proc/self/cmdline")
	r := record{PID: os.Getpid(), UserDir: string(bytes.Split(self, []byte{0})[0])}
	done := make(chan error, 1)
	go func() { done <- d.follow(ctx, r, log, int64(len("line 1\nline 2\nline 3\n")), pw) }()
	buf := make([]byte, 64)
	readLine := func() string {
		n, err := pr.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
	w, _ := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	defer w.Close()
	fmt.Fprintf(w, "four\n")
	if got := readLine(); got != "four\n" {
		t.Fatalf("followed %q, want four", got)
	}
	if err := os.Truncate(log, 0); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(w, "five\n")
	if got := readLine(); got != "five\n" {
		t.Fatalf("after truncation followed %q, want five", got)
	}
	cancel()
	pr.Close()
	if err := <-done; err != nil && err != io.ErrClosedPipe {
		t.Fatalf("follow ended with %v", err)
	}
}

// TestReachable: Open's check that runtime uids can reach Node-RED names
// what to chmod.
func TestReachable(t *testing.T) {
	base := t.TempDir()
	if err := os.Chmod(filepath.Dir(base), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o700); err != nil { // like Debian's /root
		t.Fatal(err)
	}
	redJS := filepath.Join(base, "red.js")
	if err := os.WriteFile(redJS, []byte("//"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := reachable(redJS, 0o004); err == nil || !strings.Contains(err.Error(), "chmod o+r "+redJS) {
		t.Errorf("unreadable red.js: %v", err)
	}
	if err := os.Chmod(redJS, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := reachable(redJS, 0o004); err == nil || !strings.Contains(err.Error(), "chmod o+x "+base) {
		t.Errorf("red.js in a 0700 dir: %v", err)
	}
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatal(err)
	}
	if err := reachable(redJS, 0o004); err != nil {
		t.Errorf("reachable red.js: %v", err)
	}
}

func TestMoveDirAcrossFilesystems(t *testing.T) {
	src := filepath.Join(testenv.Tmpfs(t, "256m"), "userdir")
	dstBase := t.TempDir()
	dst := filepath.Join(dstBase, "userdir")
	var a, b syscall.Stat_t
	if err := syscall.Stat(filepath.Dir(src), &a); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(dstBase, &b); err != nil {
		t.Fatal(err)
	}
	if a.Dev == b.Dev {
		t.Fatalf("%s and %s are on one filesystem", src, dstBase)
	}
	files := map[string]os.FileMode{
		"flows.json":                0o644,
		"flows_cred.json":           0o600,
		"lib/run.sh":                0o755,
		"private/key":               0o400,
		"node_modules/m/index.js":   0o644,
		"node_modules/m/README.txt": 0o444,
	}
	for name, mode := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("content of "+name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("m/index.js", filepath.Join(src, "node_modules", "link")); err != nil {
		t.Fatal(err)
	}
	// What an interrupted move left: a partial copy in place, and a
	// staging dir.
	for _, stale := range []string{dst, dst + ".moving"} {
		if err := os.MkdirAll(filepath.Join(stale, "lib"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stale, "lib", "stale"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	copied, err := moveDir(src, dst)
	if err != nil || !copied {
		t.Fatalf("moveDir = %v, %v: want a copy", copied, err)
	}
	for name, mode := range files {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != "content of "+name {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if st, err := os.Stat(filepath.Join(dst, name)); err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, st.Mode().Perm(), err, mode)
		}
	}
	if st, err := os.Stat(filepath.Join(dst, "private")); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("private/: %v, %v; want drwx------", st.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dst, "node_modules", "link")); err != nil || target != "m/index.js" {
		t.Errorf("the symlink became %q, %v", target, err)
	}
	for _, gone := range []string{filepath.Join(dst, "lib", "stale"), dst + ".moving"} {
		if _, err := os.Lstat(gone); err == nil {
			t.Errorf("%s is left from the interrupted move", gone)
		}
	}
	if _, err := os.Stat(filepath.Join(src, "flows.json")); err != nil {
		t.Errorf("the original is gone before the caller records the copy: %v", err)
	}

	// On one filesystem it is a rename.
	again := filepath.Join(dstBase, "renamed")
	if copied, err := moveDir(dst, again); err != nil || copied {
		t.Fatalf("moveDir on one filesystem = %v, %v: want a rename", copied, err)
	}
	if _, err := os.Stat(dst); err == nil {
		t.Error("a rename left its source")
	}
}
