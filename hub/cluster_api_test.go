package hub_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
)

// TestClusterAPIOneHub: the cluster routes on a one-hub cluster, as a
// scenario table; reads carry the staleness header (0 on the leader);
// hub-to-hub calls need the cluster secret. Multi-hub behaviour: cmd/hub
// TestCluster*.
func TestClusterAPIOneHub(t *testing.T) {
	const secret = "one-hub-cluster-secret-123456"
	h := hubtest.Start(t, func(c *hub.Config) { c.ClusterSecret = secret; c.Region = "eu" })
	viewer := h.CreateUser(t, "viewer", "VIEWER")
	for _, tc := range []struct {
		method, path, token string
		want                int
		has, hasNot         []string
	}{
		{"GET", "/api/cluster", h.AdminToken, 200, []string{`"node_id":"` + h.NodeID, `"state":"Leader"`, `"voter":true`}, nil},
		{"GET", "/api/cluster", viewer, 200, []string{`"leader_id":"` + h.NodeID}, nil},
		{"GET", "/api/cluster", "", 401, nil, nil},
		{"GET", "/api/regions", viewer, 200, []string{`"name":"eu"`, `"leader":true`, `"rtt_ms":{"` + h.NodeID}, nil},
		{"GET", "/api/route", "", 200, []string{`"id":"` + h.NodeID, `"state":"up"`}, nil},
		{"DELETE", "/api/cluster/servers/nobody", h.AdminToken, 404, []string{`no cluster member`}, nil},
		{"DELETE", "/api/cluster/servers/" + h.NodeID, viewer, 403, []string{"forbidden"}, nil},
		{"GET", "/api/instances?consistent=1", h.AdminToken, 200, nil, nil},
		{"POST", "/api/cluster/apply", h.AdminToken, 401, []string{"cluster secret"}, []string{secret}},
		{"POST", "/api/cluster/join", "", 401, []string{"cluster secret"}, nil},
	} {
		code, body := h.Do(t, tc.method, tc.path, tc.token, nil)
		if code != tc.want {
			t.Errorf("%s %s = %d %s, want %d", tc.method, tc.path, code, body, tc.want)
			continue
		}
		for _, s := range tc.has {
			if !strings.Contains(string(body), s) {
				t.Errorf("%s %s: body lacks %q: %s", tc.method, tc.path, s, body)
			}
		}
		for _, s := range tc.hasNot {
			if strings.Contains(string(body), s) {
				t.Errorf("%s %s: body has %q", tc.method, tc.path, s)
			}
		}
	}
	for _, q := range []string{"", "?consistent=1"} {
		req, _ := http.NewRequest("GET", h.URL+"/api/instances"+q, nil)
		req.Header.Set("Authorization", "Bearer "+h.AdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Redforge-Stale-Ms"); got != "0" {
			t.Errorf("GET /api/instances%s on the leader: X-Redforge-Stale-Ms %q, want 0", q, got)
		}
	}
	var st struct {
		Servers []json.RawMessage `json:"servers"`
	}
	h.JSON(t, "GET", "/api/cluster", nil, 200, &st)
	if len(st.Servers) != 1 {
		t.Errorf("servers = %d, want 1", len(st.Servers))
	}
}
