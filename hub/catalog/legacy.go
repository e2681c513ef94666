package catalog

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Settings keys under which format-1 snapshots kept what now has typed
// tables. A restore of such a snapshot moves the rows (upgradeLegacySettings).
const (
	legacyHubPrefix  = "cluster.hub/"
	legacyMovePrefix = "regions.move/"
	legacyLivePrefix = "deploy/live/"
)

// upgradeLegacySettings moves the settings that format 1 used for the hub
// directory, regional moves and live colors into the hubs and moves tables
// and the instances' Live field, keeping their indexes. A move or live
// pointer whose instance is gone is dropped.
func upgradeLegacySettings(w *write) error {
	for _, st := range list[Setting](w.tx, nil, tableSettings, "id") {
		switch {
		case strings.HasPrefix(st.Key, legacyHubPrefix):
			h := &Hub{State: HubUp, Indexes: st.Indexes}
			if err := json.Unmarshal(st.Value, h); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if h.ID == "" {
				h.ID = strings.TrimPrefix(st.Key, legacyHubPrefix)
			}
			mustBeOK(w.tx.Insert(tableHubs, h))
		case strings.HasPrefix(st.Key, legacyMovePrefix):
			m := &Move{Indexes: st.Indexes}
			if err := json.Unmarshal(st.Value, m); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if checkMove(w, m) == nil {
				mustBeOK(w.tx.Insert(tableMoves, m))
			}
		case strings.HasPrefix(st.Key, legacyLivePrefix):
			var live string
			if err := json.Unmarshal(st.Value, &live); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if inst := first[Instance](w.tx, nil, tableInstances, "id", strings.TrimPrefix(st.Key, legacyLivePrefix)); inst != nil {
				c := inst.clone()
				c.Live = live
				mustBeOK(w.tx.Insert(tableInstances, c))
			}
		default:
			continue
		}
		mustBeOK(w.tx.Delete(tableSettings, &st))
	}
	return nil
}
