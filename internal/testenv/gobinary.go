package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// built is one `go build` of a package with an environment, made once per
// test binary.
type built struct {
	once sync.Once
	bin  string
	err  error
}

var builds sync.Map // package + env → *built

// GoBinary builds the package pkg (an import path) with the extra
// environment env once per test binary and returns the binary's path.
func GoBinary(tb testing.TB, pkg string, env ...string) string {
	tb.Helper()
	v, _ := builds.LoadOrStore(pkg+"\x00"+strings.Join(env, "\x00"), &built{})
	b := v.(*built)
	b.once.Do(func() {
		dir, err := BuildDir("redforge-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.bin = filepath.Join(dir, "redforge-"+path.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.bin, pkg)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.bin
}

// EdgeBinary builds cmd/edge for this machine, static as shipped
// (CGO_ENABLED=0), once per test binary, and returns its path.
func EdgeBinary(tb testing.TB) string {
	tb.Helper()
	return GoBinary(tb, "github.com/redforge/controltower/cmd/edge", "CGO_ENABLED=0")
}

// BuildDir makes a temp dir for binaries built once per test binary,
// named prefix<pid>-…: with no hook at a test binary's exit, each removes
// the dirs of earlier test binaries whose process has ended.
func BuildDir(prefix string) (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*-*"))
	for _, d := range old {
		pid, err := strconv.Atoi(strings.SplitN(strings.TrimPrefix(filepath.Base(d), prefix), "-", 2)[0])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			os.RemoveAll(d)
		}
	}
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}
