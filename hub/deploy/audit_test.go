package deploy

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/testenv"
)

// raftless applies catalog commands in order, as the Raft FSM does.
type raftless struct {
	mu    sync.Mutex
	state *catalog.State
	index uint64
}

func (r *raftless) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.index++
	return r.state.Apply(r.index, cmd)
}

// TestUnauditedDeploymentIsFlagged: when the audit record of a rollback
// cannot be written (the store is gone), the deployment says so in its
// error and history instead of ending as if it had been audited.
func TestUnauditedDeploymentIsFlagged(t *testing.T) {
	ctx := context.Background()
	db := sqlite.New(filepath.Join(t.TempDir(), "store.db"))
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	log := audit.New(db, audit.Config{})
	db.Close() // every audit write now fails, as with a store that died
	r := &raftless{state: catalog.NewState()}
	r.Apply(ctx, catalog.UpsertInstance(catalog.Instance{ID: "i1", Name: "app"}))
	r.Apply(ctx, catalog.PutDeployment(catalog.Deployment{ID: "d1", InstanceID: "i1", Status: catalog.DeploymentRolledBack}))
	o := New(Config{}, Deps{Catalog: r.state, Applier: r, Audit: log})
	start := time.Now()
	o.auditOrFlag(ctx, "d1", audit.Entry{Username: "admin", Action: audit.DeploymentRolledBack, ResourceType: "deployment", ResourceID: "d1"})
	d, err := r.state.Deployment("d1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(d.Error, "could not be written") || len(d.History) == 0 || !strings.Contains(d.History[len(d.History)-1].Message, audit.DeploymentRolledBack) {
		t.Fatalf("an unaudited deployment is not flagged: error %q history %+v", d.Error, d.History)
	}
	if time.Since(start) < time.Second {
		t.Fatalf("gave up after %v without retrying", time.Since(start))
	}
}

// TestFailingAuditPhaseIsVisible: an AUDIT phase whose record cannot be
// written is retried, and the deployment's error and history say so
// while it is (it used to retry silently, looking merely slow).
func TestFailingAuditPhaseIsVisible(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	db := sqlite.New(filepath.Join(t.TempDir(), "store.db"))
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	log := audit.New(db, audit.Config{})
	db.Close()
	r := &raftless{state: catalog.NewState()}
	r.Apply(ctx, catalog.UpsertInstance(catalog.Instance{ID: "i1", Name: "app"}))
	r.Apply(ctx, catalog.PutDeployment(catalog.Deployment{ID: "d1", InstanceID: "i1", Status: catalog.DeploymentRunning, Phase: catalog.PhaseAudit}))
	o := New(Config{}, Deps{Catalog: r.state, Applier: r, Audit: log})
	defer func(d time.Duration) { phaseRetry = d }(phaseRetry)
	phaseRetry = 20 * time.Millisecond
	d, _ := r.state.Deployment("d1")
	spec := Spec{BlueID: "i1"}
	err := o.runPhase(ctx, &d, &spec, catalog.PhaseAudit)
	if err == nil {
		t.Fatal("an audit record was written to a closed store")
	}
	done := make(chan bool)
	go func() { done <- o.retryPhase(ctx, &d, &spec, catalog.PhaseAudit, err) }()
	testenv.WaitFor(t, 10*time.Second, "the failing AUDIT shown on the deployment", func() error {
		cur, err := r.state.Deployment("d1")
		if err != nil {
			return err
		}
		if !strings.Contains(cur.Error, "AUDIT failed") || len(cur.History) == 0 || !strings.Contains(cur.History[len(cur.History)-1].Message, "audit") {
			return fmt.Errorf("error %q, history %+v", cur.Error, cur.History)
		}
		return nil
	})
	cancel()
	if <-done {
		t.Fatal("retryPhase reported success for a phase that never succeeded")
	}
}
