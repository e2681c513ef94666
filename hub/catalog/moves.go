package catalog

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Move records a failover instance placed outside its home region because
// the home region had no live hub. It replaces the settings kept under
// "regions.move/".
type Move struct {
	Instance string    `json:"instance"` // instance id
	Name     string    `json:"name"`
	Home     string    `json:"home"`
	To       string    `json:"to"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason"`
	Indexes
}

func (m *Move) primaryKey() string { return m.Instance }

func (m *Move) clone() *Move { c := *m; return &c }

func movesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableMoves, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Instance"),
	}}
}

func checkMove(w *write, m *Move) error {
	if m.Instance == "" || m.Home == "" || m.To == "" {
		return fmt.Errorf("move: instance, home and to are required: %w", ErrInvalid)
	}
	return w.exists(tableInstances, m.Instance)
}

// PutMove returns the command that records a move. Errors: ErrInvalid,
// ErrNotFound for a missing instance.
func PutMove(m Move) Command { return newPut(CmdPutMove, m, nil) }

func applyPutMove(w *write, b putBody[Move]) (any, error) {
	m := &b.Row
	if err := checkMove(w, m); err != nil {
		return nil, fmt.Errorf("put move: %w", err)
	}
	old := first[Move](w.tx, nil, tableMoves, "id", m.Instance)
	return insert(w, tableMoves, m, old)
}

// DeleteMove returns the command that drops the move record of an
// instance (it is back home). Errors: ErrNotFound.
func DeleteMove(instanceID string) Command {
	return newCommand(CmdDeleteMove, keyBody{Key: instanceID})
}

func applyDeleteMove(w *write, b keyBody) (any, error) {
	m := first[Move](w.tx, nil, tableMoves, "id", b.Key)
	if m == nil {
		return nil, fmt.Errorf("delete move of %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableMoves, m)
	return nil, nil
}

// Moves returns every recorded move, by instance id.
func (s *State) Moves() []Move {
	return list[Move](s.read(nil), nil, tableMoves, "id")
}

// Move returns the move record of an instance, or ErrNotFound.
func (s *State) Move(instanceID string) (Move, error) {
	return get[Move](s.read(nil), nil, tableMoves, instanceID)
}
