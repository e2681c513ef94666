package hub_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestPlacementBadInput: replicas out of range, scaling a missing
// instance and draining the last hub of a region with instances on it
// are refused with the field or reason named, and change nothing.
func TestPlacementBadInput(t *testing.T) {
	h := hubtest.Start(t)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "placed", "desired_state": "stopped"}, 201, &inst)
	// The drain refusal below needs the replica on the hub: the scheduler
	// places it just after the create answers.
	placed(t, h, "placed")
	for _, c := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/api/instances", `{"name":"zero","replicas":0}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances", `{"name":"ten","replicas":10}`, 400, `"field":"replicas"`},
		{"PATCH", "/api/instances/placed", `{"replicas":10}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances/placed/scale", `{"replicas":0}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances/placed/scale", `{"replicas":10}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances/placed/scale", `{}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances/placed/scale", `{"replicas":"two"}`, 400, `"field":"replicas"`},
		{"POST", "/api/instances/missing/scale", `{"replicas":2}`, 404, `not_found`},
		{"POST", "/api/hubs/" + h.NodeID + "/drain", ``, 409, `last_hub_of_region`},
		{"POST", "/api/hubs/nope/drain", ``, 404, `"field":"id"`},
	} {
		var body []byte
		if c.body != "" {
			body = []byte(c.body)
		}
		code, b := h.Do(t, c.method, c.path, h.AdminToken, body)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("%s %s %s = %d %s, want %d with %s", c.method, c.path, c.body, code, b, c.code, c.want)
		}
	}
	var list struct {
		Instances []instance `json:"instances"`
	}
	h.JSON(t, "GET", "/api/instances", nil, 200, &list)
	if len(list.Instances) != 1 {
		t.Fatalf("refused creates left instances: %+v", list.Instances)
	}
	var got struct {
		Replicas int `json:"replicas"`
	}
	h.JSON(t, "GET", "/api/instances/placed", nil, 200, &got)
	if got.Replicas != 1 {
		t.Fatalf("refused scale changed replicas to %d", got.Replicas)
	}
	var hubs struct {
		Hubs []struct {
			ID       string `json:"id"`
			Draining bool   `json:"draining"`
		} `json:"hubs"`
	}
	h.JSON(t, "GET", "/api/hubs", nil, 200, &hubs)
	if len(hubs.Hubs) != 1 || hubs.Hubs[0].Draining {
		t.Fatalf("refused drain changed the hub: %+v", hubs.Hubs)
	}
}

// TestScaleOnOneHub: scaling to two replicas on a hub alone places both on
// it (no other hub to spread to), both run, and scaling back removes the
// second.
func TestScaleOnOneHub(t *testing.T) {
	h := hubtest.Start(t)
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "scaled", "resources": map[string]any{"memory_mb": 256}}, 201, nil)
	h.JSON(t, "POST", "/api/instances/scaled/scale", map[string]any{"replicas": 2}, 202, nil)
	running := func(n int) func() error {
		return func() error {
			var inst instance
			h.JSON(t, "GET", "/api/instances/scaled", nil, 200, &inst)
			ok := 0
			for _, a := range inst.Allocations {
				if a.Status == "running" {
					ok++
				}
			}
			if ok != n || len(inst.Allocations) != n {
				b, _ := json.Marshal(inst.Allocations)
				return fmt.Errorf("%d of %d running: %s", ok, len(inst.Allocations), b)
			}
			return nil
		}
	}
	testenv.WaitFor(t, 2*time.Minute, "two replicas running", running(2))
	rts, err := h.Driver.List(t.Context())
	if err != nil || len(rts) != 2 {
		t.Fatalf("runtimes %+v %v, want two", rts, err)
	}
	h.JSON(t, "POST", "/api/instances/scaled/scale", map[string]any{"replicas": 1}, 202, nil)
	testenv.WaitFor(t, time.Minute, "back to one replica", running(1))
	testenv.WaitFor(t, time.Minute, "the second runtime removed", func() error {
		rts, err := h.Driver.List(t.Context())
		if err != nil || len(rts) != 1 {
			return fmt.Errorf("%d runtimes %v", len(rts), err)
		}
		return nil
	})
}
