package cluster

import (
	"github.com/redforge/controltower/hub/catalog"
)

// HubInfo is one hub as it announces itself when it joins or starts:
// the wire form of a catalog.Hub's addresses.
type HubInfo struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	API    string `json:"api"`  // base URL, e.g. http://10.0.0.1:3000
	Raft   string `json:"raft"` // raft transport address
	// Advertise is the host at which this hub's runtimes are reached.
	Advertise string `json:"advertise,omitempty"`
	// MemoryMB is the memory this hub offers its runtimes (0 = not known).
	MemoryMB int `json:"memory_mb,omitempty"`
}

// PutHub returns the command that records h in the directory (the
// catalog's hubs table) and marks it up, unless it is draining.
func PutHub(h HubInfo) catalog.Command {
	return catalog.RegisterHub(catalog.Hub{ID: h.ID, Region: h.Region, API: h.API, Raft: h.Raft,
		Advertise: h.Advertise, MemoryMB: h.MemoryMB})
}

// DeleteHub returns the command that drops hub id from the directory.
func DeleteHub(id string) catalog.Command { return catalog.DeleteHub(id) }

// Hubs returns the directory as this node's catalog holds it, by ID.
func (n *Node) Hubs() map[string]HubInfo {
	out := map[string]HubInfo{}
	for _, h := range n.state.Hubs() {
		out[h.ID] = HubInfo{ID: h.ID, Region: h.Region, API: h.API, Raft: h.Raft, Advertise: h.Advertise, MemoryMB: h.MemoryMB}
	}
	return out
}

// HubAPI returns the API URL of hub id from the directory.
func (n *Node) HubAPI(id string) (string, bool) {
	h, err := n.state.Hub(id)
	if err != nil || h.API == "" {
		return "", false
	}
	return h.API, true
}
