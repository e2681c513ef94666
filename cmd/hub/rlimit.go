package main

import (
	"log/slog"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// WantOpenFiles is the open-file limit the hub asks for at start: every
// WebSocket client, proxied request and runtime connection holds a file
// descriptor, and 10,000+ console clients must not run into the usual
// default of 1,024 (or systemd's 524,288 hard / 1,024 soft).
const WantOpenFiles = 1 << 20

// raiseOpenFiles lifts the hub's RLIMIT_NOFILE as far as it may. The Go
// runtime already raises the soft limit to the hard one; a hub with
// CAP_SYS_RESOURCE (root, or the capability in its unit) raises the hard
// limit too, up to WantOpenFiles or the kernel's fs.nr_open. It returns
// the soft limit in force, and warns when that is below 65,536, naming
// the setting to change (LimitNOFILE= in a systemd unit, ulimit -n, or
// the container runtime's nofile ulimit).
func raiseOpenFiles(log *slog.Logger) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn("cannot read the open-file limit", "err", err)
		return 0
	}
	want := uint64(WantOpenFiles)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n < want {
			want = n
		}
	}
	if lim.Cur < want {
		next := syscall.Rlimit{Cur: want, Max: max(lim.Max, want)}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next); err != nil {
			// Without CAP_SYS_RESOURCE only the soft limit can move, up to the hard.
			next = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
			_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &next)
		}
		_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
	if lim.Cur < 65536 {
		log.Warn("open-file limit is low for many WebSocket clients; raise LimitNOFILE (systemd), ulimit -n or the container's nofile ulimit",
			"soft", lim.Cur, "hard", lim.Max)
	} else {
		log.Info("open-file limit", "soft", lim.Cur, "hard", lim.Max)
	}
	return lim.Cur
}
