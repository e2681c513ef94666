package catalog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Flows is the flows document a catalog row (a logical instance or a
// color row) should run. Every replica of the row runs it: the hub that
// runs a replica seeds a new runtime with it and deploys a changed one to
// the runtimes it runs, so a rescheduled replica comes up with the row's
// current flows. The document is stored as given, before the hub renders
// it for a runtime (names, bus credentials).
type Flows struct {
	InstanceID string          `json:"instance_id"`
	Doc        json.RawMessage `json:"doc"`
	SHA        string          `json:"sha"`               // hex SHA-256 of Doc
	Version    int64           `json:"version,omitempty"` // the store's flows version number, when recorded
	By         string          `json:"by,omitempty"`      // who deployed it
	At         time.Time       `json:"at"`
	// Credentials are the flows' node credentials (what users entered in
	// the editor: passwords, API keys), sealed by the hub as one JSON
	// object {node id: {field: value}} (hub/instances); the hub gives them
	// to every runtime it deploys the flows to. Empty: none.
	Credentials string `json:"credentials,omitempty"`
	Indexes
}

func (f *Flows) primaryKey() string { return f.InstanceID }

func (f *Flows) clone() *Flows {
	c := *f
	c.Doc = bytes.Clone(f.Doc)
	return &c
}

func flowsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableFlows, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("InstanceID"),
	}}
}

// FlowsSHA is the hex SHA-256 of a flows document.
func FlowsSHA(doc []byte) string {
	s := sha256.Sum256(doc)
	return hex.EncodeToString(s[:])
}

func checkFlows(w *write, f *Flows) error {
	switch {
	case f.InstanceID == "":
		return fmt.Errorf("flows: instance_id is required: %w", ErrInvalid)
	case len(f.Doc) == 0 || !json.Valid(f.Doc):
		return fmt.Errorf("flows of %q: doc must be a JSON document: %w", f.InstanceID, ErrInvalid)
	case f.SHA != FlowsSHA(f.Doc):
		return fmt.Errorf("flows of %q: sha does not match the doc: %w", f.InstanceID, ErrInvalid)
	}
	return w.exists(tableInstances, f.InstanceID)
}

// PutFlows returns the command that sets the flows a row runs. Build f.SHA
// with FlowsSHA. Errors: ErrInvalid for a missing id, a doc that is not
// JSON or a wrong SHA; ErrNotFound when the row does not exist; ErrConflict
// when an IfIndex check fails. The result is the stored Flows.
func PutFlows(f Flows, opts ...PutOption) Command {
	return newPut(CmdPutFlows, f, opts)
}

func applyPutFlows(w *write, b putBody[Flows]) (any, error) {
	f := &b.Row
	old := first[Flows](w.tx, nil, tableFlows, "id", f.InstanceID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put flows of %q: %w", f.InstanceID, err)
	}
	if err := checkFlows(w, f); err != nil {
		return nil, fmt.Errorf("put flows: %w", err)
	}
	return insert(w, tableFlows, f, old)
}

// InstanceFlows returns the flows of a row, or ErrNotFound when none was
// ever deployed to it.
func (s *State) InstanceFlows(instanceID string) (Flows, error) {
	return get[Flows](s.read(nil), nil, tableFlows, instanceID)
}

// WatchFlows returns every row's flows and a channel closed when any may
// have changed.
func (s *State) WatchFlows(ctx context.Context) ([]Flows, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	fs := list[Flows](s.read(ws), ws, tableFlows, "id")
	return fs, watch(ctx, ws)
}
