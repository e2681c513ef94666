package testenv

import (
	"os"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of the given size ("8k", "256m") on a new temporary
// dir and returns the dir, unmounted when the test ends: a filesystem of
// its own, to fill up or to cross. It skips the test unless it runs as
// root, which mounting needs.
func Tmpfs(tb testing.TB, size string) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("mounting a tmpfs needs root")
	}
	dir := tb.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0755"); err != nil {
		tb.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			tb.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
