package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/internal/testenv"
)

type dfDeployment struct {
	ID       string `json:"id"`
	Phase    string `json:"phase"`
	Status   string `json:"status"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
	Blue     string `json:"blue"`
	Green    string `json:"green"`
	Held     int64  `json:"held"`
	History  []struct {
		Phase   string    `json:"phase"`
		Status  string    `json:"status"`
		At      time.Time `json:"at"`
		Message string    `json:"message"`
	} `json:"history"`
}

func getDeployment(h *nsHub, token, id string) (dfDeployment, error) {
	var d dfDeployment
	code, b, err := h.call("GET", "/api/deployments/"+id, token, nil)
	if err != nil {
		return d, err
	}
	if code != 200 {
		return d, fmt.Errorf("GET deployment on %s: %d %s", h.id, code, b)
	}
	return d, json.Unmarshal(b, &d)
}

func startDeployment(t *testing.T, h *nsHub, token, flowsFile, drain string) dfDeployment {
	t.Helper()
	flows, err := os.ReadFile("../../packaging/nodered/flows/" + flowsFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dfDeployment
	var code int
	var b []byte
	// A follower checks the instance in its own replica of the catalog,
	// which may not have the instance created a moment ago yet.
	testenv.WaitFor(t, 30*time.Second, "POST /api/deployments "+flowsFile, func() error {
		code, b, err = h.call("POST", "/api/deployments", token, map[string]any{"instance": "bg", "flows": json.RawMessage(flows),
			"drain_timeout": drain, "rollback_window": "0s"})
		if err == nil && (code == 404 || code == 503) {
			return fmt.Errorf("%d %s", code, b)
		}
		return nil
	})
	if err != nil || code != 201 || json.Unmarshal(b, &d) != nil {
		t.Fatalf("POST /api/deployments %s: %d %s %v", flowsFile, code, b, err)
	}
	return d
}

// waitDeploymentDone polls until d has finished for good: rolled back,
// failed, or succeeded with its blue removed (progress 100).
func waitDeploymentDone(t *testing.T, h *nsHub, token, id string, timeout time.Duration) dfDeployment {
	t.Helper()
	var d dfDeployment
	testenv.WaitFor(t, timeout, "deployment "+id+" to finish", func() error {
		var err error
		if d, err = getDeployment(h, token, id); err != nil {
			return err
		}
		if d.Status == "rolled_back" || d.Status == "failed" || (d.Status == "succeeded" && d.Progress == 100) {
			return nil
		}
		return fmt.Errorf("%s %s %d%% held %d", d.Status, d.Phase, d.Progress, d.Held)
	})
	return d
}

type instanceRow struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	DesiredState string `json:"desired_state"`
	Observed     struct {
		Status string `json:"status"`
		Port   int    `json:"port"`
	} `json:"observed"`
}

func listInstances(h *nsHub, token string) ([]instanceRow, error) {
	code, b, err := h.call("GET", "/api/instances?consistent=1&colors=1", token, nil)
	if err != nil || code != 200 {
		return nil, fmt.Errorf("list instances on %s: %d %s %v", h.id, code, b, err)
	}
	var out struct {
		Instances []instanceRow `json:"instances"`
	}
	return out.Instances, json.Unmarshal(b, &out)
}

// bgLoad is the input of the logical instance bg while it is deployed:
// MQTT messages {"seq":n} to redforge/in/bg/x on the shared broker (QoS
// 1, each waited for), the replies on redforge/out/bg, and HTTP GETs of
// /i/bg/hello through one hub's proxy.
type bgLoad struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	acked    int64 // messages 1..acked were PUBACKed by the broker
	pubErrs  []string
	replies  []bgReply
	httpOK   int
	httpFail []string
	lastHTTP string
}

type bgReply struct {
	Seq       int64  `json:"seq"`
	Version   string `json:"version"`
	Instance  string `json:"instance"`
	Processed int64  `json:"processed"` // the runtime's count of messages processed
}

func startBGLoad(t *testing.T, mqttURL string, front *nsHub, msgEvery, reqEvery time.Duration) *bgLoad {
	t.Helper()
	l := &bgLoad{stop: make(chan struct{})}
	broker := mqttURL
	sub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("bg-replies").SetOrderMatters(true).SetAutoReconnect(true))
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the reply subscriber: %v", tok.Error())
	}
	if tok := sub.Subscribe("redforge/out/bg", 1, func(_ paho.Client, m paho.Message) {
		var r bgReply
		if err := json.Unmarshal(m.Payload(), &r); err != nil {
			t.Errorf("reply %s: %v", m.Payload(), err)
			return
		}
		l.mu.Lock()
		l.replies = append(l.replies, r)
		l.mu.Unlock()
	}); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe replies: %v", tok.Error())
	}
	t.Cleanup(func() { sub.Disconnect(0) })
	pub := paho.NewClient(paho.NewClientOptions().AddBroker(broker).SetClientID("bg-input").SetAutoReconnect(true))
	if tok := pub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the publisher: %v", tok.Error())
	}
	t.Cleanup(func() { pub.Disconnect(0) })
	l.wg.Go(func() { // the pace of the load, not a synchronisation
		tick := time.NewTicker(msgEvery)
		defer tick.Stop()
		for seq := int64(1); ; seq++ {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			tok := pub.Publish("redforge/in/bg/x", 1, false, fmt.Sprintf(`{"seq":%d}`, seq))
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				l.mu.Lock()
				l.pubErrs = append(l.pubErrs, fmt.Sprintf("seq %d: %v", seq, tok.Error()))
				l.mu.Unlock()
				return
			}
			l.mu.Lock()
			l.acked = seq
			l.mu.Unlock()
		}
	})
	httpc := &http.Client{Timeout: 20 * time.Second}
	l.wg.Go(func() {
		tick := time.NewTicker(reqEvery)
		defer tick.Stop()
		for {
			select {
			case <-l.stop:
				return
			case <-tick.C:
			}
			resp, err := httpc.Get(front.api + "/i/bg/hello")
			var body []byte
			if err == nil {
				body, _ = io.ReadAll(resp.Body)
				resp.Body.Close()
			}
			l.mu.Lock()
			switch {
			case err != nil:
				l.httpFail = append(l.httpFail, err.Error())
			case resp.StatusCode != 200:
				l.httpFail = append(l.httpFail, fmt.Sprintf("%d %s", resp.StatusCode, body))
			default:
				l.httpOK++
				l.lastHTTP = string(body)
			}
			l.mu.Unlock()
		}
	})
	return l
}

func (l *bgLoad) end() {
	close(l.stop)
	l.wg.Wait()
}

// TestLeaderKilledMidDeployment: three hubs, each on its own host (one
// shared Postgres store, Redis for coordination and Mosquitto as the
// bus), run the logical instance bg (Node-RED 4.1 with the blue-green
// example flows, process driver). Under MQTT input (100 msg/s) and HTTP
// load through a surviving hub's /i/bg/ proxy (50 req/s), a v1 → v2
// blue-green deployment starts; the leader's host dies (every process
// on it) while the deployment is in DEPLOY. The new leader finishes the
// deployment (or rolls it back): every PUBACKed input message is
// processed exactly once, in order; no HTTP request fails; exactly one
// color is live and no replica is left for a row that is gone.
//
// The leader is drained first, so that it runs no replica of bg: what is
// under test is the orchestrator and the input relay moving to a new
// leader. A replica that dies with its host is covered by
// TestMQTTConsumerHostLoss and TestHostLossUnderLoad: its input is
// delivered to its replacement (at least once: a message it processed
// but could not acknowledge is processed again).
func TestLeaderKilledMidDeployment(t *testing.T) {
	c := newNSCluster(t, nsOpts{redis: true}, "us", "us", "us")
	token := c.token
	leader := c.leader()
	var followers []*nsHub
	for _, h := range c.hubs {
		if h != leader {
			followers = append(followers, h)
		}
	}
	front := followers[0] // the load's hub: it survives
	front.must("POST", "/api/hubs/"+leader.id+"/drain", token, nil, 202, nil)
	front.must("POST", "/api/instances", token, map[string]any{"name": "bg", "region": "us"}, 201, nil)
	d1 := startDeployment(t, front, token, "bluegreen-v1.json", "5s")
	d1 = waitDeploymentDone(t, front, token, d1.ID, 5*time.Minute)
	if d1.Status != "succeeded" {
		t.Fatalf("v1 deployment: %s %s", d1.Status, d1.Error)
	}
	load := startBGLoad(t, c.bus, front, 10*time.Millisecond, 20*time.Millisecond)
	testenv.WaitFor(t, 30*time.Second, "v1 replies under load", func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		if len(load.replies) < 100 || load.httpOK < 20 {
			return fmt.Errorf("%d replies, %d HTTP answers", len(load.replies), load.httpOK)
		}
		return nil
	})

	d2 := startDeployment(t, front, token, "bluegreen-v2.json", "30s")
	testenv.WaitFor(t, 2*time.Minute, "deployment in DEPLOY", func() error {
		d, err := getDeployment(front, token, d2.ID)
		if err != nil {
			return err
		}
		if d.Phase != "DRAIN" && d.Phase != "DEPLOY" && d.Phase != "" {
			t.Fatalf("deployment reached %s (%s) before the kill", d.Phase, d.Status)
		}
		if d.Phase != "DEPLOY" || d.Progress < 20 { // green row created, its runtime starting
			return fmt.Errorf("%s %d%%", d.Phase, d.Progress)
		}
		d2 = d
		return nil
	})
	leader.kill()
	killedAt := time.Now()
	t.Logf("leader %s killed with its host, deployment %s in %s at %d%% (%d input messages held)", leader.id, d2.ID, d2.Phase, d2.Progress, d2.Held)

	d2 = waitDeploymentDone(t, front, token, d2.ID, 5*time.Minute)
	t.Logf("deployment %s after the failover: %s in %s", d2.Status, time.Since(killedAt).Round(time.Millisecond), d2.Error)
	for _, r := range d2.History {
		t.Logf("  %s %-7s %-11s %s", r.At.Format("15:04:05.000"), r.Phase, r.Status, r.Message)
	}
	for _, h := range followers { // the new leader's relay: redeliveries it recognised
		for _, line := range strings.Split(h.logs.String(), "\n") {
			if strings.Contains(line, "already relayed; skipped") {
				t.Logf("%s: %s", h.id, line)
			}
		}
	}
	if d2.Status != "succeeded" && d2.Status != "rolled_back" {
		t.Fatalf("deployment %s: %s", d2.Status, d2.Error)
	}
	wantVersion, live := "v2", d2.Green
	if d2.Status == "rolled_back" {
		wantVersion, live = "v1", d2.Blue
	}
	testenv.WaitFor(t, 30*time.Second, "HTTP answers from the live color", func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		if !strings.Contains(load.lastHTTP, `"version":"`+wantVersion+`"`) {
			return fmt.Errorf("last answer %s", load.lastHTTP)
		}
		return nil
	})
	load.end()

	load.mu.Lock()
	acked, pubErrs := load.acked, load.pubErrs
	httpOK, httpFail := load.httpOK, load.httpFail
	load.mu.Unlock()
	if len(pubErrs) > 0 {
		t.Fatalf("publishes to the shared broker failed: %v", pubErrs)
	}
	testenv.WaitFor(t, 60*time.Second, "a reply to every PUBACKed message", func() error {
		load.mu.Lock()
		defer load.mu.Unlock()
		if int64(len(load.replies)) < acked {
			return fmt.Errorf("%d replies of %d messages", len(load.replies), acked)
		}
		return nil
	})
	load.mu.Lock()
	replies := append([]bgReply(nil), load.replies...)
	load.mu.Unlock()
	for i, r := range replies {
		if r.Seq != int64(i+1) {
			lo, hi := max(0, i-3), min(len(replies), i+3)
			t.Fatalf("reply %d is seq %d (%s %s): lost, duplicated or reordered (%d messages, %d replies); replies %d..%d: %+v",
				i+1, r.Seq, r.Version, r.Instance, acked, len(replies), lo+1, hi, replies[lo:hi])
		}
	}
	if int64(len(replies)) != acked {
		t.Errorf("%d replies for %d messages", len(replies), acked)
	}
	if last := replies[len(replies)-1]; last.Version != wantVersion {
		t.Errorf("last reply from %s %s, want %s", last.Instance, last.Version, wantVersion)
	}
	if len(httpFail) > 0 {
		t.Errorf("%d of %d HTTP requests through %s failed, e.g. %s", len(httpFail), httpOK+len(httpFail), front.id, httpFail[0])
	}

	// Consistent final state: the logical row and one color (the live
	// one) in the catalog, the live color's replica the only one running
	// (the logical row's own stays stopped), and no replica placed for a
	// row that is gone.
	testenv.WaitFor(t, 60*time.Second, "exactly one live color and no orphan", func() error {
		rows, err := listInstances(front, token)
		if err != nil {
			return err
		}
		var colors []string
		for _, r := range rows {
			if strings.HasPrefix(r.Name, "bg.") {
				colors = append(colors, r.ID)
			}
		}
		if len(colors) != 1 || colors[0] != live {
			return fmt.Errorf("color rows %v, want only %s", colors, live)
		}
		v, err := c.instance(front, "bg")
		if err != nil {
			return err
		}
		if len(v.Allocations) != 1 || v.Allocations[0].Status != "running" || v.Allocations[0].Hub == leader.id {
			return fmt.Errorf("replicas of the live color: %+v", v.Allocations)
		}
		var hubs []hubView
		for _, hv := range c.hubsView(front) {
			if hv.ID != leader.id {
				hubs = append(hubs, hv)
			}
		}
		running := 0
		for _, hv := range hubs {
			running += hv.Running
		}
		if running != 1 {
			return fmt.Errorf("%d replicas running on the live hubs, want only the live color's: %+v", running, hubs)
		}
		return nil
	})
	t.Logf("%d messages, each processed once and in order (%d replies, last from %s); %d HTTP requests through %s, %d failed",
		acked, len(replies), replies[len(replies)-1].Version, httpOK+len(httpFail), front.id, len(httpFail))
}
