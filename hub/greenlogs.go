package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
)

// PathPeerLogs answers the end of the log of a replica running on this
// hub (the leader keeps a failed green's, deploy.Deps.Logs).
const PathPeerLogs = "/api/cluster/peer/logs"

// maxPeerLog bounds the log a hub sends a peer (peerPost reads at most
// 1 MiB of answer).
const maxPeerLog = 512 << 10

// maxPeerLogTail bounds the lines a peer may ask for.
const maxPeerLogTail = 10000

// peerLogsRequest is the body of PathPeerLogs.
type peerLogsRequest struct {
	Allocation string `json:"allocation"`
	Tail       int    `json:"tail"`
}

// replicaLogs returns the last tail lines of a replica's runtime log,
// from this hub's driver or, for a replica on another hub, from that hub
// (PathPeerLogs, with the cluster secret).
func (h *Hub) replicaLogs(ctx context.Context, a catalog.Allocation, tail int) ([]byte, error) {
	if a.Hub == h.NodeID {
		return h.localLogs(ctx, a.ID, tail)
	}
	if h.Config.ClusterSecret == "" {
		return nil, fmt.Errorf("replica %d runs on hub %s, which this hub cannot ask without a cluster secret", a.Replica, a.Hub)
	}
	hu, err := h.State.Hub(a.Hub)
	if err != nil {
		return nil, fmt.Errorf("replica %d runs on hub %s: %w", a.Replica, a.Hub, err)
	}
	var res struct {
		Log string `json:"log"`
	}
	if err := h.peerPost(ctx, hu, PathPeerLogs, peerLogsRequest{Allocation: a.ID, Tail: tail}, &res); err != nil {
		return nil, fmt.Errorf("replica %d on hub %s: %w", a.Replica, a.Hub, err)
	}
	return []byte(res.Log), nil
}

// localLogs reads the last tail lines of a replica's log from this hub's
// driver, at most maxPeerLog bytes (the newest).
func (h *Hub) localLogs(ctx context.Context, allocation string, tail int) ([]byte, error) {
	rc, err := h.Driver.Logs(ctx, allocation, tail, false)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if len(b) > maxPeerLog {
		b = b[len(b)-maxPeerLog:]
	}
	return b, err
}

// servePeerLogs serves PathPeerLogs.
func (h *Hub) servePeerLogs(w http.ResponseWriter, r *http.Request) {
	var req peerLogsRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Allocation == "" ||
		req.Tail < 1 || req.Tail > maxPeerLogTail {
		http.Error(w, fmt.Sprintf(`want {"allocation":…,"tail":1..%d}`, maxPeerLogTail), http.StatusBadRequest)
		return
	}
	b, err := h.localLogs(r.Context(), req.Allocation, req.Tail)
	if errors.Is(err, fleet.ErrNotFound) {
		http.Error(w, "no runtime of that allocation on this hub", http.StatusNotFound)
		return
	}
	if err != nil {
		h.Logger.Warn("peer logs", "allocation", req.Allocation, "error", err)
		http.Error(w, "the log could not be read", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(map[string]string{"log": string(b)}); err != nil {
		h.Logger.Debug("peer logs: write the answer", "error", err)
	}
}
