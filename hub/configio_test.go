package hub_test

import (
	"encoding/json"
	"testing"

	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/internal/hubtest"
)

type importResult struct {
	DryRun  bool            `json:"dry_run"`
	Changes []backup.Change `json:"changes"`
	Counts  map[string]int  `json:"counts"`
}

// TestConfigExportImport exports users (password hashes), roles, API
// tokens and regions from one hub and imports them into another: a dry
// run changes nothing, the import creates what is missing (the imported
// user logs in with its password, the imported token works), importing
// again changes nothing, each import is audited, and a bad document is a
// 400 naming the field.
func TestConfigExportImport(t *testing.T) {
	a := hubtest.Start(t)
	a.CreateUser(t, "carol", "OPERATOR")
	var tok struct {
		Token string `json:"token"`
	}
	a.JSON(t, "POST", "/api/tokens", map[string]any{"name": "ci", "role": "VIEWER"}, 201, &tok)
	var doc json.RawMessage
	a.JSON(t, "GET", "/api/config/export", nil, 200, &doc)
	var parsed backup.ConfigDoc
	if err := json.Unmarshal(doc, &parsed); err != nil {
		t.Fatal(err)
	}
	if len(parsed.Users) != 2 || len(parsed.Tokens) != 1 || len(parsed.Roles) != 3 || parsed.Users[0].PasswordHash == "" {
		t.Fatalf("export: %s", doc)
	}
	for _, u := range parsed.Users {
		if u.PasswordHash[:2] != "$2" {
			t.Fatalf("user %s exported without a bcrypt hash", u.Username)
		}
	}

	b := hubtest.Start(t)
	var res importResult
	b.JSON(t, "POST", "/api/config/import?dry_run=true", []byte(doc), 200, &res)
	if !res.DryRun || res.Counts["create"] != 2 || res.Counts["update"] != 1 { // carol and the token; admin's hash differs
		t.Fatalf("dry run: %+v", res)
	}
	if code, _ := b.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": "carol", "password": "password-of-carol"}); code != 401 {
		t.Fatalf("a dry run created carol (login %d)", code)
	}
	res = importResult{}
	b.JSON(t, "POST", "/api/config/import", []byte(doc), 200, &res)
	if res.DryRun || res.Counts["create"] != 2 {
		t.Fatalf("import: %+v", res)
	}
	b.Login(t, "carol", "password-of-carol")
	if code, body := b.Do(t, "GET", "/api/instances", tok.Token, nil); code != 200 {
		t.Fatalf("the imported token: %d %s", code, body)
	}
	res = importResult{}
	b.JSON(t, "POST", "/api/config/import", []byte(doc), 200, &res)
	if res.Counts["create"] != 0 || res.Counts["update"] != 0 || res.Counts["unchanged"] != 3 {
		t.Fatalf("a second import changed something: %+v", res)
	}
	var audit struct {
		Records []struct {
			Action string `json:"action"`
		} `json:"records"`
	}
	b.JSON(t, "GET", "/api/audit?action=CONFIG_IMPORTED", nil, 200, &audit)
	if len(audit.Records) != 2 {
		t.Fatalf("CONFIG_IMPORTED audited %d times, want 2 (dry runs are not)", len(audit.Records))
	}
	wantField(t, b, "POST", "/api/config/import", map[string]any{"format": 9}, 400, "config")
	wantField(t, b, "POST", "/api/config/import", map[string]any{"format": 1, "users": []any{map[string]any{"id": "x", "username": "eve", "password_hash": "plaintext", "role": "ADMIN"}}}, 400, "config")
	wantField(t, b, "POST", "/api/config/import", map[string]any{"format": 1, "roles": []any{map[string]any{"name": "ROOT"}}}, 400, "config")
	wantField(t, b, "POST", "/api/config/import?dry_run=maybe", map[string]any{"format": 1}, 400, "dry_run")
	op := b.CreateUser(t, "olga", "OPERATOR")
	if code, _ := b.Do(t, "GET", "/api/config/export", op, nil); code != 403 {
		t.Fatalf("an operator exported the configuration (%d)", code)
	}
}
