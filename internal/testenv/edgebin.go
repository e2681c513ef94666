package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	edgeBinOnce sync.Once
	edgeBin     string
	edgeBinErr  error
)

// EdgeBinary builds cmd/edge for this machine, static as shipped
// (CGO_ENABLED=0), once per test binary, and returns its path.
func EdgeBinary(tb testing.TB) string {
	tb.Helper()
	edgeBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "redforge-edge-bin-")
		if err != nil {
			edgeBinErr = err
			return
		}
		edgeBin = filepath.Join(dir, "redforge-edge")
		cmd := exec.Command("go", "build", "-trimpath", "-o", edgeBin, "github.com/redforge/controltower/cmd/edge")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			edgeBinErr = fmt.Errorf("go build cmd/edge: %v\n%s", err, out)
		}
	})
	if edgeBinErr != nil {
		tb.Fatal(edgeBinErr)
	}
	return edgeBin
}
