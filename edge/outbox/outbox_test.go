package outbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// MustOpen opens an outbox at path and closes it when the test ends.
func MustOpen(tb testing.TB, path string) *Outbox {
	tb.Helper()
	o := New(path)
	if err := o.Open(context.Background()); err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

// MustClose closes o and fails the test on error.
func MustClose(tb testing.TB, o *Outbox) {
	tb.Helper()
	if err := o.Close(); err != nil {
		tb.Fatalf("close: %v", err)
	}
}

func mustAppend(tb testing.TB, o *Outbox, stream, payload string) int64 {
	tb.Helper()
	seq, err := o.Append(context.Background(), stream, []byte(payload), time.Now())
	if err != nil {
		tb.Fatalf("append %s: %v", stream, err)
	}
	return seq
}

// allRecords reads every pending record of stream.
func allRecords(tb testing.TB, o *Outbox, stream string) []Record {
	tb.Helper()
	var out []Record
	after := int64(0)
	for {
		recs, err := o.Pending(context.Background(), stream, after, 1000)
		if err != nil {
			tb.Fatalf("pending %s: %v", stream, err)
		}
		if len(recs) == 0 {
			return out
		}
		out = append(out, recs...)
		after = recs[len(recs)-1].Seq
	}
}

func seqs(recs []Record) []int64 {
	out := make([]int64, len(recs))
	for i, r := range recs {
		out[i] = r.Seq
	}
	return out
}

func seqRange(from, to int64) []int64 {
	var out []int64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func mustStats(tb testing.TB, o *Outbox) map[string]StreamStats {
	tb.Helper()
	st, err := o.Stats(context.Background())
	if err != nil {
		tb.Fatalf("stats: %v", err)
	}
	return st
}

func TestOpenEnforcesWALAndSynchronousFull(t *testing.T) {
	o := MustOpen(t, filepath.Join(t.TempDir(), "outbox.db"))
	if err := checkDurable(context.Background(), o.w); err != nil {
		t.Fatalf("writer connection: %v", err)
	}
	var mode string
	if err := o.r.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("reader journal_mode = %q, %v; want wal", mode, err)
	}
}

// TestConcurrentAppendsGroupCommit: 8 goroutines x 500 appends over all
// streams; every acknowledged record is durable, seqs are unique and
// gap-free per stream, each appender sees its own seqs increase, and the
// writer committed fewer transactions than records (group commit).
func TestConcurrentAppendsGroupCommit(t *testing.T) {
	const workers, perWorker = 8, 500
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	streams := DefaultStreams()

	type got struct {
		stream  string
		seq     int64
		payload string
	}
	results := make([][]got, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				stream := streams[(w+i)%len(streams)]
				payload := fmt.Sprintf(`{"worker":%d,"i":%d}`, w, i)
				seq, err := o.Append(context.Background(), stream, []byte(payload), time.Now())
				if err != nil {
					t.Errorf("worker %d append %d: %v", w, i, err)
					return
				}
				results[w] = append(results[w], got{stream, seq, payload})
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	commits := o.commits.Load()
	t.Logf("%d appends in %d transactions", workers*perWorker, commits)
	if commits >= workers*perWorker {
		t.Errorf("commits = %d, want fewer than %d appends (group commit)", commits, workers*perWorker)
	}

	want := map[string]map[int64]string{}
	for w, rs := range results {
		last := map[string]int64{}
		for _, g := range rs {
			if g.seq <= last[g.stream] {
				t.Fatalf("worker %d: %s seq %d after %d: not increasing", w, g.stream, g.seq, last[g.stream])
			}
			last[g.stream] = g.seq
			if want[g.stream] == nil {
				want[g.stream] = map[int64]string{}
			}
			if prev, dup := want[g.stream][g.seq]; dup {
				t.Fatalf("%s seq %d given twice: %s and %s", g.stream, g.seq, prev, g.payload)
			}
			want[g.stream][g.seq] = g.payload
		}
	}

	MustClose(t, o)
	o = MustOpen(t, path)
	for _, stream := range streams {
		recs := allRecords(t, o, stream)
		n := int64(len(want[stream]))
		if !slices.Equal(seqs(recs), seqRange(1, n)) {
			t.Fatalf("%s: seqs not 1..%d without gaps: %v", stream, n, seqs(recs))
		}
		for _, r := range recs {
			if string(r.Payload) != want[stream][r.Seq] {
				t.Fatalf("%s seq %d: payload %s, want %s", stream, r.Seq, r.Payload, want[stream][r.Seq])
			}
			if err := r.Verify(); err != nil {
				t.Fatal(err)
			}
		}
		if st := mustStats(t, o)[stream]; st.Depth != n || st.LastSeq != n {
			t.Fatalf("%s stats = %+v, want depth and last seq %d", stream, st, n)
		}
	}
}

// TestReopenKeepsRecordsAndSeqContinues: records and the seq counter survive
// Close and Open.
func TestReopenKeepsRecordsAndSeqContinues(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	before := time.Now()
	for i := range 10 {
		mustAppend(t, o, StreamAudit, fmt.Sprintf(`{"i":%d}`, i))
	}
	MustClose(t, o)

	o = MustOpen(t, path)
	recs := allRecords(t, o, StreamAudit)
	if !slices.Equal(seqs(recs), seqRange(1, 10)) {
		t.Fatalf("after reopen seqs = %v, want 1..10", seqs(recs))
	}
	for i, r := range recs {
		if want := fmt.Sprintf(`{"i":%d}`, i); string(r.Payload) != want {
			t.Fatalf("seq %d payload %s, want %s", r.Seq, r.Payload, want)
		}
		if r.Arrived.Before(before.Add(-time.Second)) || r.Arrived.After(time.Now()) {
			t.Fatalf("seq %d arrived %v, not around now", r.Seq, r.Arrived)
		}
		if r.Checksum != Checksum(r.Payload) || r.Stream != StreamAudit {
			t.Fatalf("record %+v: bad checksum or stream", r)
		}
	}
	if seq := mustAppend(t, o, StreamAudit, `{}`); seq != 11 {
		t.Fatalf("append after reopen got seq %d, want 11", seq)
	}
	if seq := mustAppend(t, o, StreamVectors, `{}`); seq != 1 {
		t.Fatalf("other stream got seq %d, want its own 1", seq)
	}
}

// TestAckDeletesExactlyUpToSeq: Ack removes seq <= n and nothing else, is
// idempotent, refuses seqs never assigned, and is durable.
func TestAckDeletesExactlyUpToSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	ctx := context.Background()
	for i := range 10 {
		mustAppend(t, o, StreamMetrics, fmt.Sprintf(`{"i":%d}`, i))
	}
	mustAppend(t, o, StreamAudit, `{"other":true}`)

	if err := o.Ack(ctx, StreamMetrics, 4); err != nil {
		t.Fatal(err)
	}
	if got := seqs(allRecords(t, o, StreamMetrics)); !slices.Equal(got, seqRange(5, 10)) {
		t.Fatalf("after ack 4: %v, want 5..10", got)
	}
	if err := o.Ack(ctx, StreamMetrics, 2); err != nil {
		t.Fatalf("ack below watermark: %v, want no-op", err)
	}
	if err := o.Ack(ctx, StreamMetrics, 11); !errors.Is(err, ErrAckBeyondLast) {
		t.Fatalf("ack 11 of 10: %v, want ErrAckBeyondLast", err)
	}
	st := mustStats(t, o)
	wantBytes := int64(0)
	for _, r := range allRecords(t, o, StreamMetrics) {
		wantBytes += int64(len(r.Payload))
	}
	if m := st[StreamMetrics]; m.Depth != 6 || m.Bytes != wantBytes || m.LastSeq != 10 {
		t.Fatalf("metrics stats %+v, want depth 6, bytes %d, last 10", m, wantBytes)
	}
	if a := st[StreamAudit]; a.Depth != 1 || a.LastSeq != 1 {
		t.Fatalf("audit touched by metrics ack: %+v", a)
	}

	MustClose(t, o)
	o = MustOpen(t, path)
	if got := seqs(allRecords(t, o, StreamMetrics)); !slices.Equal(got, seqRange(5, 10)) {
		t.Fatalf("after reopen: %v, want 5..10", got)
	}
	if got := seqs(allRecords(t, o, StreamAudit)); !slices.Equal(got, []int64{1}) {
		t.Fatalf("audit after reopen: %v", got)
	}
}

// TestSeqNotReusedAfterAckAllAndReopen: the counter lives in streams.last_seq,
// not in max(records.seq), so an empty stream still continues.
func TestSeqNotReusedAfterAckAllAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	for range 5 {
		mustAppend(t, o, StreamCheckpoints, `{}`)
	}
	if err := o.Ack(context.Background(), StreamCheckpoints, 5); err != nil {
		t.Fatal(err)
	}
	MustClose(t, o)

	o = MustOpen(t, path)
	st := mustStats(t, o)[StreamCheckpoints]
	if st.Depth != 0 || st.Bytes != 0 || st.LastSeq != 5 || !st.OldestArrived.IsZero() {
		t.Fatalf("stats after ack-all and reopen: %+v", st)
	}
	if seq := mustAppend(t, o, StreamCheckpoints, `{}`); seq != 6 {
		t.Fatalf("seq after ack-all and reopen = %d, want 6", seq)
	}
}

func TestStatsOldestArrivedIsHead(t *testing.T) {
	o := MustOpen(t, filepath.Join(t.TempDir(), "outbox.db"))
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range 3 {
		if _, err := o.Append(context.Background(), StreamVectors, []byte(`{"v":[1,2]}`), t0.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.Ack(context.Background(), StreamVectors, 1); err != nil {
		t.Fatal(err)
	}
	st := mustStats(t, o)[StreamVectors]
	if want := t0.Add(time.Second); !st.OldestArrived.Equal(want) || st.Depth != 2 || st.Bytes != 2*int64(len(`{"v":[1,2]}`)) {
		t.Fatalf("stats %+v, want oldest %v depth 2", st, want)
	}
	if len(mustStats(t, o)) != len(DefaultStreams()) {
		t.Fatalf("stats should list every stream")
	}
}

func TestRefusals(t *testing.T) {
	o := New(filepath.Join(t.TempDir(), "outbox.db"))
	ctx := context.Background()
	if _, err := o.Append(ctx, StreamAudit, nil, time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("append before open: %v, want ErrClosed", err)
	}
	if err := o.Open(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, "nope", []byte(`{}`), time.Now()); !errors.Is(err, ErrUnknownStream) {
		t.Fatalf("unknown stream: %v", err)
	}
	if _, err := o.Pending(ctx, "nope", 0, 1); !errors.Is(err, ErrUnknownStream) {
		t.Fatalf("pending unknown stream: %v", err)
	}
	if _, err := o.Append(ctx, StreamAudit, []byte(`{}`), time.Time{}); err == nil {
		t.Fatal("zero arrived accepted")
	}
	if _, err := o.Pending(ctx, StreamAudit, 0, 0); err == nil {
		t.Fatal("limit 0 accepted")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := o.Append(cctx, StreamAudit, []byte(`{}`), time.Now()); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with canceled ctx: %v", err)
	}
	if st := mustStats(t, o)[StreamAudit]; st.LastSeq != 0 {
		t.Fatalf("refused appends assigned seqs: %+v", st)
	}
	if err := o.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	MustClose(t, o)
	if err := o.Health(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("health after close: %v", err)
	}
	if _, err := o.Append(ctx, StreamAudit, []byte(`{}`), time.Now()); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	o := New(filepath.Join(t.TempDir(), "a?b.db"))
	o.MaxBatch = 0
	o.Streams = nil
	err := o.Open(context.Background())
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, field := range []string{"Path", "MaxBatch", "Streams"} {
		if !bytes.Contains([]byte(err.Error()), []byte(field)) {
			t.Errorf("error %q does not name %s", err, field)
		}
	}
	if err := New(filepath.Join(t.TempDir(), "missing", "outbox.db")).Open(context.Background()); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
}

// TestCloseCommitsQueuedAppends: Close races concurrent appenders; every
// Append that returned a seq is on disk afterwards, the others got ErrClosed.
func TestCloseCommitsQueuedAppends(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	var mu sync.Mutex
	acked := map[int64]string{}
	var wg sync.WaitGroup
	started := make(chan struct{}, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				payload := fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)
				seq, err := o.Append(context.Background(), StreamAudit, []byte(payload), time.Now())
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("append: %v", err)
					return
				}
				mu.Lock()
				acked[seq] = payload
				mu.Unlock()
				if i == 10 {
					started <- struct{}{}
				}
			}
		})
	}
	for range 8 {
		<-started
	}
	MustClose(t, o)
	wg.Wait()

	o = MustOpen(t, path)
	recs := allRecords(t, o, StreamAudit)
	got := map[int64]string{}
	for _, r := range recs {
		got[r.Seq] = string(r.Payload)
	}
	if len(got) != len(acked) {
		t.Fatalf("%d records on disk, %d appends acknowledged", len(got), len(acked))
	}
	for seq, payload := range acked {
		if got[seq] != payload {
			t.Fatalf("seq %d acknowledged as %s, on disk %q", seq, payload, got[seq])
		}
	}
	if !slices.Equal(seqs(recs), seqRange(1, int64(len(recs)))) {
		t.Fatalf("seqs have gaps after close: %d records", len(recs))
	}
}

// TestWALStaysBounded: under a continuous stream of group commits (four
// appenders keeping 256 records in flight each) with reads between them,
// the checkpoints, which now run beside the writer, still let the WAL
// start over: it stays near walAutoCheckpoint pages instead of growing
// with everything ever written (a checkpoint beside a busy writer never
// reaches the WAL's end on its own).
func TestWALStaysBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	payload := bytes.Repeat([]byte("x"), 1024)
	const n = 80000 // about 80 MB of WAL frames: the WAL must start over twice
	var wg sync.WaitGroup
	var largest atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			waits := make([]func() (int64, error), 0, 256)
			for i := 0; i < n/4; i++ {
				if len(waits) == cap(waits) {
					if _, err := waits[0](); err != nil {
						t.Error(err)
						return
					}
					waits = waits[1:]
				}
				waits = append(waits, o.AppendAsync(context.Background(), StreamMetrics, payload, time.Now()))
				if w == 0 && i%1000 == 0 {
					o.Pending(context.Background(), StreamMetrics, 0, 100)
					if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > largest.Load() {
						largest.Store(fi.Size())
					}
				}
			}
			for _, wait := range waits {
				wait()
			}
		})
	}
	wg.Wait()
	if limit := int64(48 << 20); largest.Load() > limit { // walAutoCheckpoint's 32 MiB, and the commits while it runs
		t.Fatalf("the WAL grew to %d MiB writing %d MiB, want at most %d MiB", largest.Load()>>20, n>>10, limit>>20)
	}
	t.Logf("largest WAL %d MiB while %d MiB of records were written", largest.Load()>>20, n>>10)
}
