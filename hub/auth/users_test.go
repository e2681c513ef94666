package auth

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/catalog"
)

func TestPasswordPolicy(t *testing.T) {
	for _, c := range []struct {
		pw string
		ok bool
	}{
		{"", false},
		{"short pass", false},
		{"exactly 12 c", true},
		{"ünïcödé-pässwörd", true},
		{"ääääääääääää", true}, // 12 characters, 24 bytes
		{strings.Repeat("x", 72), true},
		{strings.Repeat("x", 73), false},
		{"has a nul \x00 in it", false},
		{"bad utf8 \xff\xfe rest", false},
	} {
		h, err := HashPassword(c.pw, bcrypt.MinCost)
		if c.ok != (err == nil) {
			t.Errorf("HashPassword(%q) err = %v, want ok=%v", c.pw, err, c.ok)
			continue
		}
		if err != nil {
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Field != "password" || strings.Contains(err.Error(), c.pw) && c.pw != "" {
				t.Errorf("HashPassword(%q) error %v: want an InvalidError for password not echoing it", c.pw, err)
			}
			continue
		}
		if !CheckPassword(h, c.pw) || CheckPassword(h, c.pw+"x") || CheckPassword("", c.pw) {
			t.Errorf("CheckPassword(%q) mismatch", c.pw)
		}
	}
	if _, err := HashPassword("long enough pw", 99); !errors.Is(err, ErrInvalid) {
		t.Errorf("cost 99: %v", err)
	}
}

func TestEnsureAdmin(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	if _, _, err := e.svc.EnsureAdmin(ctx, "short"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("weak REDFORGE_ADMIN_PASSWORD: %v", err)
	}
	created, generated, err := e.svc.EnsureAdmin(ctx, "")
	if err != nil || !created || len(generated) != 20 {
		t.Fatalf("EnsureAdmin = %v, %q, %v", created, generated, err)
	}
	_, p := e.MustLogin(t, AdminUsername, generated)
	if p.Role != catalog.RoleAdmin {
		t.Fatalf("first admin role = %s", p.Role)
	}
	created, generated, err = e.svc.EnsureAdmin(ctx, "")
	if err != nil || created || generated != "" {
		t.Fatalf("second EnsureAdmin = %v, %q, %v", created, generated, err)
	}
	if strings.Contains(e.logs.String(), generated) && generated != "" {
		t.Fatal("the generated password was logged")
	}

	e2 := MustEnv(t)
	created, generated, err = e2.svc.EnsureAdmin(ctxT(t), adminPW)
	if err != nil || !created || generated != "" {
		t.Fatalf("EnsureAdmin(given) = %v, %q, %v", created, generated, err)
	}
	e2.MustLogin(t, AdminUsername, adminPW)
}

func TestUserManagement(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	adminUser := e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	_, admin := e.MustLogin(t, "admin", adminPW)

	op, err := e.svc.CreateUser(ctx, admin, NewUser{Username: "olga", Email: "olga@example.com", Password: opPW, Role: catalog.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in    NewUser
		field string
	}{
		{NewUser{Username: "x", Password: opPW, Role: catalog.RoleViewer}, "username"},
		{NewUser{Username: "a b c", Password: opPW, Role: catalog.RoleViewer}, "username"},
		{NewUser{Username: "vera", Email: "not an email", Password: opPW, Role: catalog.RoleViewer}, "email"},
		{NewUser{Username: "vera", Password: "short", Role: catalog.RoleViewer}, "password"},
		{NewUser{Username: "vera", Password: opPW, Role: "GOD"}, "role"},
	} {
		_, err := e.svc.CreateUser(ctx, admin, c.in)
		var ie *InvalidError
		if !errors.As(err, &ie) || ie.Field != c.field {
			t.Errorf("CreateUser(%+v) = %v, want invalid %s", c.in, err, c.field)
		}
	}
	if _, err := e.svc.CreateUser(ctx, admin, NewUser{Username: "OLGA", Password: opPW, Role: catalog.RoleViewer}); !errors.Is(err, catalog.ErrConflict) {
		t.Errorf("duplicate username: %v", err)
	}

	_, opP := e.MustLogin(t, "olga", opPW)
	if _, err := e.svc.CreateUser(ctx, opP, NewUser{Username: "vera", Password: opPW, Role: catalog.RoleViewer}); !errors.Is(err, ErrForbidden) {
		t.Errorf("operator creating a user: %v", err)
	}
	if _, err := e.svc.ListUsers(opP); !errors.Is(err, ErrForbidden) {
		t.Errorf("operator listing users: %v", err)
	}
	if u, err := e.svc.GetUser(opP, op.ID); err != nil || u.Username != "olga" {
		t.Errorf("operator reading own profile: %+v, %v", u, err)
	}
	if _, err := e.svc.GetUser(opP, adminUser.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("operator reading the admin: %v", err)
	}
	email := "olga@ops.example.com"
	if u, err := e.svc.UpdateUser(ctx, opP, op.ID, UserPatch{Email: &email}); err != nil || u.Email != email {
		t.Errorf("operator changing own email: %+v, %v", u, err)
	}
	adminRole := catalog.RoleAdmin
	if _, err := e.svc.UpdateUser(ctx, opP, op.ID, UserPatch{Role: &adminRole}); !errors.Is(err, ErrForbidden) {
		t.Errorf("operator promoting self: %v", err)
	}
	newPW := "operator password 2"
	if _, err := e.svc.UpdateUser(ctx, opP, op.ID, UserPatch{Password: &newPW, CurrentPassword: "wrong"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("own password change without the current one: %v", err)
	}
	if _, err := e.svc.UpdateUser(ctx, opP, adminUser.ID, UserPatch{Email: &email}); !errors.Is(err, ErrForbidden) {
		t.Errorf("operator editing the admin: %v", err)
	}

	// The admin resets olga's password (no current password needed) and
	// promotes her; the admin cannot demote or disable itself.
	u, err := e.svc.UpdateUser(ctx, admin, op.ID, UserPatch{Password: &newPW, Role: &adminRole})
	if err != nil || u.Role != catalog.RoleAdmin {
		t.Fatalf("admin update: %+v, %v", u, err)
	}
	e.MustLogin(t, "olga", newPW)
	viewer := catalog.RoleViewer
	if _, err := e.svc.UpdateUser(ctx, admin, adminUser.ID, UserPatch{Role: &viewer}); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin demoting self: %v", err)
	}
	if err := e.svc.DeleteUser(ctx, admin, adminUser.ID); !errors.Is(err, ErrForbidden) {
		t.Errorf("admin deleting self: %v", err)
	}
	// Two admins now: one may demote the other, but not the last one.
	if _, err := e.svc.UpdateUser(ctx, admin, op.ID, UserPatch{Role: &viewer}); err != nil {
		t.Fatal(err)
	}
	_, olgaP := e.MustLogin(t, "olga", newPW)
	if _, err := e.svc.UpdateUser(ctx, olgaP, adminUser.ID, UserPatch{Role: &viewer}); !errors.Is(err, ErrForbidden) {
		t.Errorf("viewer demoting the admin: %v", err)
	}
	if err := e.svc.DeleteUser(ctx, admin, op.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.GetUser(admin, op.ID); !errors.Is(err, catalog.ErrNotFound) {
		t.Errorf("deleted user: %v", err)
	}
	users, err := e.svc.ListUsers(admin)
	if err != nil || len(users) != 1 {
		t.Fatalf("ListUsers = %+v, %v", users, err)
	}
}

// TestLastAdminIsKept: no sequence of updates leaves the cluster without
// an enabled admin.
func TestLastAdminIsKept(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	a := e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	b := e.MustUser(t, "admin2", catalog.RoleAdmin, adminPW)
	_, pa := e.MustLogin(t, "admin", adminPW)
	_, pb := e.MustLogin(t, "admin2", adminPW)
	yes := true
	if _, err := e.svc.UpdateUser(ctx, pa, b.ID, UserPatch{Disabled: &yes}); err != nil {
		t.Fatal(err)
	}
	// pb was authenticated before b was disabled; even so, a is now the
	// last enabled admin and cannot be disabled.
	if _, err := e.svc.UpdateUser(ctx, pb, a.ID, UserPatch{Disabled: &yes}); !errors.Is(err, ErrForbidden) {
		t.Fatalf("disabling the last enabled admin: %v", err)
	}
}

// TestSecretsNeverLogged runs the flows with secrets and checks that no
// password or token reaches the log or an error message.
func TestSecretsNeverLogged(t *testing.T) {
	e := MustEnv(t)
	ctx := ctxT(t)
	e.MustUser(t, "admin", catalog.RoleAdmin, adminPW)
	toks, admin := e.MustLogin(t, "admin", adminPW)
	secret, _, _ := e.svc.CreateAPIToken(ctx, admin, NewAPIToken{Role: catalog.RoleViewer})
	t1, _, _ := e.svc.Refresh(ctx, toks.RefreshToken)
	_, _, err1 := e.svc.Refresh(ctx, toks.RefreshToken) // reuse: logs a warning
	_, _, err2 := e.svc.Login(ctx, "admin", "wrong "+adminPW, "")
	_, err3 := e.svc.Authenticate(ctx, toks.AccessToken+"x")
	all := e.logs.String() + err1.Error() + err2.Error() + err3.Error()
	for _, s := range []string{adminPW, secret, toks.RefreshToken, t1.RefreshToken, toks.AccessToken, hashToken(toks.RefreshToken)} {
		if strings.Contains(all, s) {
			t.Errorf("a secret leaked into logs or errors: %.12s…", s)
		}
	}
}
