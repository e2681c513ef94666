package catalog

import (
	"bytes"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The session state of hub/auth: signing keys, refresh tokens, revocations
// and the users' session generations. It replaces the settings kept under
// "auth/" (legacy.go converts them). Everything here is security state:
// hub/api never returns it, and signing keys are sealed by the hub before
// they are applied.

// SigningKey is a key access tokens are signed with (the current one) or
// still verified with (a key a rotation retired, until VerifyUntil).
type SigningKey struct {
	ID string `json:"kid"`
	// Key is the key in clear, kept only by a hub without a sealer;
	// Sealed is the key sealed by the hub (hub/secrets). One is set.
	Key       []byte    `json:"key,omitempty"`
	Sealed    string    `json:"sealed,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// Current marks the one key new tokens are signed with.
	Current bool `json:"current,omitempty"`
	// RetiredAt and VerifyUntil are set when a rotation replaced the key:
	// it verifies the tokens it signed until VerifyUntil, then ReapAuth
	// deletes it.
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	VerifyUntil time.Time `json:"verify_until,omitzero"`
	Indexes
}

func (k *SigningKey) primaryKey() string { return k.ID }

func (k *SigningKey) clone() *SigningKey {
	c := *k
	c.Key = bytes.Clone(k.Key)
	return &c
}

// RefreshToken is one refresh token of a session, by the SHA-256 of the
// token. A token is used once: UsedAt is set when it is exchanged, and the
// row is kept until it expires so that a second use is recognised.
type RefreshToken struct {
	Hash         string    `json:"hash"` // hex SHA-256 of the token
	SessionID    string    `json:"sid"`
	UserID       string    `json:"uid"`
	Generation   uint64    `json:"gen"`
	SessionStart time.Time `json:"session_start"`
	IssuedAt     time.Time `json:"issued_at"`
	ExpiresAt    time.Time `json:"expires_at"`
	IP           string    `json:"ip,omitempty"`
	UsedAt       time.Time `json:"used_at,omitzero"`
	Indexes
}

func (t *RefreshToken) primaryKey() string { return t.Hash }

func (t *RefreshToken) clone() *RefreshToken { c := *t; return &c }

// Revocation revokes an access token (by its jti) or a session (by its
// id) until Until, after which everything it revokes has expired anyway
// and ReapAuth deletes it.
type Revocation struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason,omitempty"`
	Indexes
}

func (r *Revocation) primaryKey() string { return r.ID }

func (r *Revocation) clone() *Revocation { c := *r; return &c }

// SessionGeneration is a user's session generation: every session records
// it at login, and bumping it (BumpSessionGeneration) ends them all.
type SessionGeneration struct {
	UserID     string    `json:"user_id"`
	Generation uint64    `json:"generation"`
	At         time.Time `json:"at"`
	Indexes
}

func (g *SessionGeneration) primaryKey() string { return g.UserID }

func (g *SessionGeneration) clone() *SessionGeneration { c := *g; return &c }

func signingKeysTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableSigningKeys, Indexes: map[string]*memdb.IndexSchema{
		"id":      idIndex("ID"),
		"current": {Name: "current", Indexer: &memdb.BoolFieldIndex{Field: "Current"}},
		"verify_until": timeIndexSchema("verify_until", func(o any) time.Time {
			return o.(*SigningKey).VerifyUntil
		}),
	}}
}

func refreshTokensTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableRefreshTokens, Indexes: map[string]*memdb.IndexSchema{
		"id":   idIndex("Hash"),
		"user": refIndex("user", "UserID"),
		"expires": timeIndexSchema("expires", func(o any) time.Time {
			return o.(*RefreshToken).ExpiresAt
		}),
	}}
}

func revocationsTable(name string) *memdb.TableSchema {
	return &memdb.TableSchema{Name: name, Indexes: map[string]*memdb.IndexSchema{
		"id":    idIndex("ID"),
		"until": timeIndexSchema("until", func(o any) time.Time { return o.(*Revocation).Until }),
	}}
}

func sessionGenerationsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableSessionGenerations, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("UserID"),
	}}
}

func checkSigningKey(_ *write, k *SigningKey) error {
	switch {
	case k.ID == "":
		return fmt.Errorf("signing key: kid is required: %w", ErrInvalid)
	case len(k.Key) == 0 && k.Sealed == "":
		return fmt.Errorf("signing key %q: key or sealed is required: %w", k.ID, ErrInvalid)
	case !k.Current && k.VerifyUntil.IsZero():
		return fmt.Errorf("signing key %q: a key that is not current needs verify_until: %w", k.ID, ErrInvalid)
	}
	return nil
}

func checkRefreshToken(w *write, t *RefreshToken) error {
	if t.Hash == "" || t.SessionID == "" || t.UserID == "" || t.ExpiresAt.IsZero() {
		return fmt.Errorf("refresh token: hash, sid, uid and expires_at are required: %w", ErrInvalid)
	}
	return w.exists(tableUsers, t.UserID)
}

func checkRevocation(_ *write, r *Revocation) error {
	if r.ID == "" || r.Until.IsZero() {
		return fmt.Errorf("revocation: id and until are required: %w", ErrInvalid)
	}
	return nil
}

// checkSessionGeneration does not require the user: a generation may
// outlive its user until ReapAuth (snapshots of older hubs hold such).
func checkSessionGeneration(_ *write, g *SessionGeneration) error {
	if g.UserID == "" {
		return fmt.Errorf("session generation: user_id is required: %w", ErrInvalid)
	}
	return nil
}

// currentKey returns the current signing key row, or nil.
func currentKey(tx *memdb.Txn, ws memdb.WatchSet) *SigningKey {
	return first[SigningKey](tx, ws, tableSigningKeys, "current", true)
}

// InitSigningKey returns the command that installs the cluster's first
// signing key (k is made current). Errors: ErrConflict when there already
// is a current key (another hub won the race) or the kid is taken;
// ErrInvalid. The result is the stored SigningKey.
func InitSigningKey(k SigningKey) Command {
	return newCommand(CmdInitSigningKey, putBody[SigningKey]{Row: k})
}

func applyInitSigningKey(w *write, b putBody[SigningKey]) (any, error) {
	if cur := currentKey(w.tx, nil); cur != nil {
		return nil, fmt.Errorf("init signing key: key %q is current: %w", cur.ID, ErrConflict)
	}
	return installKey(w, &b.Row)
}

// installKey stores k as the current key.
func installKey(w *write, k *SigningKey) (SigningKey, error) {
	k.Current, k.RetiredAt, k.VerifyUntil = true, time.Time{}, time.Time{}
	if err := checkSigningKey(w, k); err != nil {
		return SigningKey{}, fmt.Errorf("install signing key: %w", err)
	}
	if first[SigningKey](w.tx, nil, tableSigningKeys, "id", k.ID) != nil {
		return SigningKey{}, fmt.Errorf("install signing key: kid %q is taken: %w", k.ID, ErrConflict)
	}
	return insert(w, tableSigningKeys, k, nil)
}

// rotateBody is the payload of RotateSigningKey.
type rotateBody struct {
	Key         SigningKey `json:"key"`
	IfIndex     uint64     `json:"if_index"`
	RetiredAt   time.Time  `json:"retired_at"`
	VerifyUntil time.Time  `json:"verify_until"`
}

// RotateSigningKey returns the command that, in one step, retires the
// current signing key (it keeps verifying until verifyUntil) and makes k
// current. ifIndex is the ModifyIndex of the current key as read: a
// concurrent rotation makes the command fail with ErrConflict. Errors:
// ErrNotFound when there is no current key; ErrInvalid. The result is the
// stored new SigningKey.
func RotateSigningKey(k SigningKey, ifIndex uint64, retiredAt, verifyUntil time.Time) Command {
	return newCommand(CmdRotateSigningKey, rotateBody{Key: k, IfIndex: ifIndex, RetiredAt: retiredAt, VerifyUntil: verifyUntil})
}

func applyRotateSigningKey(w *write, b rotateBody) (any, error) {
	cur := currentKey(w.tx, nil)
	if cur == nil {
		return nil, fmt.Errorf("rotate signing key: no current key: %w", ErrNotFound)
	}
	if cur.ModifyIndex != b.IfIndex {
		return nil, fmt.Errorf("rotate signing key: current key %q has modify index %d, expected %d: %w", cur.ID, cur.ModifyIndex, b.IfIndex, ErrConflict)
	}
	if b.VerifyUntil.IsZero() {
		return nil, fmt.Errorf("rotate signing key: verify_until is required: %w", ErrInvalid)
	}
	old := cur.clone()
	old.Current, old.RetiredAt, old.VerifyUntil = false, b.RetiredAt, b.VerifyUntil
	if _, err := insert(w, tableSigningKeys, old, cur); err != nil {
		return nil, err
	}
	return installKey(w, &b.Key)
}

// SigningKey returns the current signing key, or ErrNotFound before
// InitSigningKey.
func (s *State) SigningKey() (SigningKey, error) {
	k := currentKey(s.read(nil), nil)
	if k == nil {
		return SigningKey{}, fmt.Errorf("current signing key: %w", ErrNotFound)
	}
	return *k.clone(), nil
}

// SigningKeyByID returns the signing key with the given kid, current or
// retired, or ErrNotFound.
func (s *State) SigningKeyByID(kid string) (SigningKey, error) {
	return get[SigningKey](s.read(nil), nil, tableSigningKeys, kid)
}

// SigningKeys returns every signing key, current and retired, by kid.
func (s *State) SigningKeys() []SigningKey {
	return list[SigningKey](s.read(nil), nil, tableSigningKeys, "id")
}

// PutRefreshToken returns the command that stores a refresh token: with
// IfIndex(0) a new one, with IfIndex(n) a use of the one read at n.
// Errors: ErrInvalid; ErrNotFound for a missing user; ErrConflict when the
// IfIndex check fails. The result is the stored RefreshToken.
func PutRefreshToken(t RefreshToken, opts ...PutOption) Command {
	return newPut(CmdPutRefreshToken, t, opts)
}

func applyPutRefreshToken(w *write, b putBody[RefreshToken]) (any, error) {
	t := &b.Row
	old := first[RefreshToken](w.tx, nil, tableRefreshTokens, "id", t.Hash)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put refresh token: %w", err)
	}
	if err := checkRefreshToken(w, t); err != nil {
		return nil, fmt.Errorf("put refresh token: %w", err)
	}
	return insert(w, tableRefreshTokens, t, old)
}

// RefreshToken returns the refresh token with the given hash, or
// ErrNotFound.
func (s *State) RefreshToken(hash string) (RefreshToken, error) {
	return get[RefreshToken](s.read(nil), nil, tableRefreshTokens, hash)
}

// RefreshTokens returns every refresh token, by hash.
func (s *State) RefreshTokens() []RefreshToken {
	return list[RefreshToken](s.read(nil), nil, tableRefreshTokens, "id")
}

// Revocations is the payload of Revoke: access tokens (by jti) and
// sessions (by id) to refuse, each until its Until.
type Revocations struct {
	Tokens   []Revocation `json:"tokens,omitempty"`
	Sessions []Revocation `json:"sessions,omitempty"`
}

// Revoke returns the command that records revocations, all in one step (a
// logout revokes its access token and its session together). Revoking an
// id again keeps the later Until. Errors: ErrInvalid.
func Revoke(r Revocations) Command { return newCommand(CmdRevoke, r) }

func applyRevoke(w *write, b Revocations) (any, error) {
	for _, set := range []struct {
		table string
		rows  []Revocation
	}{{tableRevokedTokens, b.Tokens}, {tableRevokedSessions, b.Sessions}} {
		for _, r := range set.rows {
			if err := putRevocation(w, set.table, r); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func putRevocation(w *write, table string, r Revocation) error {
	if err := checkRevocation(w, &r); err != nil {
		return fmt.Errorf("revoke: %w", err)
	}
	old := first[Revocation](w.tx, nil, table, "id", r.ID)
	if old != nil && old.Until.After(r.Until) {
		r.Until = old.Until
	}
	_, err := insert(w, table, &r, old)
	return err
}

// TokenRevoked returns the revocation of an access token (by jti), or
// ErrNotFound.
func (s *State) TokenRevoked(jti string) (Revocation, error) {
	return get[Revocation](s.read(nil), nil, tableRevokedTokens, jti)
}

// SessionRevoked returns the revocation of a session, or ErrNotFound.
func (s *State) SessionRevoked(sid string) (Revocation, error) {
	return get[Revocation](s.read(nil), nil, tableRevokedSessions, sid)
}

// generationBody is the payload of BumpSessionGeneration.
type generationBody struct {
	UserID string    `json:"user_id"`
	At     time.Time `json:"at"`
}

// BumpSessionGeneration returns the command that increments a user's
// session generation at time at, which ends every session the user has.
// Errors: ErrNotFound for a missing user. The result is the stored
// SessionGeneration.
func BumpSessionGeneration(userID string, at time.Time) Command {
	return newCommand(CmdBumpSessionGeneration, generationBody{UserID: userID, At: at})
}

func applyBumpSessionGeneration(w *write, b generationBody) (any, error) {
	if err := w.exists(tableUsers, b.UserID); err != nil {
		return nil, fmt.Errorf("bump session generation: %w", err)
	}
	old := first[SessionGeneration](w.tx, nil, tableSessionGenerations, "id", b.UserID)
	g := &SessionGeneration{UserID: b.UserID, Generation: 1, At: b.At}
	if old != nil {
		g.Generation = old.Generation + 1
	}
	return insert(w, tableSessionGenerations, g, old)
}

// SessionGeneration returns a user's session generation; generation 0
// when it was never bumped.
func (s *State) SessionGeneration(userID string) SessionGeneration {
	g, err := get[SessionGeneration](s.read(nil), nil, tableSessionGenerations, userID)
	if err != nil {
		return SessionGeneration{UserID: userID}
	}
	return g
}

// AuthReaped counts what ReapAuth deleted.
type AuthReaped struct {
	RefreshTokens int `json:"refresh_tokens"`
	Revocations   int `json:"revocations"`
	SigningKeys   int `json:"signing_keys"`
	Generations   int `json:"generations"`
}

// Total is the number of rows deleted.
func (r AuthReaped) Total() int {
	return r.RefreshTokens + r.Revocations + r.SigningKeys + r.Generations
}

// reapBody is the payload of ReapAuth.
type reapBody struct {
	At time.Time `json:"at"`
}

// ReapAuth returns the command that deletes, in one step, the session
// state that can no longer matter at time at: refresh tokens that expired
// before at, revocations whose Until is before at, retired signing keys
// whose VerifyUntil is before at, and the session generations of deleted
// users. The leader applies it now and then (hub/auth Sweep); the hub
// passes its clock less the tolerated skew. The result is an AuthReaped.
func ReapAuth(at time.Time) Command { return newCommand(CmdReapAuth, reapBody{At: at}) }

func applyReapAuth(w *write, b reapBody) (any, error) {
	var n AuthReaped
	for _, t := range before(w.tx, tableRefreshTokens, "expires", b.At, func(t *RefreshToken) time.Time { return t.ExpiresAt }) {
		w.remove(tableRefreshTokens, &t)
		n.RefreshTokens++
	}
	for _, table := range []string{tableRevokedTokens, tableRevokedSessions} {
		for _, r := range before(w.tx, table, "until", b.At, func(r *Revocation) time.Time { return r.Until }) {
			w.remove(table, &r)
			n.Revocations++
		}
	}
	for _, k := range before(w.tx, tableSigningKeys, "verify_until", b.At, func(k *SigningKey) time.Time { return k.VerifyUntil }) {
		if !k.Current && !k.VerifyUntil.IsZero() {
			w.remove(tableSigningKeys, &k)
			n.SigningKeys++
		}
	}
	for _, g := range list[SessionGeneration](w.tx, nil, tableSessionGenerations, "id") {
		if first[User](w.tx, nil, tableUsers, "id", g.UserID) == nil {
			w.remove(tableSessionGenerations, &g)
			n.Generations++
		}
	}
	return n, nil
}

// AuthReapable reports whether ReapAuth(at) would delete anything, so that
// a sweep with nothing to do commits no command. It reads the first row of
// each time index and the session generations (one per user).
func (s *State) AuthReapable(at time.Time) bool {
	tx := s.read(nil)
	earliest := func(table, index string, of func(any) time.Time) bool {
		obj, err := tx.LowerBound(table, index, time.Time{})
		mustBeOK(err)
		for o := obj.Next(); o != nil; o = obj.Next() {
			if k, ok := o.(*SigningKey); ok && k.Current {
				continue // the current key has no verify_until: it sorts first
			}
			return of(o).Before(at)
		}
		return false
	}
	if earliest(tableRefreshTokens, "expires", func(o any) time.Time { return o.(*RefreshToken).ExpiresAt }) ||
		earliest(tableRevokedTokens, "until", func(o any) time.Time { return o.(*Revocation).Until }) ||
		earliest(tableRevokedSessions, "until", func(o any) time.Time { return o.(*Revocation).Until }) ||
		earliest(tableSigningKeys, "verify_until", func(o any) time.Time { return o.(*SigningKey).VerifyUntil }) {
		return true
	}
	for _, g := range list[SessionGeneration](tx, nil, tableSessionGenerations, "id") {
		if first[User](tx, nil, tableUsers, "id", g.UserID) == nil {
			return true
		}
	}
	return false
}

// deleteUserSessions deletes a deleted user's refresh tokens and session
// generation (its access tokens fail on the missing user anyway).
func deleteUserSessions(w *write, userID string) {
	for _, t := range list[RefreshToken](w.tx, nil, tableRefreshTokens, "user", userID) {
		w.remove(tableRefreshTokens, &t)
	}
	if g := first[SessionGeneration](w.tx, nil, tableSessionGenerations, "id", userID); g != nil {
		w.remove(tableSessionGenerations, g)
	}
}
