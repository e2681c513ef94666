package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

// hostile strings: each would break out of a naively quoted JS string or
// comment.
const (
	hostileUser  = "a\"; require('child_process').execSync('touch /tmp/pwned'); //\u2028`${x}`</script>"
	hostileValue = "x\\\"; process.exit(3); \"\n*/ '"
)

func settingsSpec() fleet.Spec {
	return fleet.Spec{
		InstanceID: "s1", Name: hostileValue, Port: 1880,
		Env:       map[string]string{"X": hostileValue},
		AdminUser: hostileUser, AdminPassword: "correct horse",
		ExtraSettings: map[string]any{
			"__proto__":             map[string]any{"polluted": true},
			"functionGlobalContext": map[string]any{"s": hostileValue},
			"contextStorage":        map[string]any{"default": map[string]any{"module": "memory"}},
		},
	}
}

// loadSettings requires settings.js with node and returns what it exports,
// plus whether Object.prototype was polluted.
func loadSettings(t *testing.T, dir string) (map[string]any, bool) {
	t.Helper()
	node := testenv.NodeREDPaths(t).Node
	script := `const s = require(process.argv[1]);
process.stdout.write(JSON.stringify({settings: s, polluted: ({}).polluted === true || Object.getPrototypeOf(s) !== Object.prototype}));`
	out, err := exec.Command(node, "-e", script, filepath.Join(dir, fleet.SettingsFile)).CombinedOutput()
	if err != nil {
		t.Fatalf("node could not load settings.js: %v\n%s", err, out)
	}
	var res struct {
		Settings map[string]any
		Polluted bool
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("decode %s: %v", out, err)
	}
	return res.Settings, res.Polluted
}

// TestSettingsAreDataNotCode: hostile names, users and extra settings come
// back from node exactly as given, nothing runs, the prototype is intact,
// the password is only a bcrypt hash and the credential secret is read
// from its file.
func TestSettingsAreDataNotCode(t *testing.T) {
	dir := t.TempDir()
	spec := settingsSpec()
	if err := fleet.WriteUserDir(dir, spec, "127.0.0.1", 18999); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, fleet.SettingsFile))
	if strings.Contains(string(raw), spec.AdminPassword) {
		t.Fatal("settings.js holds the plaintext password")
	}
	s, polluted := loadSettings(t, dir)
	if polluted {
		t.Error("settings.js changed a prototype")
	}
	if s["uiHost"] != "127.0.0.1" || s["uiPort"] != float64(18999) || s["flowFile"] != "flows.json" || s["httpNodeRoot"] != "/" {
		t.Errorf("listen settings: %v", s)
	}
	users := s["adminAuth"].(map[string]any)["users"].([]any)
	user := users[0].(map[string]any)
	if user["username"] != hostileUser || user["permissions"] != "*" {
		t.Errorf("admin user %q permissions %v", user["username"], user["permissions"])
	}
	if err := bcrypt.CompareHashAndPassword([]byte(user["password"].(string)), []byte(spec.AdminPassword)); err != nil {
		t.Errorf("adminAuth password is not the bcrypt hash of the admin password: %v", err)
	}
	if got := s["functionGlobalContext"].(map[string]any)["s"]; got != hostileValue {
		t.Errorf("extra setting round trip: %q, want %q", got, hostileValue)
	}
	if title := s["editorTheme"].(map[string]any)["header"].(map[string]any)["title"]; title != "Node-RED: "+hostileValue {
		t.Errorf("editor header title %q", title)
	}
	if level := s["logging"].(map[string]any)["console"].(map[string]any)["level"]; level != "info" {
		t.Errorf("log level %v", level)
	}
	secret, _ := os.ReadFile(filepath.Join(dir, fleet.CredentialSecretFile))
	if s["credentialSecret"] != strings.TrimSpace(string(secret)) || len(strings.TrimSpace(string(secret))) < 32 {
		t.Errorf("credentialSecret %q, want the file's %q", s["credentialSecret"], secret)
	}
}

func TestCredentialSecretIsStable(t *testing.T) {
	dir := t.TempDir()
	spec := settingsSpec()
	if err := fleet.WriteUserDir(dir, spec, "127.0.0.1", 1880); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fleet.CredentialSecretFile)
	first, _ := os.ReadFile(path)
	spec.AdminPassword = "rotated"
	if err := fleet.WriteUserDir(dir, spec, "0.0.0.0", 1880); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(path)
	if string(first) != string(second) {
		t.Fatal("rewriting settings changed the credential secret")
	}
	for _, name := range []string{fleet.CredentialSecretFile, fleet.SettingsFile} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", name, fi.Mode().Perm(), err)
		}
	}
	other := t.TempDir()
	if err := fleet.EnsureCredentialSecret(other); err != nil {
		t.Fatal(err)
	}
	if third, _ := os.ReadFile(filepath.Join(other, fleet.CredentialSecretFile)); string(third) == string(first) {
		t.Fatal("two instances got the same credential secret")
	}
}

func TestRenderSettingsRefuses(t *testing.T) {
	for _, tc := range []struct {
		edit  func(*fleet.Spec)
		field string
	}{
		{func(s *fleet.Spec) { s.AdminUser = "" }, "admin_user"},
		{func(s *fleet.Spec) { s.AdminPassword = "" }, "admin_password"},
		{func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"uiPort": 1} }, "extra_settings.uiPort"},
		{func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"credentialSecret": "x"} }, "extra_settings.credentialSecret"},
		{func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"httpAdminRoot": "/admin"} }, "extra_settings.httpAdminRoot"},
		{func(s *fleet.Spec) { s.ExtraSettings = map[string]any{"c": make(chan int)} }, "extra_settings.c"},
		{func(s *fleet.Spec) {
			s.ExtraSettings = map[string]any{"contextStorage": map[string]any{"x": map[string]any{"module": "child_process"}}}
		}, "extra_settings.contextStorage.x.module"},
	} {
		spec := settingsSpec()
		tc.edit(&spec)
		_, err := fleet.RenderSettings(spec, "127.0.0.1", 1880)
		var se *fleet.SpecError
		if !errors.Is(err, fleet.ErrInvalidSpec) || !errors.As(err, &se) || se.Field != tc.field {
			t.Errorf("RenderSettings: %v, want ErrInvalidSpec naming %s", err, tc.field)
		}
	}
}

// TestNodeREDAcceptsSettings runs Node-RED 4.1 on the rendered settings:
// it listens where told, enforces adminAuth with the hub's credentials,
// applies extra settings (a second context store) and uses our credential
// secret instead of generating one.
func TestNodeREDAcceptsSettings(t *testing.T) {
	paths := testenv.NodeREDPaths(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	spec := fleet.Spec{
		InstanceID: "accept", Port: port, AdminUser: "hub", AdminPassword: "s3cret pass",
		ExtraSettings: map[string]any{"contextStorage": map[string]any{
			"default": map[string]any{"module": "memory"},
			"disk":    map[string]any{"module": "localfilesystem"},
		}},
	}
	if err := fleet.WriteUserDir(dir, spec, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paths.Node, paths.RedJS, "--userDir", dir, "--settings", filepath.Join(dir, fleet.SettingsFile))
	logf, err := os.Create(filepath.Join(t.TempDir(), "node-red.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); <-exited })

	ctx := context.Background()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c, _ := nodered.New(base, spec.AdminUser, spec.AdminPassword)
	var settings map[string]any
	testenv.WaitFor(t, time.Minute, "Node-RED up with the rendered settings", func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("Node-RED exited:\n%s", b)
		default:
		}
		settings, err = c.Settings(ctx)
		return err
	})
	if settings["httpNodeRoot"] != "/" {
		t.Errorf("httpNodeRoot %v", settings["httpNodeRoot"])
	}
	stores := fmt.Sprint(settings["context"])
	if !strings.Contains(stores, "disk") {
		t.Errorf("context stores %s lack the extra 'disk' store", stores)
	}
	anon, _ := nodered.New(base, "", "")
	if _, err := anon.Settings(ctx); !errors.Is(err, nodered.ErrUnauthorized) {
		t.Errorf("anonymous /settings: %v, want ErrUnauthorized", err)
	}
	wrong, _ := nodered.New(base, spec.AdminUser, "nope")
	if _, err := wrong.Settings(ctx); !errors.Is(err, nodered.ErrUnauthorized) {
		t.Errorf("wrong password: %v, want ErrUnauthorized", err)
	}
	// Node-RED stores a generated secret in .config.runtime.json only when
	// settings give none.
	if b, err := os.ReadFile(filepath.Join(dir, ".config.runtime.json")); err == nil && strings.Contains(string(b), "_credentialSecret") {
		t.Errorf("Node-RED generated its own credential secret: %s", b)
	}
}
