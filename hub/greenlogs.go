package hub

import (
	"context"
	"fmt"
	"io"

	"github.com/redforge/controltower/hub/catalog"
)

// replicaLogs returns the last tail lines of a replica's runtime log, for
// the orchestrator to keep a failed green's (deploy.Deps.Logs). Only this
// hub's driver is read: the replica of another hub is reported as such.
func (h *Hub) replicaLogs(ctx context.Context, a catalog.Allocation, tail int) ([]byte, error) {
	if a.Hub != h.NodeID {
		return nil, fmt.Errorf("replica %d runs on hub %s; the leader reads the logs of its own replicas only", a.Replica, a.Hub)
	}
	rc, err := h.Driver.Logs(ctx, a.ID, tail, false)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 4<<20))
}
