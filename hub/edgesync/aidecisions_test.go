package edgesync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

// TestAIDecisionRecordsProjected: on stream ai_decisions each payload that
// is a valid AI decision lands in ai_decisions with the edge's id and seq,
// its time from the payload or else the record's arrival; a payload that
// is not one (bad JSON, missing model, confidence out of range) stays in
// the ledger only, does not stall the stream, and is logged at WARN with
// edge and seq but no payload content. A replay adds nothing.
func TestAIDecisionRecordsProjected(t *testing.T) {
	db := sqlite.New(filepath.Join(t.TempDir(), "hub.db"))
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var logs testenv.Buffer
	s := edgesync.New(edgesync.Config{Store: db, Logger: slog.New(slog.NewTextHandler(&logs, nil))})

	const edge = "edge-ai"
	payloads := []string{
		`{"flow_name":"triage","model":"llama3","prompt":"p1","response":"r1","confidence":0.9,"tokens_used":12,"latency_ms":34,"metadata":{"k":1},"instance_id":"i-1","time":"2026-01-02T03:04:05.123456Z"}`,
		`{"flow_name":"triage","model":"llama3","prompt":"SECRET-PROMPT","confidence":2}`,
		`{"flow_name":"triage","prompt":"SECRET-PROMPT"}`,
		`not json SECRET-PROMPT`,
		`{"flow_name":"route","model":"gpt-4o","prompt":"p5","response":"r5","confidence":0,"metadata":null}`,
	}
	b := batchOf(edge, store.AIDecisionsStream, 1, payloads...)
	arrived := time.Unix(0, b.Records[0].ArrivedUnixNanos).UTC()
	for try := range 2 { // the second is a replay (a lost ack)
		ack, err := s.Ingest(t.Context(), edge, b)
		if err != nil || ack.GetDurableWatermark() != 5 {
			t.Fatalf("ingest try %d: %v %v; want watermark 5", try, ack, err)
		}
	}
	ds, err := db.ListAIDecisions(t.Context(), store.AIDecisionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d decisions, want 2 (seqs 1 and 5): %+v", len(ds), ds)
	}
	byPrompt := map[string]store.AIDecision{}
	for _, d := range ds {
		byPrompt[d.Prompt] = d
	}
	d1, d5 := byPrompt["p1"], byPrompt["p5"]
	if d1.EdgeID != edge || d1.EdgeSeq != 1 || d1.InstanceID != "i-1" || d1.Model != "llama3" || d1.Confidence != 0.9 ||
		d1.TokensUsed != 12 || d1.LatencyMS != 34 || string(d1.Metadata) != `{"k":1}` ||
		!d1.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Fatalf("seq 1 decision = %+v", d1)
	}
	if d5.EdgeID != edge || d5.EdgeSeq != 5 || d5.Model != "gpt-4o" || d5.Metadata != nil || !d5.Time.Equal(arrived) {
		t.Fatalf("seq 5 decision = %+v; want time %v (arrival)", d5, arrived)
	}
	if recs, err := db.ListEdgeRecords(t.Context(), edge, store.AIDecisionsStream, 0, 0); err != nil || len(recs) != 5 {
		t.Fatalf("ledger holds %d records (%v), want all 5", len(recs), err)
	}
	out := logs.String()
	for _, want := range []string{"level=WARN", "edge=" + edge, "seq=2", "field=confidence", "seq=3", "field=model", "seq=4", "field=payload"} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "SECRET") || strings.Contains(out, "seq=1 ") || strings.Contains(out, "seq=5 ") {
		t.Errorf("log quotes a payload or warns about a valid decision:\n%s", out)
	}
}

// publishTo publishes payloads in order at QoS 1 to topic and waits for
// every PUBACK.
func publishTo(tb testing.TB, addr, topic string, payloads ...string) {
	tb.Helper()
	c := paho.NewClient(edgecheck.MQTTOptions("tcp://" + addr).SetClientID("pub-ai").
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect to the edge broker: %v", tok.Error())
	}
	defer c.Disconnect(0)
	for _, p := range payloads {
		if tok := c.Publish(topic, 1, false, p); !tok.WaitTimeout(15*time.Second) || tok.Error() != nil {
			tb.Fatalf("publish to %s: %v", topic, tok.Error())
		}
	}
}

// aiDecisionsOf returns the decisions GET /api/audit/ai_decisions lists
// for edgeID.
func aiDecisionsOf(tb testing.TB, th *testHub, admin, edgeID string) ([]store.AIDecision, error) {
	req, _ := http.NewRequest(http.MethodGet, th.URL()+"/api/audit/ai_decisions?limit=1000", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Decisions []store.AIDecision `json:"decisions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /api/audit/ai_decisions: %d %v", resp.StatusCode, err)
	}
	var mine []store.AIDecision
	for _, d := range out.Decisions {
		if d.EdgeID == edgeID {
			mine = append(mine, d)
		}
	}
	return mine, nil
}

// TestEdgeAIDecisionReachesAuditAPI: a decision published on a real edge's
// redforge/v1/ai_decisions topic, behind a payload that is not a decision,
// syncs to a real hub (Raft, Postgres) and is listed by GET
// /api/audit/ai_decisions exactly once with the edge's id; replaying the
// edge's batch over POST /api/sync/batches adds nothing.
func TestEdgeAIDecisionReachesAuditAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end")
	}
	th := startHub(t, testenv.Postgres(t))
	admin := login(t, th)
	dataDir := t.TempDir()
	edge := startEdge(t, nil, buildEdge(t, runtime.GOARCH, ""), dataDir, "--hub", th.URL(), "--token", th.token(t))
	edge.WaitMQTT(t, 30*time.Second)
	edgeID := edgeIDOf(t, dataDir, 30*time.Second)

	const decision = `{"flow_name":"triage","model":"llama3","prompt":"classify ticket 42","response":"urgent",` +
		`"confidence":0.875,"tokens_used":321,"latency_ms":1234,"metadata":{"temperature":0.2},"instance_id":"i-edge"}`
	publishTo(t, edge.MQTT, "redforge/v1/ai_decisions", `{"agent":"a","decision":"not a decision record"}`, decision)

	testenv.WaitFor(t, 60*time.Second, "both ai_decisions records on the hub", func() error {
		if wm, err := th.H.Store.Watermarks(context.Background(), edgeID); err != nil || wm[store.AIDecisionsStream].Seq != 2 {
			return fmt.Errorf("watermarks %v (%v)", wm, err)
		}
		return nil
	})
	check := func(when string) {
		t.Helper()
		ds, err := aiDecisionsOf(t, th, admin, edgeID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 1 {
			t.Fatalf("%s: GET /api/audit/ai_decisions lists %d decisions of edge %s, want exactly 1: %+v", when, len(ds), edgeID, ds)
		}
		d := ds[0]
		if d.EdgeSeq != 2 || d.Prompt != "classify ticket 42" || d.Model != "llama3" || d.InstanceID != "i-edge" ||
			d.Confidence != 0.875 || d.TokensUsed != 321 || string(d.Metadata) != `{"temperature":0.2}` {
			t.Fatalf("%s: decision = %+v", when, d)
		}
	}
	check("after sync")

	// Replay the edge's records (a lost ack) with its own credential.
	raw, err := os.ReadFile(filepath.Join(dataDir, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cred struct {
		Secret string `json:"credential"`
	}
	if err := json.Unmarshal(raw, &cred); err != nil || cred.Secret == "" {
		t.Fatalf("credential.json: %v", err)
	}
	recs, err := th.H.Store.ListEdgeRecords(t.Context(), edgeID, store.AIDecisionsStream, 0, 0)
	if err != nil || len(recs) != 2 {
		t.Fatalf("ledger: %d records, %v", len(recs), err)
	}
	body, _ := syncproto.EncodeBatch(batchOf(edgeID, store.AIDecisionsStream, 1, string(recs[0].Payload), string(recs[1].Payload)))
	code, resp := call(t, http.MethodPost, th.URL()+"/api/sync/batches", cred.Secret, syncproto.ContentTypeBatchZstd, body)
	if ack := ackOf(t, resp); code != http.StatusOK || ack.GetDurableWatermark() != 2 {
		t.Fatalf("replay: %d %v", code, ack)
	}
	check("after a replay")
}
