package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/catalog"
)

// AdminUsername is the name of the first admin, created by EnsureAdmin.
const AdminUsername = "admin"

// generatedPasswordLength is the length of EnsureAdmin's random password.
const generatedPasswordLength = 20

// UserInfo is a user as the API shows it: never the password hash.
type UserInfo struct {
	ID        string       `json:"id"`
	Username  string       `json:"username"`
	Email     string       `json:"email,omitempty"`
	Role      catalog.Role `json:"role"`
	Disabled  bool         `json:"disabled"`
	CreatedAt time.Time    `json:"created_at"`
	UpdatedAt time.Time    `json:"updated_at"`
}

// Public returns the public view of u.
func Public(u catalog.User) UserInfo {
	return UserInfo{ID: u.ID, Username: u.Username, Email: u.Email, Role: u.Role,
		Disabled: u.Disabled, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// NewUser is a request to create a user.
type NewUser struct {
	Username string       `json:"username"`
	Email    string       `json:"email,omitempty"`
	Password string       `json:"password"`
	Role     catalog.Role `json:"role"`
}

// UserPatch changes a user; nil fields are kept.
type UserPatch struct {
	Email    *string `json:"email,omitempty"`
	Password *string `json:"password,omitempty"`
	// CurrentPassword is required when a user changes their own password.
	CurrentPassword string        `json:"current_password,omitempty"`
	Role            *catalog.Role `json:"role,omitempty"`
	Disabled        *bool         `json:"disabled,omitempty"`
}

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$`)

// ValidateUsername checks a username: 3 to 64 characters of letters,
// digits, '.', '_' and '-', starting with a letter or digit.
func ValidateUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return invalid("username", "must be 3 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
	}
	return nil
}

func validateEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 254 {
		return invalid("email", "must be a plain address such as ops@example.com")
	}
	return nil
}

// EnsureAdmin creates the first admin when the catalog has no user at all:
// username "admin", role ADMIN, with password (REDFORGE_ADMIN_PASSWORD) or,
// when password is empty, a random 20-character one that is returned so
// the caller can print it once. It reports whether it created the user.
// Errors: ErrInvalid when password breaks the policy; the Applier's
// errors (a follower cannot create it: run it on the leader).
func (s *Service) EnsureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	if len(s.cat.Users()) > 0 {
		return false, "", nil
	}
	if password == "" {
		generated = generatePassword(generatedPasswordLength)
		password = generated
	}
	hash, err := HashPassword(password, s.cfg.BcryptCost)
	if err != nil {
		return false, "", fmt.Errorf("first admin: %w", err)
	}
	now := s.now().UTC()
	u := catalog.User{ID: uuid.NewString(), Username: AdminUsername, PasswordHash: hash,
		Role: catalog.RoleAdmin, CreatedAt: now, UpdatedAt: now}
	_, err = s.ap.Apply(ctx, catalog.PutUser(u, catalog.IfIndex(0)))
	if errors.Is(err, catalog.ErrConflict) { // another hub created it first
		return false, "", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("first admin: %w", err)
	}
	s.log.Info("created the first admin user", logKeyUserID, u.ID)
	return true, generated, nil
}

// generatePassword returns n characters from an alphabet without the
// look-alikes 0/O, 1/l/I (about 5.8 bits each).
func generatePassword(n int) string {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
	out := make([]byte, n)
	for i := range out {
		out[i] = alphabet[randIntn(len(alphabet))]
	}
	return string(out)
}

// randIntn returns a uniform random int in [0, n), n ≤ 256.
func randIntn(n int) int {
	limit := 256 - 256%n // reject the biased tail
	var b [1]byte
	for {
		rand.Read(b[:])
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// CreateUser creates a user. Errors: ErrForbidden unless by may create
// users; ErrInvalid naming the field (username, email, password, role);
// catalog.ErrConflict when the username is taken; the Applier's errors.
func (s *Service) CreateUser(ctx context.Context, by Principal, in NewUser) (UserInfo, error) {
	if err := Authorize(by, ResourceUsers, ActionCreate, Target{}); err != nil {
		return UserInfo{}, err
	}
	if err := ValidateUsername(in.Username); err != nil {
		return UserInfo{}, err
	}
	if err := validateEmail(in.Email); err != nil {
		return UserInfo{}, err
	}
	if !KnownRole(in.Role) {
		return UserInfo{}, invalid("role", "must be one of ADMIN, OPERATOR, VIEWER")
	}
	hash, err := HashPassword(in.Password, s.cfg.BcryptCost)
	if err != nil {
		return UserInfo{}, err
	}
	now := s.now().UTC()
	u := catalog.User{ID: uuid.NewString(), Username: in.Username, Email: in.Email,
		PasswordHash: hash, Role: in.Role, CreatedAt: now, UpdatedAt: now}
	stored, err := apply[catalog.User](ctx, s.ap, catalog.PutUser(u, catalog.IfIndex(0)))
	if err != nil {
		return UserInfo{}, fmt.Errorf("create user %s: %w", in.Username, err)
	}
	return Public(stored), nil
}

// GetUser returns a user. Errors: ErrForbidden unless by may read users
// or id is by's own user; catalog.ErrNotFound.
func (s *Service) GetUser(by Principal, id string) (UserInfo, error) {
	if err := Authorize(by, ResourceUsers, ActionRead, Target{UserID: id}); err != nil {
		return UserInfo{}, err
	}
	u, err := s.cat.User(id)
	if err != nil {
		return UserInfo{}, err
	}
	return Public(u), nil
}

// ListUsers returns every user, ordered by ID. Errors: ErrForbidden unless
// by may read users.
func (s *Service) ListUsers(by Principal) ([]UserInfo, error) {
	if err := Authorize(by, ResourceUsers, ActionRead, Target{}); err != nil {
		return nil, err
	}
	users := s.cat.Users()
	out := make([]UserInfo, 0, len(users))
	for _, u := range users {
		out = append(out, Public(u))
	}
	return out, nil
}

// UpdateUser changes a user. A user may change their own email and
// password (giving CurrentPassword) but never their own role or disabled
// flag; an admin may change anyone's email, password (without the current
// one), role and disabled flag, except that the last enabled admin cannot
// be demoted or disabled. A password change or disabling revokes the
// user's sessions. Errors: ErrForbidden; ErrInvalid naming the field
// (current_password when it is missing or wrong); catalog.ErrNotFound;
// catalog.ErrConflict when the user changed concurrently; the Applier's
// errors.
func (s *Service) UpdateUser(ctx context.Context, by Principal, id string, p UserPatch) (UserInfo, error) {
	if err := Authorize(by, ResourceUsers, ActionUpdate, Target{UserID: id}); err != nil {
		return UserInfo{}, err
	}
	u, err := s.cat.User(id)
	if err != nil {
		return UserInfo{}, err
	}
	revoke, err := s.patchUser(by, &u, p)
	if err != nil {
		return UserInfo{}, err
	}
	u.UpdatedAt = s.now().UTC()
	stored, err := apply[catalog.User](ctx, s.ap, catalog.PutUser(u, catalog.IfIndex(u.ModifyIndex)))
	if err != nil {
		return UserInfo{}, fmt.Errorf("update user %s: %w", id, err)
	}
	if revoke {
		if err := s.RevokeUserSessions(ctx, id); err != nil {
			return Public(stored), err
		}
	}
	return Public(stored), nil
}

// patchUser applies p to u under by's rights and reports whether u's
// sessions must be revoked.
func (s *Service) patchUser(by Principal, u *catalog.User, p UserPatch) (bool, error) {
	self := by.UserID == u.ID
	admin := Can(by.Role, ResourceUsers, ActionUpdate)
	if (p.Role != nil && *p.Role != u.Role) || (p.Disabled != nil && *p.Disabled != u.Disabled) {
		if !admin || self {
			return false, forbidden("you cannot change your own role or disabled flag; another admin must")
		}
		if p.Role != nil && !KnownRole(*p.Role) {
			return false, invalid("role", "must be one of ADMIN, OPERATOR, VIEWER")
		}
		if err := s.keepAnAdmin(*u, p); err != nil {
			return false, err
		}
	}
	if p.Email != nil {
		if err := validateEmail(*p.Email); err != nil {
			return false, err
		}
		u.Email = *p.Email
	}
	revoke := false
	if p.Password != nil {
		if self && !CheckPassword(u.PasswordHash, p.CurrentPassword) {
			return false, invalid("current_password", "is required to change your own password, and must be correct")
		}
		hash, err := HashPassword(*p.Password, s.cfg.BcryptCost)
		if err != nil {
			return false, err
		}
		u.PasswordHash, revoke = hash, true
	}
	if p.Role != nil {
		u.Role = *p.Role
	}
	if p.Disabled != nil {
		revoke = revoke || (*p.Disabled && !u.Disabled)
		u.Disabled = *p.Disabled
	}
	return revoke, nil
}

// keepAnAdmin refuses a patch that would leave no enabled admin.
func (s *Service) keepAnAdmin(u catalog.User, p UserPatch) error {
	demoted := p.Role != nil && *p.Role != catalog.RoleAdmin
	disabled := p.Disabled != nil && *p.Disabled
	if u.Role != catalog.RoleAdmin || u.Disabled || (!demoted && !disabled) {
		return nil
	}
	if s.enabledAdmins() <= 1 {
		return forbidden("this is the last enabled admin; make another user ADMIN first")
	}
	return nil
}

func (s *Service) enabledAdmins() int {
	n := 0
	for _, u := range s.cat.Users() {
		if u.Role == catalog.RoleAdmin && !u.Disabled {
			n++
		}
	}
	return n
}

// DeleteUser deletes a user and the API tokens it created, and ends its
// sessions. Errors: ErrForbidden unless by may delete users, for by's own
// user, and for the last enabled admin; catalog.ErrNotFound; the
// Applier's errors.
func (s *Service) DeleteUser(ctx context.Context, by Principal, id string) error {
	if err := Authorize(by, ResourceUsers, ActionDelete, Target{}); err != nil {
		return err
	}
	if by.UserID == id {
		return forbidden("you cannot delete your own user")
	}
	u, err := s.cat.User(id)
	if err != nil {
		return err
	}
	if u.Role == catalog.RoleAdmin && !u.Disabled && s.enabledAdmins() <= 1 {
		return forbidden("this is the last enabled admin; make another user ADMIN first")
	}
	if _, err := s.ap.Apply(ctx, catalog.DeleteUser(id)); err != nil {
		return fmt.Errorf("delete user %s: %w", id, err)
	}
	return nil
}
