package redisha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/hub"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

const password = "redis-s3cret-pw"

// TestDeploymentRidesRedisFailover SIGKILLs the Redis master while a
// blue-green deployment holds the instance's input (DEPLOY) under 100 MQTT
// msg/s: the deployment succeeds (no rollback), every message is processed
// exactly once and in order, and /api/health shows coord degraded (with
// the reason, without the password) during the outage, then ok.
func TestDeploymentRidesRedisFailover(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: password})
	h := hubtest.Start(t, func(c *hub.Config) { c.Redis = cl.URL })
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "ha"}, 201, nil)
	if d := deploy(t, h, "bluegreen-v1.json"); d.Status != "succeeded" {
		t.Fatalf("v1: %s %s", d.Status, d.Error)
	}
	load := hubtest.StartSeqLoad(t, h, "ha", 100, 0)
	load.WaitReplies(t, 100)

	var d deployment
	h.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "ha", "flows": flows(t, "bluegreen-v2.json"),
		"drain_timeout": "2s", "rollback_window": "0s"}, 201, &d)
	testenv.WaitFor(t, 60*time.Second, "the deployment to hold input (DEPLOY)", func() error {
		h.JSON(t, "GET", "/api/deployments/"+d.ID, nil, 200, &d)
		if d.Phase != "DEPLOY" || d.Held == 0 {
			return fmt.Errorf("%s %s, %d held", d.Status, d.Phase, d.Held)
		}
		return nil
	})
	old, killed := cl.KillMaster(t)
	t.Logf("master %s SIGKILLed in %s with %d messages held", old, d.Phase, d.Held)

	reason := waitCoord(t, h, "degraded", 15*time.Second)
	if strings.Contains(reason, password) {
		t.Errorf("health shows the Redis password: %s", reason)
	}
	t.Logf("health during the outage: coord degraded: %s", reason)
	master, took := cl.Failover(t, old, killed)
	waitCoord(t, h, "ok", 30*time.Second)
	t.Logf("Sentinel promoted %s after %s; hub's coord ok after %s", master, took.Round(time.Millisecond),
		time.Since(killed).Round(time.Millisecond))

	d = waitDeployment(t, h, d.ID)
	if d.Status != "succeeded" {
		t.Errorf("deployment through the failover: %s %s (want succeeded)", d.Status, d.Error)
	}
	outs, sent := load.Finish(t, 60*time.Second)
	lost, dup := hubtest.CheckSeqReplies(t, outs, sent, "v1", "v2")
	t.Logf("load: %d messages sent, %d replies, %d lost, %d duplicated", sent, len(outs), lost, dup)
}

// TestConsoleEventsResumeAfterRedisFailover subscribes a WebSocket console
// to a hub whose events from other hubs come through Redis pub/sub, and
// SIGKILLs the master: events published by another hub (a second Coord on
// the same Sentinels, as a peer hub publishes them) reach the console
// again once Sentinel has promoted a replica.
func TestConsoleEventsResumeAfterRedisFailover(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: password})
	h := hubtest.Start(t, func(c *hub.Config) { c.Redis = cl.URL })
	url := "ws" + strings.TrimPrefix(h.URL, "http") + "/api/ws"
	conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + h.AdminToken}})
	if err != nil {
		t.Fatalf("websocket: %v (%v)", err, resp)
	}
	defer conn.Close()
	var mu sync.Mutex
	seen := map[string]bool{}
	go func() {
		for {
			var e events.Event
			if err := conn.ReadJSON(&e); err != nil {
				return
			}
			if e.Type == "redisha.probe" {
				var m string
				_ = json.Unmarshal(e.Data, &m)
				mu.Lock()
				seen[m] = true
				mu.Unlock()
			}
		}
	}()

	peer := coordredis.New(cl.URL)
	if err := peer.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	// Pub/sub is at most once: the peer publishes until the console has
	// the event (the hub's subscription may be being re-established).
	deliver := func(marker string, timeout time.Duration) {
		t.Helper()
		b, _ := json.Marshal([]events.Event{{Type: "redisha.probe", Time: time.Now().UTC(),
			Data: json.RawMessage(fmt.Sprintf("%q", marker)), Origin: "peer-hub"}})
		testenv.WaitFor(t, timeout, "event "+marker+" on the console", func() error {
			mu.Lock()
			ok := seen[marker]
			mu.Unlock()
			if ok {
				return nil
			}
			return peer.Publish(context.Background(), "redforge:events", b)
		})
	}
	deliver("before", 10*time.Second)
	old, killed := cl.KillMaster(t)
	master, took := cl.Failover(t, old, killed)
	deliver("after", 30*time.Second)
	t.Logf("master %s killed; Sentinel promoted %s after %s; console events again after %s",
		old, master, took.Round(time.Millisecond), time.Since(killed).Round(time.Millisecond))
}

// TestHubStartNoSentinelMaster starts a hub on Sentinels that answer but
// know no master of the name asked: Open fails with one line naming every
// Sentinel tried, and neither it nor the log shows the password.
func TestHubStartNoSentinelMaster(t *testing.T) {
	cl := testenv.RedisSentinel(t, testenv.SentinelOptions{Password: password})
	cfg := hub.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.MQTTListen = "127.0.0.1:0"
	cfg.Driver = "process"
	cfg.AdminPassword = hubtest.AdminPassword
	cfg.Redis = strings.Replace(cl.URL, "/"+cl.Master+"/", "/othermaster/", 1)
	var logs bytes.Buffer
	var logMu sync.Mutex
	h := hub.New(cfg, "test", slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := h.Open(ctx)
	_ = h.Close()
	if err == nil {
		t.Fatal("hub started with no Redis master known")
	}
	msg := err.Error()
	t.Logf("hub: %s", msg)
	if strings.Contains(msg, "\n") {
		t.Errorf("error spans lines: %q", msg)
	}
	for _, s := range cl.Sentinels {
		if !strings.Contains(msg, s) {
			t.Errorf("error does not name sentinel %s", s)
		}
	}
	if !strings.Contains(msg, `no Redis master known for "othermaster"`) {
		t.Errorf("error does not say that no master is known")
	}
	logMu.Lock()
	defer logMu.Unlock()
	if strings.Contains(msg, password) || strings.Contains(logs.String(), password) {
		t.Errorf("the password is in the error or the log")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitCoord waits until /api/health reports coord with status and returns
// its error text.
func waitCoord(t *testing.T, h *hubtest.Hub, status string, timeout time.Duration) string {
	t.Helper()
	var reason string
	testenv.WaitFor(t, timeout, "coord "+status+" in /api/health", func() error {
		var res struct {
			Status     string `json:"status"`
			Components map[string]struct {
				Status string `json:"status"`
				Error  string `json:"error"`
			} `json:"components"`
		}
		resp, err := http.Get(h.URL + "/api/health")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
			return err
		}
		c := res.Components["coord"]
		if c.Status != status {
			return fmt.Errorf("coord %s (%s)", c.Status, c.Error)
		}
		if status == "degraded" && (res.Status == "fail" || resp.StatusCode != 200) {
			return fmt.Errorf("hub %s (%d) while coord is only degraded", res.Status, resp.StatusCode)
		}
		reason = c.Error
		return nil
	})
	return reason
}
