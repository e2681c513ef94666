package process

import (
	"syscall"
	"testing"
)

// MountTmpfs mounts a tmpfs of its own on a new temporary dir, unmounted
// when the test ends: a filesystem other than the one the test's other
// dirs are on. The test needs root.
func MountTmpfs(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256m,mode=0755"); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}
