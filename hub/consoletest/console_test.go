// Package consoletest runs the web console's browser tests
// (console/e2e/run.mjs: playwright-core driving Debian's Chromium) against
// a real hub with real Node-RED instances. It has no non-test code.
package consoletest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redforge/controltower/console"
	"github.com/redforge/controltower/internal/hubtest"
)

// chromium is Debian's Chromium, installed by `make test-env`.
const chromium = "/usr/bin/chromium"

// TestConsoleInBrowser logs in as each role and drives the console: the
// fleet turning healthy live, instance detail, a blue-green deployment and
// its rollback, audit filter and export, users and tokens, role-hidden
// buttons, phone width, no console errors. Screenshots go to
// artifacts/screenshots/.
func TestConsoleInBrowser(t *testing.T) {
	if !console.Built() {
		t.Fatal("the console is not built into this binary: run `make console` (make test does)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "console")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed: run `make console` (npm ci in console/)")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatal("no " + chromium + ": run `make test-env`")
	}
	h := hubtest.Start(t)
	h.CreateUser(t, "olivia", "OPERATOR")
	h.CreateUser(t, "victor", "VIEWER")

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/run.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HUB_URL="+h.URL,
		"ADMIN_USER=admin", "ADMIN_PASSWORD="+hubtest.AdminPassword,
		"OPERATOR_USER=olivia", "OPERATOR_PASSWORD=password-of-olivia",
		"VIEWER_USER=victor", "VIEWER_PASSWORD=password-of-victor",
		"CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+filepath.Join(root, "artifacts", "screenshots"),
		"FLOWS_DIR="+filepath.Join(root, "packaging", "nodered", "flows"),
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("console browser tests failed (%v):\n%s", err, out)
	}
	t.Logf("console browser tests:\n%s", out)
}
