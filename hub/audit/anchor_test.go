package audit_test

import (
	"context"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
)

// staleAnchors reads no anchor the first time: a hub whose catalog has not
// yet replicated another hub's anchor.
type staleAnchors struct {
	state *catalog.State
	reads int
}

func (s *staleAnchors) AuditAnchor(chain string) (catalog.AuditAnchor, error) {
	s.reads++
	if s.reads == 1 {
		return catalog.AuditAnchor{}, catalog.ErrNotFound
	}
	return s.state.AuditAnchor(chain)
}

// TestSaveAnchorKeepsTheHighest: a lower anchor never replaces a higher
// one, whether the saving hub saw the higher one or not (then the catalog
// refuses the move back and SaveAnchor reports no error).
func TestSaveAnchorKeepsTheHighest(t *testing.T) {
	ctx := context.Background()
	state, node := mustRaft(t)
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := audit.CatalogAnchors{Catalog: state, Applier: node}
	if err := a.SaveAnchor(ctx, audit.Anchor{ID: 20, Hash: "h20", Time: at}); err != nil {
		t.Fatal(err)
	}
	if err := a.SaveAnchor(ctx, audit.Anchor{ID: 15, Hash: "h15", Time: at}); err != nil {
		t.Fatalf("a lower anchor: %v", err)
	}
	stale := audit.CatalogAnchors{Catalog: &staleAnchors{state: state}, Applier: node}
	if err := stale.SaveAnchor(ctx, audit.Anchor{ID: 12, Hash: "h12", Time: at}); err != nil {
		t.Fatalf("a lower anchor from a hub that had not seen the higher one: %v", err)
	}
	if got, ok, err := a.LoadAnchor(); err != nil || !ok || got.ID != 20 || got.Hash != "h20" {
		t.Fatalf("anchor = %+v %v %v, want record 20", got, ok, err)
	}
	if err := a.SaveAnchor(ctx, audit.Anchor{ID: 21, Hash: "h21", Time: at}); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := a.LoadAnchor(); got.ID != 21 {
		t.Fatalf("anchor = %+v after a higher one, want record 21", got)
	}
}
