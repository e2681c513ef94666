package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlDeploy deploys the example v1 flows with --wait against a
// real hub and Node-RED and sees every phase printed.
func TestTowerctlDeploy(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	env := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	if code, out := run(t, h, session, env, "instances", "create", "cli-bg"); code != 0 {
		t.Fatalf("create = %d\n%s", code, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`[{"id":"n1","type":"inject","wires":[["ghost"]]}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run(t, h, session, env, "deploy", bad, "--instance", "cli-bg", "--wait"); code != 1 || !strings.Contains(out, `"n1"`) {
		t.Fatalf("deploy of invalid flows = %d, want 1 naming node n1:\n%s", code, out)
	}
	code, out := run(t, h, session, env, "deploy", "../../packaging/nodered/flows/bluegreen-v1.json", "--instance", "cli-bg",
		"--wait", "--drain-timeout", "1s", "--rollback-window", "0s", "--smoke-path", "/hello", "--smoke-expect", `"v1"`)
	if code != 0 {
		t.Fatalf("deploy = %d\n%s", code, out)
	}
	for _, want := range []string{"DRAIN", "DEPLOY", "VERIFY", "RESUME", "AUDIT", "CLEANUP", "smoke http", "succeeded"} {
		if !strings.Contains(out, want) {
			t.Errorf("deploy output lacks %q:\n%s", want, out)
		}
	}
	t.Logf("towerctl deploy --wait:\n%s", out)
	code, out = run(t, h, session, env, "instances", "flows", "versions", "cli-bg")
	if code != 0 || !strings.Contains(out, "deployment") {
		t.Fatalf("flows versions = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "deploy", "--flows-version", "1", "--instance", "cli-bg", "x.json"); code != 1 || !strings.Contains(out, "not both") {
		t.Errorf("deploy with a file and a version = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "deploy", "--flows-version", "99", "--instance", "cli-bg"); code != 1 || !strings.Contains(out, "flows_version") {
		t.Errorf("deploy of an unknown version = %d\n%s", code, out)
	}
	code, out = run(t, h, session, env, "deploy", "--flows-version", "1", "--instance", "cli-bg", "--wait", "--drain-timeout", "1s", "--rollback-window", "0s")
	if code != 0 || !strings.Contains(out, "succeeded") {
		t.Fatalf("redeploy of version 1 = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "rollback", "nope"); code != 1 || !strings.Contains(out, "HTTP 404") {
		t.Errorf("rollback of an unknown deployment = %d\n%s", code, out)
	}
}
