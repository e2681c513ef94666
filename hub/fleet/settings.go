package fleet

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/nodes"
)

// AdminRoot is Node-RED's httpAdminRoot in every runtime the hub runs: the
// editor and the admin API live under it, and the public /i/{name}/ proxy
// refuses every path below it (404), so /i/{name}/ serves only http in
// endpoints and static content. The hub's own admin client and the editor
// proxy (/editor/{name}/) use it.
const AdminRoot = "/redforge-admin"

// EditorTokenHeader is the request header through which the hub's editor
// proxy hands Node-RED a token it signed for the hub user
// (adminAuth.tokenHeader); settings.js checks it (adminAuth.tokens).
const EditorTokenHeader = "x-redforge-editor"

// Environment variables settings.js and the runtime plugin read.
const (
	// EnvEditorKey is the public key (Ed25519, DER SubjectPublicKeyInfo,
	// base64url) that checks the editor tokens the hub signs.
	EnvEditorKey = "REDFORGE_EDITOR_KEY"
	// EnvRowID is the catalog row the runtime serves (editor tokens name
	// it; the plugin's bus username).
	EnvRowID = "REDFORGE_ROW_ID"
)

// RuntimePlugin is the npm package of the RedForge runtime plugin
// (packaging/nodered/runtime), installed beside Node-RED like the Redis
// context store; settings.js turns it on.
const RuntimePlugin = "@redforge/node-red-runtime"

// Files in an instance's user dir written by WriteUserDir.
const (
	SettingsFile         = "settings.js"
	CredentialSecretFile = ".redforge-credential-secret"
	FlowFile             = "flows.json"
)

// BcryptCost is the cost of the adminAuth password hash: 8, as Node-RED's
// own `node-red admin hash-pw` uses. The password is a random secret the
// hub generates, so the cost adds little against guessing, while Node-RED
// pays it (in JavaScript) on every /auth/token login and the hub on every
// Create: cost 10 added about 0.1 s to create-to-healthy.
var BcryptCost = 8

// reservedSettings are the settings.js keys the driver owns: ExtraSettings
// may not set them, because the hub relies on them to reach and
// authenticate to the instance.
var reservedSettings = map[string]bool{
	"uiHost": true, "uiPort": true, "flowFile": true, "userDir": true,
	"credentialSecret": true, "adminAuth": true, "httpAdminRoot": true,
	"httpNodeRoot": true, "httpRoot": true, "https": true, "requireHttps": true,
	"externalModules": true, "redforgeRuntime": true, "httpAdminMiddleware": true,
}

// validateExtraSettings refuses reserved keys, values that do not encode
// to JSON and contextStorage modules that settings.js would not load.
func validateExtraSettings(extra map[string]any) error {
	for _, k := range sortedKeys(extra) {
		if reservedSettings[k] {
			return invalid("extra_settings."+k, "is managed by the hub and cannot be overridden")
		}
		if _, err := json.Marshal(extra[k]); err != nil {
			return invalid("extra_settings."+k, "is not JSON-encodable: %v", err)
		}
	}
	stores, _ := extra["contextStorage"].(map[string]any)
	for _, name := range sortedKeys(stores) {
		store, _ := stores[name].(map[string]any)
		mod, ok := store["module"].(string)
		if ok && mod != "memory" && mod != "localfilesystem" && !contextModulePattern.MatchString(mod) {
			return invalid("extra_settings.contextStorage."+name+".module",
				"%q is not memory, localfilesystem or a package named @redforge/node-red-context-*", mod)
		}
	}
	return nil
}

// contextModulePattern is the package names settings.js loads as context
// stores (besides Node-RED's built-in ones): the project's own.
var contextModulePattern = regexp.MustCompile(`^@redforge/node-red-context-[a-z0-9-]+$`)

// RenderSettings returns the settings.js of an instance whose HTTP server
// listens on listenHost:listenPort: flows in flows.json, the editor and
// admin API under AdminRoot (httpNodeRoot "/"), adminAuth with the spec's
// AdminUser and the bcrypt hash of AdminPassword (the plaintext is never
// written) plus the hub's editor tokens (adminAuth.tokens checks a token
// in EditorTokenHeader against the public key in the runtime's
// EnvEditorKey: signed by the hub, for this row (EnvRowID), unexpired; it
// names the hub user and carries "*" or "read"), console logging at info
// with Node-RED's audit log of what users do (not the hub's own client), the palette closed (nodes are installed by
// the hub), the RedForge runtime plugin on (redforgeRuntime, and its
// httpAdminMiddleware when the package resolves), telemetry, projects and
// tours off, the instance's name in the editor's title; then
// the top-level keys of ExtraSettings replace these defaults (the keys the
// hub relies on — uiHost, uiPort, flowFile, userDir, credentialSecret,
// adminAuth, httpAdminRoot, httpNodeRoot, httpRoot, https, requireHttps —
// and externalModules, redforgeRuntime and httpAdminMiddleware are
// refused). Every value is JSON-encoded, so names, users and extra
// settings cannot inject code (env values never enter settings.js). The credential secret is not in the
// file: settings.js reads it at load time from CredentialSecretFile beside
// itself (see EnsureCredentialSecret), so it stays stable while settings
// are rewritten. A contextStorage store (from ExtraSettings) whose
// "module" is a package named @redforge/node-red-context-* is require()d
// by settings.js, from the user dir or Node-RED's own node_modules (other
// names than Node-RED's built-in "memory" and "localfilesystem" are
// refused). It returns a *SpecError for an invalid ExtraSettings or a
// missing admin user or password.
func RenderSettings(spec Spec, listenHost string, listenPort int) ([]byte, error) {
	if spec.AdminUser == "" {
		return nil, invalid("admin_user", "must be set")
	}
	if spec.AdminPassword == "" {
		return nil, invalid("admin_password", "must be set")
	}
	if err := validateExtraSettings(spec.ExtraSettings); err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(spec.AdminPassword), BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("settings: hash admin password: %w", err)
	}
	settings := map[string]any{
		"uiHost":        listenHost,
		"uiPort":        listenPort,
		"flowFile":      FlowFile,
		"httpNodeRoot":  "/",
		"httpAdminRoot": AdminRoot,
		"adminAuth": map[string]any{
			"type": "credentials",
			"users": []map[string]any{{
				"username": spec.AdminUser, "password": string(hash), "permissions": "*",
			}},
			"tokenHeader": EditorTokenHeader,
		},
		"logging":         map[string]any{"console": map[string]any{"level": "info", "metrics": false, "audit": false}},
		"telemetry":       map[string]any{"enabled": false, "updateNotification": false},
		"editorTheme":     editorTheme(spec.Name),
		"externalModules": map[string]any{"autoInstall": false, "palette": map[string]any{"allowInstall": false, "allowUpload": false}},
		"redforgeRuntime": map[string]any{"enabled": true, "editorHeader": EditorTokenHeader},
	}
	for k, v := range spec.ExtraSettings {
		settings[k] = v
	}
	body, err := json.MarshalIndent(settings, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("settings: encode: %w", err)
	}
	// The settings travel as a JS string literal given to JSON.parse, not
	// as an object literal: a "__proto__" key in an object literal would set
	// the prototype, JSON.parse makes it a plain property.
	literal, err := json.Marshal(string(body))
	if err != nil {
		return nil, fmt.Errorf("settings: encode: %w", err)
	}
	secretName, _ := json.Marshal(CredentialSecretFile)
	var b bytes.Buffer
	b.WriteString("// settings.js written by RedForge Control Tower; the hub rewrites it, do not edit.\n")
	b.WriteString("\"use strict\";\n")
	fmt.Fprintf(&b, "const settings = JSON.parse(%s);\n", literal)
	fmt.Fprintf(&b, "settings.credentialSecret = require(\"fs\").readFileSync(require(\"path\").join(__dirname, %s), \"utf8\").trim();\n", secretName)
	// A contextStorage store whose module is a package name (not one of
	// Node-RED's built-in "memory" and "localfilesystem") is loaded from
	// beside settings.js or from Node-RED's own node_modules.
	b.WriteString(contextModules)
	b.WriteString(editorTokens)
	hubUser, _ := json.Marshal(spec.AdminUser)
	fmt.Fprintf(&b, auditLog, hubUser)
	b.WriteString(runtimePlugin)
	b.WriteString("module.exports = settings;\n")
	return b.Bytes(), nil
}

// contextModules is the settings.js code that turns the package name in
// a contextStorage store's "module" into the loaded module (Node-RED
// itself only loads its built-in stores by name). Only names that
// contextModulePattern admits are loaded.
const contextModules = `for (const store of Object.values(settings.contextStorage || {})) {
  if (store && typeof store.module === "string" && /^@redforge\/node-red-context-[a-z0-9-]+$/.test(store.module)) {
    const paths = [__dirname].concat(require.main ? [require("path").dirname(require.main.filename)] : []);
    store.module = require(require.resolve(store.module, { paths }));
  }
}
`

// editorTokens is the settings.js code of adminAuth.tokens: a token is
// "rfe1.<payload>.<signature>", base64url, the signature Ed25519 over
// "rfe1.<payload>" by the hub's editor key, whose public half the runtime
// has in its environment; the payload {"u","p","row","exp"} names the hub
// user, its Node-RED permissions ("*" or "read"), the row and the expiry
// (Unix seconds). Anything else resolves to no user (401). Without the key
// in the environment no token is accepted.
const editorTokens = `(function () {
  const crypto = require("crypto");
  const pub = process.env.` + EnvEditorKey + ` || "";
  const row = process.env.` + EnvRowID + ` || "";
  let key = null;
  try { key = pub ? crypto.createPublicKey({ key: Buffer.from(pub, "base64url"), format: "der", type: "spki" }) : null; } catch (e) { key = null; }
  settings.adminAuth.tokens = function (token) {
    return new Promise(function (resolve) {
      try {
        const parts = String(token || "").split(".");
        if (!key || !row || parts.length !== 3 || parts[0] !== "rfe1") { return resolve(null); }
        if (!crypto.verify(null, Buffer.from(parts[0] + "." + parts[1]), key, Buffer.from(parts[2], "base64url"))) { return resolve(null); }
        const c = JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
        if (!c || c.row !== row || typeof c.u !== "string" || !c.u || !(c.p === "*" || c.p === "read") || !(typeof c.exp === "number" && c.exp * 1000 > Date.now())) { return resolve(null); }
        resolve({ username: c.u, permissions: c.p });
      } catch (e) { resolve(null); }
    });
  };
})();
`

// auditLog is the settings.js code of Node-RED's audit log: printed like
// Node-RED's own console audit lines, leaving out what the hub's own
// admin client does (its logins and health checks every monitor
// interval), so what remains is what users did in the editor, each line
// naming the hub user. The %%s is the hub's admin user, JSON-encoded.
const auditLog = `settings.logging.redforgeAudit = { level: "off", audit: true, handler: function () {
  const hub = %s;
  return function (msg) {
    if (msg && msg.user && msg.user.username === hub) { return; }
    if (msg && msg.event === "auth.login" && msg.username === hub) { return; }
    console.log(new Date().toISOString() + " - [audit] " + JSON.stringify(msg));
  };
} };
`

// runtimePlugin is the settings.js code that hands the RedForge runtime
// plugin's admin middleware to Node-RED when the package resolves (from
// beside settings.js or Node-RED's own node_modules); without it the
// runtime runs, and the hub finds at its next deployment that the runtime
// does not speak the control contract.
const runtimePlugin = `try {
  const paths = [__dirname].concat(require.main ? [require("path").dirname(require.main.filename)] : []);
  settings.httpAdminMiddleware = require(require.resolve("` + RuntimePlugin + `", { paths })).adminMiddleware;
} catch (e) {
  console.warn("[redforge] the runtime plugin ` + RuntimePlugin + ` is not installed beside Node-RED: " + e.message);
}
`

// editorTheme turns off projects and tours and, given the instance's name,
// shows it in the editor's header and page title.
func editorTheme(name string) map[string]any {
	theme := map[string]any{"projects": map[string]any{"enabled": false}, "tours": false,
		"palette": map[string]any{"editable": false}}
	if name != "" {
		theme["page"] = map[string]any{"title": name + " - Node-RED"}
		theme["header"] = map[string]any{"title": "Node-RED: " + name}
	}
	return theme
}

// EnsureCredentialSecret creates dir/CredentialSecretFile with a random
// 256-bit secret unless it exists, so an instance keeps the key of its
// encrypted flow credentials across restarts and settings rewrites.
func EnsureCredentialSecret(dir string) error {
	path := filepath.Join(dir, CredentialSecretFile)
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return nil
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read credential secret: %w", err)
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("credential secret: %w", err)
	}
	return WriteFileAtomic(path, []byte(hex.EncodeToString(secret)+"\n"), 0o600)
}

// WriteUserDir makes userDir if needed, ensures its credential secret,
// (re)writes its settings.js for listenHost:listenPort and, given
// spec.NodesDir, replaces its node_modules with a copy of that tree and
// lists spec.Nodes in its package.json (Node-RED loads the nodes from
// there). Existing flows are kept.
func WriteUserDir(userDir string, spec Spec, listenHost string, listenPort int) error {
	settings, err := RenderSettings(spec, listenHost, listenPort)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(userDir, 0o700); err != nil {
		return fmt.Errorf("user dir: %w", err)
	}
	if err := EnsureCredentialSecret(userDir); err != nil {
		return err
	}
	if err := writeNodes(userDir, spec); err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(userDir, SettingsFile), settings, 0o600)
}

// writeNodes puts the spec's node packages into the user dir, or takes
// away those of an earlier spec.
func writeNodes(userDir string, spec Spec) error {
	modules := filepath.Join(userDir, "node_modules")
	if spec.NodesDir == "" {
		if err := os.RemoveAll(modules); err != nil {
			return fmt.Errorf("user dir: node_modules: %w", err)
		}
		return nil
	}
	if err := nodes.CopyTree(spec.NodesDir, modules); err != nil {
		return fmt.Errorf("user dir: install node packages: %w", err)
	}
	deps := map[string]string{}
	for _, p := range spec.Nodes {
		if i := strings.LastIndex(p, "@"); i > 0 {
			deps[p[:i]] = p[i+1:]
		}
	}
	b, err := json.MarshalIndent(map[string]any{"name": "node-red-project", "description": "written by RedForge Control Tower: the instance's node packages",
		"version": "0.0.1", "private": true, "dependencies": deps}, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(userDir, "package.json"), b, 0o600)
}

// WriteFileAtomic writes data to a temp file beside path, syncs it and
// renames it over path, so readers see the old or the new file, never a
// part.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
