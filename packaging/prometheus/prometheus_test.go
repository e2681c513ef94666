// Package prometheus holds the Prometheus configuration and alerting rules
// shipped for RedForge (packaging/prometheus); its test checks them with
// promtool from Debian's prometheus package.
package prometheus

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/testenv"
)

func promtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testenv.Promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestAlertRules: the rules load, and their unit tests (each alert of the
// issue: instance down, crash looping, deployment failed, edge backlog
// age, hub down, Raft without leader, store and coord down) pass.
func TestAlertRules(t *testing.T) {
	out := promtool(t, ".", "check", "rules", "alerts.yml")
	if !strings.Contains(out, "10 rules found") {
		t.Errorf("promtool check rules: %s", out)
	}
	out = promtool(t, "tests", "test", "rules", "alerts_test.yml")
	for _, alert := range []string{"RedForgeInstanceDown", "RedForgeInstanceCrashLooping", "RedForgeDeploymentFailed",
		"RedForgeEdgeBacklogOld", "RedForgeHubDown", "RedForgeRaftNoLeader", "RedForgeStoreDown", "RedForgeCoordDown", "RedForgeBackupMissed", "RedForgeBackupFailing"} {
		b, _ := os.ReadFile(filepath.Join("tests", "alerts_test.yml"))
		if !strings.Contains(string(b), "alertname: "+alert) {
			t.Errorf("no unit test of %s", alert)
		}
	}
	if !strings.Contains(out, "SUCCESS") {
		t.Errorf("promtool test rules: %s", out)
	}
}

// TestConfig: the compose configuration is one Prometheus accepts (the
// token file it names is given by the operator; a stand-in is used here).
func TestConfig(t *testing.T) {
	dir := t.TempDir()
	cfg, err := os.ReadFile("prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs("alerts.yml")
	text := strings.ReplaceAll(string(cfg), "/etc/prometheus-token/token", filepath.Join(dir, "token"))
	text = strings.ReplaceAll(text, "/etc/prometheus/alerts.yml", abs)
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte("rft_x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, dir, "check", "config", "prometheus.yml")
}
