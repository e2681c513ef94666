package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// TransitionStore keeps the history of instance statuses.
type TransitionStore interface {
	AppendStatusTransition(ctx context.Context, t *store.StatusTransition) error
}

// history is where the manager records status transitions.
type history struct {
	store   TransitionStore
	logical func(catalog.Instance) string
}

// RecordHistory makes the manager append every status transition it
// observes to s, keyed by logical(row) (the logical instance a catalog
// row serves; the row's own id when logical is nil). Call it before Run.
// Each hub records the transitions of the replicas it runs; a transition
// is a status that differs from the one the manager last recorded for the
// allocation, or, for one it has not tracked yet (a restarted hub), from
// the catalog's, so a restart records nothing twice unless its catalog
// write was lost.
func (m *Manager) RecordHistory(s TransitionStore, logical func(catalog.Instance) string) {
	if s == nil {
		return
	}
	if logical == nil {
		logical = func(inst catalog.Instance) string { return inst.ID }
	}
	m.history = &history{store: s, logical: logical}
}

// recordTransition appends one transition of inst's row; a failure is
// logged, since the catalog already holds the new status.
func (m *Manager) recordTransition(ctx context.Context, w catalog.Work, prev, status, msg string, at time.Time) {
	if m.history == nil || prev == status {
		return
	}
	inst := w.Row
	if w.Row.ReplicaCount() > 1 {
		msg = strings.TrimSuffix(fmt.Sprintf("replica %d on %s: %s", w.Alloc.Replica, m.cfg.HubID, msg), ": ")
	}
	t := store.StatusTransition{Time: at, InstanceID: m.history.logical(inst), RowID: inst.ID, RowName: inst.Name,
		Status: status, PrevStatus: prev, Message: msg}
	if err := m.history.store.AppendStatusTransition(ctx, &t); err != nil {
		m.log.Warn("record status transition", "instance", inst.ID, "status", status, "error", err)
	}
}
