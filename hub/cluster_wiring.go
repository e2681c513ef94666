package hub

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/schedule"
	"github.com/redforge/controltower/router"
)

// PeerProbeInterval is how often a hub probes the other hubs' /api/health
// for the RTT matrix and GET /api/route.
const PeerProbeInterval = 2 * time.Second

// clusterParts are the multi-hub pieces the hub wires around its Raft node.
type clusterParts struct {
	fwd    *cluster.HTTPForwarder
	routes peerRoutes
	// started is set by openCluster, the last step of Open: a hub that
	// fails before it leaves the cluster it joined (startup.go).
	started atomic.Bool
}

// apiPeers are the multi-hub parts of the API: the Raft calls between
// hubs, the other peer endpoints, the client that calls other hubs, this
// hub's probe view of them, the topology and the regional moves.
func (h *Hub) apiPeers() api.Peers {
	return api.Peers{
		Handler:  h.requirePeer(cluster.Handler(h.Raft, h.Config.ClusterSecret)),
		Routes:   h.peerRoutes(),
		Client:   h.peerHTTP(0),
		Table:    &h.cl.routes,
		Topology: h.Config.Topology,
		Moves:    h.Moves,
	}
}

// configureCluster fills the multi-hub settings of the Raft config:
// bootstrap only without --join, timeouts, voters, dead-server cleanup
// and the HTTP forwarder (whose Lookup is set once the node exists).
func (h *Hub) configureCluster(cfg *cluster.Config) {
	c := h.Config.ClusterConfig
	cfg.Bootstrap = !h.joins()
	cfg.AdvertiseAddr = c.RaftAdvertise
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = c.RaftHeartbeatTimeout, c.RaftElectionTimeout, c.RaftLeaseTimeout
	cfg.MaxVoters, cfg.DeadServerTimeout = c.RaftMaxVoters, c.DeadServerTimeout
	cfg.StockThroughput = c.RaftStockThroughput
	if c.Topology != nil {
		cfg.Regions = len(c.Topology.Regions)
	}
	h.cl.fwd = &cluster.HTTPForwarder{Secret: c.ClusterSecret, Client: h.peerHTTP(15 * time.Second)}
	cfg.Forwarder = h.cl.fwd
	cfg.TLS = h.raftTLS()
}

// joins reports whether this hub joins a cluster rather than bootstrapping
// one: --join is set and is not this hub's own --advertise URL. So every
// pod of a StatefulSet can be given the first pod's URL (packaging/k8s):
// the first pod bootstraps, the others join it.
func (h *Hub) joins() bool {
	c := h.Config.ClusterConfig
	return c.Join != "" && (c.Advertise == "" || strings.TrimRight(c.Join, "/") != strings.TrimRight(c.Advertise, "/"))
}

func (h *Hub) selfInfo() cluster.HubInfo {
	return cluster.HubInfo{ID: h.NodeID, Region: h.Config.Region, API: h.advertiseURL(), Raft: h.Raft.Addr(),
		Advertise: h.runtimeHost()}
}

// joinCluster runs once every listener is bound and every backend open
// (startup.go): with --join and no earlier membership it asks the hub at
// --join to add it, then waits until it has caught up with the leader (a
// consistent read), so the steps after it see the replicated catalog. Both
// are bounded by --join-timeout. From the join on, a failed start leaves
// the cluster again (leaveAfterFailedStart).
func (h *Hub) joinCluster(ctx context.Context) error {
	h.cl.fwd.Lookup = h.Raft.HubAPI
	if !h.joins() {
		return nil
	}
	if h.Raft.HadState() {
		// A member restarting: it needs no join to start (a cluster that
		// lost quorum needs it up first), but if the leader removed it
		// meanwhile (dead-server cleanup) it must join again. Join is
		// idempotent, so ask in the background.
		h.background(func(ctx context.Context) {
			if _, err := cluster.JoinVia(ctx, h.cl.fwd.Client, h.Config.Join, h.Config.ClusterSecret, h.selfInfo()); err != nil && ctx.Err() == nil {
				h.Logger.Warn("rejoin the cluster", "via", h.Config.Join, "error", err)
			}
		})
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.Config.joinTimeout())
	defer cancel()
	voter, err := cluster.JoinVia(ctx, h.cl.fwd.Client, h.Config.Join, h.Config.ClusterSecret, h.selfInfo())
	if err != nil {
		return fmt.Errorf("join %s: %w", h.Config.Join, err)
	}
	h.onClose("leave", h.leaveAfterFailedStart)
	h.Logger.Info("joined the cluster", "via", h.Config.Join, "voter", voter)
	for {
		err := h.Raft.ConsistentRead(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join %s: catch up with the leader within --join-timeout %s: %w", h.Config.Join, h.Config.joinTimeout(), err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// openCluster runs once the API serves: it records this hub in the
// cluster directory (so others can forward to it when it leads) and starts
// probing the other hubs.
func (h *Hub) openCluster(context.Context) error {
	if h.Config.scratch {
		return nil // a backup verification copy has no peers (backups.go)
	}
	h.cl.started.Store(true)
	info := h.selfInfo()
	h.background(func(ctx context.Context) {
		if err := h.Raft.RegisterSelf(ctx, info); err != nil && ctx.Err() == nil {
			h.Logger.Warn("register in the cluster directory", "error", err)
		}
	})
	h.background(func(ctx context.Context) { h.every(ctx, PeerProbeInterval, h.probePeers) })
	h.Scheduler = schedule.New(schedule.Config{Self: h.NodeID, LostAfter: h.Config.HubLostTimeout, Topology: h.Config.Topology},
		schedule.Deps{Catalog: h.State, Applier: h.Raft, Audit: h.Audit, Events: h.Events, IsLeader: h.Raft.IsLeader,
			LastContact: h.lastContact, RegionRTT: h.regionRTT, Logger: h.Logger.With("component", "schedule")})
	h.background(h.Scheduler.Run)
	h.background(h.fanOutEvents)
	return nil
}

// peerStatus is this hub's probe view of hub id.
func (h *Hub) peerStatus(id string) (router.TargetStatus, bool) {
	hu, err := h.State.Hub(id)
	if err != nil || hu.API == "" {
		return router.TargetStatus{}, false
	}
	for _, t := range h.cl.routes.Status() {
		if t.Target == hu.API {
			return t, true
		}
	}
	return router.TargetStatus{}, false
}

// lastContact is when this hub last reached hub id's API.
func (h *Hub) lastContact(id string) (time.Time, bool) {
	st, ok := h.peerStatus(id)
	if !ok || st.LastSuccess.IsZero() {
		return time.Time{}, false
	}
	return st.LastSuccess, true
}

// regionRTT is the lowest RTT from this hub to a hub of each region.
func (h *Hub) regionRTT() map[string]time.Duration {
	_, rtt := h.regionHealth()
	return rtt
}

// probePeers probes every other hub of the directory once, rebuilding the
// router when the set of hubs changed.
func (h *Hub) probePeers(ctx context.Context) {
	var targets []string
	for id, hi := range h.Raft.Hubs() {
		if id != h.NodeID && hi.API != "" {
			targets = append(targets, hi.API)
		}
	}
	slices.Sort(targets)
	if len(targets) == 0 {
		h.cl.routes.cur.Store(nil)
		return
	}
	r := h.cl.routes.cur.Load()
	if r == nil || !slices.Equal(r.targets, targets) {
		rt, err := router.New(router.Config{Targets: targets, Interval: PeerProbeInterval, Timeout: time.Second,
			Prober: &router.HTTPProber{Client: h.peerHTTP(time.Second)}})
		if err != nil {
			h.Logger.Warn("peer router", "error", err)
			return
		}
		r = &routerSet{targets: targets, r: rt}
		h.cl.routes.cur.Store(r)
	}
	r.r.ProbeAll(ctx)
}

// peerRoutes is the api.RouteTable over the current router.
type peerRoutes struct {
	cur atomic.Pointer[routerSet]
}

type routerSet struct {
	targets []string
	r       *router.Router
}

func (p *peerRoutes) Status() []router.TargetStatus {
	if r := p.cur.Load(); r != nil && r.r != nil {
		return r.r.Status()
	}
	return nil
}

func (p *peerRoutes) Ordered() []string {
	if r := p.cur.Load(); r != nil && r.r != nil {
		return r.r.Ordered()
	}
	return nil
}
