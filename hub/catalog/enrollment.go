package catalog

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// EnrollmentToken is a single-use secret an edge presents on first boot.
// Only its hash is stored.
type EnrollmentToken struct {
	Hash      string    `json:"hash"`
	Region    string    `json:"region,omitempty"` // the enrolled edge's region when it names none
	CreatedBy string    `json:"created_by,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at,omitzero"` // zero: never
	Used      bool      `json:"used,omitempty"`
	UsedBy    string    `json:"used_by,omitempty"` // edge ID
	UsedAt    time.Time `json:"used_at,omitzero"`
	Indexes
}

func (t *EnrollmentToken) primaryKey() string { return t.Hash }

func (t *EnrollmentToken) clone() *EnrollmentToken { c := *t; return &c }

func enrollmentTokensTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableEnrollmentTokens, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Hash"),
	}}
}

func checkEnrollmentToken(_ *write, t *EnrollmentToken) error {
	if t.Hash == "" {
		return fmt.Errorf("enrollment token: hash is required: %w", ErrInvalid)
	}
	return nil
}

// PutEnrollmentToken returns the command that stores a new enrollment token.
// Tokens cannot be replaced (that could make a used token usable again).
// Errors: ErrInvalid without a hash; ErrConflict when the hash exists. The
// result is the stored EnrollmentToken.
func PutEnrollmentToken(t EnrollmentToken) Command {
	return newPut(CmdPutEnrollmentToken, t, nil)
}

func applyPutEnrollmentToken(w *write, b putBody[EnrollmentToken]) (any, error) {
	t := &b.Row
	if err := checkEnrollmentToken(w, t); err != nil {
		return nil, fmt.Errorf("put enrollment token: %w", err)
	}
	if first[EnrollmentToken](w.tx, nil, tableEnrollmentTokens, "id", t.Hash) != nil {
		return nil, fmt.Errorf("put enrollment token: hash already exists: %w", ErrConflict)
	}
	return insert(w, tableEnrollmentTokens, t, nil)
}

// DeleteEnrollmentToken returns the command that deletes an enrollment
// token by hash. Errors: ErrNotFound.
func DeleteEnrollmentToken(hash string) Command {
	return newCommand(CmdDeleteEnrollmentToken, keyBody{Key: hash})
}

func applyDeleteEnrollmentToken(w *write, b keyBody) (any, error) {
	t := first[EnrollmentToken](w.tx, nil, tableEnrollmentTokens, "id", b.Key)
	if t == nil {
		return nil, fmt.Errorf("delete enrollment token: %w", ErrNotFound)
	}
	w.remove(tableEnrollmentTokens, t)
	return nil, nil
}

// enrollBody is the payload of EnrollEdge.
type enrollBody struct {
	TokenHash string    `json:"token_hash"`
	Edge      Edge      `json:"edge"`
	At        time.Time `json:"at"`
}

// EnrollEdge returns the command that consumes an enrollment token and
// creates the edge, in one step, so that a token enrols exactly one edge.
// The edge takes the token's region when it names none. Errors: ErrNotFound
// for an unknown token; ErrConflict for a used token, an existing edge ID or
// a taken name; ErrInvalid for a token expired at at, or an edge without ID
// or name. The result is the stored Edge.
func EnrollEdge(tokenHash string, e Edge, at time.Time) Command {
	return newCommand(CmdEnrollEdge, enrollBody{TokenHash: tokenHash, Edge: e, At: at})
}

func applyEnrollEdge(w *write, b enrollBody) (any, error) {
	old := first[EnrollmentToken](w.tx, nil, tableEnrollmentTokens, "id", b.TokenHash)
	e := &b.Edge
	switch {
	case old == nil:
		return nil, fmt.Errorf("enroll edge %q: enrollment token: %w", e.ID, ErrNotFound)
	case old.Used:
		return nil, fmt.Errorf("enroll edge %q: enrollment token already used: %w", e.ID, ErrConflict)
	case !old.ExpiresAt.IsZero() && !b.At.Before(old.ExpiresAt):
		return nil, fmt.Errorf("enroll edge %q: enrollment token expired at %s: %w", e.ID, old.ExpiresAt.Format(time.RFC3339), ErrInvalid)
	}
	if first[Edge](w.tx, nil, tableEdges, "id", e.ID) != nil {
		return nil, fmt.Errorf("enroll edge %q: edge already exists: %w", e.ID, ErrConflict)
	}
	if err := checkEdge(w, e); err != nil {
		return nil, fmt.Errorf("enroll edge %q: %w", e.ID, err)
	}
	if e.Region == "" {
		e.Region = old.Region
	}
	t := old.clone()
	t.Used, t.UsedBy, t.UsedAt = true, e.ID, b.At
	if _, err := insert(w, tableEnrollmentTokens, t, old); err != nil {
		return nil, err
	}
	return insert(w, tableEdges, e, nil)
}

// EnrollmentToken returns the enrollment token with the given hash, or
// ErrNotFound. The error does not contain the hash.
func (s *State) EnrollmentToken(hash string) (EnrollmentToken, error) {
	t := first[EnrollmentToken](s.read(nil), nil, tableEnrollmentTokens, "id", hash)
	if t == nil {
		return EnrollmentToken{}, fmt.Errorf("enrollment token: %w", ErrNotFound)
	}
	return *t.clone(), nil
}

// EnrollmentTokens returns every enrollment token, ordered by hash.
func (s *State) EnrollmentTokens() []EnrollmentToken {
	return list[EnrollmentToken](s.read(nil), nil, tableEnrollmentTokens, "id")
}
