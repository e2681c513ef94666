package edgesync_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

type enrolled struct{ ID, Cred string }

func enrollHTTP(t *testing.T, th *testHub, token string) (enrolled, int) {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"token": token})
	resp, err := http.Post(th.URL()+"/api/edges/enroll", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		EdgeID     string `json:"edge_id"`
		Credential string `json:"credential"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return enrolled{out.EdgeID, out.Credential}, resp.StatusCode
}

func call(t *testing.T, method, url, cred, ctype string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	if cred != "" {
		req.Header.Set("Authorization", "Bearer "+cred)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", syncproto.ContentTypeProtobuf)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func batchOf(edgeID, stream string, first int64, payloads ...string) *syncproto.Batch {
	b := &syncproto.Batch{EdgeId: edgeID, Stream: stream, FirstSeq: first}
	for i, p := range payloads {
		b.Records = append(b.Records, &syncproto.Record{Seq: first + int64(i), ArrivedUnixNanos: 1_700_000_000_000_000_000,
			Checksum: syncproto.Checksum([]byte(p)), Payload: []byte(p)})
	}
	return b
}

func ackOf(t *testing.T, body []byte) *syncproto.Ack {
	t.Helper()
	a := &syncproto.Ack{}
	if err := proto.Unmarshal(body, a); err != nil {
		t.Fatalf("ack: %v (%s)", err, body)
	}
	return a
}

// login returns an admin access token from POST /api/auth/login.
func login(t *testing.T, th *testHub) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"username": "admin", "password": testAdminPassword})
	resp, err := http.Post(th.URL()+"/api/auth/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode != 200 || out.AccessToken == "" {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	return out.AccessToken
}

// TestEnrollmentThroughUserAPI: an operator logs in, creates a one-time
// enrollment token (shown once, stored hashed, audited), an edge enrolls
// with it (audited), and the edge list and detail show it; the user routes
// refuse no credential and an edge credential.
func TestEnrollmentThroughUserAPI(t *testing.T) {
	th := startHub(t, testenv.Postgres(t))
	admin := login(t, th)
	code, resp := call(t, http.MethodPost, th.URL()+"/api/edges/tokens", admin, "application/json", []byte(`{"region":"eu","ttl_seconds":600}`))
	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	json.Unmarshal(resp, &tok)
	if code != 201 || !strings.HasPrefix(tok.Token, "rfet_") || tok.ExpiresAt == "" {
		t.Fatalf("create token: %d %s", code, resp)
	}
	for _, et := range th.H.State.EnrollmentTokens() {
		if et.Hash == tok.Token {
			t.Fatal("token stored in clear")
		}
	}
	e, code := enrollHTTP(t, th, tok.Token)
	if code != 201 {
		t.Fatalf("enroll: %d", code)
	}
	for _, tc := range []struct {
		name, path, cred string
		code             int
		contains         []string
		absent           []string
	}{
		{"list as admin", "/api/edges", admin, 200, []string{e.ID, `"region":"eu"`, `"state":"pending"`}, []string{"credential", "hash"}},
		{"detail as admin", "/api/edges/" + e.ID, admin, 200, []string{`"id":"` + e.ID, `"streams":{}`}, []string{"credential_hash"}},
		{"unknown edge", "/api/edges/edge-nope", admin, 404, nil, nil},
		{"no credential", "/api/edges", "", 401, nil, nil},
		{"edge credential", "/api/edges", e.Cred, 401, nil, nil},
		{"token creation by an edge", "/api/edges/tokens", e.Cred, 401, nil, nil},
	} {
		method := http.MethodGet
		if strings.HasSuffix(tc.path, "/tokens") {
			method = http.MethodPost
		}
		code, body := call(t, method, th.URL()+tc.path, tc.cred, "", nil)
		if code != tc.code {
			t.Errorf("%s: %d, want %d (%s)", tc.name, code, tc.code, body)
		}
		for _, s := range tc.contains {
			if !strings.Contains(string(body), s) {
				t.Errorf("%s: body lacks %q: %s", tc.name, s, body)
			}
		}
		for _, s := range tc.absent {
			if strings.Contains(string(body), s) {
				t.Errorf("%s: body has %q: %s", tc.name, s, body)
			}
		}
	}
	for _, action := range []string{"EDGE_TOKEN_CREATED", "EDGE_ENROLLED"} {
		recs, err := th.H.Store.ListAudit(t.Context(), store.AuditFilter{Action: action})
		if err != nil || len(recs) != 1 {
			t.Errorf("audit %s: %d records, %v", action, len(recs), err)
		}
	}
}

// TestSyncAPIContract drives the real hub's sync and enrollment routes
// over HTTP: enrollment (one-time token), exactly-once batches (replay
// skipped), gap refused with the expected seq (409), bad checksum refused
// whole (400, nothing written), another edge's stream (403), bad or missing
// credentials (401), a zstd bomb (413), the JSON route with the same
// semantics, config and heartbeats, and the edge view.
func TestSyncAPIContract(t *testing.T) {
	th := startHub(t, testenv.Postgres(t))
	tok := th.token(t)
	a, code := enrollHTTP(t, th, tok)
	if code != http.StatusCreated || a.ID == "" || !strings.HasPrefix(a.Cred, "rfe_") {
		t.Fatalf("enroll: %d %+v", code, a)
	}
	if _, code := enrollHTTP(t, th, tok); code != http.StatusUnauthorized {
		t.Fatalf("reused token: %d, want 401", code)
	}
	if _, code := enrollHTTP(t, th, "rfet_bogus"); code != http.StatusUnauthorized {
		t.Fatalf("unknown token: %d, want 401", code)
	}
	b, _ := enrollHTTP(t, th, th.token(t))
	url := th.URL() + "/api/sync/batches"
	send := func(cred string, batch *syncproto.Batch) (int, *syncproto.Ack) {
		body, _ := syncproto.EncodeBatch(batch)
		code, resp := call(t, http.MethodPost, url, cred, syncproto.ContentTypeBatchZstd, body)
		if code == http.StatusUnauthorized || code == http.StatusRequestEntityTooLarge {
			return code, nil
		}
		return code, ackOf(t, resp)
	}

	steps := []struct {
		name  string
		cred  string
		batch *syncproto.Batch
		code  int
		wm    int64
		why   syncproto.RefusalReason
		exp   int64
	}{
		{"first batch", a.Cred, batchOf(a.ID, "audit", 1, `{"a":1}`, `{"a":2}`, `{"a":3}`), 200, 3, 0, 0},
		{"replay is skipped", a.Cred, batchOf(a.ID, "audit", 2, `{"a":2}`, `{"a":3}`), 200, 3, 0, 0},
		{"overlap commits the new part", a.Cred, batchOf(a.ID, "audit", 3, `{"a":3}`, `{"a":4}`), 200, 4, 0, 0},
		{"gap", a.Cred, batchOf(a.ID, "audit", 9, `{"a":9}`), 409, 0, syncproto.RefusalReason_REFUSAL_REASON_GAP, 5},
		{"other edge's stream", a.Cred, batchOf(b.ID, "audit", 1, `{"x":1}`), 403, 0, syncproto.RefusalReason_REFUSAL_REASON_FORBIDDEN, 0},
		{"no credential", "", batchOf(a.ID, "audit", 5, `{"a":5}`), 401, 0, 0, 0},
		{"wrong secret", "rfe_" + a.ID + ".nope", batchOf(a.ID, "audit", 5, `{"a":5}`), 401, 0, 0, 0},
	}
	bad := batchOf(a.ID, "audit", 5, `{"a":5}`, `{"a":6}`)
	bad.Records[1].Payload = []byte(`{"a":666}`)
	for _, s := range steps {
		code, ack := send(s.cred, s.batch)
		if code != s.code {
			t.Fatalf("%s: status %d, want %d", s.name, code, s.code)
		}
		if ack == nil {
			continue
		}
		if ack.GetDurableWatermark() != s.wm || ack.GetRefusal().GetReason() != s.why || ack.GetRefusal().GetExpectedSeq() != s.exp {
			t.Fatalf("%s: ack %v", s.name, ack)
		}
	}
	// A bad checksum is refused whole: record 5 (valid) is not written either.
	body, _ := proto.Marshal(bad) // plain protobuf is accepted too
	code, resp := call(t, http.MethodPost, url, a.Cred, syncproto.ContentTypeProtobuf, body)
	if ack := ackOf(t, resp); code != 400 || ack.GetRefusal().GetReason() != syncproto.RefusalReason_REFUSAL_REASON_CHECKSUM ||
		!strings.Contains(ack.GetRefusal().GetMessage(), "checksum") {
		t.Fatalf("bad checksum: %d %v", code, ack)
	}
	if wm, _ := th.H.Store.Watermarks(t.Context(), a.ID); wm["audit"].Seq != 4 || wm["audit"].Count != 4 {
		t.Fatalf("after refusals the audit watermark is %+v, want seq 4 count 4", wm["audit"])
	}
	// A zstd bomb: 200 MiB of zeros in a small body.
	var bomb bytes.Buffer
	enc, _ := zstd.NewWriter(&bomb)
	zero := make([]byte, 1<<20)
	for range 200 {
		enc.Write(zero)
	}
	enc.Close()
	if code, _ := call(t, http.MethodPost, url, a.Cred, syncproto.ContentTypeBatchZstd, bomb.Bytes()); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("zstd bomb: %d, want 413", code)
	}

	// The JSON route for scripts: same exactly-once semantics.
	vurl := th.URL() + "/api/sync/vectors"
	jb := `{"stream":"vectors","first_seq":1,"records":[{"seq":1,"payload":{"id":"a"},"vector":[0.5,-1,3],"vector_id":"a","metadata":{"k":"v"}},{"seq":2,"payload":{"id":"b"},"vector":[1,2,3],"vector_id":"b"}]}`
	for i, want := range []string{`"durable_watermark":2`, `"durable_watermark":2`} {
		code, resp := call(t, http.MethodPost, vurl, a.Cred, "application/json", []byte(jb))
		if code != 200 || !strings.Contains(string(resp), want) {
			t.Fatalf("JSON batch try %d: %d %s", i, code, resp)
		}
	}
	code, resp = call(t, http.MethodPost, vurl, a.Cred, "application/json", []byte(`{"stream":"vectors","first_seq":7,"records":[{"seq":7,"payload":{}}]}`))
	if code != 409 || !strings.Contains(string(resp), `"expected_seq":3`) || !strings.Contains(string(resp), `"sequence_gap"`) {
		t.Fatalf("JSON gap: %d %s", code, resp)
	}
	vs, err := th.H.Store.ListVectors(t.Context(), a.ID, 0, 10)
	if err != nil || len(vs) != 2 || vs[0].Values[1] != -1 || string(vs[0].Metadata) != `{"k":"v"}` {
		t.Fatalf("vectors: %v %+v", err, vs)
	}

	// Config: own bundle (protobuf), not another edge's.
	code, resp = call(t, http.MethodGet, th.URL()+"/api/sync/config/"+a.ID, a.Cred, "", nil)
	cb := &syncproto.ConfigBundle{}
	if code != 200 || proto.Unmarshal(resp, cb) != nil || string(cb.Flows) != "[]" {
		t.Fatalf("config: %d %v", code, cb)
	}
	if code, _ := call(t, http.MethodGet, th.URL()+"/api/sync/config/"+b.ID, a.Cred, "", nil); code != 403 {
		t.Fatalf("other edge's config: %d", code)
	}
	hb, _ := proto.Marshal(&syncproto.Heartbeat{EdgeId: a.ID, AppliedConfigVersion: 0})
	if code, resp := call(t, http.MethodPost, th.URL()+"/api/sync/heartbeat", a.Cred, syncproto.ContentTypeProtobuf, hb); code != 204 {
		t.Fatalf("heartbeat: %d %s", code, resp)
	}
	view, err := th.H.Sync.Edge(t.Context(), a.ID)
	if err != nil || view.State != "online" || view.LastHeartbeat.IsZero() || view.Streams["audit"].Seq != 4 || view.Streams["vectors"].Count != 2 {
		t.Fatalf("edge view: %v %+v", err, view)
	}
	// The user routes need a user credential.
	if code, _ := call(t, http.MethodGet, th.URL()+"/api/edges", "", "", nil); code == 200 {
		t.Fatalf("GET /api/edges without a user credential: 200")
	}
	if code, _ := call(t, http.MethodGet, th.URL()+"/api/edges", a.Cred, "", nil); code == 200 {
		t.Fatalf("GET /api/edges with an edge credential: 200")
	}
}

// TestSyncRefusesUnknownStreamsAndNonJSON: the hub applies the edge's own
// checks to what it is sent, on both routes: a stream outside the five
// ("../../x") and a payload that is not a JSON object refuse the whole
// batch with a 400 naming the field, and nothing of it is written.
func TestSyncRefusesUnknownStreamsAndNonJSON(t *testing.T) {
	th := startHub(t, testenv.Postgres(t))
	a, _ := enrollHTTP(t, th, th.token(t))
	url := th.URL() + "/api/sync/batches"
	for _, tc := range []struct {
		name  string
		batch *syncproto.Batch
		field string
	}{
		{"path as stream", batchOf(a.ID, "../../x", 1, `{"a":1}`), "stream"},
		{"not json on audit", batchOf(a.ID, "audit", 1, `{"a":1}`, `not json`), "records[1].payload"},
		{"a JSON string on metrics", batchOf(a.ID, "metrics", 1, `"text"`), "records[0].payload"},
	} {
		body, _ := syncproto.EncodeBatch(tc.batch)
		code, resp := call(t, http.MethodPost, url, a.Cred, syncproto.ContentTypeBatchZstd, body)
		ack := ackOf(t, resp)
		if code != http.StatusBadRequest || ack.GetRefusal().GetReason() != syncproto.RefusalReason_REFUSAL_REASON_INVALID ||
			!strings.Contains(ack.GetRefusal().GetMessage(), tc.field+":") {
			t.Errorf("%s: %d %v, want 400 invalid naming %s", tc.name, code, ack, tc.field)
		}
	}
	vurl := th.URL() + "/api/sync/vectors"
	for _, tc := range []struct{ name, body, field string }{
		{"path as stream", `{"stream":"../../x","first_seq":1,"records":[{"seq":1,"payload":{}}]}`, "stream"},
		{"array on audit", `{"stream":"audit","first_seq":1,"records":[{"seq":1,"payload":{}},{"seq":2,"payload":[1]}]}`, "records[1].payload"},
		{"no payload on checkpoints", `{"stream":"checkpoints","first_seq":1,"records":[{"seq":1}]}`, "records[0].payload"},
	} {
		code, resp := call(t, http.MethodPost, vurl, a.Cred, "application/json", []byte(tc.body))
		if code != http.StatusBadRequest || !strings.Contains(string(resp), `"field":"`+tc.field+`"`) {
			t.Errorf("JSON %s: %d %s, want 400 naming %s", tc.name, code, resp, tc.field)
		}
	}
	if wm, err := th.H.Store.Watermarks(t.Context(), a.ID); err != nil || len(wm) != 0 {
		t.Fatalf("after refusals the edge has watermarks %v (%v), want none", wm, err)
	}
	for _, s := range []string{"../../x", "audit", "metrics", "checkpoints"} {
		if recs, err := th.H.Store.ListEdgeRecords(t.Context(), a.ID, s, 0, 10); err != nil || len(recs) != 0 {
			t.Fatalf("stream %s holds %d records (%v), want none", s, len(recs), err)
		}
	}
}

// TestBatchProgressAnswers: while a batch waits for its turn at a real hub
// (here: its edge's MaxBatchesPerEdge slots are held by uploads that do
// not finish), an edge that asked for progress (syncproto.ProgressHeader)
// gets "102 Processing" every second, then its answer once it is taken.
func TestBatchProgressAnswers(t *testing.T) {
	th := startHub(t, testenv.Postgres(t))
	a, _ := enrollHTTP(t, th, th.token(t))
	url := th.URL() + "/api/sync/batches"
	var holds []*io.PipeWriter
	var held sync.WaitGroup
	for range edgesync.DefaultMaxBatchesPerEdge {
		pr, pw := io.Pipe()
		holds = append(holds, pw)
		req, _ := http.NewRequest(http.MethodPost, url, pr)
		req.Header.Set("Authorization", "Bearer "+a.Cred)
		req.Header.Set("Content-Type", syncproto.ContentTypeProtobuf)
		held.Go(func() {
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		})
		pw.Write([]byte{0x0a}) // the upload has begun, and stalls
	}
	testenv.WaitFor(t, 10*time.Second, "the stalled uploads to hold the edge's slots", func() error {
		if n := th.H.Sync.BatchesInProgress(a.ID); n != edgesync.DefaultMaxBatchesPerEdge {
			return fmt.Errorf("%d in progress", n)
		}
		return nil
	})
	var interim atomic.Int32
	body, _ := syncproto.EncodeBatch(batchOf(a.ID, "audit", 1, `{"a":1}`))
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(t.Context(), &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error {
			if code == http.StatusProcessing {
				interim.Add(1)
			}
			return nil
		},
	}), http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+a.Cred)
	req.Header.Set("Content-Type", syncproto.ContentTypeBatchZstd)
	req.Header.Set(syncproto.ProgressHeader, "1")
	done := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
		}
		done <- resp
	}()
	testenv.WaitFor(t, 8*time.Second, "two 102 Processing answers while the batch waits", func() error {
		if n := interim.Load(); n < 2 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	for _, pw := range holds {
		pw.Close()
	}
	resp := <-done
	if resp == nil {
		t.Fatal("no answer")
	}
	defer resp.Body.Close()
	ack, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || ackOf(t, ack).GetDurableWatermark() != 1 {
		t.Fatalf("after the wait: %d %v", resp.StatusCode, ackOf(t, ack))
	}
	held.Wait()
}
