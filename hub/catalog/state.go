package catalog

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	memdb "github.com/hashicorp/go-memdb"
)

// appliedKey is the index-table key holding the last applied Raft index.
// Table names never start with an underscore.
const appliedKey = "_applied"

// State is the catalog: a memdb store changed only by Apply and Restore.
// It is safe for concurrent use; Apply and Restore are serialised.
type State struct {
	mu  sync.Mutex // serialises Apply and Restore
	cur atomic.Pointer[store]
}

// store is one generation of the catalog. Restore replaces the generation
// and closes abandon, which wakes every watcher of the old one.
type store struct {
	db      *memdb.MemDB
	abandon chan struct{}
}

// NewState returns an empty catalog at index 0.
func NewState() *State {
	s := &State{}
	s.cur.Store(newStore())
	return s
}

func newStore() *store {
	db, err := memdb.NewMemDB(schema())
	mustBeOK(err)
	return &store{db: db, abandon: make(chan struct{})}
}

// read starts a read transaction on the current generation. When ws is not
// nil it also watches for the generation being replaced by Restore.
func (s *State) read(ws memdb.WatchSet) *memdb.Txn {
	st := s.cur.Load()
	if ws != nil {
		ws.Add(st.abandon)
	}
	return st.db.Txn(false)
}

// Apply applies cmd as the command committed at Raft index index and returns
// the command's result (usually a copy of the row it wrote, nil for deletes).
// A command that cannot be applied (ErrNotFound, ErrConflict, ErrInvalid)
// changes nothing but still advances Index to index; an index that is not
// after Index is refused with ErrInvalid and changes nothing.
func (s *State) Apply(index uint64, cmd Command) (any, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	db := s.cur.Load().db
	tx := db.Txn(true)
	defer tx.Abort()
	if last := appliedIndex(tx); index <= last {
		return nil, fmt.Errorf("apply %s at index %d: index is not after the last applied index %d: %w", cmd.Type, index, last, ErrInvalid)
	}
	result, err := applyCommand(&write{tx: tx, index: index}, cmd)
	if err != nil {
		tx.Abort()
		tx = db.Txn(true)
		defer tx.Abort()
		result = nil
	}
	setIndex(tx, appliedKey, index)
	tx.Commit()
	return result, err
}

// Index returns the Raft index of the last command applied (0 when empty).
func (s *State) Index() uint64 {
	return appliedIndex(s.read(nil))
}

// TableIndex returns the Raft index of the last command that changed the
// named table (a row written or deleted), 0 when none has. Tables: instances,
// deployments, users, api_tokens, edges, enrollment_tokens, regions, settings.
func (s *State) TableIndex(table string) uint64 {
	return indexOf(s.read(nil), table)
}

// watch returns a channel closed when anything in ws fires. The channel is
// not closed when ctx ends first; the goroutine then exits.
func watch(ctx context.Context, ws memdb.WatchSet) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		if ws.WatchCtx(ctx) == nil {
			close(ch)
		}
	}()
	return ch
}

// indexRow is a row of the index table: the last Raft index that changed a
// table, or the last applied index under appliedKey.
type indexRow struct {
	Table string `json:"table"`
	Index uint64 `json:"index"`
}

func indexTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableIndex, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Table")}}
}

func indexOf(tx *memdb.Txn, key string) uint64 {
	obj, err := tx.First(tableIndex, "id", key)
	mustBeOK(err)
	if obj == nil {
		return 0
	}
	return obj.(*indexRow).Index
}

func appliedIndex(tx *memdb.Txn) uint64 { return indexOf(tx, appliedKey) }

func setIndex(tx *memdb.Txn, key string, index uint64) {
	mustBeOK(tx.Insert(tableIndex, &indexRow{Table: key, Index: index}))
}

// write is the context of one command being applied.
type write struct {
	tx    *memdb.Txn
	index uint64
}

// unique returns ErrConflict when another row than the one keyed id holds
// value in the unique index.
func (w *write) unique(table, index, value, id string) error {
	obj, err := w.tx.First(table, index, value)
	mustBeOK(err)
	if obj == nil {
		return nil
	}
	if other := obj.(keyed).primaryKey(); other != id {
		return fmt.Errorf("%s %q is already used by %s %q: %w", index, value, singular(table), other, ErrConflict)
	}
	return nil
}

// exists returns ErrNotFound, naming what refers to it, when the row keyed
// key does not exist in table.
func (w *write) exists(table, key string) error {
	obj, err := w.tx.First(table, "id", key)
	mustBeOK(err)
	if obj == nil {
		return fmt.Errorf("%s %q: %w", singular(table), key, ErrNotFound)
	}
	return nil
}

// remove deletes obj from table and records the change in the index table.
func (w *write) remove(table string, obj any) {
	mustBeOK(w.tx.Delete(table, obj))
	setIndex(w.tx, table, w.index)
}

// insert stores r, stamping its indexes (keeping old's CreateIndex when r
// replaces old), records the change and returns a copy of the stored row.
func insert[T any, P row[T]](w *write, table string, r, old P) (T, error) {
	ix := r.indexes()
	ix.CreateIndex, ix.ModifyIndex = w.index, w.index
	if old != nil {
		ix.CreateIndex = old.indexes().CreateIndex
	}
	mustBeOK(w.tx.Insert(table, r))
	setIndex(w.tx, table, w.index)
	return *r.clone(), nil
}

// checkIfIndex enforces an IfIndex put option: 0 means the row must not
// exist, any other value must equal the stored row's ModifyIndex.
func checkIfIndex[T any, P row[T]](old P, ifIndex *uint64) error {
	switch {
	case ifIndex == nil:
		return nil
	case *ifIndex == 0 && old != nil:
		return fmt.Errorf("already exists (modify index %d): %w", old.indexes().ModifyIndex, ErrConflict)
	case *ifIndex != 0 && old == nil:
		return fmt.Errorf("expected modify index %d, row does not exist: %w", *ifIndex, ErrConflict)
	case *ifIndex != 0 && old.indexes().ModifyIndex != *ifIndex:
		return fmt.Errorf("expected modify index %d, found %d: %w", *ifIndex, old.indexes().ModifyIndex, ErrConflict)
	}
	return nil
}
