package syncer_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/edge/syncer"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

// fakeHub implements the hub side of the contract in memory: watermark
// per stream, replays skipped, gaps refused; dropAck makes it commit a
// batch and then kill the connection (a lost ack).
type fakeHub struct {
	mu      sync.Mutex
	wm      map[string]int64
	got     map[string][]string
	dropAck int
}

func (h *fakeHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == router.HealthPath {
		return
	}
	body, _ := io.ReadAll(r.Body)
	b, err := syncproto.DecodeBatch(r.Header.Get("Content-Type"), body, syncproto.Limits{})
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	h.mu.Lock()
	wm := h.wm[b.Stream]
	ack := &syncproto.Ack{Stream: b.Stream}
	status := 200
	if b.FirstSeq > wm+1 {
		ack.Result = &syncproto.Ack_Refusal{Refusal: &syncproto.Refusal{Reason: syncproto.RefusalReason_REFUSAL_REASON_GAP, ExpectedSeq: wm + 1}}
		status = 409
	} else {
		for _, rec := range b.Records {
			if rec.Seq > wm {
				h.got[b.Stream] = append(h.got[b.Stream], string(rec.Payload))
				wm = rec.Seq
			}
		}
		h.wm[b.Stream] = wm
		ack.Result = &syncproto.Ack_DurableWatermark{DurableWatermark: wm}
	}
	drop := h.dropAck > 0
	if drop {
		h.dropAck--
	}
	h.mu.Unlock()
	if drop {
		panic(http.ErrAbortHandler) // committed, but the edge never hears
	}
	out, _ := proto.Marshal(ack)
	w.Header().Set("Content-Type", syncproto.ContentTypeProtobuf)
	w.WriteHeader(status)
	w.Write(out)
}

// openOutbox opens a fresh outbox, closed when t ends.
func openOutbox(t *testing.T) *outbox.Outbox {
	t.Helper()
	o := outbox.New(filepath.Join(t.TempDir(), "outbox.db"))
	if err := o.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

func newSyncer(t *testing.T, hubs ...string) (*syncer.Syncer, *outbox.Outbox) {
	t.Helper()
	o := openOutbox(t)
	rt, err := router.New(router.Config{Targets: hubs, FailuresToDown: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := syncer.New(syncer.Config{EdgeID: "e1", Credential: func() string { return "c" }, Outbox: o,
		Streams: []string{outbox.StreamAudit, outbox.StreamVectors}, Router: rt, MaxBatchRecords: 3})
	return s, o
}

func appendN(t *testing.T, o *outbox.Outbox, stream string, n int) {
	t.Helper()
	for i := range n {
		if _, err := o.Append(context.Background(), stream, []byte(fmt.Sprintf(`{"i":%d}`, i)), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLostAckNeitherLosesNorDuplicates: the hub commits a batch but the
// ack is lost; the retry is a replay the hub skips; the outbox releases
// exactly what the hub holds, and a dead hub fails over to the next.
func TestLostAckNeitherLosesNorDuplicates(t *testing.T) {
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}, dropAck: 1}
	srv := httptest.NewServer(h)
	defer srv.Close()
	s, o := newSyncer(t, "http://127.0.0.1:1", srv.URL) // the first hub is down
	appendN(t, o, outbox.StreamAudit, 7)
	ctx := context.Background()
	if _, err := s.SyncOnce(ctx, outbox.StreamAudit); err == nil {
		t.Fatal("lost ack must be an error")
	}
	for range 5 {
		if _, err := s.SyncOnce(ctx, outbox.StreamAudit); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.got[outbox.StreamAudit]; len(got) != 7 || got[0] != `{"i":0}` || got[6] != `{"i":6}` {
		t.Fatalf("hub got %q", got)
	}
	st, _ := o.Stats(ctx)
	if st[outbox.StreamAudit].Depth != 0 {
		t.Fatalf("outbox still holds %d", st[outbox.StreamAudit].Depth)
	}
	stats := s.Stats()
	if stats.Failures[syncer.ReasonNetwork] == 0 || stats.Streams[outbox.StreamAudit].HubWatermark != 7 || stats.Hub != srv.URL {
		t.Fatalf("stats %+v", stats)
	}
}

// TestGapFromHubIsNotPaperedOver: a hub that lost data (expects seq 1
// after the edge released it) is reported as gap_lost and nothing is
// deleted or skipped.
func TestGapFromHubIsNotPaperedOver(t *testing.T) {
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	s, o := newSyncer(t, srv.URL)
	appendN(t, o, outbox.StreamAudit, 4)
	ctx := context.Background()
	s.SyncOnce(ctx, outbox.StreamAudit) // 1..3 synced and released
	h.mu.Lock()
	h.wm[outbox.StreamAudit] = 0 // the hub "loses" them
	h.mu.Unlock()
	if _, err := s.SyncOnce(ctx, outbox.StreamAudit); err == nil {
		t.Fatal("gap must be an error")
	}
	if s.Stats().Failures[syncer.ReasonGapLost] != 1 {
		t.Fatalf("stats %+v", s.Stats())
	}
	if st, _ := o.Stats(ctx); st[outbox.StreamAudit].Depth != 1 {
		t.Fatalf("record 4 must stay in the outbox: depth %d", st[outbox.StreamAudit].Depth)
	}
}

// TestVectorsTravelPacked: a vectors payload's floats travel as packed
// float32 beside the byte-identical payload.
func TestVectorsTravelPacked(t *testing.T) {
	var got *syncproto.Batch
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got, _ = syncproto.DecodeBatch(r.Header.Get("Content-Type"), body, syncproto.Limits{})
		out, _ := proto.Marshal(&syncproto.Ack{Result: &syncproto.Ack_DurableWatermark{DurableWatermark: 1}})
		w.Header().Set("Content-Type", syncproto.ContentTypeProtobuf)
		w.Write(out)
	}))
	defer srv.Close()
	s, o := newSyncer(t, srv.URL)
	p := `{"id":"x","vector":[0.5,-2,3.25],"metadata":{"k":1}}`
	o.Append(context.Background(), outbox.StreamVectors, []byte(p), time.Now())
	if _, err := s.SyncOnce(context.Background(), outbox.StreamVectors); err != nil {
		t.Fatal(err)
	}
	r := got.Records[0]
	v, _ := syncproto.UnpackFloat32(r.Vector)
	if string(r.Payload) != p || r.VectorId != "x" || string(r.Metadata) != `{"k":1}` || len(v) != 3 || v[1] != -2 {
		t.Fatalf("record %+v, vector %v", r, v)
	}
}

// TestWindowKeepsTwoBatchesInFlight: with MaxInFlight 2 the second batch
// is sent before the first is answered; when the hub takes the second
// first (a gap, refused), the syncer drops the window and resumes from the
// outbox head, and the hub ends with every record once, in order.
func TestWindowKeepsTwoBatchesInFlight(t *testing.T) {
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	secondTaken := make(chan struct{})
	var once sync.Once
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == router.HealthPath {
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		b, _ := syncproto.DecodeBatch(r.Header.Get("Content-Type"), body, syncproto.Limits{})
		switch b.GetFirstSeq() {
		case 1: // the first batch waits until the hub took the second
			select {
			case <-secondTaken:
			case <-time.After(10 * time.Second):
				t.Error("the second batch was not sent while the first was in flight")
			}
		case 4: // the second batch is taken first: a gap, refused
			h.ServeHTTP(w, r)
			once.Do(func() { close(secondTaken) })
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, o := newSyncer(t, srv.URL)
	appendN(t, o, outbox.StreamAudit, 30)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := o.Stats(context.Background())
		h.mu.Lock()
		got := len(h.got[outbox.StreamAudit])
		h.mu.Unlock()
		if err == nil && st[outbox.StreamAudit].Depth == 0 && got == 30 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub holds %d of 30, outbox depth %d (%v)", got, st[outbox.StreamAudit].Depth, err)
		}
		time.Sleep(10 * time.Millisecond) // polling the outcome, not synchronising
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, p := range h.got[outbox.StreamAudit] {
		if want := fmt.Sprintf(`{"i":%d}`, i); p != want {
			t.Fatalf("record %d on the hub is %s, want %s", i, p, want)
		}
	}
	if st := s.Stats(); st.Failures[syncer.ReasonGap] == 0 {
		t.Fatalf("the reordered batch was not refused as a gap: %+v", st.Failures)
	}
}

// readsOutbox is an outbox that reports every Pending read's afterSeq.
type readsOutbox struct {
	*outbox.Outbox
	reads chan int64
}

func (o readsOutbox) Pending(ctx context.Context, stream string, afterSeq int64, limit int) ([]outbox.Record, error) {
	select {
	case o.reads <- afterSeq:
	default:
	}
	return o.Outbox.Pending(ctx, stream, afterSeq, limit)
}

// TestNextBatchReadWhileWindowFull: with both batches of the window held
// by the hub, the syncer has already read the third from the outbox, so
// it leaves the moment a flight lands; everything still arrives once and
// in order, and the outbox ends empty.
func TestNextBatchReadWhileWindowFull(t *testing.T) {
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != router.HealthPath {
			select { // every batch waits until the test has seen the read-ahead
			case <-release:
			case <-r.Context().Done():
				return
			}
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	o := openOutbox(t)
	appendN(t, o, outbox.StreamAudit, 30)
	ro := readsOutbox{Outbox: o, reads: make(chan int64, 64)}
	rt, err := router.New(router.Config{Targets: []string{srv.URL}, FailuresToDown: 1})
	if err != nil {
		t.Fatal(err)
	}
	s := syncer.New(syncer.Config{EdgeID: "e1", Credential: func() string { return "c" }, Outbox: ro,
		Streams: []string{outbox.StreamAudit}, Router: rt, MaxBatchRecords: 3, MaxInFlight: 2})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	var releaseOnce sync.Once
	letGo := func() { releaseOnce.Do(func() { close(release) }) }
	defer func() { letGo(); cancel(); <-done }() // the syncer waits out batches in flight
	var reads []int64
	timeout := time.After(10 * time.Second)
	for len(reads) < 3 {
		select {
		case after := <-ro.reads:
			reads = append(reads, after)
		case <-timeout:
			t.Fatalf("outbox reads while the hub holds the window: %v, want [0 3 6]", reads)
		}
	}
	if fmt.Sprint(reads) != "[0 3 6]" {
		t.Fatalf("outbox reads while the hub holds the window: %v, want [0 3 6]", reads)
	}
	letGo()
	testenv.WaitFor(t, 20*time.Second, "the hub to hold all 30 records and the outbox to be empty", func() error {
		st, err := o.Stats(context.Background())
		h.mu.Lock()
		defer h.mu.Unlock()
		if got := len(h.got[outbox.StreamAudit]); err != nil || st[outbox.StreamAudit].Depth != 0 || got != 30 {
			return fmt.Errorf("hub holds %d, outbox depth %d (%v)", got, st[outbox.StreamAudit].Depth, err)
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, p := range h.got[outbox.StreamAudit] {
		if want := fmt.Sprintf(`{"i":%d}`, i); p != want {
			t.Fatalf("record %d on the hub is %s, want %s", i, p, want)
		}
	}
}

// typeRecordingHub is a fakeHub behind a server that notes the content
// type of each batch by stream; types returns what it noted.
func typeRecordingHub(t *testing.T) (h *fakeHub, srv *httptest.Server, types func() map[string][]string) {
	h = &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	var mu sync.Mutex
	noted := map[string][]string{}
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != router.HealthPath {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			b, _ := syncproto.DecodeBatch(r.Header.Get("Content-Type"), body, syncproto.Limits{})
			mu.Lock()
			noted[b.GetStream()] = append(noted[b.GetStream()], r.Header.Get("Content-Type"))
			mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return h, srv, func() map[string][]string {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(noted)
	}
}

// TestIncompressibleStreamSentPlain: packed random vectors do not
// compress, so they go as plain protobuf (and zstd is not even tried for
// the next batches); text records keep going compressed. The hub takes
// both.
func TestIncompressibleStreamSentPlain(t *testing.T) {
	h, srv, types := typeRecordingHub(t)
	s, o := newSyncer(t, srv.URL)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 9 {
		v := make([]float32, 256)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		rec := syncproto.AppendVectorRecord(nil, fmt.Sprint("v", i), syncproto.PackFloat32(v), nil)
		if _, err := o.Append(context.Background(), outbox.StreamVectors, rec, time.Now()); err != nil {
			t.Fatal(err)
		}
		if _, err := o.Append(context.Background(), outbox.StreamAudit, []byte(`{"action":"`+strings.Repeat("x", 300)+`"}`), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		for _, st := range []string{outbox.StreamVectors, outbox.StreamAudit} {
			if _, err := s.SyncOnce(context.Background(), st); err != nil {
				t.Fatal(err)
			}
		}
	}
	noted := types()
	z, plain := syncproto.ContentTypeBatchZstd, syncproto.ContentTypeProtobuf
	if got := noted[outbox.StreamVectors]; len(got) != 3 || got[0] != plain || got[1] != plain || got[2] != plain {
		t.Fatalf("vectors went as %v, want plain (zstd does not shrink them)", got)
	}
	if got := noted[outbox.StreamAudit]; len(got) != 3 || got[0] != z || got[2] != z {
		t.Fatalf("audit went as %v, want zstd", got)
	}
	if len(h.got[outbox.StreamVectors]) != 9 || len(h.got[outbox.StreamAudit]) != 9 {
		t.Fatalf("hub holds %d vectors and %d audit records, want 9 each", len(h.got[outbox.StreamVectors]), len(h.got[outbox.StreamAudit]))
	}
}

// TestLargeBatchCompressionDecidedBySample: a batch of more than twice
// the compression sample (here 400 vectors of 768 dims, 1.2 MB, and
// batches of 1,000 audit records, 0.4 MB each) is judged by its start: the vectors go plain,
// the text compressed, and the hub takes both whole.
func TestLargeBatchCompressionDecidedBySample(t *testing.T) {
	h, srv, types := typeRecordingHub(t)
	o := openOutbox(t)
	rt, err := router.New(router.Config{Targets: []string{srv.URL}})
	if err != nil {
		t.Fatal(err)
	}
	s := syncer.New(syncer.Config{EdgeID: "e1", Credential: func() string { return "c" }, Outbox: o,
		Streams: []string{outbox.StreamAudit, outbox.StreamVectors}, Router: rt}) // batches of up to 1,000
	rng := rand.New(rand.NewPCG(3, 4))
	var waits []func() (int64, error)
	for i := range 400 {
		v := make([]float32, 768)
		for j := range v {
			v[j] = rng.Float32()*2 - 1
		}
		rec := syncproto.AppendVectorRecord(nil, fmt.Sprint("v", i), syncproto.PackFloat32(v), nil)
		waits = append(waits, o.AppendAsync(context.Background(), outbox.StreamVectors, rec, time.Now()))
	}
	for i := range 3000 {
		rec := fmt.Appendf(nil, `{"action":"%d %s"}`, i, strings.Repeat("x", 380))
		waits = append(waits, o.AppendAsync(context.Background(), outbox.StreamAudit, rec, time.Now()))
	}
	for _, w := range waits {
		if _, err := w(); err != nil {
			t.Fatal(err)
		}
	}
	for _, st := range []string{outbox.StreamVectors, outbox.StreamAudit} {
		for {
			n, err := s.SyncOnce(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				break
			}
		}
	}
	noted := types()
	if len(noted[outbox.StreamVectors]) != 1 || len(noted[outbox.StreamAudit]) != 3 {
		t.Fatalf("%d batches of vectors and %d of audit records, want 1 and 3 (of 1,000 records)", len(noted[outbox.StreamVectors]), len(noted[outbox.StreamAudit]))
	}
	for _, ct := range noted[outbox.StreamVectors] {
		if ct != syncproto.ContentTypeProtobuf {
			t.Fatalf("vectors went as %v, want plain", noted[outbox.StreamVectors])
		}
	}
	for _, ct := range noted[outbox.StreamAudit] {
		if ct != syncproto.ContentTypeBatchZstd {
			t.Fatalf("audit went as %v, want zstd", noted[outbox.StreamAudit])
		}
	}
	if len(h.got[outbox.StreamVectors]) != 400 || len(h.got[outbox.StreamAudit]) != 3000 {
		t.Fatalf("hub holds %d vectors and %d audit records, want 400 and 3000", len(h.got[outbox.StreamVectors]), len(h.got[outbox.StreamAudit]))
	}
}

// TestBusyHubIsWaitedFor: a hub that answers 429 with Retry-After (too
// many batches of this edge at once) is alive, not failed: the syncer
// counts hub_busy (not network), waits at least the Retry-After before
// sending again (its own backoff is 10 ms here), and then syncs.
func TestBusyHubIsWaitedFor(t *testing.T) {
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	var mu sync.Mutex
	var sent []time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == router.HealthPath {
			return
		}
		mu.Lock()
		sent = append(sent, time.Now())
		first := len(sent) == 1
		mu.Unlock()
		if first {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"error":{"code":"too_many_batches"}}`, http.StatusTooManyRequests)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	o := openOutbox(t)
	rt, _ := router.New(router.Config{Targets: []string{srv.URL}, FailuresToDown: 1})
	s := syncer.New(syncer.Config{EdgeID: "e1", Credential: func() string { return "c" }, Outbox: o,
		Streams: []string{outbox.StreamAudit}, Router: rt, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	appendN(t, o, outbox.StreamAudit, 2)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	testenv.WaitFor(t, 10*time.Second, "the hub to take the batch", func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if n := len(h.got[outbox.StreamAudit]); n != 2 {
			return fmt.Errorf("hub holds %d of 2", n)
		}
		return nil
	})
	mu.Lock()
	gap := sent[1].Sub(sent[0])
	mu.Unlock()
	if gap < 900*time.Millisecond {
		t.Fatalf("sent again %s after a 429 with Retry-After: 1", gap)
	}
	if f := s.Stats().Failures; f[syncer.ReasonBusy] != 1 || f[syncer.ReasonNetwork] != 0 {
		t.Fatalf("failures %v, want one hub_busy and no network", f)
	}
}

// TestSilentHubGivenUpOnNoProgress: a hub that takes the request and then
// says nothing is given up after ProgressTimeout (not the client's 60 s),
// and the batch goes to the next hub; a hub that keeps answering
// "102 Processing" while it works is waited for past ProgressTimeout.
func TestSilentHubGivenUpOnNoProgress(t *testing.T) {
	release := make(chan struct{})
	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != router.HealthPath {
			io.ReadAll(r.Body)
			<-release // alive at the TCP level, but never answers
		}
	}))
	defer silent.Close()
	defer close(release) // before Close, which waits for the handler
	h := &fakeHub{wm: map[string]int64{}, got: map[string][]string{}}
	var progress sync.Map
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != router.HealthPath && r.Header.Get(syncproto.ProgressHeader) != "" {
			progress.Store(r.URL.Path, true)
			for range 6 { // 1.2 s of work, 4 × ProgressTimeout, with progress every 200 ms
				time.Sleep(200 * time.Millisecond) // the hub's work, not synchronisation
				w.WriteHeader(http.StatusProcessing)
			}
		}
		h.ServeHTTP(w, r)
	}))
	defer slow.Close()
	o := openOutbox(t)
	rt, _ := router.New(router.Config{Targets: []string{silent.URL, slow.URL}})
	s := syncer.New(syncer.Config{EdgeID: "e1", Credential: func() string { return "c" }, Outbox: o,
		Streams: []string{outbox.StreamAudit}, Router: rt, ProgressTimeout: 300 * time.Millisecond})
	appendN(t, o, outbox.StreamAudit, 3)
	start := time.Now()
	n, err := s.SyncOnce(context.Background(), outbox.StreamAudit)
	took := time.Since(start)
	if err != nil || n != 3 {
		t.Fatalf("SyncOnce past a silent hub: %d, %v", n, err)
	}
	if _, ok := progress.Load(syncer.BatchPath); !ok {
		t.Fatal("the syncer did not ask for progress answers")
	}
	// 300 ms on the silent hub, then 1.2 s on the slow one.
	if took < 1500*time.Millisecond || took > 10*time.Second {
		t.Fatalf("SyncOnce took %s, want the silent hub given up after 300 ms and the slow one waited for (1.5 s)", took)
	}
	if st := s.Stats(); st.Hub != slow.URL || st.Failures[syncer.ReasonNetwork] != 0 {
		t.Fatalf("stats %+v: want the slow hub, and the silent one not counted as a whole-sync failure", st)
	}
}
