package hub

import (
	"github.com/redforge/controltower/hub/models"
)

// openModels builds the model marketplace's gateway (hub/models) and runs
// its background work (decision log batches, published figures,
// benchmarks) until Close.
func (h *Hub) openModels() error {
	meter, err := models.NewPromMeter(h.Metrics.Registry)
	if err != nil {
		return err
	}
	h.Models = models.New(models.Config{HubID: h.NodeID, Logger: h.Logger.With("component", "models")},
		models.Deps{Catalog: h.State, Secrets: h.Seal, KV: h.Coord, Decisions: h.Audit, Meter: meter})
	h.background(h.Models.Run)
	return nil
}
