package fleet_test

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	cmd := exec.Command(node, "-e", script, filepath.Join(dir, fleet.SettingsFile))
	var stderr strings.Builder
	cmd.Stderr = &stderr // settings.js warns there when the runtime plugin is not beside it
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node could not load settings.js: %v\n%s%s", err, out, stderr.String())
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
	exited, logf := runNodeRED(t, paths, dir, nil)
	ctx := context.Background()
	base := fmt.Sprintf("http://127.0.0.1:%d", port) + fleet.AdminRoot
	c, _ := nodered.New(base, spec.AdminUser, spec.AdminPassword)
	var settings map[string]any
	testenv.WaitFor(t, time.Minute, "Node-RED up with the rendered settings", func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf)
			t.Fatalf("Node-RED exited:\n%s", b)
		default:
		}
		var err error
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
	// The admin API is under AdminRoot only: at the root it is not found.
	for _, path := range []string{"/flows", "/settings", "/auth/login"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, path))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s at the root = %d, want 404 (the admin API lives under %s)", path, resp.StatusCode, fleet.AdminRoot)
		}
	}
	// Node-RED stores a generated secret in .config.runtime.json only when
	// settings give none.
	if b, err := os.ReadFile(filepath.Join(dir, ".config.runtime.json")); err == nil && strings.Contains(string(b), "_credentialSecret") {
		t.Errorf("Node-RED generated its own credential secret: %s", b)
	}
}

// runNodeRED runs Node-RED on the user dir with extra environment until
// the test ends; it returns a channel closed when it exits and its log.
func runNodeRED(t *testing.T, paths testenv.NodeREDInstall, dir string, env []string) (<-chan struct{}, string) {
	t.Helper()
	cmd := exec.Command(paths.Node, paths.RedJS, "--userDir", dir, "--settings", filepath.Join(dir, fleet.SettingsFile))
	cmd.Env = append(os.Environ(), env...)
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
	return exited, logf.Name()
}

// editorToken signs claims the way the hub does (hub/auth
// SignEditorToken): "rfe1." + base64url(JSON) + "." + base64url(Ed25519).
func editorToken(priv ed25519.PrivateKey, claims map[string]any) string {
	body, _ := json.Marshal(claims)
	signed := "rfe1." + base64.RawURLEncoding.EncodeToString(body)
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(priv, []byte(signed)))
}

// TestEditorTokensInSettings: Node-RED on the rendered settings takes a
// token in the editor header signed with the key whose public half is in
// its environment, for its row, unexpired: the token's user is who
// Node-RED says is signed in, with the token's permissions ("read" may
// not deploy). Every other token is refused.
func TestEditorTokensInSettings(t *testing.T) {
	paths := testenv.NodeREDPaths(t)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	spec := fleet.Spec{InstanceID: "tokens", Port: port, AdminUser: "hub", AdminPassword: "s3cret pass"}
	if err := fleet.WriteUserDir(dir, spec, "127.0.0.1", port); err != nil {
		t.Fatal(err)
	}
	pub, priv, _ := ed25519.GenerateKey(nil)
	_, other, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKIXPublicKey(pub)
	exited, logf := runNodeRED(t, paths, dir, []string{
		fleet.EnvEditorKey + "=" + base64.RawURLEncoding.EncodeToString(der), fleet.EnvRowID + "=row-1"})
	base := fmt.Sprintf("http://127.0.0.1:%d", port) + fleet.AdminRoot
	call := func(method, path, token string, body string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set(fleet.EditorTokenHeader, token)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	exp := time.Now().Add(time.Minute).Unix()
	alice := editorToken(priv, map[string]any{"u": "alice", "p": "*", "row": "row-1", "exp": exp})
	testenv.WaitFor(t, time.Minute, "Node-RED up", func() error {
		select {
		case <-exited:
			b, _ := os.ReadFile(logf)
			t.Fatalf("Node-RED exited:\n%s", b)
		default:
		}
		if code, body := call("GET", "/settings", alice, ""); code != 200 {
			return fmt.Errorf("GET /settings = %d %s", code, body)
		}
		return nil
	})
	if code, body := call("GET", "/settings", alice, ""); !strings.Contains(body, `"username":"alice"`) || !strings.Contains(body, `"permissions":"*"`) {
		t.Errorf("settings as alice = %d %s, want alice with *", code, body)
	}
	if code, body := call("POST", "/flows", alice, "[]"); code/100 != 2 {
		t.Errorf("deploy as alice (*) = %d %s, want 2xx", code, body)
	}
	bob := editorToken(priv, map[string]any{"u": "bob", "p": "read", "row": "row-1", "exp": exp})
	if code, body := call("GET", "/flows", bob, ""); code != 200 {
		t.Errorf("read flows as bob (read) = %d %s, want 200", code, body)
	}
	if code, body := call("POST", "/flows", bob, "[]"); code != 401 {
		t.Errorf("deploy as bob (read) = %d %s, want 401", code, body)
	}
	for name, tok := range map[string]string{
		"none":         "",
		"another row":  editorToken(priv, map[string]any{"u": "alice", "p": "*", "row": "row-2", "exp": exp}),
		"expired":      editorToken(priv, map[string]any{"u": "alice", "p": "*", "row": "row-1", "exp": time.Now().Add(-time.Second).Unix()}),
		"another key":  editorToken(other, map[string]any{"u": "alice", "p": "*", "row": "row-1", "exp": exp}),
		"unknown perm": editorToken(priv, map[string]any{"u": "alice", "p": "flows.write", "row": "row-1", "exp": exp}),
		"garbage":      "rfe1.e30.AAAA",
	} {
		if code, body := call("GET", "/flows", tok, ""); code != 401 {
			t.Errorf("token %s: GET /flows = %d %s, want 401", name, code, body)
		}
	}
}
