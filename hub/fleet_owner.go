package hub

import (
	"crypto/sha256"
	"encoding/hex"
)

// fleetOwner is the owner the docker driver labels its containers with
// (and lists, inspects and adopts by). Instances belong to the cluster,
// not to the hub that happened to lead when they were created: the
// leader's fleet manager drives all of them, so after a failover the new
// leader must adopt the containers the dead one started on the shared
// Docker host instead of failing to create them again under their taken
// names. Hubs of one cluster share REDFORGE_CLUSTER_SECRET, so the owner
// is derived from it (hashed: the label is readable by anyone with
// access to the Docker host); a hub without one owns its fleet alone.
func (h *Hub) fleetOwner() string {
	if h.Config.ClusterSecret == "" {
		return h.NodeID
	}
	sum := sha256.Sum256([]byte("redforge fleet owner\x00" + h.Config.ClusterSecret))
	return "cluster-" + hex.EncodeToString(sum[:8])
}

// relaySession names the deploy input relay's persistent session on an
// outside broker: one per cluster (see deploy.DurableBus).
func (h *Hub) relaySession() string {
	return "redforge-relay-" + h.fleetOwner()
}
