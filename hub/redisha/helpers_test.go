package redisha_test

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// flows reads an example flows document from packaging/nodered/flows.
func flows(t testing.TB, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("../../packaging/nodered/flows/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type deployment struct {
	ID       string `json:"id"`
	Phase    string `json:"phase"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
	Held     int64  `json:"held"`
}

// deploy deploys the example flows file to instance "ha" and waits until
// the deployment ends.
func deploy(t testing.TB, h *hubtest.Hub, file string) deployment {
	t.Helper()
	var d deployment
	h.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "ha", "flows": flows(t, file),
		"drain_timeout": "1s", "rollback_window": "0s"}, 201, &d)
	return waitDeployment(t, h, d.ID)
}

// waitDeployment waits until deployment id has ended and returns it.
func waitDeployment(t testing.TB, h *hubtest.Hub, id string) deployment {
	t.Helper()
	var d deployment
	testenv.WaitFor(t, 3*time.Minute, "deployment "+id+" to finish", func() error {
		h.JSON(t, "GET", "/api/deployments/"+id, nil, 200, &d)
		switch d.Status {
		case "succeeded", "rolled_back", "failed":
			return nil
		}
		return fmt.Errorf("%s %s %d%%", d.Status, d.Phase, d.Progress)
	})
	t.Logf("deployment %s: %s %s", id, d.Status, d.Error)
	return d
}
