package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
)

// TestTowerctlCluster: status lists the one-hub cluster; leave names an
// unknown hub clearly; join without the right secret is refused.
// (Joining and leaving with several hubs: cmd/hub TestClusterLeaderKilled.)
func TestTowerctlCluster(t *testing.T) {
	const secret = "towerctl-cluster-secret-123456"
	h := hubtest.Start(t, func(c *hub.Config) { c.ClusterSecret = secret })
	session := filepath.Join(t.TempDir(), "session.json")
	tok := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	code, out := run(t, h, session, tok, "cluster", "status")
	if code != 0 || !strings.Contains(out, h.NodeID) || !strings.Contains(out, "voter") || !strings.Contains(out, "leader "+h.NodeID) {
		t.Fatalf("cluster status = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, tok, "cluster", "leave", "no-such-hub"); code != 1 || !strings.Contains(out, `no cluster member "no-such-hub"`) {
		t.Fatalf("leave unknown = %d\n%s", code, out)
	}
	join := []string{"cluster", "join", "--id", "x", "--region", "eu", "--raft", "127.0.0.1:1", "--api", "http://127.0.0.1:2"}
	if code, out := run(t, h, session, map[string]string{"REDFORGE_CLUSTER_SECRET": "wrong-secret-wrong-secret"}, join...); code != 1 || !strings.Contains(out, "HTTP 401") {
		t.Fatalf("join with a wrong secret = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, nil, join...); code != 1 || !strings.Contains(out, "REDFORGE_CLUSTER_SECRET") {
		t.Fatalf("join without a secret = %d\n%s", code, out)
	}
	if code, out := run(t, h, session, tok, "cluster", "join", "--id", "x"); code != 1 || !strings.Contains(out, "missing") {
		t.Fatalf("join with missing flags = %d\n%s", code, out)
	}
}
