package audit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// Anchor is a chain head recorded outside the data store, in the Raft
// catalog: whoever can edit the database cannot move it back. The chain
// alone cannot reveal records removed from its end, or a log rewritten
// and re-hashed from the first record; a record that disagrees with the
// anchor, or a log that ends before it, can.
type Anchor struct {
	ID   int64     `json:"id"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// Anchors loads and saves the anchor. SaveAnchor must never move the
// anchor back to a lower ID.
type Anchors interface {
	LoadAnchor() (Anchor, bool, error)
	SaveAnchor(ctx context.Context, a Anchor) error
}

// AnchorReader reads the anchor from the catalog (*catalog.State).
type AnchorReader interface {
	AuditAnchor(chain string) (catalog.AuditAnchor, error)
}

// Applier commits catalog commands (*cluster.Node).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// CatalogAnchors keeps the anchor in the catalog's audit anchors, as the
// chain catalog.AuditChain.
type CatalogAnchors struct {
	Catalog AnchorReader
	Applier Applier
}

// LoadAnchor implements Anchors.
func (c CatalogAnchors) LoadAnchor() (Anchor, bool, error) {
	row, err := c.Catalog.AuditAnchor(catalog.AuditChain)
	if errors.Is(err, catalog.ErrNotFound) {
		return Anchor{}, false, nil
	}
	if err != nil {
		return Anchor{}, false, err
	}
	return Anchor{ID: row.RecordID, Hash: row.Hash, Time: row.Time}, true, nil
}

// SaveAnchor implements Anchors. The catalog refuses to move the anchor
// back (catalog.ErrConflict), so when hubs race the highest anchor stays
// and a lower one is not an error.
func (c CatalogAnchors) SaveAnchor(ctx context.Context, a Anchor) error {
	old, ok, err := c.LoadAnchor()
	if err != nil || ok && old.ID >= a.ID {
		return err
	}
	_, err = c.Applier.Apply(ctx, catalog.PutAuditAnchor(catalog.AuditAnchor{Chain: catalog.AuditChain, RecordID: a.ID, Hash: a.Hash, Time: a.Time}))
	if errors.Is(err, catalog.ErrConflict) {
		if old, ok, lerr := c.LoadAnchor(); lerr == nil && ok && old.ID >= a.ID {
			return nil // a higher anchor won the race
		}
	}
	return err
}

// Anchor verifies the records appended since the last anchor (they must
// continue the chain from the anchored record) and records the new chain
// head in the anchor store (Config.Anchors); an empty log anchors nothing.
// Run it periodically on the leader (every minute, say): records appended
// since the last anchor are the only ones whose removal from the end of
// the log goes unnoticed. Errors: ErrNoAnchors when no anchor store is
// configured; ErrChainBroken (with the VerifyResult in the message) when
// the new records do not continue the anchored chain, in which case the
// anchor is not moved; the stores' errors.
func (l *Logger) Anchor(ctx context.Context) (Anchor, error) {
	if l.anchors == nil {
		return Anchor{}, ErrNoAnchors
	}
	old, ok, err := l.anchors.LoadAnchor()
	if err != nil {
		return Anchor{}, fmt.Errorf("anchor audit chain: %w", err)
	}
	c := &chain{}
	f := store.AuditFilter{}
	if ok {
		// IDs are gapless from 1, so the record with ID n is at offset n-1.
		c.start, c.anchor, f.Offset = old.ID, &old, int(old.ID-1)
	}
	if err := l.st.IterateAudit(ctx, f, c.add); err != nil && !errors.Is(err, errStop) {
		return Anchor{}, fmt.Errorf("anchor audit chain: %w", err)
	}
	res := c.finish("audit log")
	if !res.OK {
		return Anchor{}, fmt.Errorf("anchor audit chain: %w: %s", ErrChainBroken, res.Reason)
	}
	if res.Checked == 0 || (ok && res.HeadID == old.ID) {
		return old, nil
	}
	a := Anchor{ID: res.HeadID, Hash: res.HeadHash, Time: store.NormalizeTime(l.now())}
	if err := l.anchors.SaveAnchor(ctx, a); err != nil {
		return Anchor{}, fmt.Errorf("anchor audit chain: %w", err)
	}
	return a, nil
}

// ErrChainBroken reports an audit chain that failed verification where an
// operation needed it intact (Anchor).
var ErrChainBroken = errors.New("audit: hash chain broken")

// ErrNoAnchors reports Anchor on a Logger without Config.Anchors.
var ErrNoAnchors = errors.New("audit: no anchor store configured")
