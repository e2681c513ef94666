package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlBackup drives backup create|list|verify|prune, config
// export|import and flows restore against a real hub.
func TestTowerctlBackup(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	env := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	code, out := run(t, h, session, env, "backup", "create")
	if code != 0 || !strings.Contains(out, "backup redforge-") || !strings.Contains(out, "audit head") {
		t.Fatalf("backup create = %d\n%s", code, out)
	}
	name := strings.Fields(out)[1]
	name = strings.TrimSuffix(name, ":")
	code, out = run(t, h, session, env, "backup", "list")
	if code != 0 || !strings.Contains(out, name) {
		t.Fatalf("backup list = %d\n%s", code, out)
	}
	code, out = run(t, h, session, env, "backup", "verify", name)
	if code != 0 || !strings.Contains(out, "OK") || !strings.Contains(out, "scratch hub") {
		t.Fatalf("backup verify = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "backup", "verify", "redforge-20000101T000000.000Z.tar.zst"); code != 1 || !strings.Contains(out, "HTTP 404") {
		t.Fatalf("verify of a missing archive = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "backup", "verify", "passwd"); code != 1 || !strings.Contains(out, "field name") {
		t.Fatalf("verify of a bad name = %d\n%s", code, out)
	}
	code, out = run(t, h, session, env, "backup", "prune", "--dry-run")
	if code != 0 || !strings.Contains(out, "1 kept, 0 would delete") {
		t.Fatalf("backup prune --dry-run = %d\n%s", code, out)
	}

	file := filepath.Join(t.TempDir(), "config.json")
	if code, out := run(t, h, session, env, "config", "export", "--out", file); code != 0 {
		t.Fatalf("config export = %d\n%s", code, out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("exported file: %v %v", fi, err)
	}
	code, out = run(t, h, session, env, "config", "import", file, "--dry-run")
	if code != 0 || !strings.Contains(out, "1 unchanged") || !strings.Contains(out, "dry run") {
		t.Fatalf("config import --dry-run = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "flows", "restore", "--instance", "nope", "--tag", "v1"); code != 1 || !strings.Contains(out, "HTTP 404") {
		t.Fatalf("flows restore of an unknown instance = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, env, "flows", "restore", "--instance", "x"); code != 1 || !strings.Contains(out, "--tag") {
		t.Fatalf("flows restore without a tag = %d\n%s", code, out)
	}
}
