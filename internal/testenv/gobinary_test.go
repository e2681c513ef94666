package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestBuildDirRemovesTheDirsOfEndedTestBinaries(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	ended := exec.Command("true")
	if err := ended.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(os.TempDir(), fmt.Sprintf("rf-test-%d-1", ended.Process.Pid))
	live := filepath.Join(os.TempDir(), "rf-test-1-1") // pid 1 runs for as long as the machine
	other := filepath.Join(os.TempDir(), "rf-testing-1")
	for _, d := range []string{dead, live, other} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	dir, err := BuildDir("rf-test-")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("rf-test-%d-", os.Getpid()); filepath.Dir(dir) != os.TempDir() || len(filepath.Base(dir)) <= len(want) || filepath.Base(dir)[:len(want)] != want {
		t.Fatalf("BuildDir = %s, want %s… in %s", dir, want, os.TempDir())
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dir of an ended process is still there (%v)", err)
	}
	for _, d := range []string{live, other, dir} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if _, err := BuildDir("rf-test-"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("a second call removed this process's own dir: %v", err)
	}
}
