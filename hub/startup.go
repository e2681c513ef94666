package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/redforge/controltower/hub/cluster"
)

// Start-up safety: Open binds every listener and opens every backend
// before the join (the Raft transport, the store, coordination, the MQTT
// broker, the HTTP listener and the fleet driver), so a hub that cannot
// start fails before it becomes a voter. A start that fails after a fresh
// join leaves the cluster again (leaveAfterFailedStart), so the others are
// not left with a dead voter.

// leaveTimeout bounds the leave of a hub whose start failed after it
// joined.
const leaveTimeout = 30 * time.Second

// bindHTTP binds the API listener; openHTTP serves on it once the rest is
// open.
func (h *Hub) bindHTTP(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", h.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", h.Config.Listen, err)
	}
	h.ln = ln
	// Closed by the http closer once serving; closing it twice is harmless.
	h.onClose("listener", func() error {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	h.srvLn, err = h.listenTLS(ctx, ln)
	return err
}

// openDriver opens the fleet driver (docker when its daemon answers and
// --driver is auto or docker, else process); openFleet starts the manager
// on it.
func (h *Hub) openDriver(ctx context.Context) error {
	drv, err := h.pickDriver(ctx)
	if err != nil {
		return err
	}
	h.Driver = drv
	return nil
}

// leaveAfterFailedStart runs when Open fails after this hub joined the
// cluster in this start: it asks the hub at --join (which forwards to the
// leader) to remove it, as it asked to join, since its own Raft may never
// have heard from the leader. Then it drops the Raft state this start
// created, so the next start joins afresh instead of coming back as a
// member the others removed. After a complete start it does nothing: a
// hub that stops stays a member and rejoins when it restarts (dead-server
// cleanup removes one that never comes back).
func (h *Hub) leaveAfterFailedStart() error {
	if h.cl.started.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := h.leaveVia(ctx, h.Config.Join); err != nil {
		return fmt.Errorf("leave the cluster after a failed start: %w (remove this hub with: towerctl cluster leave %s)", err, h.NodeID)
	}
	h.Logger.Info("left the cluster after a failed start", "node_id", h.NodeID, "via", h.Config.Join)
	if err := h.Raft.Close(); err != nil {
		return fmt.Errorf("leave the cluster after a failed start: %w", err)
	}
	if err := os.RemoveAll(filepath.Join(h.Config.DataDir, "raft")); err != nil {
		return fmt.Errorf("leave the cluster after a failed start: drop the raft state: %w", err)
	}
	return nil
}

// leaveVia asks the hub at base to remove this hub from the cluster,
// retrying every 500 ms until it answers or ctx ends.
func (h *Hub) leaveVia(ctx context.Context, base string) error {
	body, _ := json.Marshal(map[string]string{"id": h.NodeID})
	for {
		var res cluster.Result
		err := cluster.PostCluster(ctx, h.cl.fwd.Client, base, h.Config.ClusterSecret, cluster.PathRemove, "application/json", body, &res)
		if err == nil {
			_, err = res.Decode()
		}
		if err == nil || errors.Is(err, cluster.ErrUnauthorized) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("via %s: %w (last error: %v)", base, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
