package edgesync_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

// TestDesiredConfigReachesEdgeNodeRED: an operator sets an edge's desired
// flows through the API; the real redforge-edge process pulls them, deploys
// them to its real local Node-RED, and reports the applied version and its
// backlog per stream in heartbeats, which GET /api/edges/:id shows. Bad
// flows are refused with 400 naming the node, before anything is stored.
func TestDesiredConfigReachesEdgeNodeRED(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Node-RED and an edge process")
	}
	th := startHub(t, testenv.Postgres(t))
	nr := testenv.NodeRED(t)
	bin := buildEdge(t, runtime.GOARCH, "")
	dataDir := t.TempDir()
	edge := startEdge(t, nil, bin, dataDir, "--hub", th.URL(), "--token", th.token(t), "--heartbeat-interval", "1s", "--nodered-url", nr.URL)
	edge.WaitMQTT(t, 60*time.Second)
	edgeID := edgeIDOf(t, dataDir, 60*time.Second)
	admin := login(t, th)
	url := th.URL() + "/api/edges/" + edgeID + "/config"

	if code, resp := call(t, http.MethodGet, url, admin, "", nil); code != 200 || !strings.Contains(string(resp), `"version":0`) {
		t.Fatalf("config before any is set: %d %s", code, resp)
	}
	for _, c := range []struct{ body, want string }{
		{`{"flows":[{"id":"a","type":"tab"},{"id":"a","type":"inject","z":"a"}]}`, `duplicates the id`},
		{`{"flows":[{"id":"n1","type":"inject","wires":[["ghost"]]}]}`, `ghost`},
		{`{"flows":{"id":"x"}}`, `flows`},
		{`{}`, `flows`},
		{`{"flows":[],"settings":[1]}`, `settings`},
		{`{"flows":[],"extra":1}`, `extra`},
	} {
		code, resp := call(t, http.MethodPut, url, admin, "application/json", []byte(c.body))
		if code != 400 || !strings.Contains(string(resp), c.want) {
			t.Errorf("PUT %s: %d %s, want 400 naming %s", c.body, code, resp, c.want)
		}
	}
	if code, _ := call(t, http.MethodPut, th.URL()+"/api/edges/edge-nope/config", admin, "application/json", []byte(`{"flows":[]}`)); code != 404 {
		t.Errorf("PUT config of an unknown edge: %d, want 404", code)
	}
	if v, _ := th.H.Sync.DesiredConfig(t.Context(), edgeID); v.Version != 0 {
		t.Fatalf("refused PUTs stored version %d", v.Version)
	}

	// Version 2 also publishes an audit record through the edge's broker
	// once deployed: its mqtt-broker node carries no credentials, the
	// agent hands it the per-flow credential the broker accepts (issue 13.6).
	// Node-RED's mqtt out drops what it gets before its broker connects,
	// so the inject repeats every second until one arrives.
	_, mqttPort, _ := net.SplitHostPort(edge.MQTT)
	flows := `[{"id":"t1","type":"tab","label":"edge"},{"id":"inj1","type":"inject","z":"t1","name":"desired-v%d","wires":[]}%s]`
	publisher := `,{"id":"mb1","type":"mqtt-broker","name":"edge","broker":"127.0.0.1","port":"` + mqttPort + `","clientid":"","protocolVersion":"4","keepalive":"60","cleansession":true},` +
		`{"id":"inj2","type":"inject","z":"t1","once":true,"onceDelay":"0.5","repeat":"1","topic":"","payload":"{\"action\":\"edge.flow\",\"resource_type\":\"flow\",\"resource_id\":\"from-node-red\",\"details\":{}}","payloadType":"json","wires":[["mo1"]]},` +
		`{"id":"mo1","type":"mqtt out","z":"t1","broker":"mb1","topic":"redforge/v1/audit","qos":"1","retain":"false","wires":[]}`
	var last edgesync.EdgeConfig
	for v := 1; v <= 2; v++ {
		extra := ""
		if v == 2 {
			extra = publisher
		}
		code, resp := call(t, http.MethodPut, url, admin, "application/json", fmt.Appendf(nil, `{"flows":`+flows+`,"settings":{"site":"plant-7"}}`, v, extra))
		if code != 200 || json.Unmarshal(resp, &last) != nil || last.Version != uint64(v) || last.UpdatedBy != "admin" {
			t.Fatalf("PUT config %d: %d %s", v, code, resp)
		}
	}
	testenv.WaitFor(t, 60*time.Second, "the edge to apply version 2 and report it", func() error {
		code, resp := call(t, http.MethodGet, th.URL()+"/api/edges/"+edgeID, admin, "", nil)
		var view edgesync.EdgeView
		if code != 200 || json.Unmarshal(resp, &view) != nil {
			return fmt.Errorf("GET edge: %d %s", code, resp)
		}
		if view.DesiredConfigVersion != 2 || view.AppliedConfigVersion != 2 {
			return fmt.Errorf("desired %d, applied %d", view.DesiredConfigVersion, view.AppliedConfigVersion)
		}
		if b, ok := view.Backlog["audit"]; !ok || b.ReportedAt.IsZero() || len(view.Backlog) != 5 {
			return fmt.Errorf("backlog %+v", view.Backlog)
		}
		return nil
	})
	resp, err := http.Get(nr.URL + "/flows")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "desired-v2") {
		t.Fatalf("the edge's Node-RED runs %s, want the desired flows v2", body)
	}
	if strings.Contains(string(body), "password") {
		t.Fatalf("the flows carry the MQTT credential in clear: %s", body)
	}
	testenv.WaitFor(t, 60*time.Second, "the local Node-RED's record to reach the hub", func() error {
		recs, err := th.H.Store.ListEdgeRecords(t.Context(), edgeID, "audit", 0, 100)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if strings.Contains(string(r.Payload), "from-node-red") {
				return nil
			}
		}
		return fmt.Errorf("%d audit records, none from Node-RED", len(recs))
	})
}

// TestBacklogReportedInHeartbeat: the backlog an edge reports is kept with
// the edge and shown with the age of its oldest unsynced record; a
// heartbeat without one keeps it. Desired config versions increase.
func TestBacklogReportedInHeartbeat(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	db := sqlite.New(filepath.Join(t.TempDir(), "hub.db"))
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st := catalog.NewState()
	s := edgesync.New(edgesync.Config{Catalog: st, Raft: &stateApplier{st: st}, Store: db, HeartbeatInterval: time.Minute, Now: func() time.Time { return now }})
	tok, _ := s.CreateToken(t.Context(), edgesync.TokenRequest{}, "op")
	en, err := s.Enroll(t.Context(), &syncproto.EnrollRequest{Token: tok.Token})
	if err != nil {
		t.Fatal(err)
	}
	hb := &syncproto.Heartbeat{Backlog: map[string]*syncproto.StreamBacklog{
		"vectors": {Depth: 120, Bytes: 368640, OldestUnsyncedUnixNanos: now.Add(-90 * time.Second).UnixNano(), Evicted: 3},
		"audit":   {},
	}}
	if err := s.Heartbeat(t.Context(), en.EdgeId, hb); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := s.Heartbeat(t.Context(), en.EdgeId, &syncproto.Heartbeat{}); err != nil { // no backlog: kept
		t.Fatal(err)
	}
	v, err := s.Edge(t.Context(), en.EdgeId)
	if err != nil {
		t.Fatal(err)
	}
	vb := v.Backlog["vectors"]
	if vb.Depth != 120 || vb.Bytes != 368640 || vb.Evicted != 3 || vb.OldestUnsyncedSeconds != 90 || !vb.ReportedAt.Equal(now.Add(-time.Minute)) {
		t.Fatalf("vectors backlog %+v", vb)
	}
	if ab := v.Backlog["audit"]; ab.Depth != 0 || ab.OldestUnsyncedSeconds != 0 {
		t.Fatalf("audit backlog %+v", ab)
	}
	for want := uint64(1); want <= 3; want++ {
		c, err := s.SetConfig(t.Context(), en.EdgeId, json.RawMessage(`[]`), nil, "op")
		if err != nil || c.Version != want {
			t.Fatalf("SetConfig: version %d, %v; want %d", c.Version, err, want)
		}
	}
	b, err := s.ConfigBundle(t.Context(), en.EdgeId)
	if err != nil || b.Version != 3 || !strings.Contains(string(b.Settings), `"heartbeat_interval_seconds":60`) {
		t.Fatalf("bundle %+v %v", b, err)
	}
}
