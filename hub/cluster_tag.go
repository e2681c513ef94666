package hub

import (
	"crypto/sha256"
	"encoding/hex"
)

// clusterTag names this cluster: derived from REDFORGE_CLUSTER_SECRET, which
// every hub of a cluster shares (hashed: it appears in broker session
// names), or this hub's id for a hub without one. Runtimes are not
// labelled with it: each hub runs its own allocations with its own
// driver (the docker driver labels containers with the hub's id).
func (h *Hub) clusterTag() string {
	if h.Config.ClusterSecret == "" {
		return h.NodeID
	}
	sum := sha256.Sum256([]byte("redforge fleet owner\x00" + h.Config.ClusterSecret))
	return "cluster-" + hex.EncodeToString(sum[:8])
}

// relaySession names the deploy input relay's persistent session on an
// outside broker: one per cluster (see deploy.DurableBus).
func (h *Hub) relaySession() string {
	return "redforge-relay-" + h.clusterTag()
}
