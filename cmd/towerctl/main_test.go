package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/hubtest"
)

// run executes towerctl against hub h with a private session file.
func run(t *testing.T, h *hubtest.Hub, session string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "REDFORGE_HUB":
			return h.URL
		case "REDFORGE_SESSION_FILE":
			return session
		}
		return env[k]
	}
	code := Run(context.Background(), args, strings.NewReader(""), &out, &errb, getenv)
	return code, out.String() + errb.String()
}

func TestTowerctlAgainstHub(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")

	if code, out := run(t, h, session, nil, "health"); code != 0 || !strings.Contains(out, "store") {
		t.Fatalf("health = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "instances", "list"); code != 1 || !strings.Contains(out, "towerctl login") {
		t.Fatalf("list without login = %d, want 1 with a hint to log in:\n%s", code, out)
	}
	if code, out := run(t, h, session, map[string]string{"REDFORGE_PASSWORD": "wrong-password-x"}, "login"); code != 1 || !strings.Contains(out, "invalid username or password") {
		t.Fatalf("login with a wrong password = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, map[string]string{"REDFORGE_PASSWORD": hubtest.AdminPassword}, "login"); code != 0 {
		t.Fatalf("login = %d\n%s", code, out)
	}
	if fi, err := os.Stat(session); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("session file: %v %v", fi, err)
	}
	if code, out := run(t, h, session, nil, "instances", "create", "cli-one", "--stopped", "--memory", "256", "--env", "GREETING=hi"); code != 0 {
		t.Fatalf("create = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "instances", "create", "cli-two", "--memory", "64"); code != 1 || !strings.Contains(out, "resources.memory_mb") {
		t.Fatalf("create with bad memory = %d\n%s", code, out)
	}
	code, out := run(t, h, session, nil, "instances", "list")
	if code != 0 || !strings.Contains(out, "cli-one") || !strings.Contains(out, "256MB") {
		t.Fatalf("list = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "instances", "show", "cli-one"); code != 0 || !strings.Contains(out, `"GREETING": "hi"`) {
		t.Fatalf("show = %d\n%s", code, out)
	}
	// Replicas and hubs.
	if code, out := run(t, h, session, nil, "instances", "scale", "cli-one", "10"); code != 1 || !strings.Contains(out, "replicas") {
		t.Fatalf("scale to 10 = %d, want 1 naming replicas\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "instances", "scale", "cli-one", "2"); code != 0 || !strings.Contains(out, "scaled to 2") {
		t.Fatalf("scale = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "hubs", "list"); code != 0 || !strings.Contains(out, h.NodeID) || !strings.Contains(out, "up") {
		t.Fatalf("hubs list = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "hubs", "drain", h.NodeID); code != 1 || !strings.Contains(out, "last hub of region") {
		t.Fatalf("draining the only hub with instances = %d, want 1 saying why\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "instances", "delete", "cli-one"); code != 0 {
		t.Fatalf("delete = %d\n%s", code, out)
	}

	export := filepath.Join(t.TempDir(), "audit.json")
	if code, out := run(t, h, session, nil, "audit", "export", "--out", export); code != 0 {
		t.Fatalf("audit export = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "audit", "verify", export); code != 0 || !strings.Contains(out, "head hash") {
		t.Fatalf("audit verify = %d\n%s", code, out)
	}
	b, err := os.ReadFile(export)
	if err != nil {
		t.Fatal(err)
	}
	tampered := strings.Replace(string(b), "cli-one", "cli-0ne", 1)
	if tampered == string(b) {
		t.Fatal("export does not mention the instance")
	}
	if err := os.WriteFile(export, []byte(tampered), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run(t, h, session, nil, "audit", "verify", export); code != 1 || !strings.Contains(out, "broken") {
		t.Fatalf("verify of an edited export = %d, want 1 naming the break\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, "logout"); code != 0 {
		t.Fatalf("logout = %d\n%s", code, out)
	}
}
