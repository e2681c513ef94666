package catalog

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Role is a user's or token's role in the permission matrix (hub/auth).
type Role string

// Roles.
const (
	RoleAdmin    Role = "ADMIN"
	RoleOperator Role = "OPERATOR"
	RoleViewer   Role = "VIEWER"
)

// User is a console or API user. PasswordHash is a bcrypt hash; it is part
// of the catalog (and its snapshots) but hub/api never returns it.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"` // unique, case-insensitive
	Email        string    `json:"email,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Role         Role      `json:"role"`
	Disabled     bool      `json:"disabled,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	Indexes
}

func (u *User) primaryKey() string { return u.ID }

func (u *User) clone() *User { c := *u; return &c }

func usersTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableUsers, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("ID"),
		"username": uniqueIndex("username", "Username"),
	}}
}

func checkUser(w *write, u *User) error {
	if u.ID == "" || u.Username == "" {
		return fmt.Errorf("user: id and username are required: %w", ErrInvalid)
	}
	return w.unique(tableUsers, "username", u.Username, u.ID)
}

// PutUser returns the command that creates or replaces a user; CreatedAt is
// kept from a stored row. Errors: ErrInvalid without an ID or username,
// ErrConflict when another user has the username (compared without regard to
// case) or an IfIndex check fails. The result is the stored User.
func PutUser(u User, opts ...PutOption) Command {
	return newPut(CmdPutUser, u, opts)
}

func applyPutUser(w *write, b putBody[User]) (any, error) {
	u := &b.Row
	old := first[User](w.tx, nil, tableUsers, "id", u.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put user %q: %w", u.ID, err)
	}
	if err := checkUser(w, u); err != nil {
		return nil, fmt.Errorf("put user %q: %w", u.ID, err)
	}
	if old != nil {
		u.CreatedAt = old.CreatedAt
	}
	return insert(w, tableUsers, u, old)
}

// DeleteUser returns the command that deletes a user and the API tokens it
// created (a token acts with its creator's authority and must not outlive
// it). Errors: ErrNotFound.
func DeleteUser(id string) Command {
	return newCommand(CmdDeleteUser, keyBody{Key: id})
}

func applyDeleteUser(w *write, b keyBody) (any, error) {
	u := first[User](w.tx, nil, tableUsers, "id", b.Key)
	if u == nil {
		return nil, fmt.Errorf("delete user %q: %w", b.Key, ErrNotFound)
	}
	for _, t := range list[APIToken](w.tx, nil, tableAPITokens, "created_by", b.Key) {
		w.remove(tableAPITokens, &t)
	}
	deleteUserSessions(w, b.Key)
	w.remove(tableUsers, u)
	return nil, nil
}

// User returns the user with the given ID, or ErrNotFound.
func (s *State) User(id string) (User, error) {
	return get[User](s.read(nil), nil, tableUsers, id)
}

// UserByName returns the user with the given username (compared without
// regard to case), or ErrNotFound.
func (s *State) UserByName(username string) (User, error) {
	u := first[User](s.read(nil), nil, tableUsers, "username", username)
	if u == nil {
		return User{}, fmt.Errorf("user named %q: %w", username, ErrNotFound)
	}
	return *u.clone(), nil
}

// Users returns every user, ordered by ID.
func (s *State) Users() []User {
	return list[User](s.read(nil), nil, tableUsers, "id")
}
