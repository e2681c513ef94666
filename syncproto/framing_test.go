package syncproto

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"
)

func sampleBatch() *Batch {
	b := &Batch{EdgeId: "edge-1", Stream: "vectors", FirstSeq: 7}
	for i := range 3 {
		p := []byte(`{"id":"v","vector":[1,2]}`)
		b.Records = append(b.Records, &Record{Seq: 7 + int64(i), ArrivedUnixNanos: 1e18, Checksum: Checksum(p), Payload: p,
			Vector: PackFloat32([]float32{1, float32(math.Inf(-1)), float32(i)}), VectorId: "v", Metadata: []byte(`{}`)})
	}
	return b
}

func TestRoundTrip(t *testing.T) {
	b := sampleBatch()
	body, err := EncodeBatch(b)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, b) {
		t.Fatalf("round trip changed the batch")
	}
	raw, _ := proto.Marshal(b)
	if _, err := DecodeBatch(ContentTypeProtobuf, raw, Limits{}); err != nil {
		t.Fatal(err)
	}
	if got.LastSeq() != 9 {
		t.Fatalf("LastSeq %d", got.LastSeq())
	}
	v, err := UnpackFloat32(got.Records[2].Vector)
	if err != nil || v[2] != 2 || !math.IsInf(float64(v[1]), -1) {
		t.Fatalf("vector %v %v", v, err)
	}
}

func TestRefusals(t *testing.T) {
	bad := sampleBatch()
	bad.Records[1].Payload = []byte(`{"tampered":1}`)
	gap := sampleBatch()
	gap.Records[2].Seq = 10
	vec := sampleBatch()
	vec.Records[0].Vector = []byte{1, 2, 3}
	for _, tc := range []struct {
		name string
		b    *Batch
		want error
	}{
		{"checksum", bad, ErrChecksum},
		{"non-contiguous", gap, ErrMalformed},
		{"vector not packed", vec, ErrMalformed},
		{"no edge", &Batch{Stream: "a", FirstSeq: 1}, ErrMalformed},
		{"seq zero", &Batch{EdgeId: "e", Stream: "a"}, ErrMalformed},
	} {
		body, _ := EncodeBatch(tc.b)
		_, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{})
		var de *DecodeError
		if !errors.Is(err, tc.want) || !errors.As(err, &de) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := DecodeBatch("application/json", nil, Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("content type: %v", err)
	}
	if _, err := DecodeBatch(ContentTypeBatchZstd, []byte("not zstd at all"), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("garbage: %v", err)
	}
}

// TestStreamAndPayloadChecks: the hub refuses what the edge's broker never
// stores: a stream outside the five, a payload that is not a JSON object
// (a vectors record may also be a vector sent as its parts or a
// well-formed canonical vector record), each naming the field.
func TestStreamAndPayloadChecks(t *testing.T) {
	rec := func(seq int64, payload string) *Record {
		return &Record{Seq: seq, ArrivedUnixNanos: 1, Payload: []byte(payload), Checksum: Checksum([]byte(payload))}
	}
	canon := AppendVectorRecord(nil, "v", PackFloat32([]float32{1, 2}), nil)
	parts := &Record{Seq: 1, ArrivedUnixNanos: 1, VectorId: "v", Vector: PackFloat32([]float32{1, 2})}
	parts.Checksum = Checksum(canon)
	for _, tc := range []struct {
		name, stream string
		recs         []*Record
		field        string // "" = accepted
	}{
		{"path as stream", "../../x", []*Record{rec(1, `{}`)}, "stream"},
		{"unknown stream", "vectorz", nil, "stream"},
		{"not json on audit", StreamAudit, []*Record{rec(1, `{"a":1}`), rec(2, `not json`)}, "records[1].payload"},
		{"array on metrics", StreamMetrics, []*Record{rec(1, `[1,2]`)}, "records[0].payload"},
		{"empty on checkpoints", StreamCheckpoints, []*Record{rec(1, ``)}, "records[0].payload"},
		{"two objects on ai_decisions", StreamAIDecisions, []*Record{rec(1, `{}{}`)}, "records[0].payload"},
		{"empty without vector on vectors", StreamVectors, []*Record{rec(1, ``)}, "records[0].payload"},
		{"truncated canonical record", StreamVectors, []*Record{rec(1, string(canon[:len(canon)-2]))}, "records[0].payload"},
		{"object on audit", StreamAudit, []*Record{rec(1, ` {"a":[1,{"b":null}]} `)}, ""},
		{"tombstone on vectors", StreamVectors, []*Record{rec(1, `{"redforge_evicted":true}`)}, ""},
		{"canonical record on vectors", StreamVectors, []*Record{rec(1, string(canon))}, ""},
		{"parts on vectors", StreamVectors, []*Record{parts}, ""},
	} {
		_, err := DecodeBatch(ContentTypeProtobuf, mustMarshal(t, &Batch{EdgeId: "e", Stream: tc.stream, FirstSeq: 1, Records: tc.recs}), Limits{})
		var de *DecodeError
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v, want accepted", tc.name, err)
		case tc.field != "" && (!errors.As(err, &de) || !errors.Is(err, ErrMalformed) || de.Field != tc.field):
			t.Errorf("%s: %v, want ErrMalformed on %s", tc.name, err, tc.field)
		case tc.field != "" && bytes.Contains([]byte(err.Error()), []byte("not json")):
			t.Errorf("%s: the error quotes the payload: %v", tc.name, err)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestZipBombRefused compresses 256 MiB of zeros (a few KiB on the wire)
// and expects ErrTooLarge without the decoder allocating it all.
func TestZipBombRefused(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	var buf bytes.Buffer
	enc.Reset(&buf)
	zero := make([]byte, 1<<20)
	for range 256 {
		enc.Write(zero)
	}
	enc.Close()
	if buf.Len() > 1<<20 {
		t.Fatalf("bomb is %d bytes", buf.Len())
	}
	if _, err := DecodeBatch(ContentTypeBatchZstd, buf.Bytes(), Limits{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: %v", err)
	}
	body, _ := EncodeBatch(sampleBatch())
	if _, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{MaxBodyBytes: 10}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body limit: %v", err)
	}
	if _, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{MaxDecodedBytes: 10}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("decoded limit: %v", err)
	}
	if _, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{MaxRecords: 2}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("records limit: %v", err)
	}
}

// FuzzDecodeBatch feeds outside bytes to the decoder: it must never panic,
// and anything it accepts must verify and re-encode to an equal batch.
func FuzzDecodeBatch(f *testing.F) {
	body, _ := EncodeBatch(sampleBatch())
	raw, _ := proto.Marshal(sampleBatch())
	f.Add(true, body)
	f.Add(false, raw)
	f.Add(true, []byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, compressed bool, data []byte) {
		ct := ContentTypeProtobuf
		if compressed {
			ct = ContentTypeBatchZstd
		}
		b, err := DecodeBatch(ct, data, Limits{MaxDecodedBytes: 1 << 20})
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("error is not a *DecodeError: %v", err)
			}
			return
		}
		if err := Verify(b); err != nil {
			t.Fatalf("accepted batch fails Verify: %v", err)
		}
		again, err := EncodeBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		b2, err := DecodeBatch(ContentTypeBatchZstd, again, Limits{})
		if err != nil || !proto.Equal(b, b2) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}

// zstdZeros compresses n MiB of zeros as a stream (no content size in the
// frame header): a few KiB per GiB on the wire.
func zstdZeros(t testing.TB, mib int) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	zero := make([]byte, 1<<20)
	for range mib {
		enc.Write(zero)
	}
	enc.Close()
	return buf.Bytes()
}

// TestZstdBombAllocationBounded decodes a 1 GiB bomb and checks what the
// decoder allocated on the way to refusing it: at most its window, the
// decoded limit with the doubling growth behind it (2 × 32 MiB), and
// slack; not what the bomb expands to, nor a buffer sized by the limit
// up front.
func TestZstdBombAllocationBounded(t *testing.T) {
	bomb := zstdZeros(t, 1024)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := DecodeBatch(ContentTypeBatchZstd, bomb, Limits{})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("1 GiB bomb: %v, want ErrTooLarge", err)
	}
	const bound = MaxWindowBytes + 2*DefaultMaxDecodedBytes + 8<<20
	if got := after.TotalAlloc - before.TotalAlloc; got > bound {
		t.Fatalf("refusing a %d-byte bomb allocated %d MiB, want at most %d MiB", len(bomb), got>>20, bound>>20)
	}
}

// TestWindowBounds: a batch larger than the window, as the edge encodes
// it (EncodeBatch), decodes; a frame that needs a window above
// MaxWindowBytes (a one-segment frame of 12 MiB, or a 16 MiB window) is
// refused with ErrTooLarge before its history is allocated.
func TestWindowBounds(t *testing.T) {
	big := &Batch{EdgeId: "e", Stream: "metrics", FirstSeq: 1}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 12 {
		p := make([]byte, 1<<20)
		for j := range p {
			p[j] = 'a' + byte(rng.IntN(26))
		}
		copy(p, `{"p":"`)
		copy(p[len(p)-2:], `"}`)
		big.Records = append(big.Records, &Record{Seq: int64(i + 1), ArrivedUnixNanos: 1, Payload: p, Checksum: Checksum(p)})
	}
	body, err := EncodeBatch(big)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatch(ContentTypeBatchZstd, body, Limits{})
	if err != nil || !proto.Equal(got, big) {
		t.Fatalf("12 MiB batch as the edge encodes it: %v", err)
	}
	raw, _ := proto.Marshal(big)
	for name, opts := range map[string][]zstd.EOption{
		"one segment of 12 MiB": {zstd.WithWindowSize(16 << 20), zstd.WithSingleSegment(true)},
		"16 MiB window":         {zstd.WithWindowSize(16 << 20), zstd.WithSingleSegment(false)},
	} {
		enc, _ := zstd.NewWriter(nil, opts...)
		if _, err := DecodeBatch(ContentTypeBatchZstd, enc.EncodeAll(raw, nil), Limits{}); !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v, want ErrTooLarge", name, err)
		}
	}
}
