package api

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/regions"
)

// RegionHub is one hub in GET /api/regions.
type RegionHub struct {
	ID     string `json:"id"`
	API    string `json:"api"`
	Voter  bool   `json:"voter"`
	Member bool   `json:"member"` // in the raft configuration
	Leader bool   `json:"leader"`
	State  string `json:"state"` // this hub's probe view (self for itself)
}

// RegionView is one region in GET /api/regions.
type RegionView struct {
	Name string      `json:"name"`
	Hubs []RegionHub `json:"hubs"`
	// Up is true while at least one of the region's hubs answers probes.
	Up bool `json:"up"`
}

// RegionsResponse is the body of GET /api/regions. RTTMS[a][b] is the RTT
// EWMA hub a measures to hub b, in ms; a hub that did not answer has no row.
type RegionsResponse struct {
	LeaderID string                        `json:"leader_id"`
	Regions  []RegionView                  `json:"regions"`
	RTTMS    map[string]map[string]float64 `json:"rtt_ms"`
	Missing  []string                      `json:"missing_rows,omitempty"`
	// Moves are failover instances moved out of a failed region, and why.
	Moves []regions.Move `json:"moves"`
}

// RegionsFanoutTimeout bounds how long GET /api/regions waits for each
// other hub's row of the RTT matrix.
const RegionsFanoutTimeout = 2 * time.Second

// getRegions groups the cluster's hubs by region (with the topology's
// regions, even hubless ones) and gathers the RTT matrix by asking every
// other hub for its GET /api/cluster with the caller's own credential.
func (s *Server) getRegions(c *gin.Context) {
	self, err := s.clusterStatus()
	if err != nil {
		abort(c, err)
		return
	}
	res := RegionsResponse{LeaderID: self.LeaderID, RTTMS: map[string]map[string]float64{}, Moves: []regions.Move{}}
	if s.cfg.Peers.Moves != nil {
		res.Moves = append(res.Moves, s.cfg.Peers.Moves()...)
	}
	byRegion := map[string]*RegionView{}
	region := func(name string) *RegionView {
		if byRegion[name] == nil {
			byRegion[name] = &RegionView{Name: name, Hubs: []RegionHub{}}
		}
		return byRegion[name]
	}
	if s.cfg.Peers.Topology != nil {
		for _, r := range s.cfg.Peers.Topology.Regions {
			region(r.Name)
		}
	}
	members := map[string]ServerInfo{}
	for _, sv := range self.Servers {
		members[sv.ID] = sv
	}
	for _, h := range s.cfg.Cluster.Hubs() {
		sv, member := members[h.ID]
		rh := RegionHub{ID: h.ID, API: h.API, Member: member, Voter: sv.Voter, Leader: h.ID == self.LeaderID, State: sv.State}
		if rh.State == "" {
			rh.State = "unknown"
		}
		r := region(h.Region)
		r.Hubs = append(r.Hubs, rh)
		r.Up = r.Up || rh.State == "up" || rh.State == "self"
	}
	rows := s.rttRows(c.Request.Context(), c.GetHeader("Authorization"), self)
	for id, row := range rows {
		res.RTTMS[id] = row
	}
	for _, h := range s.cfg.Cluster.Hubs() {
		if _, ok := rows[h.ID]; !ok {
			res.Missing = append(res.Missing, h.ID)
		}
	}
	sort.Strings(res.Missing)
	for _, r := range byRegion {
		sort.Slice(r.Hubs, func(i, j int) bool { return r.Hubs[i].ID < r.Hubs[j].ID })
		res.Regions = append(res.Regions, *r)
	}
	sort.Slice(res.Regions, func(i, j int) bool { return res.Regions[i].Name < res.Regions[j].Name })
	c.JSON(http.StatusOK, res)
}

// rttRows returns each hub's RTT row: this hub's from self, the others'
// from their GET /api/cluster.
func (s *Server) rttRows(ctx context.Context, authz string, self ClusterStatus) map[string]map[string]float64 {
	rowOf := func(st ClusterStatus) map[string]float64 {
		row := map[string]float64{}
		for _, sv := range st.Servers {
			if sv.RTTMS > 0 {
				row[sv.ID] = sv.RTTMS
			}
		}
		return row
	}
	rows := map[string]map[string]float64{self.NodeID: rowOf(self)}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, h := range s.cfg.Cluster.Hubs() {
		if h.ID == self.NodeID || h.API == "" {
			continue
		}
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, RegionsFanoutTimeout)
			defer cancel()
			req, err := http.NewRequestWithContext(cctx, http.MethodGet, strings.TrimRight(h.API, "/")+"/api/cluster", nil)
			if err != nil {
				return
			}
			req.Header.Set("Authorization", authz)
			resp, err := s.peerClient().Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var st ClusterStatus
			if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
				return
			}
			mu.Lock()
			rows[h.ID] = rowOf(st)
			mu.Unlock()
		})
	}
	wg.Wait()
	return rows
}
