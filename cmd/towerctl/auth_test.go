package main

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/hubtest"
)

// TestAuthRotateKeys: towerctl auth rotate-keys (through the API route)
// adds a signing key; the session token from before the rotation (old
// key) keeps working, a new login's token carries the new key, and the
// rotation is in the audit log. A VIEWER may not rotate.
func TestAuthRotateKeys(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	admin := map[string]string{"REDFORGE_PASSWORD": hubtest.AdminPassword}
	if code, out := run(t, h, session, admin, "login"); code != 0 {
		t.Fatalf("login = %d\n%s", code, out)
	}
	code, out := run(t, h, session, nil, "auth", "keys")
	if code != 0 || strings.Count(out, "current") != 1 || strings.Contains(out, "retired") {
		t.Fatalf("auth keys = %d\n%s", code, out)
	}
	code, out = run(t, h, session, nil, "auth", "rotate-keys")
	if code != 0 || !strings.Contains(out, "new signing key") || !strings.Contains(out, "retired") {
		t.Fatalf("auth rotate-keys = %d\n%s", code, out)
	}
	// The saved session's access token was signed with the old key.
	if code, out := run(t, h, session, nil, "instances", "list"); code != 0 {
		t.Fatalf("old-key session after the rotation = %d\n%s", code, out)
	}
	session2 := filepath.Join(t.TempDir(), "session2.json")
	if code, out := run(t, h, session2, admin, "login"); code != 0 {
		t.Fatalf("login after the rotation = %d\n%s", code, out)
	}
	if code, out := run(t, h, session2, nil, "instances", "list"); code != 0 {
		t.Fatalf("new-key session = %d\n%s", code, out)
	}
	var audit struct {
		Records []struct {
			Action     string `json:"action"`
			ResourceID string `json:"resource_id"`
		} `json:"records"`
	}
	h.JSON(t, http.MethodGet, "/api/audit?action=SIGNING_KEY_ROTATED", nil, http.StatusOK, &audit)
	if len(audit.Records) != 1 {
		t.Fatalf("audit of the rotation: %+v", audit)
	}
	viewer := h.CreateUser(t, "vic", "VIEWER")
	if code, body := h.Do(t, http.MethodPost, "/api/auth/keys/rotate", viewer, nil); code != http.StatusForbidden {
		t.Fatalf("viewer rotate = %d %s, want 403", code, body)
	}
}
