// Package sandbox is the launcher that confines a fleet runtime before it
// becomes Node-RED. Go cannot run code between fork and exec, so the
// process driver starts this binary again (/proc/self/exe) under the name
// Argv0; the package's init sees that name, confines its own process and
// execs the real program, which inherits the confinement:
//
//   - Landlock (when the kernel has it): the program may read and execute
//     only the ReadOnly trees, read and write only the ReadWrite trees and
//     files, may not signal or reach abstract UNIX sockets of processes
//     outside its domain, and Landlock's ptrace rule keeps it from reading
//     other processes' memory. The ABI is used best effort: an older kernel
//     enforces what it knows.
//   - A uid and gid switch (when UID is set; the caller must be root), with
//     no supplementary groups.
//   - Always: no new privileges (setuid binaries run without their bit)
//     and umask 077.
//
// Any binary that links this package (the hub and the test binaries of
// packages that start runtimes) can serve as the launcher, so tests need
// no hook of their own. The package does not decide the policy: the
// process driver hands it the paths.
package sandbox

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/landlock-lsm/go-landlock/landlock"
	llsys "github.com/landlock-lsm/go-landlock/landlock/syscall"
	"golang.org/x/sys/unix"
)

// Argv0 is the name under which a binary linking this package acts as the
// launcher instead of running its main.
const Argv0 = "redforge-runtime-exec"

// ExitLaunchFailed is the launcher's exit status when it could not confine
// or exec the program; its reason is on stderr.
const ExitLaunchFailed = 126

func init() {
	if filepath.Base(os.Args[0]) != Argv0 {
		return
	}
	err := launch(os.Args[1:])
	// launch returns only on failure: on success the process is the program.
	fmt.Fprintf(os.Stderr, "%s: %v\n", Argv0, err)
	os.Exit(ExitLaunchFailed)
}

// Spec is how the launcher confines the program it execs.
type Spec struct {
	// UID and GID, when UID is not 0, are the user and group the program
	// runs as, with no supplementary groups; the caller must be root.
	UID, GID int
	// Landlock confines the program's filesystem to ReadOnly, ReadWrite
	// and ReadWriteFiles. Without it those lists are ignored.
	Landlock bool
	// ReadOnly are directories the program may read and execute from;
	// missing ones are skipped.
	ReadOnly []string
	// ReadWrite are directories the program may read, write, create and
	// delete in; they must exist.
	ReadWrite []string
	// ReadWriteFiles are single files (devices such as /dev/null) the
	// program may read and write; missing ones are skipped.
	ReadWriteFiles []string
}

// Command returns a command that runs path with args (args[0] is not the
// program name) confined by s. The caller sets Env, Dir, output and
// SysProcAttr as for the program itself; they pass through the launcher.
func Command(s Spec, path string, args ...string) *exec.Cmd {
	la := []string{Argv0}
	if s.UID != 0 {
		la = append(la, "-uid", strconv.Itoa(s.UID), "-gid", strconv.Itoa(s.GID))
	}
	if s.Landlock {
		la = append(la, "-landlock")
		for _, p := range s.ReadOnly {
			la = append(la, "-ro", p)
		}
		for _, p := range s.ReadWrite {
			la = append(la, "-rw", p)
		}
		for _, p := range s.ReadWriteFiles {
			la = append(la, "-rwfile", p)
		}
	}
	la = append(la, "--", path)
	la = append(la, args...)
	// /proc/self/exe is this binary even if its file has been replaced
	// since it started (an upgrade in place).
	return &exec.Cmd{Path: "/proc/self/exe", Args: la}
}

// LandlockABI is the Landlock ABI version the kernel offers, 0 when it
// has none (not built in, or not enabled at boot). It asks the kernel
// (landlock_create_ruleset with the version flag), not /sys/kernel/security.
func LandlockABI() int {
	v, err := llsys.LandlockGetABIVersion()
	if err != nil || v < 0 {
		return 0
	}
	return v
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

// launch parses the launcher's arguments, confines this process and execs
// the program. It returns only on failure.
func launch(args []string) error {
	var s Spec
	fs := flag.NewFlagSet(Argv0, flag.ContinueOnError)
	fs.IntVar(&s.UID, "uid", 0, "user id to switch to")
	fs.IntVar(&s.GID, "gid", 0, "group id to switch to")
	fs.BoolVar(&s.Landlock, "landlock", false, "confine the filesystem with Landlock")
	fs.Var((*listFlag)(&s.ReadOnly), "ro", "read-only directory (repeatable)")
	fs.Var((*listFlag)(&s.ReadWrite), "rw", "read-write directory (repeatable)")
	fs.Var((*listFlag)(&s.ReadWriteFiles), "rwfile", "read-write file (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	prog := fs.Args()
	if len(prog) == 0 || !filepath.IsAbs(prog[0]) {
		return errors.New("usage: " + Argv0 + " [flags] -- /absolute/program [args...]")
	}
	// The thread that is confined is the one that execs.
	runtime.LockOSThread()
	syscall.Umask(0o077)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	if s.Landlock {
		if err := restrict(s); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
	}
	if s.UID != 0 {
		if err := switchUser(s.UID, s.GID); err != nil {
			return err
		}
	}
	argv := append([]string{prog[0]}, prog[1:]...)
	return fmt.Errorf("exec %s: %w", prog[0], syscall.Exec(prog[0], argv, os.Environ()))
}

// restrict applies one Landlock domain: the filesystem rules and the IPC
// scopes of the newest ABI this package knows, downgraded to what the
// kernel offers; the network is left alone (runtimes listen on their port
// and reach brokers and APIs).
func restrict(s Spec) error {
	rw := landlock.RWDirs(s.ReadWrite...)
	if LandlockABI() >= 2 {
		// Renames between directories of its own tree (npm installs do them).
		// Asked for on a V1 kernel, "refer" would turn Landlock off entirely.
		rw = rw.WithRefer()
	}
	cfg := landlock.V11.BestEffort()
	cfg.HandledAccessNet = 0
	return cfg.Restrict(
		landlock.RODirs(s.ReadOnly...).IgnoreIfMissing(),
		rw,
		landlock.RWFiles(s.ReadWriteFiles...).IgnoreIfMissing(),
	)
}

// switchUser drops to uid and gid with no supplementary groups.
func switchUser(uid, gid int) error {
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(gid); err != nil {
		return fmt.Errorf("setgid %d: %w", gid, err)
	}
	if err := syscall.Setuid(uid); err != nil {
		return fmt.Errorf("setuid %d: %w", uid, err)
	}
	return nil
}
