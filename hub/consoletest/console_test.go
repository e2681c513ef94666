// Package consoletest runs the web console's browser tests
// (console/e2e/run.mjs: playwright-core driving Debian's Chromium) against
// a real hub with real Node-RED instances. It has no non-test code.
package consoletest

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/console"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/syncproto"
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
	edge := enrollEdgeWithBacklog(t, h)

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
		"EDGE_NAME="+edge,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("console browser tests failed (%v):\n%s", err, out)
	}
	t.Logf("console browser tests:\n%s", out)
}

// enrollEdgeWithBacklog enrolls an edge through the public API and sends
// one protobuf heartbeat reporting a backlog (vectors: 1200 records, the
// oldest waiting 95 s; audit: empty; ai_decisions: 3 records, 12 s, 2
// evicted) in the protobuf Heartbeat an edge sends. It returns the
// edge's name.
func enrollEdgeWithBacklog(t *testing.T, h *hubtest.Hub) string {
	t.Helper()
	const name = "e2e-edge"
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/edges/tokens", nil, 201, &tok)
	var enrolled struct {
		EdgeID     string `json:"edge_id"`
		Credential string `json:"credential"`
	}
	h.JSON(t, "POST", "/api/edges/enroll", map[string]any{"token": tok.Token, "name": name, "version": "e2e"}, 201, &enrolled)
	now := time.Now()
	hb, err := proto.Marshal(&syncproto.Heartbeat{EdgeId: enrolled.EdgeID, SentUnixNanos: now.UnixNano(), Version: "e2e",
		Backlog: map[string]*syncproto.StreamBacklog{
			"vectors":      {Depth: 1200, Bytes: 4_718_592, OldestUnsyncedUnixNanos: now.Add(-95 * time.Second).UnixNano()},
			"audit":        {},
			"ai_decisions": {Depth: 3, Bytes: 2048, OldestUnsyncedUnixNanos: now.Add(-12 * time.Second).UnixNano(), Evicted: 2},
		}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, h.URL+"/api/sync/heartbeat", bytes.NewReader(hb))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", syncproto.ContentTypeProtobuf)
	req.Header.Set("Authorization", "Bearer "+enrolled.Credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("heartbeat = %d, want 204", resp.StatusCode)
	}
	return name
}
