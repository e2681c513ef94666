package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
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
		dir, err := os.MkdirTemp("", "redforge-bin-")
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
