package api

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/router"
)

// StaleHeader is set on every GET answer served from this hub's copy of the
// catalog: milliseconds since the leader last contacted this hub (0 on the
// leader and on ?consistent=1 reads, which the leader confirmed).
const StaleHeader = "X-Redforge-Stale-Ms"

// ClusterNode is what the API needs of the hub's Raft node.
type ClusterNode interface {
	ID() string
	State() cluster.RaftState
	Leader() (id, addr string)
	Servers() ([]cluster.Server, error)
	Hubs() map[string]cluster.HubInfo
	Staleness() time.Duration
	ConsistentRead(ctx context.Context) error
	RemoveHub(ctx context.Context, id string) error
	Stats() map[string]string
}

// ControlPlane is the hub's Raft node as the API uses it: the writer of
// catalog commands and the cluster's view (hub/cluster.Node).
type ControlPlane interface {
	Applier
	ClusterNode
}

// RouteTable is this hub's view of its peers' health and RTT (router).
type RouteTable interface {
	Status() []router.TargetStatus
	Ordered() []string
}

func (s *Server) clusterRoutes() {
	if s.cfg.Cluster == nil {
		return
	}
	if s.cfg.Peers.Handler != nil {
		// Hub-to-hub calls: the handler checks the cluster secret itself.
		h := gin.WrapH(s.cfg.Peers.Handler)
		for _, p := range []string{cluster.PathApply, cluster.PathReadIndex, cluster.PathJoin, cluster.PathRemove} {
			s.handle(http.MethodPost, p, Public, h)
		}
	}
	s.handle(http.MethodGet, "/api/cluster", Perm(auth.ResourceRegions, auth.ActionRead), s.getCluster)
	s.handle(http.MethodDelete, "/api/cluster/servers/:id", Perm(auth.ResourceRegions, auth.ActionDelete), s.removeServer)
	s.handle(http.MethodGet, "/api/regions", Perm(auth.ResourceRegions, auth.ActionRead), s.getRegions)
	s.handle(http.MethodGet, "/api/route", Public, s.getRoute)
}

// readConsistency runs before every handler of a registered route: a GET
// with ?consistent=1 is confirmed by the leader first (503
// leader_unreachable when this hub is cut off); every GET answer carries
// StaleHeader. It runs before authentication (it is global middleware), so
// an anonymous ?consistent=1 costs a barrier before its 401.
func (s *Server) readConsistency() gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.cfg.Cluster == nil || c.Request.Method != http.MethodGet || c.FullPath() == "" {
			c.Next()
			return
		}
		if v := c.Query("consistent"); v == "1" || v == "true" {
			ctx, cancel := context.WithTimeout(c.Request.Context(), ConsistentReadTimeout)
			err := s.cfg.Cluster.ConsistentRead(ctx)
			cancel()
			if err != nil {
				abort(c, err)
				return
			}
			c.Header(StaleHeader, "0")
			c.Next()
			return
		}
		c.Header(StaleHeader, strconv.FormatInt(max(s.cfg.Cluster.Staleness(), 0).Milliseconds(), 10))
		c.Next()
	}
}

// ConsistentReadTimeout bounds the leader's confirmation of a
// ?consistent=1 read, so a cut-off hub answers 503 promptly.
const ConsistentReadTimeout = 5 * time.Second

// ServerInfo is one member in GET /api/cluster.
type ServerInfo struct {
	ID     string  `json:"id"`
	Addr   string  `json:"raft_addr"`
	Region string  `json:"region,omitempty"`
	API    string  `json:"api,omitempty"`
	Voter  bool    `json:"voter"`
	Leader bool    `json:"leader"`
	State  string  `json:"state,omitempty"`  // this hub's probe view: up, suspect, down, unknown
	RTTMS  float64 `json:"rtt_ms,omitempty"` // EWMA of this hub's probes
}

// ClusterStatus is the body of GET /api/cluster.
type ClusterStatus struct {
	NodeID      string            `json:"node_id"`
	Region      string            `json:"region"`
	State       cluster.RaftState `json:"state"`
	LeaderID    string            `json:"leader_id"`
	StalenessMS int64             `json:"staleness_ms"`
	Term        string            `json:"term,omitempty"`
	AppliedIdx  string            `json:"applied_index,omitempty"`
	Servers     []ServerInfo      `json:"servers"`
}

func (s *Server) clusterStatus() (ClusterStatus, error) {
	cl := s.cfg.Cluster
	leader, _ := cl.Leader()
	st := cl.Stats()
	out := ClusterStatus{NodeID: cl.ID(), Region: s.cfg.Region, State: cl.State(), LeaderID: leader,
		StalenessMS: max(cl.Staleness(), 0).Milliseconds(), Term: st["term"], AppliedIdx: st["applied_index"]}
	servers, err := cl.Servers()
	if err != nil {
		return out, err
	}
	hubs := cl.Hubs()
	probes := map[string]router.TargetStatus{}
	if s.cfg.Peers.Table != nil {
		for _, t := range s.cfg.Peers.Table.Status() {
			probes[t.Target] = t
		}
	}
	for _, sv := range servers {
		h := hubs[sv.ID]
		si := ServerInfo{ID: sv.ID, Addr: sv.Addr, Region: h.Region, API: h.API, Voter: sv.Voter, Leader: sv.Leader}
		if p, ok := probes[h.API]; ok {
			si.State, si.RTTMS = p.State.String(), float64(p.RTT.Microseconds())/1000
		}
		if sv.ID == cl.ID() {
			si.State = "self"
		}
		out.Servers = append(out.Servers, si)
	}
	return out, nil
}

func (s *Server) getCluster(c *gin.Context) {
	st, err := s.clusterStatus()
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, st)
}

func (s *Server) removeServer(c *gin.Context) {
	id := c.Param("id")
	known := false
	if servers, err := s.cfg.Cluster.Servers(); err == nil {
		for _, sv := range servers {
			known = known || sv.ID == id
		}
	}
	if !known {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no cluster member " + strconv.Quote(id) + "; see GET /api/cluster", Field: "id"})
		return
	}
	if err := s.cfg.Cluster.RemoveHub(c.Request.Context(), id); err != nil {
		abort(c, err)
		return
	}
	s.log.Info("cluster member removed", "server", id, "by", principal(c).UserID)
	c.JSON(http.StatusOK, gin.H{"removed": id})
}

// RouteEntry is one hub in GET /api/route.
type RouteEntry struct {
	ID     string  `json:"id"`
	Region string  `json:"region"`
	API    string  `json:"api"`
	State  string  `json:"state"`
	RTTMS  float64 `json:"rtt_ms"`
}

// getRoute answers the hubs a client should use, best first: hubs of the
// caller's ?region= first, then by this hub's probes (router.Ordered:
// healthy before suspect before down, nearest first). This hub counts as up
// with RTT 0. Down hubs are listed last, as the last resort.
func (s *Server) getRoute(c *gin.Context) {
	hubs := s.cfg.Cluster.Hubs()
	byAPI := map[string]router.TargetStatus{}
	var order []string
	if s.cfg.Peers.Table != nil {
		for _, t := range s.cfg.Peers.Table.Status() {
			byAPI[t.Target] = t
		}
		order = s.cfg.Peers.Table.Ordered()
	}
	rank := map[string]int{}
	for i, api := range order {
		rank[api] = i + 1
	}
	var out []RouteEntry
	for _, h := range hubs {
		e := RouteEntry{ID: h.ID, Region: h.Region, API: h.API, State: router.Unknown.String()}
		if h.ID == s.cfg.Cluster.ID() {
			e.State = router.Up.String()
		} else if t, ok := byAPI[h.API]; ok {
			e.State, e.RTTMS = t.State.String(), float64(t.RTT.Microseconds())/1000
		}
		out = append(out, e)
	}
	want := c.Query("region")
	score := func(e RouteEntry) (int, int, int) {
		st := map[string]int{"up": 0, "unknown": 1, "suspect": 1, "down": 2}[e.State]
		reg := 1
		if want != "" && e.Region == want && st < 2 {
			reg = 0
		}
		r := rank[e.API]
		if e.ID == s.cfg.Cluster.ID() {
			r = 0
		}
		return reg, st, r
	}
	sort.SliceStable(out, func(i, j int) bool {
		a1, a2, a3 := score(out[i])
		b1, b2, b3 := score(out[j])
		if a1 != b1 {
			return a1 < b1
		}
		if a2 != b2 {
			return a2 < b2
		}
		return a3 < b3
	})
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"hubs": out})
}

// staleStoreRoutes are the GET routes whose store reads may come from a
// read replica (history, metrics, audit listing, fleet analytics) unless
// the request asks ?consistent=1.
var staleStoreRoutes = map[string]bool{
	"/api/audit":                        true,
	"/api/audit/ai_decisions":           true,
	"/api/instances/:id/history":        true,
	"/api/instances/:id/flows/versions": true,
	"/api/instances/:id/metrics":        true,
	"/api/metrics/fleet":                true,
	"/api/metrics/instances/:id":        true,
	"/api/metrics/dashboards":           true,
	"/api/alerts/history":               true,
}

// storeReads lets the store serve the reads of staleStoreRoutes from a
// read replica (store.WithStaleReads); an answer a replica served
// carries StaleHeader with at least that replica's lag.
func (s *Server) storeReads() gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.Method != http.MethodGet || !staleStoreRoutes[c.FullPath()] {
			c.Next()
			return
		}
		if v := c.Query("consistent"); v == "1" || v == "true" {
			c.Next()
			return
		}
		ctx := store.WithStaleReads(c.Request.Context(), func(lag time.Duration) {
			ms := max(lag, 0).Milliseconds()
			if cur, err := strconv.ParseInt(c.Writer.Header().Get(StaleHeader), 10, 64); err == nil && cur > ms {
				ms = cur
			}
			c.Header(StaleHeader, strconv.FormatInt(ms, 10))
		})
		c.Request = c.Request.WithContext(ctx)
		c.Next()
	}
}
