package catalog

import (
	"context"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// APIToken is a long-lived API credential. Only its hash is stored; the
// secret is shown once, at creation, by hub/auth.
type APIToken struct {
	ID         string    `json:"id"`
	Name       string    `json:"name,omitempty"`
	Hash       string    `json:"hash"` // unique
	Scope      string    `json:"scope,omitempty"`
	Role       Role      `json:"role"`
	InstanceID string    `json:"instance_id,omitempty"` // set when scoped to one instance; must exist
	CreatedBy  string    `json:"created_by,omitempty"`  // user ID; must exist when set
	CreatedAt  time.Time `json:"created_at"`
	ExpiresAt  time.Time `json:"expires_at,omitzero"` // zero: never
	Revoked    bool      `json:"revoked,omitempty"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	Indexes
}

func (t *APIToken) primaryKey() string { return t.ID }

func (t *APIToken) clone() *APIToken { c := *t; return &c }

func apiTokensTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableAPITokens, Indexes: map[string]*memdb.IndexSchema{
		"id":         idIndex("ID"),
		"hash":       {Name: "hash", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Hash"}},
		"instance":   refIndex("instance", "InstanceID"),
		"created_by": refIndex("created_by", "CreatedBy"),
	}}
}

func checkAPIToken(w *write, t *APIToken) error {
	if t.ID == "" || t.Hash == "" {
		return fmt.Errorf("api token: id and hash are required: %w", ErrInvalid)
	}
	if err := w.unique(tableAPITokens, "hash", t.Hash, t.ID); err != nil {
		return fmt.Errorf("api token hash: %w", ErrConflict) // never echo a hash
	}
	if t.InstanceID != "" {
		if err := w.exists(tableInstances, t.InstanceID); err != nil {
			return err
		}
	}
	if t.CreatedBy != "" {
		return w.exists(tableUsers, t.CreatedBy)
	}
	return nil
}

// PutAPIToken returns the command that creates or replaces an API token.
// Errors: ErrInvalid without an ID or hash; ErrConflict when another token
// has the hash or an IfIndex check fails; ErrNotFound when its instance or
// creator does not exist. The result is the stored APIToken.
func PutAPIToken(t APIToken, opts ...PutOption) Command {
	return newPut(CmdPutAPIToken, t, opts)
}

func applyPutAPIToken(w *write, b putBody[APIToken]) (any, error) {
	t := &b.Row
	old := first[APIToken](w.tx, nil, tableAPITokens, "id", t.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put api token %q: %w", t.ID, err)
	}
	if err := checkAPIToken(w, t); err != nil {
		return nil, fmt.Errorf("put api token %q: %w", t.ID, err)
	}
	return insert(w, tableAPITokens, t, old)
}

// revokeBody is the payload of RevokeAPIToken.
type revokeBody struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// RevokeAPIToken returns the command that revokes a token at the given time.
// Revoking a revoked token changes nothing. Errors: ErrNotFound. The result
// is the stored APIToken.
func RevokeAPIToken(id string, at time.Time) Command {
	return newCommand(CmdRevokeAPIToken, revokeBody{ID: id, At: at})
}

func applyRevokeAPIToken(w *write, b revokeBody) (any, error) {
	old := first[APIToken](w.tx, nil, tableAPITokens, "id", b.ID)
	if old == nil {
		return nil, fmt.Errorf("revoke api token %q: %w", b.ID, ErrNotFound)
	}
	if old.Revoked {
		return *old.clone(), nil
	}
	t := old.clone()
	t.Revoked, t.RevokedAt = true, b.At
	return insert(w, tableAPITokens, t, old)
}

// DeleteAPIToken returns the command that deletes a token. Errors: ErrNotFound.
func DeleteAPIToken(id string) Command {
	return newCommand(CmdDeleteAPIToken, keyBody{Key: id})
}

func applyDeleteAPIToken(w *write, b keyBody) (any, error) {
	t := first[APIToken](w.tx, nil, tableAPITokens, "id", b.Key)
	if t == nil {
		return nil, fmt.Errorf("delete api token %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableAPITokens, t)
	return nil, nil
}

// APIToken returns the token with the given ID, or ErrNotFound.
func (s *State) APIToken(id string) (APIToken, error) {
	return get[APIToken](s.read(nil), nil, tableAPITokens, id)
}

// APITokenByHash returns the token with the given hash, or ErrNotFound. The
// error does not contain the hash.
func (s *State) APITokenByHash(hash string) (APIToken, error) {
	t := first[APIToken](s.read(nil), nil, tableAPITokens, "hash", hash)
	if t == nil {
		return APIToken{}, fmt.Errorf("api token by hash: %w", ErrNotFound)
	}
	return *t.clone(), nil
}

// APITokens returns every token, ordered by ID.
func (s *State) APITokens() []APIToken {
	toks, _ := s.readAPITokens(nil)
	return toks
}

func (s *State) readAPITokens(ws memdb.WatchSet) ([]APIToken, uint64) {
	tx := s.read(ws)
	return list[APIToken](tx, ws, tableAPITokens, "id"), indexOf(tx, tableAPITokens)
}

// APITokensByUser returns the tokens created by a user, ordered by ID.
func (s *State) APITokensByUser(userID string) []APIToken {
	return list[APIToken](s.read(nil), nil, tableAPITokens, "created_by", userID)
}

// WatchAPITokens returns every token, the tokens table index and a channel
// closed when the list may have changed (for hub/auth's token cache).
// The channel is not closed when ctx ends.
func (s *State) WatchAPITokens(ctx context.Context) ([]APIToken, uint64, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	toks, index := s.readAPITokens(ws)
	return toks, index, watch(ctx, ws)
}
