package hub

import (
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/instances"
)

// logicalInstanceID is the id of the logical instance a catalog row
// serves: its own id, or for a deployment's color row the id of the
// instance it was cloned from (the row's own id if that is gone). The
// fleet keys status history by it (fleet.Manager.RecordHistory).
func (h *Hub) logicalInstanceID(inst catalog.Instance) string {
	if !instances.IsColor(inst) {
		return inst.ID
	}
	if l, err := h.State.InstanceByName(instances.LogicalName(inst.Name)); err == nil {
		return l.ID
	}
	return inst.ID
}
