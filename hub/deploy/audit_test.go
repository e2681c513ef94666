package deploy

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store/sqlite"
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
