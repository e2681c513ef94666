package cluster

import (
	"encoding/json"
	"strings"

	"github.com/redforge/controltower/hub/catalog"
)

// hubKeyPrefix prefixes the catalog settings that record each hub of the
// cluster (the directory): replicated with the catalog, so every hub can
// find the leader's API from the leader's raft ID.
const hubKeyPrefix = "cluster.hub/"

// HubInfo is one hub as the cluster knows it.
type HubInfo struct {
	ID     string `json:"id"`
	Region string `json:"region"`
	API    string `json:"api"`  // base URL, e.g. http://10.0.0.1:3000
	Raft   string `json:"raft"` // raft transport address
}

// PutHub returns the command that records h in the directory.
func PutHub(h HubInfo) catalog.Command { return catalog.PutSetting(hubKeyPrefix+h.ID, h) }

// DeleteHub returns the command that drops hub id from the directory.
func DeleteHub(id string) catalog.Command { return catalog.DeleteSetting(hubKeyPrefix + id) }

// Hubs returns the directory as this node's catalog holds it, by ID.
func (n *Node) Hubs() map[string]HubInfo {
	out := map[string]HubInfo{}
	for _, s := range n.state.Settings() {
		if !strings.HasPrefix(s.Key, hubKeyPrefix) {
			continue
		}
		var h HubInfo
		if json.Unmarshal(s.Value, &h) == nil {
			out[h.ID] = h
		}
	}
	return out
}

// HubAPI returns the API URL of hub id from the directory.
func (n *Node) HubAPI(id string) (string, bool) {
	var h HubInfo
	if err := n.state.SettingValue(hubKeyPrefix+id, &h); err != nil || h.API == "" {
		return "", false
	}
	return h.API, true
}
