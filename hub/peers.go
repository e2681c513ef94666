package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/events"
)

// Hub-to-hub endpoints of the data plane, guarded by the cluster secret.
const (
	// PathPeerEvents takes a batch of events published on another hub.
	PathPeerEvents = "/api/cluster/peer/events"
	// PathPeerInFlight answers how many requests this hub's proxy has in
	// flight to a row.
	PathPeerInFlight = "/api/cluster/peer/inflight"
	// PathPeerPackage serves a node package tarball uploaded to this hub
	// (hub/nodes) to the other hubs.
	PathPeerPackage = "/api/cluster/peer/package"
	// eventsChannel is the coord pub/sub channel events travel on between
	// hubs when coordination is Redis.
	eventsChannel = "redforge:events"
)

// peerRoutes are the hub-to-hub handlers the API mounts.
func (h *Hub) peerRoutes() map[string]http.Handler {
	if h.Config.ClusterSecret == "" {
		return nil
	}
	guard := func(f http.HandlerFunc) http.Handler {
		return h.requirePeer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !cluster.SecretOK(r.Header.Get(cluster.SecretHeader), h.Config.ClusterSecret) {
				http.Error(w, `{"error":{"code":"unauthenticated","message":"hub-to-hub call without the right cluster secret"}}`, http.StatusUnauthorized)
				return
			}
			f(w, r)
		}))
	}
	return map[string]http.Handler{
		PathPeerEvents: guard(func(w http.ResponseWriter, r *http.Request) {
			var batch []events.Event
			if err := json.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&batch); err != nil {
				http.Error(w, "bad events batch", http.StatusBadRequest)
				return
			}
			for _, e := range batch {
				if e.Origin != "" && e.Origin != h.NodeID {
					h.Events.Publish(e)
				}
			}
			w.WriteHeader(http.StatusNoContent)
		}),
		PathPeerInFlight: guard(func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Row string `json:"row"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil || req.Row == "" {
				http.Error(w, `want {"row":…}`, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]int64{"in_flight": h.Proxy.RowInFlight(req.Row)})
		}),
		PathPeerLogs: guard(h.servePeerLogs),
		PathPeerPackage: guard(func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				SHA256 string `json:"sha256"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
				http.Error(w, `want {"sha256":…}`, http.StatusBadRequest)
				return
			}
			f, err := h.Nodes.Open(req.SHA256)
			if err != nil {
				http.Error(w, "no such package tarball on this hub", http.StatusNotFound)
				return
			}
			defer f.Close()
			w.Header().Set("Content-Type", "application/gzip")
			_, _ = io.Copy(w, f)
		}),
	}
}

// fetchPackage gets a node package tarball uploaded to another hub.
func (h *Hub) fetchPackage(ctx context.Context, hubID, sha string) (io.ReadCloser, error) {
	if h.Config.ClusterSecret == "" {
		return nil, fmt.Errorf("hub %s is not reachable: this hub has no cluster secret", hubID)
	}
	hu, err := h.State.Hub(hubID)
	if err != nil {
		return nil, err
	}
	b, _ := json.Marshal(map[string]string{"sha256": sha})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hu.API, "/")+PathPeerPackage, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(cluster.SecretHeader, h.Config.ClusterSecret)
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("hub %s: HTTP %d", hubID, resp.StatusCode)
	}
	return resp.Body, nil
}

// peerPost posts body to path on hub hu with the cluster secret and
// decodes a JSON answer into out (when not nil).
func (h *Hub) peerPost(ctx context.Context, hu catalog.Hub, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hu.API, "/")+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(cluster.SecretHeader, h.Config.ClusterSecret)
	resp, err := h.peerClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d", hu.ID, path, resp.StatusCode)
	}
	if out != nil {
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	return nil
}

// otherHubs are the hubs, other than this one, the leader last saw up.
func (h *Hub) otherHubs() []catalog.Hub {
	var out []catalog.Hub
	for _, hu := range h.State.Hubs() {
		if hu.ID != h.NodeID && hu.State == catalog.HubUp && hu.API != "" {
			out = append(out, hu)
		}
	}
	return out
}

// clusterIdle waits until no other hub's proxy has a request in flight to
// row (hubs that do not answer are not waited for: they serve nothing).
func (h *Hub) clusterIdle(ctx context.Context, row string) error {
	if h.Config.ClusterSecret == "" {
		return nil
	}
	for _, hu := range h.otherHubs() {
		for {
			var res struct {
				InFlight int64 `json:"in_flight"`
			}
			qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			err := h.peerPost(qctx, hu, PathPeerInFlight, map[string]string{"row": row}, &res)
			cancel()
			if err != nil || res.InFlight == 0 {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// fanOutEvents sends the events published on this hub to every other hub,
// through coord pub/sub when coordination is Redis, else by posting
// batches to the other hubs; events from other hubs are published here.
// Delivery is at most once, like the local bus.
func (h *Hub) fanOutEvents(ctx context.Context) {
	sub := h.Events.Subscribe(4096)
	defer sub.Close()
	if h.Config.Redis != "" {
		h.background(h.receiveCoordEvents)
	} else if h.Config.ClusterSecret == "" {
		return // a lone hub: nobody to tell
	}
	var batch []events.Event
	flush := time.NewTicker(25 * time.Millisecond)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				return
			}
			if e.Origin != "" || e.Type == events.Dropped {
				continue // another hub's, or this subscriber's own bookkeeping
			}
			e.Origin = h.NodeID
			batch = append(batch, e)
			if len(batch) < 256 {
				continue
			}
		case <-flush.C:
		}
		if len(batch) > 0 {
			h.sendEvents(ctx, batch)
			batch = nil
		}
	}
}

func (h *Hub) sendEvents(ctx context.Context, batch []events.Event) {
	if h.Config.Redis != "" {
		b, _ := json.Marshal(batch)
		if err := h.Coord.Publish(ctx, eventsChannel, b); err != nil {
			h.Logger.Debug("fan out events", "error", err)
		}
		return
	}
	for _, hu := range h.otherHubs() {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if err := h.peerPost(pctx, hu, PathPeerEvents, batch, nil); err != nil {
			h.Logger.Debug("fan out events", "hub", hu.ID, "error", err)
		}
		cancel()
	}
}

// drainCoordEvents publishes the batches of sub here until it ends or ctx
// does.
func (h *Hub) drainCoordEvents(ctx context.Context, sub coord.Subscription) {
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-sub.C():
			if !ok {
				return
			}
			var batch []events.Event
			if json.Unmarshal(m.Data, &batch) != nil {
				continue
			}
			for _, e := range batch {
				if e.Origin != "" && e.Origin != h.NodeID {
					h.Events.Publish(e)
				}
			}
		}
	}
}

// receiveCoordEvents publishes here the events other hubs sent through
// coord, resubscribing when the subscription ends (a Redis failover).
func (h *Hub) receiveCoordEvents(ctx context.Context) {
	for ctx.Err() == nil {
		sub, err := h.Coord.Subscribe(ctx, eventsChannel)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
				continue
			}
		}
		h.drainCoordEvents(ctx, sub)
		_ = sub.Close()
	}
}
