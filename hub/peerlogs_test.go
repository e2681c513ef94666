package hub_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
)

// TestPeerLogs: a hub answers the end of a replica's log to a peer that
// has the cluster secret (the leader keeps a failed green's this way when
// it runs on another hub), and to nobody else; bad requests are 400, an
// allocation it does not run 404.
func TestPeerLogs(t *testing.T) {
	const secret = "peer-logs-cluster-secret-0123456"
	h := hubtest.Start(t, func(c *hub.Config) { c.ClusterSecret = secret })
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "pl"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	as := h.State.InstanceAllocations(inst.ID)
	if len(as) == 0 {
		t.Fatal("no allocation")
	}
	post := func(secretHeader string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, h.URL+hub.PathPeerLogs, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if secretHeader != "" {
			req.Header.Set(cluster.SecretHeader, secretHeader)
		}
		resp, err := h.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		return resp.StatusCode, out.Bytes()
	}
	code, body := post(secret, map[string]any{"allocation": as[0].ID, "tail": 50})
	var res struct {
		Log string `json:"log"`
	}
	if code != 200 || json.Unmarshal(body, &res) != nil || res.Log == "" {
		t.Fatalf("peer logs = %d %s", code, body)
	}
	if n := strings.Count(strings.TrimRight(res.Log, "\n"), "\n") + 1; n > 50 {
		t.Fatalf("asked for 50 lines, got %d", n)
	}
	if code, _ := post("", map[string]any{"allocation": as[0].ID, "tail": 50}); code != http.StatusUnauthorized {
		t.Errorf("without the cluster secret: %d, want 401", code)
	}
	if code, _ := post("wrong-secret-wrong-secret-wrong-00", map[string]any{"allocation": as[0].ID, "tail": 50}); code != http.StatusUnauthorized {
		t.Errorf("with a wrong cluster secret: %d, want 401", code)
	}
	for _, bad := range []map[string]any{{"tail": 5}, {"allocation": as[0].ID, "tail": 0}, {"allocation": as[0].ID, "tail": 1 << 20}} {
		if code, _ := post(secret, bad); code != http.StatusBadRequest {
			t.Errorf("%v: %d, want 400", bad, code)
		}
	}
	if code, _ := post(secret, map[string]any{"allocation": "nope", "tail": 5}); code != http.StatusNotFound {
		t.Errorf("an unknown allocation: %d, want 404", code)
	}
}
