package storetest

import (
	"context"
	"sync"
	"testing"

	"github.com/redforge/controltower/hub/store"
)

// RunReopen runs the persistence part of the contract: data and the audit
// chain survive Close and Open, migrations are idempotent, concurrent Opens
// of one fresh database all succeed, and a closed store fails cleanly.
// newDSN returns the DSN of a fresh, empty database; open opens a store on
// a DSN (New + Open).
func RunReopen(t *testing.T, newDSN func(t *testing.T) string, open func(ctx context.Context, dsn string) (store.Store, error)) {
	mustOpen := func(t *testing.T, dsn string) store.Store {
		t.Helper()
		s, err := open(t.Context(), dsn)
		if err != nil {
			t.Fatalf("open %s: %v", dsn, err)
		}
		return s
	}
	t.Run("DataSurvivesReopen", func(t *testing.T) {
		dsn := newDSN(t)
		s := mustOpen(t, dsn)
		recs := seedAudit(t, s, 3)
		mustIngest(t, s, batch("e", "audit", 1, 5), 5)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		for range 2 { // the second reopen proves migrations are a no-op
			s = mustOpen(t, dsn)
			equal(t, "audit after reopen", mustIterateAudit(t, s, store.AuditFilter{Limit: 3}), recs)
			mustIngest(t, s, batch("e", "audit", 1, 5), 5)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
		}
		s = mustOpen(t, dsn)
		defer s.Close()
		next := mustAppendAudit(t, s, auditRecord(9, t0))
		if next.ID != 4 || next.PrevHash != recs[2].Hash {
			t.Fatalf("append after reopen: ID %d prev %q; want 4 and %q", next.ID, next.PrevHash, recs[2].Hash)
		}
		if err := VerifyChain(mustIterateAudit(t, s, store.AuditFilter{})); err != nil {
			t.Fatal(err)
		}
		mustIngest(t, s, batch("e", "audit", 6, 1), 6)
	})
	t.Run("ConcurrentOpensOfAFreshDatabase", func(t *testing.T) {
		dsn := newDSN(t)
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := open(context.Background(), dsn)
				if err == nil {
					err = s.Ping(context.Background())
					s.Close()
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent open: %v", err)
			}
		}
	})
	t.Run("ClosedStoreFails", func(t *testing.T) {
		s := mustOpen(t, newDSN(t))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if err := s.Ping(t.Context()); err == nil {
			t.Fatal("Ping after Close succeeded")
		}
		rec := store.AuditRecord{Action: "x"}
		if err := s.AppendAudit(t.Context(), &rec, Hash); err == nil {
			t.Fatal("AppendAudit after Close succeeded")
		}
		if _, err := s.ListAudit(t.Context(), store.AuditFilter{}); err == nil {
			t.Fatal("ListAudit after Close succeeded")
		}
	})
}
