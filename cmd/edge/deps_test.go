package main

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// bannedDeps must never be linked into redforge-edge: the edge is a small
// static binary for a Raspberry Pi, and these belong to the hub.
var bannedDeps = []string{
	"github.com/docker/docker",
	"github.com/jackc/pgx",
	"github.com/redis/go-redis",
	"github.com/gin-gonic/gin",
	"github.com/hashicorp/raft",
	"github.com/hashicorp/raft-boltdb",
	"github.com/redforge/controltower/hub", // DESIGN.md: edge never imports hub
}

// goTool returns the go command of the toolchain that built this test:
// `go env GOROOT` run through whatever go is on PATH (or this binary's
// GOROOT), then GOROOT/bin/go, so the check lists deps with the same
// toolchain the module pins.
func goTool(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		//lint:ignore SA1019 only a fallback when go is not in PATH: the GOROOT that built this test binary
		goCmd = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goCmd, "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "bin", "go")
}

// TestEdgeDependencyBan lists the packages linked into cmd/edge (and every
// edge/... package, so a banned import is caught before it is wired in) for
// the host and both Raspberry Pi targets, and fails on a banned one.
func TestEdgeDependencyBan(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goCmd := goTool(t)
	for _, target := range []struct{ goos, goarch, goarm string }{
		{runtime.GOOS, runtime.GOARCH, ""},
		{"linux", "arm64", ""},
		{"linux", "arm", "7"},
	} {
		cmd := exec.Command(goCmd, "list", "-deps", ".", "../../edge/...")
		cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS="+target.goos, "GOARCH="+target.goarch, "GOARM="+target.goarm)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s/%s: go list -deps: %v\n%s", target.goos, target.goarch, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 50 {
			t.Fatalf("%s/%s: only %d deps listed; is the check looking at the right package?", target.goos, target.goarch, len(deps))
		}
		for _, dep := range deps {
			for _, banned := range bannedDeps {
				if dep == banned || strings.HasPrefix(dep, banned+"/") {
					t.Errorf("%s/%s: redforge-edge depends on banned %s (via %s); see DESIGN.md import rules", target.goos, target.goarch, banned, dep)
				}
			}
		}
	}
}
