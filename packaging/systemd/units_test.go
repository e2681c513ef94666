// Package systemd holds the systemd units of the hub and the edge and the
// test that checks them; it has no Go code of its own.
package systemd

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// unit is a parsed unit file: section -> key -> values (a key may repeat).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s: bad line %q", path, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestUnitsHardenedAndNotifying checks what the units promise: Type=notify
// with a watchdog (the binaries send READY=1 and WATCHDOG=1, see
// cmd/edge/notify_test.go and cmd/hub/notify_test.go), Restart=always, a
// dedicated user, and the hardening options.
func TestUnitsHardenedAndNotifying(t *testing.T) {
	want := map[string]string{
		"Type": "notify", "Restart": "always", "NoNewPrivileges": "yes", "ProtectSystem": "strict",
		"PrivateTmp": "yes", "ProtectHome": "yes", "PrivateDevices": "yes", "CapabilityBoundingSet": "",
		"RestrictSUIDSGID": "yes", "ProtectKernelModules": "yes", "ProtectControlGroups": "yes",
	}
	for _, name := range []string{"redforge-edge.service", "redforge-hub.service"} {
		t.Run(name, func(t *testing.T) {
			u := parseUnit(t, name)
			for k, v := range want {
				if got, ok := u["Service"][k]; !ok || u.get("Service", k) != v {
					t.Errorf("[Service] %s = %q, want %q", k, got, v)
				}
			}
			if u.get("Service", "WatchdogSec") == "" {
				t.Error("no WatchdogSec")
			}
			if user := u.get("Service", "User"); user == "" || user == "root" {
				t.Errorf("User = %q, want a dedicated user", user)
			}
			state := u.get("Service", "StateDirectory")
			if state == "" || !strings.Contains(u.get("Service", "ReadWritePaths"), "/var/lib/"+state) {
				t.Errorf("StateDirectory %q not in ReadWritePaths %q", state, u.get("Service", "ReadWritePaths"))
			}
			if !strings.Contains(u.get("Service", "ExecStart"), "--data-dir ${STATE_DIRECTORY}") {
				t.Errorf("ExecStart %q does not use the state directory", u.get("Service", "ExecStart"))
			}
			if u.get("Install", "WantedBy") != "multi-user.target" {
				t.Error("not WantedBy=multi-user.target")
			}
		})
	}
}

// TestUnitsVerify runs systemd-analyze verify on each unit (its binary
// path pointed at an executable that exists here) and fails on any
// complaint, warnings included. Without systemd-analyze it skips.
func TestUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd): units not verified")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	verify := func(name, text string) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, _ := exec.Command(analyze, "verify", "--man=no", p).CombinedOutput()
		return strings.TrimSpace(string(out))
	}
	for name, bin := range map[string]string{"redforge-edge.service": "/usr/local/bin/redforge-edge", "redforge-hub.service": "/usr/local/bin/redforge-hub"} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if out := verify(name, strings.ReplaceAll(string(b), bin, self)); out != "" {
			t.Errorf("systemd-analyze verify %s:\n%s", name, out)
		}
	}
	// The check can fail: a misspelt key is reported.
	if out := verify("bad.service", "[Service]\nType=notify\nRestart=allways\nExecStart="+self+"\n"); out == "" {
		t.Error("systemd-analyze verify accepted Restart=allways: the check above proves nothing")
	}
}
