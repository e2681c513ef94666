package consoletest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/console"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// editorFlow is the instance the editor tests edit: GET /hello → change →
// http response.
const editorFlow = `[
 {"id":"pf-tab","type":"tab","label":"editor test"},
 {"id":"pf-in","type":"http in","z":"pf-tab","url":"/hello","method":"get","x":140,"y":80,"wires":[["pf-set"]]},
 {"id":"pf-set","type":"change","z":"pf-tab","name":"reply","rules":[{"t":"set","p":"payload","pt":"msg","to":"{\"version\":\"v1\"}","tot":"json"}],"x":330,"y":80,"wires":[["pf-out"]]},
 {"id":"pf-out","type":"http response","z":"pf-tab","x":510,"y":80,"wires":[]}
]`

// editorHub starts a hub with an instance running editorFlow and the
// users olivia (OPERATOR) and victor (VIEWER), and returns the path of
// console/.
func editorHub(t testing.TB, name string) (*hubtest.Hub, string) {
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
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": name}, 201, nil)
	h.JSON(t, "PUT", "/api/instances/"+name+"/flows", json.RawMessage(editorFlow), 200, nil)
	testenv.WaitFor(t, time.Minute, name+" running its flows", func() error {
		code, body := h.Do(t, "GET", "/i/"+name+"/hello", "", nil)
		if code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	return h, dir
}

// TestEditorInBrowser drives the Node-RED editor through the hub in
// Chromium (console/e2e/editor.mjs): an OPERATOR opens it from the
// console's instance page, renames a node and deploys — a new flows
// version by that user, audited as an editor deploy, and the instance's
// flows carry the change; a VIEWER's editor is read-only; without a hub
// session there is no editor. Screenshots go to artifacts/screenshots/.
func TestEditorInBrowser(t *testing.T) {
	h, dir := editorHub(t, "web")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/editor.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HUB_URL="+h.URL, "INSTANCE=web",
		"OPERATOR_USER=olivia", "OPERATOR_PASSWORD=password-of-olivia",
		"VIEWER_USER=victor", "VIEWER_PASSWORD=password-of-victor",
		"CHROMIUM="+chromium, "SCREENSHOT_DIR="+filepath.Join(dir, "..", "artifacts", "screenshots"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("editor browser tests failed (%v):\n%s", err, out)
	}
	t.Logf("editor browser tests:\n%s", out)

	var versions struct {
		Versions []struct {
			Username string `json:"username"`
		} `json:"versions"`
	}
	testenv.WaitFor(t, 30*time.Second, "the editor deploy recorded as olivia's flows version", func() error {
		h.JSON(t, "GET", "/api/instances/web/flows/versions", nil, 200, &versions)
		if len(versions.Versions) == 0 || versions.Versions[0].Username != "olivia" {
			return fmt.Errorf("versions %+v", versions.Versions)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, "the editor deploy audited", func() error {
		code, b := h.Do(t, "GET", "/api/audit?action=FLOWS_DEPLOYED&user_id=", h.AdminToken, nil)
		if code != 200 || !strings.Contains(string(b), `"username":"olivia"`) || !strings.Contains(string(b), `"source":"editor"`) {
			return fmt.Errorf("%d %.500s", code, b)
		}
		return nil
	})
	if code, b := h.Do(t, "GET", "/api/instances/web/flows", h.AdminToken, nil); code != 200 || !strings.Contains(string(b), "renamed in the editor") {
		t.Errorf("the instance's flows lack the editor's change: %d %.300s", code, b)
	}
	if _, b := h.Do(t, "GET", "/api/audit?action=FLOWS_DEPLOYED", h.AdminToken, nil); strings.Contains(string(b), `"username":"victor"`) {
		t.Error("the VIEWER deployed")
	}
}
