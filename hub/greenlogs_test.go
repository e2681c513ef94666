package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestFailedGreenKeepsItsLogs: a green whose runtime cannot start (node
// refuses its NODE_OPTIONS) rolls back and leaves the end of its log with
// the deployment, readable by whoever may read the instance's logs and by
// no one else; a deployment whose green did not fail has none (404). The
// logs are a catalog row of their own (no setting is written) and go
// with the instance.
func TestFailedGreenKeepsItsLogs(t *testing.T) {
	h := hubtest.Start(t)
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "gl"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)

	d, err := h.Deploy.Start(t.Context(), deploy.Request{Instance: "gl", Flows: json.RawMessage(`[{"id":"t1","type":"tab","label":"x"}]`),
		Settings: &deploy.Settings{Env: map[string]string{"NODE_OPTIONS": "--no-such-node-option"}}, Username: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 4*time.Minute, "the deployment rolled back", func() error {
		cur, err := h.State.Deployment(d.ID)
		if err != nil {
			return err
		}
		if cur.Status != catalog.DeploymentRolledBack {
			return fmt.Errorf("%s at %s: %s", cur.Status, cur.Phase, cur.Error)
		}
		return nil
	})

	var gl deploy.GreenLogs
	h.JSON(t, "GET", "/api/deployments/"+d.ID+"/logs", nil, 200, &gl)
	if gl.DeploymentID != d.ID || !strings.HasPrefix(gl.Green, "gl.") || len(gl.Replicas) == 0 {
		t.Fatalf("green logs %+v", gl)
	}
	r := gl.Replicas[0]
	if r.Error != "" || len(r.Lines) == 0 || len(r.Lines) > deploy.GreenLogLines {
		t.Fatalf("replica log: error %q, %d lines", r.Error, len(r.Lines))
	}
	if all := strings.Join(r.Lines, "\n"); !strings.Contains(all, "no-such-node-option") {
		t.Fatalf("the kept log does not say why green failed:\n%s", all)
	}
	if _, err := h.State.Instance(gl.Green); err == nil {
		t.Fatalf("green %s outlived the rollback", gl.Green)
	}
	if row, err := h.State.GreenLogs(d.ID); err != nil || row.InstanceID != inst.ID {
		t.Fatalf("the catalog's green logs row: %+v %v", row, err)
	}
	for _, st := range h.State.Settings() {
		if strings.HasPrefix(st.Key, "deploy/greenlogs/") {
			t.Fatalf("the green logs were written to the setting %s", st.Key)
		}
	}

	viewer := h.CreateUser(t, "viewer", "VIEWER")
	if code, body := h.Do(t, "GET", "/api/deployments/"+d.ID+"/logs", viewer, nil); code != http.StatusOK {
		t.Fatalf("a VIEWER (who may read instance logs): %d %s", code, body)
	}
	var mtok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "prom", "role": "VIEWER", "scope": "metrics"}, 201, &mtok)
	if code, body := h.Do(t, "GET", "/api/deployments/"+d.ID+"/logs", mtok.Token, nil); code != http.StatusForbidden {
		t.Fatalf("a metrics token (which may not read logs): %d %s", code, body)
	}
	if code, _ := h.Do(t, "GET", "/api/deployments/"+d.ID+"/logs", "", nil); code != http.StatusUnauthorized {
		t.Fatalf("without a token: %d", code)
	}
	wantField(t, h, "GET", "/api/deployments/does-not-exist/logs", nil, 404, "")

	// A deployment whose green did not fail keeps no logs.
	ok, err := h.Deploy.Start(t.Context(), deploy.Request{Instance: "gl", Flows: json.RawMessage(`[{"id":"t2","type":"tab","label":"y"}]`),
		RollbackWindow: -1, Username: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 4*time.Minute, "the second deployment succeeded", func() error {
		cur, err := h.State.Deployment(ok.ID)
		if err != nil {
			return err
		}
		if cur.Status != catalog.DeploymentSucceeded {
			return fmt.Errorf("%s at %s: %s", cur.Status, cur.Phase, cur.Error)
		}
		return nil
	})
	wantField(t, h, "GET", "/api/deployments/"+ok.ID+"/logs", nil, 404, "")

	// Deleting the instance deletes the logs kept with its deployments.
	h.JSON(t, "DELETE", "/api/instances/"+inst.ID, nil, 200, nil)
	testenv.WaitFor(t, 30*time.Second, "the green logs went with the instance", func() error {
		if _, err := h.State.GreenLogs(d.ID); !errors.Is(err, catalog.ErrNotFound) {
			return fmt.Errorf("green logs of the deleted instance's deployment: %v", err)
		}
		return nil
	})
	wantField(t, h, "GET", "/api/deployments/"+d.ID+"/logs", nil, 404, "")
}
