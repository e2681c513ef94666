package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestDeploymentResumesAfterHubRestart stops the (only) hub while a
// deployment is in DEPLOY with input held in Redis, opens a new hub on
// the same data: as the new Raft leader it resumes the deployment from its
// recorded phase, and every message (before, during and after the
// restart) is processed exactly once, in order.
func TestDeploymentResumesAfterHubRestart(t *testing.T) {
	redis := testenv.Redis(t)
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	h1 := hubtest.Start(t, func(c *hub.Config) { c.Redis, c.MQTTListen = redis, mqttAddr })
	h1.JSON(t, "POST", "/api/instances", map[string]any{"name": "rs"}, 201, nil)
	d1 := bgDeploy(t, h1, map[string]any{"instance": "rs", "flows": bgFlows(t, "bluegreen-v1.json"),
		"drain_timeout": "1s", "rollback_window": "0s"})
	if d1.Status != "succeeded" {
		t.Fatalf("v1: %s %s", d1.Status, d1.Error)
	}

	var mu sync.Mutex
	var outs []hubtest.SeqReply
	collect := func(_ string, payload []byte) {
		var o hubtest.SeqReply
		_ = json.Unmarshal(payload, &o)
		mu.Lock()
		outs = append(outs, o)
		mu.Unlock()
	}
	unsub, err := h1.Bus.Subscribe(context.Background(), "redforge/out/rs", 1, collect)
	if err != nil {
		t.Fatal(err)
	}
	seq := 0
	publish := func(h *hubtest.Hub, n int) {
		for range n {
			seq++
			if err := h.Bus.Publish(context.Background(), "redforge/in/rs/x", fmt.Appendf(nil, `{"seq":%d}`, seq), 1, false); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	replies := func(n int) func() error {
		return func() error {
			mu.Lock()
			defer mu.Unlock()
			if len(outs) < n {
				return fmt.Errorf("%d of %d replies", len(outs), n)
			}
			return nil
		}
	}
	publish(h1, 50)
	testenv.WaitFor(t, 20*time.Second, "blue's replies", replies(50))

	var d bgDeployment
	h1.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "rs", "flows": bgFlows(t, "bluegreen-v2.json"),
		"drain_timeout": "20s", "rollback_window": "0s"}, 201, &d)
	testenv.WaitFor(t, 30*time.Second, "deployment in DEPLOY", func() error {
		h1.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		if d.Phase != "DEPLOY" {
			return fmt.Errorf("phase %s", d.Phase)
		}
		return nil
	})
	publish(h1, 50) // held
	unsub()
	cfg := h1.Config
	if err := h1.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("hub stopped in %s with deployment %s at %d%%", d.Phase, d.ID, d.Progress)

	h2 := hub.New(cfg, "test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := h2.Open(ctx); err != nil {
		t.Fatalf("reopen hub: %v", err)
	}
	t.Cleanup(func() { _ = h2.Close() })
	th2 := &hubtest.Hub{Hub: h2, URL: h2.URL()}
	th2.AdminToken = th2.Login(t, "admin", hubtest.AdminPassword)
	if _, err := h2.Bus.Subscribe(context.Background(), "redforge/out/rs", 1, collect); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "new hub leads", func() error {
		if !h2.Raft.IsLeader() {
			return fmt.Errorf("raft %s", h2.Raft.State())
		}
		return nil
	})
	publish(th2, 50) // held by the new leader until RESUME, or forwarded after it
	testenv.WaitFor(t, 2*time.Minute, "the resumed deployment to finish", func() error {
		th2.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		if d.Status == "running" || d.Status == "pending" {
			return fmt.Errorf("%s %s %d%%", d.Status, d.Phase, d.Progress)
		}
		return nil
	})
	if d.Status != "succeeded" {
		t.Fatalf("resumed deployment: %s %s", d.Status, d.Error)
	}
	publish(th2, 50)
	defer func() { // on failure: which replies are missing, and the resumed deployment's history
		if !t.Failed() {
			return
		}
		mu.Lock()
		got := map[int64]int{}
		for _, o := range outs {
			got[o.Seq]++
		}
		mu.Unlock()
		var missing, dup []int
		for i := 1; i <= seq; i++ {
			switch got[int64(i)] {
			case 0:
				missing = append(missing, i)
			case 1:
			default:
				dup = append(dup, i)
			}
		}
		t.Logf("replies missing for seqs %v, duplicated for %v", missing, dup)
		for _, r := range d.History {
			t.Logf("%s %s %s %s", r.At.Format("15:04:05.000"), r.Phase, r.Status, r.Message)
		}
	}()
	testenv.WaitFor(t, 30*time.Second, "every reply", replies(seq))
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(outs) != seq {
		t.Errorf("%d messages, %d replies", seq, len(outs))
	}
	for i, o := range outs {
		if o.Seq != int64(i+1) {
			t.Fatalf("reply %d has seq %d: lost, duplicated or reordered", i+1, o.Seq)
		}
	}
	if outs[49].Version != "v1" || outs[len(outs)-1].Version != "v2" {
		t.Errorf("versions: seq 50 %s, last %s; want v1 then v2", outs[49].Version, outs[len(outs)-1].Version)
	}
	for _, r := range d.History {
		t.Logf("%s %s %s %s", r.At.Format("15:04:05.000"), r.Phase, r.Status, r.Message)
	}

	// Deleting the logical instance removes its colors too.
	var list struct {
		Instances []instance `json:"instances"`
	}
	th2.JSON(t, "GET", "/api/instances", nil, 200, &list)
	for _, i := range list.Instances {
		if i.Name == "rs" {
			th2.JSON(t, "DELETE", "/api/instances/"+i.ID, nil, 200, nil)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "colors of the deleted instance removed", func() error {
		th2.JSON(t, "GET", "/api/instances", nil, 200, &list)
		if len(list.Instances) != 0 {
			return fmt.Errorf("%d instances left, e.g. %s", len(list.Instances), list.Instances[0].Name)
		}
		return nil
	})
}
