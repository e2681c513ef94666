package auth

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// TestEditorTokens: the hub signs editor tokens with its editor key; a
// token verifies only untampered, names its user, row and permission, is
// reported expired (with its claims) after EditorTokenTTL, and the key
// outlives a rotation of the signing keys (runtimes hold its public half).
func TestEditorTokens(t *testing.T) {
	e := MustEnv(t)
	if _, err := e.svc.EditorPublicKey(); err == nil {
		t.Fatal("an editor key before EnsureEditorKey")
	}
	if err := e.svc.EnsureEditorKey(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	pub, err := e.svc.EditorPublicKey()
	if err != nil || pub == "" {
		t.Fatalf("public key %q %v", pub, err)
	}
	if err := e.svc.EnsureEditorKey(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	tok, err := e.svc.SignEditorToken(EditorClaims{User: "olivia", Permission: EditorPermAll, Row: "row-1", UserID: "u1"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.svc.VerifyEditorToken(tok)
	if err != nil || c.User != "olivia" || c.Row != "row-1" || c.Permission != "*" || c.UserID != "u1" {
		t.Fatalf("verify: %+v %v", c, err)
	}
	parts := strings.Split(tok, ".")
	forged := parts[0] + "." + strings.Replace(parts[1], parts[1][:4], "AAAA", 1) + "." + parts[2]
	for name, bad := range map[string]string{"forged claims": forged, "garbage": "rfe1.x.y", "other format": "abc", "empty": ""} {
		if _, err := e.svc.VerifyEditorToken(bad); !errors.Is(err, ErrEditorToken) {
			t.Errorf("%s: %v, want ErrEditorToken", name, err)
		}
	}
	if _, err := e.svc.SignEditorToken(EditorClaims{User: "x", Permission: "flows.write", Row: "r"}); err == nil {
		t.Error("signed a token with an unknown permission")
	}
	e.clock.Advance(EditorTokenTTL + time.Second)
	if c, err := e.svc.VerifyEditorToken(tok); !errors.Is(err, ErrEditorToken) || c.User != "olivia" {
		t.Errorf("expired token: %+v %v, want its claims and ErrEditorToken", c, err)
	}
	if _, err := e.svc.RotateKeys(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if again, err := e.svc.EditorPublicKey(); err != nil || again != pub {
		t.Errorf("the editor key changed with the signing keys: %v", err)
	}
	if st, err := e.state.Setting(settingEditorKey); err != nil || strings.Contains(string(st.Value), `"seed"`) && e.svc.cfg.Sealer != nil {
		t.Errorf("editor key setting: %s %v", st.Value, err)
	}
}

// TestEditorSessions: a console session opens an editor session for one
// instance; it carries the user's current role, is refused for another
// instance, after logout, and for an API token.
func TestEditorSessions(t *testing.T) {
	e := MustEnv(t)
	e.MustUser(t, "olivia", catalog.RoleOperator, "a long password 1")
	_, p := e.MustLogin(t, "olivia", "a long password 1")
	sess, exp, err := e.svc.IssueEditorSession(p, "i-1")
	if err != nil || exp.Before(time.Now().Add(EditorSessionTTL-time.Minute)) {
		t.Fatalf("issue: %v %v", exp, err)
	}
	got, err := e.svc.AuthenticateEditorSession(sess, "i-1")
	if err != nil || got.Username != "olivia" || got.Role != catalog.RoleOperator {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	if EditorPermission(got, "i-1") != EditorPermAll {
		t.Errorf("OPERATOR's editor permission %q", EditorPermission(got, "i-1"))
	}
	_, err = e.svc.AuthenticateEditorSession(sess, "i-2")
	wantReason(t, "another instance", err, ReasonWrongAudience)
	_, err = e.svc.AuthenticateEditorSession("x"+sess, "i-1")
	if !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("tampered: %v", err)
	}
	if err := e.svc.Logout(ctxT(t), p); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.AuthenticateEditorSession(sess, "i-1")
	wantReason(t, "after logout", err, ReasonRevoked)
	if _, _, err := e.svc.IssueEditorSession(Principal{Kind: KindAPIToken, Role: catalog.RoleAdmin, Scope: ScopeAll}, "i-1"); !errors.Is(err, ErrInvalid) {
		t.Errorf("API token: %v, want ErrInvalid", err)
	}
	viewer := Principal{Kind: KindSession, Role: catalog.RoleViewer, Scope: ScopeAll}
	inst := Principal{Kind: KindAPIToken, Role: catalog.RoleAdmin, Scope: ScopeInstance, InstanceID: "i-1"}
	if EditorPermission(viewer, "i-1") != EditorPermRead || EditorPermission(inst, "i-1") != "" {
		t.Errorf("viewer %q, instance token %q", EditorPermission(viewer, "i-1"), EditorPermission(inst, "i-1"))
	}
}
