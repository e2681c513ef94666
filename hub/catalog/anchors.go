package catalog

import (
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// AuditChain names the hub's audit log chain in the audit_anchors table.
const AuditChain = "audit"

// AuditAnchor is the head of a hash chain (hub/audit) recorded in the
// catalog, outside the data store: whoever can edit the database cannot
// move it back. It replaces the "audit/anchor" setting.
type AuditAnchor struct {
	Chain    string    `json:"chain"`
	RecordID int64     `json:"id"`
	Hash     string    `json:"hash"`
	Time     time.Time `json:"time"`
	Indexes
}

func (a *AuditAnchor) primaryKey() string { return a.Chain }

func (a *AuditAnchor) clone() *AuditAnchor { c := *a; return &c }

func auditAnchorsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableAuditAnchors, Indexes: map[string]*memdb.IndexSchema{
		"id": idIndex("Chain"),
	}}
}

func checkAuditAnchor(_ *write, a *AuditAnchor) error {
	if a.Chain == "" || a.Hash == "" || a.RecordID <= 0 {
		return fmt.Errorf("audit anchor: chain, id and hash are required: %w", ErrInvalid)
	}
	return nil
}

// PutAuditAnchor returns the command that records a chain head. An anchor
// never moves back: a record id lower than the stored one is ErrConflict,
// and so is a failed IfIndex check. Errors: ErrInvalid. The result is the
// stored AuditAnchor.
func PutAuditAnchor(a AuditAnchor, opts ...PutOption) Command {
	return newPut(CmdPutAuditAnchor, a, opts)
}

func applyPutAuditAnchor(w *write, b putBody[AuditAnchor]) (any, error) {
	a := &b.Row
	old := first[AuditAnchor](w.tx, nil, tableAuditAnchors, "id", a.Chain)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put audit anchor %q: %w", a.Chain, err)
	}
	if err := checkAuditAnchor(w, a); err != nil {
		return nil, fmt.Errorf("put audit anchor: %w", err)
	}
	if old != nil && a.RecordID < old.RecordID {
		return nil, fmt.Errorf("put audit anchor %q: record %d is before the anchored %d: %w", a.Chain, a.RecordID, old.RecordID, ErrConflict)
	}
	return insert(w, tableAuditAnchors, a, old)
}

// AuditAnchor returns the anchor of a chain, or ErrNotFound.
func (s *State) AuditAnchor(chain string) (AuditAnchor, error) {
	return get[AuditAnchor](s.read(nil), nil, tableAuditAnchors, chain)
}
