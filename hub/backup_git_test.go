package hub_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// hasTags fails unless the remote repository has every tag.
func hasTags(dir string, tags ...string) error {
	_, have := testenv.GitLog(dir)
	for _, t := range tags {
		if !strings.Contains("\n"+have, "\n"+t+"\n") {
			return fmt.Errorf("tag %s not pushed (have %q)", t, have)
		}
	}
	return nil
}

// TestDrillInstanceLossAndFlowsFromGit: every deployed flows version is
// committed and tagged by the leader and pushed to a real Git remote (git
// daemon); with the remote down a deployment still goes through and the
// push follows once it is back. Then the instance is lost whole (runtime
// and user dir removed): reconcile brings it back with its flows, and
// towerctl flows restore --tag redeploys a tagged version from Git
// blue-green.
func TestDrillInstanceLossAndFlowsFromGit(t *testing.T) {
	remote := testenv.GitDaemon(t)
	h := hubtest.Start(t, func(c *hub.Config) { c.FlowsGitRemote = remote.URL })
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "gi"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	h.JSON(t, "PUT", "/api/instances/gi/flows", []byte(bgFlows(t, "bluegreen-v1.json")), 200, nil)
	d := bgDeploy(t, h, map[string]any{"instance": "gi", "flows": bgFlows(t, "bluegreen-v2.json"), "drain_timeout": "1s", "rollback_window": "0s"})
	if d.Status != "succeeded" {
		t.Fatalf("deployment: %s %s", d.Status, d.Error)
	}
	testenv.WaitFor(t, time.Minute, "flows versions 1 and 2 tagged in the remote", func() error {
		return hasTags(remote.Dir, "gi/v1", "gi/v2", "deploy/"+d.ID)
	})
	subjects, _ := testenv.GitLog(remote.Dir)
	if !strings.Contains(subjects, "gi: flows version 2 by admin (deployment "+d.ID+")") {
		t.Fatalf("remote log lacks the deployment's commit:\n%s", subjects)
	}

	// The remote goes down: a deployment goes through; the push follows.
	remote.Stop()
	start := time.Now()
	h.JSON(t, "PUT", "/api/instances/gi/flows", []byte(bgFlows(t, "bluegreen-v1.json")), 200, nil)
	if took := time.Since(start); took > 30*time.Second {
		t.Fatalf("a deploy took %v with the Git remote down", took)
	}
	testenv.WaitFor(t, time.Minute, "a failed push, kept pending", func() error {
		var st struct {
			Pending  bool   `json:"push_pending"`
			Failures int    `json:"push_failures"`
			Error    string `json:"push_error"`
		}
		h.JSON(t, "GET", "/api/flows/git", nil, 200, &st)
		if !st.Pending || st.Failures == 0 {
			return fmt.Errorf("status %+v", st)
		}
		return nil
	})
	remote.Start()
	testenv.WaitFor(t, time.Minute, "version 3 pushed once the remote is back", func() error { return hasTags(remote.Dir, "gi/v3") })

	// Instance complete loss: runtime and user dir gone.
	rts, err := h.Driver.List(context.Background())
	if err != nil || len(rts) == 0 {
		t.Fatalf("runtimes: %v %v", rts, err)
	}
	lost := time.Now()
	for _, rt := range rts {
		if err := h.Driver.Remove(context.Background(), rt.InstanceID); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 3*time.Minute, "the lost instance back, serving its flows", func() error {
		code, body, err := get(h.URL + "/i/gi/hello")
		if err != nil || code != 200 || !strings.Contains(body, `"v1"`) {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	t.Logf("instance loss: back serving its flows %v after its runtime and user dir were deleted (RPO 0: its flows are in the catalog and in Git)", time.Since(lost).Round(100*time.Millisecond))

	// Flows from Git: redeploy the tag of version 2 blue-green.
	start = time.Now()
	var res struct {
		Deployment   bgDeployment `json:"deployment"`
		Tag          string       `json:"tag"`
		FlowsVersion int64        `json:"flows_version"`
	}
	h.JSON(t, "POST", "/api/flows/restore", map[string]any{"instance": "gi", "tag": "v2", "drain_timeout": "1s", "rollback_window": "0s"}, 201, &res)
	if res.Tag != "gi/v2" || res.FlowsVersion != 4 {
		t.Fatalf("restore answered %+v", res)
	}
	testenv.WaitFor(t, 3*time.Minute, "the restored tag serving", func() error {
		h.JSON(t, "GET", "/api/deployments/"+res.Deployment.ID, nil, 200, &d)
		if d.Status != "succeeded" {
			return fmt.Errorf("%s %s %s", d.Status, d.Phase, d.Error)
		}
		code, body, err := get(h.URL + "/i/gi/hello")
		if err != nil || code != 200 || !strings.Contains(body, `"v2"`) {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	t.Logf("flow restore from Git (tag gi/v2, blue-green): %v", time.Since(start).Round(100*time.Millisecond))
	wantField(t, h, "POST", "/api/flows/restore", map[string]any{"instance": "gi", "tag": "v99"}, 404, "tag")
	wantField(t, h, "POST", "/api/flows/restore", map[string]any{"instance": "gi"}, 400, "tag")
	wantField(t, h, "POST", "/api/flows/restore", map[string]any{"tag": "v1"}, 400, "instance")
}
