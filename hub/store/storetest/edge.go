package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

func runEdge(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("IngestAdvancesWatermark", func(t *testing.T) { testIngest(t, open(t)) })
	t.Run("GapRefusedWithExpectedSeq", func(t *testing.T) { testGap(t, open(t)) })
	t.Run("ReplaySkippedNoDuplicates", func(t *testing.T) { testReplay(t, open(t)) })
	t.Run("NonContiguousRefused", func(t *testing.T) { testNonContiguous(t, open(t)) })
	t.Run("ChecksumMismatchRefusesBatch", func(t *testing.T) { testChecksum(t, open(t)) })
	t.Run("InvalidBatchRefused", func(t *testing.T) { testInvalidBatch(t, open(t)) })
	t.Run("EmptyBatch", func(t *testing.T) { testEmptyBatch(t, open(t)) })
	t.Run("VectorsBitIdentical", func(t *testing.T) { testVectors(t, open(t)) })
	t.Run("VectorRecordsSentAsParts", func(t *testing.T) { testVectorParts(t, open(t)) })
	t.Run("AIDecisionsExactlyOnce", func(t *testing.T) { testEdgeDecisions(t, open(t)) })
	t.Run("InvalidDecisionRefusesBatch", func(t *testing.T) { testEdgeDecisionInvalid(t, open(t)) })
	t.Run("LargeBatch", func(t *testing.T) { testLargeBatch(t, open(t)) })
	t.Run("ConcurrentSendersExactlyOnce", func(t *testing.T) { testConcurrentIngest(t, open(t)) })
	t.Run("StreamsAndEdgesIndependent", func(t *testing.T) { testStreamsIndependent(t, open(t)) })
	t.Run("InvalidQueries", func(t *testing.T) { testEdgeBadQueries(t, open(t)) })
}

// record returns record seq of a stream, with a payload that names it.
func record(stream string, seq int64) store.Record {
	p := []byte(fmt.Sprintf(`{"stream":%q,"seq":%d}`, stream, seq))
	return store.Record{Seq: seq, Time: t0.Add(time.Duration(seq) * time.Millisecond), Payload: p, Checksum: store.Checksum(p)}
}

// batch returns n records from first.
func batch(edge, stream string, first int64, n int) store.Batch {
	b := store.Batch{EdgeID: edge, Stream: stream, FirstSeq: first}
	for i := range n {
		b.Records = append(b.Records, record(stream, first+int64(i)))
	}
	return b
}

func mustIngest(t *testing.T, s store.Store, b store.Batch, want int64) {
	t.Helper()
	wm, err := s.IngestBatch(t.Context(), b)
	if err != nil {
		t.Fatalf("IngestBatch(%s/%s from %d, %d records): %v", b.EdgeID, b.Stream, b.FirstSeq, len(b.Records), err)
	}
	if wm != want {
		t.Fatalf("IngestBatch(%s/%s from %d, %d records) = watermark %d, want %d", b.EdgeID, b.Stream, b.FirstSeq, len(b.Records), wm, want)
	}
}

func mustWatermarks(t *testing.T, s store.Store, edge string) map[string]store.Watermark {
	t.Helper()
	w, err := s.Watermarks(t.Context(), edge)
	if err != nil {
		t.Fatalf("Watermarks(%s): %v", edge, err)
	}
	return w
}

func mustRecords(t *testing.T, s store.Store, edge, stream string, after int64, limit int) []store.Record {
	t.Helper()
	rs, err := s.ListEdgeRecords(t.Context(), edge, stream, after, limit)
	if err != nil {
		t.Fatalf("ListEdgeRecords(%s, %s, %d, %d): %v", edge, stream, after, limit, err)
	}
	return rs
}

// normRecord is r as the store returns it.
func normRecord(r store.Record) store.Record {
	r.Time = store.NormalizeTime(r.Time)
	r.Metadata = store.NormalizeJSON(r.Metadata)
	r.Decision = nil // kept in ai_decisions, not returned with the record
	if len(r.Vector) == 0 {
		r.Vector = nil
	}
	return r
}

// sameRecords compares records, payloads by content (nil equals empty)
// and vectors bit for bit.
func sameRecords(t *testing.T, what string, got, want []store.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], normRecord(want[i])
		if !bytesEqual(g.Payload, w.Payload) {
			t.Fatalf("%s: record %d payload %q, want %q", what, i, g.Payload, w.Payload)
		}
		if !bytes.Equal(g.Vector, w.Vector) {
			t.Fatalf("%s: record %d (seq %d) vector % x, want % x", what, i, g.Seq, g.Vector, w.Vector)
		}
		g.Payload, w.Payload, g.Vector, w.Vector = nil, nil, nil, nil
		equal(t, fmt.Sprintf("%s: record %d", what, i), g, w)
	}
}

// sameBits compares unpacked values with a packed vector bit for bit.
func sameBits(got []float32, want []byte) error {
	if len(got) != len(want)/4 {
		return fmt.Errorf("dimension %d, want %d", len(got), len(want)/4)
	}
	for i := range got {
		if g, w := math.Float32bits(got[i]), binary.LittleEndian.Uint32(want[4*i:]); g != w {
			return fmt.Errorf("value %d is %08x, want %08x", i, g, w)
		}
	}
	return nil
}

func testIngest(t *testing.T, s store.Store) {
	before := store.NormalizeTime(time.Now())
	b := batch("edge-1", "audit", 1, 5)
	mustIngest(t, s, b, 5)
	after := time.Now()
	w := mustWatermarks(t, s, "edge-1")
	if len(w) != 1 || w["audit"].Seq != 5 || w["audit"].Count != 5 ||
		w["audit"].UpdatedAt.Before(before) || w["audit"].UpdatedAt.After(after) || w["audit"].UpdatedAt.Location() != time.UTC {
		t.Fatalf("watermarks = %+v; want audit at seq 5, count 5, updated between %v and %v", w, before, after)
	}
	sameRecords(t, "all records", mustRecords(t, s, "edge-1", "audit", 0, 0), b.Records)
	sameRecords(t, "after 3, limit 1", mustRecords(t, s, "edge-1", "audit", 3, 1), b.Records[3:4])
	if rs := mustRecords(t, s, "edge-1", "audit", 5, 0); len(rs) != 0 {
		t.Fatalf("%d records after the watermark", len(rs))
	}
	mustIngest(t, s, batch("edge-1", "audit", 6, 2), 7)
	if w := mustWatermarks(t, s, "edge-1")["audit"]; w.Seq != 7 || w.Count != 7 {
		t.Fatalf("watermark after second batch = %+v, want seq 7 count 7", w)
	}
	if w := mustWatermarks(t, s, "edge-unknown"); w == nil || len(w) != 0 {
		t.Fatalf("unknown edge watermarks = %#v, want an empty map", w)
	}
}

func testGap(t *testing.T, s store.Store) {
	mustIngest(t, s, batch("e", "audit", 1, 3), 3)
	w0 := mustWatermarks(t, s, "e")

	_, err := s.IngestBatch(t.Context(), batch("e", "audit", 5, 3))
	var gap *store.GapError
	if !errors.Is(err, store.ErrGap) || !errors.As(err, &gap) || gap.Expected != 4 {
		t.Fatalf("IngestBatch past the watermark: %v; want a *GapError expecting 4", err)
	}
	expected := gap.Expected
	equal(t, "watermarks after a refused gap", mustWatermarks(t, s, "e"), w0)
	if rs := mustRecords(t, s, "e", "audit", 3, 0); len(rs) != 0 {
		t.Fatalf("refused gap batch wrote %d records", len(rs))
	}

	// A fresh stream expects seq 1 and gets no watermark row from a refusal.
	_, err = s.IngestBatch(t.Context(), batch("e", "metrics", 2, 1))
	if !errors.As(err, &gap) || gap.Expected != 1 || gap.FirstSeq != 2 {
		t.Fatalf("gap on a fresh stream: %v; want expected 1", err)
	}
	equal(t, "watermarks after a refused first batch", mustWatermarks(t, s, "e"), w0)

	// Resending from the expected seq succeeds.
	mustIngest(t, s, batch("e", "audit", expected, 5), 8)
}

func testReplay(t *testing.T, s store.Store) {
	b := batch("e", "audit", 1, 5)
	mustIngest(t, s, b, 5)
	w0 := mustWatermarks(t, s, "e")

	mustIngest(t, s, b, 5) // the same batch again: a lost ack
	equal(t, "watermarks after a replay", mustWatermarks(t, s, "e"), w0)
	sameRecords(t, "records after a replay", mustRecords(t, s, "e", "audit", 0, 0), b.Records)

	// Overlap 3..8 with different payloads for 3..5: the originals stay.
	over := batch("e", "audit", 3, 6)
	for i := range 3 {
		over.Records[i].Payload = []byte("changed")
		over.Records[i].Checksum = store.Checksum(over.Records[i].Payload)
	}
	mustIngest(t, s, over, 8)
	want := append(append([]store.Record(nil), b.Records...), over.Records[3:]...)
	sameRecords(t, "records after an overlapping batch", mustRecords(t, s, "e", "audit", 0, 0), want)
	if w := mustWatermarks(t, s, "e")["audit"]; w.Seq != 8 || w.Count != 8 {
		t.Fatalf("watermark after overlap = %+v, want seq 8 count 8", w)
	}

	w1 := mustWatermarks(t, s, "e")
	mustIngest(t, s, batch("e", "audit", 2, 4), 8) // wholly old
	equal(t, "watermarks after an old batch", mustWatermarks(t, s, "e"), w1)
	sameRecords(t, "records after an old batch", mustRecords(t, s, "e", "audit", 0, 0), want)
}

func testNonContiguous(t *testing.T, s store.Store) {
	mustIngest(t, s, batch("e", "audit", 1, 2), 2)
	w0 := mustWatermarks(t, s, "e")
	for _, c := range []struct {
		name  string
		seqs  []int64
		first int64
		field string
	}{
		{"hole", []int64{3, 4, 6}, 3, "records[2].seq"},
		{"duplicate", []int64{3, 3}, 3, "records[1].seq"},
		{"descending", []int64{4, 3}, 4, "records[1].seq"},
		{"first_seq mismatch", []int64{4, 5}, 3, "records[0].seq"},
	} {
		b := store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: c.first}
		for _, seq := range c.seqs {
			b.Records = append(b.Records, record("audit", seq))
		}
		_, err := s.IngestBatch(t.Context(), b)
		wantInvalid(t, err, c.field)
	}
	equal(t, "watermarks after refused batches", mustWatermarks(t, s, "e"), w0)
	if rs := mustRecords(t, s, "e", "audit", 2, 0); len(rs) != 0 {
		t.Fatalf("refused batches wrote %d records", len(rs))
	}
}

func testChecksum(t *testing.T, s store.Store) {
	b := batch("e", "audit", 1, 3)
	b.Records[1].Checksum ^= 1
	if _, err := s.IngestBatch(t.Context(), b); !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("IngestBatch with a bad checksum: %v, want ErrChecksum", err)
	}
	b = batch("e", "audit", 1, 3)
	b.Records[2].Payload = []byte("tampered")
	if _, err := s.IngestBatch(t.Context(), b); !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("IngestBatch with a changed payload: %v, want ErrChecksum", err)
	}
	if w := mustWatermarks(t, s, "e"); len(w) != 0 {
		t.Fatalf("refused batches wrote watermarks %v", w)
	}
	if rs := mustRecords(t, s, "e", "audit", 0, 0); len(rs) != 0 {
		t.Fatalf("refused batches wrote %d records", len(rs))
	}
	// An empty payload has the checksum of no bytes.
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: 1,
		Records: []store.Record{{Seq: 1, Time: t0, Checksum: store.Checksum(nil)}}}, 1)
	if rs := mustRecords(t, s, "e", "audit", 0, 0); len(rs) != 1 || len(rs[0].Payload) != 0 || rs[0].Checksum != 0 {
		t.Fatalf("empty payload record = %+v", rs)
	}
}

func testInvalidBatch(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field  string
		mutate func(*store.Batch)
	}{
		{"edge_id", func(b *store.Batch) { b.EdgeID = "" }},
		{"edge_id", func(b *store.Batch) { b.EdgeID = "e\x00" }},
		{"stream", func(b *store.Batch) { b.Stream = "" }},
		{"first_seq", func(b *store.Batch) { b.FirstSeq = 0; b.Records = nil }},
		{"first_seq", func(b *store.Batch) { b.FirstSeq = -4; b.Records = nil }},
		{"first_seq", func(b *store.Batch) { b.FirstSeq = math.MaxInt64 - 1 }},
		{"records[1].time", func(b *store.Batch) { b.Records[1].Time = time.Time{} }},
		{"records[0].vector", func(b *store.Batch) { b.Records[0].Vector = syncproto.PackFloat32([]float32{1}) }},
		{"records[1].vector", func(b *store.Batch) { b.Records[1].VectorID = "v" }},
		{"records[1].vector", func(b *store.Batch) { b.Records[1].Metadata = json.RawMessage(`{}`) }},
	} {
		b := batch("e", "audit", 1, 2)
		c.mutate(&b)
		_, err := s.IngestBatch(t.Context(), b)
		wantInvalid(t, err, c.field)
	}
	for _, c := range []struct {
		field  string
		mutate func(*store.Record)
	}{
		{"records[0].metadata", func(r *store.Record) { r.Metadata = json.RawMessage(`nope`) }},
		{"records[0].vector_id", func(r *store.Record) { r.VectorID = "\xff" }},
		{"records[0].vector", func(r *store.Record) { r.Vector = make([]byte, 4*(store.MaxVectorDim+1)) }},
		{"records[0].vector", func(r *store.Record) { r.Vector = []byte{1, 2, 3} }}, // not packed float32s
	} {
		b := store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: 1, Records: []store.Record{record("v", 1)}}
		b.Records[0].Vector = syncproto.PackFloat32([]float32{1, 2})
		c.mutate(&b.Records[0])
		_, err := s.IngestBatch(t.Context(), b)
		wantInvalid(t, err, c.field)
	}
	if w := mustWatermarks(t, s, "e"); len(w) != 0 {
		t.Fatalf("refused batches wrote watermarks %v", w)
	}
}

func testEmptyBatch(t *testing.T, s store.Store) {
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: 1}, 0)
	if w := mustWatermarks(t, s, "e"); len(w) != 0 {
		t.Fatalf("empty batch wrote watermarks %v", w)
	}
	mustIngest(t, s, batch("e", "audit", 1, 3), 3)
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: 4}, 3)
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: 2}, 3)
	_, err := s.IngestBatch(t.Context(), store.Batch{EdgeID: "e", Stream: "audit", FirstSeq: 9})
	var gap *store.GapError
	if !errors.As(err, &gap) || gap.Expected != 4 {
		t.Fatalf("empty batch past the watermark: %v, want a gap expecting 4", err)
	}
}

// specialFloats are bit patterns a vector must keep exactly.
var specialFloats = []uint32{
	0x00000000, // +0
	0x80000000, // -0
	0x00000001, // smallest denormal
	0x807fffff, // largest negative denormal
	0x7f7fffff, // MaxFloat32
	0x7f800000, // +Inf
	0xff800000, // -Inf
	0x7fc00000, // quiet NaN
	0x7fc00001, // quiet NaN with payload
	0xffffffff, // negative NaN, all payload bits
	0x7f800001, // signalling NaN
	0x3f800000, // 1
}

func testVectors(t *testing.T, s store.Store) {
	special := make([]float32, len(specialFloats))
	for i, bits := range specialFloats {
		special[i] = math.Float32frombits(bits)
	}
	big := make([]float32, 768)
	for i := range big {
		big[i] = float32(math.Sin(float64(i))) * 1e-3
	}
	b := store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: 1}
	for i, v := range [][]float32{special, nil, big} {
		r := record(store.VectorsStream, int64(i+1))
		if v != nil {
			r.Vector, r.VectorID, r.Metadata = syncproto.PackFloat32(v), fmt.Sprintf("doc-%d", i), json.RawMessage(fmt.Sprintf(`{"chunk": %d,  "src":"a.pdf"}`, i))
		}
		b.Records = append(b.Records, r)
	}
	mustIngest(t, s, b, 3)

	sameRecords(t, "records of the vectors stream", mustRecords(t, s, "e", store.VectorsStream, 0, 0), b.Records)
	vs, err := s.ListVectors(t.Context(), "e", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("ListVectors returned %d vectors, want 2 (record 2 has none)", len(vs))
	}
	for i, r := range []store.Record{b.Records[0], b.Records[2]} {
		if err := sameBits(vs[i].Values, r.Vector); err != nil {
			t.Fatalf("vector seq %d: %v", r.Seq, err)
		}
		vs[i].Values = nil
		equal(t, "vector", vs[i], store.Vector{EdgeID: "e", Seq: r.Seq, VectorID: r.VectorID,
			Metadata: r.Metadata, Time: store.NormalizeTime(r.Time)})
	}
	if vs, _ := s.ListVectors(t.Context(), "e", 1, 1); len(vs) != 1 || vs[0].Seq != 3 {
		t.Fatalf("ListVectors after 1, limit 1 = %+v, want seq 3", vs)
	}
}

func testLargeBatch(t *testing.T, s store.Store) {
	const n = 1000
	b := batch("e", store.VectorsStream, 1, n)
	for i := range b.Records {
		v := make([]float32, 16)
		for j := range v {
			v[j] = float32(i*16 + j)
		}
		b.Records[i].Vector, b.Records[i].VectorID = syncproto.PackFloat32(v), fmt.Sprintf("v%d", i)
	}
	mustIngest(t, s, b, n)
	mustIngest(t, s, b, n) // replay of a large batch
	sameRecords(t, "large batch", mustRecords(t, s, "e", store.VectorsStream, 0, n), b.Records)
	vs, err := s.ListVectors(t.Context(), "e", 0, n)
	if err != nil || len(vs) != n {
		t.Fatalf("ListVectors: %d vectors, %v; want %d", len(vs), err, n)
	}
	if w := mustWatermarks(t, s, "e")[store.VectorsStream]; w.Count != n {
		t.Fatalf("count %d, want %d", w.Count, n)
	}
}

func testConcurrentIngest(t *testing.T, s store.Store) {
	// Several senders (an edge retrying through two hubs) push the same
	// batches in order at once. Each record must land exactly once.
	const senders, batches, per = 4, 10, 10
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range batches {
				wm, err := s.IngestBatch(context.Background(), batch("e", "audit", int64(k*per+1), per))
				if err == nil && wm < int64((k+1)*per) {
					err = fmt.Errorf("watermark %d after batch %d", wm, k)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := batch("e", "audit", 1, batches*per)
	sameRecords(t, "records after concurrent senders", mustRecords(t, s, "e", "audit", 0, 0), want.Records)
	if w := mustWatermarks(t, s, "e")["audit"]; w.Seq != batches*per || w.Count != batches*per {
		t.Fatalf("watermark %+v, want seq and count %d", w, batches*per)
	}
}

func testStreamsIndependent(t *testing.T, s store.Store) {
	mustIngest(t, s, batch("a", "x", 1, 3), 3)
	mustIngest(t, s, batch("a", "y", 1, 1), 1)
	mustIngest(t, s, batch("b", "x", 1, 2), 2)
	mustIngest(t, s, batch("a", "x", 4, 1), 4)
	wa, wb := mustWatermarks(t, s, "a"), mustWatermarks(t, s, "b")
	if len(wa) != 2 || wa["x"].Seq != 4 || wa["y"].Seq != 1 || len(wb) != 1 || wb["x"].Seq != 2 {
		t.Fatalf("watermarks a=%+v b=%+v", wa, wb)
	}
	sameRecords(t, "b/x", mustRecords(t, s, "b", "x", 0, 0), batch("b", "x", 1, 2).Records)
	if rs := mustRecords(t, s, "a", "z", 0, 0); len(rs) != 0 {
		t.Fatalf("unknown stream has %d records", len(rs))
	}
}

func testEdgeBadQueries(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field        string
		edge, stream string
		after        int64
		limit        int
	}{
		{"edge_id", "", "x", 0, 0},
		{"stream", "e", "", 0, 0},
		{"after_seq", "e", "x", -1, 0},
		{"limit", "e", "x", 0, -1},
		{"limit", "e", "x", 0, store.MaxLimit + 1},
	} {
		_, err := s.ListEdgeRecords(t.Context(), c.edge, c.stream, c.after, c.limit)
		wantInvalid(t, err, c.field)
		if c.field != "stream" {
			_, err := s.ListVectors(t.Context(), c.edge, c.after, c.limit)
			wantInvalid(t, err, c.field)
		}
	}
	_, err := s.Watermarks(t.Context(), "")
	wantInvalid(t, err, "edge_id")
}

// testVectorParts: a vector sent as its parts (no payload) is checked
// against the CRC-32C of its canonical vector record, stored once, and
// read back with that canonical record as its payload.
func testVectorParts(t *testing.T, s store.Store) {
	vec := []float32{0.25, -1, float32(math.Inf(1)), math.Float32frombits(0x80000000)}
	r := record(store.VectorsStream, 1)
	r.Payload, r.Vector, r.VectorID, r.Metadata = nil, syncproto.PackFloat32(vec), "doc-9", json.RawMessage(`{"page": 2}`)
	canon := syncproto.AppendVectorRecord(nil, "doc-9", syncproto.PackFloat32(vec), []byte(`{"page": 2}`))
	r.Checksum = store.Checksum(canon)

	bad := r
	bad.Checksum = store.Checksum([]byte{}) // the checksum of the (empty) payload is not enough
	if _, err := s.IngestBatch(t.Context(), store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: 1, Records: []store.Record{bad}}); !errors.Is(err, store.ErrChecksum) {
		t.Fatalf("vector parts with the empty payload's checksum: err %v, want ErrChecksum", err)
	}
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: 1, Records: []store.Record{r}}, 1)
	got := mustRecords(t, s, "e", store.VectorsStream, 0, 0)
	if len(got) != 1 || !bytes.Equal(got[0].Payload, canon) || got[0].Checksum != r.Checksum || store.Checksum(got[0].Payload) != got[0].Checksum {
		t.Fatalf("read back %+v, want the canonical record %q with its checksum", got, canon)
	}
	if !bytes.Equal(got[0].Vector, syncproto.PackFloat32(vec)) || got[0].VectorID != "doc-9" {
		t.Fatalf("vector read back: % x, id %q", got[0].Vector, got[0].VectorID)
	}
	// A replay of the same record (as read back, payload included) is skipped.
	mustIngest(t, s, store.Batch{EdgeID: "e", Stream: store.VectorsStream, FirstSeq: 1, Records: got}, 1)
	if w := mustWatermarks(t, s, "e")[store.VectorsStream]; w.Count != 1 {
		t.Fatalf("watermark count %d after a replay, want 1", w.Count)
	}
}
