package store

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/redforge/controltower/syncproto"
)

func TestGapErrorMatches(t *testing.T) {
	err := fmt.Errorf("ingest: %w", &GapError{EdgeID: "e", Stream: "s", FirstSeq: 9, Expected: 4})
	var gap *GapError
	if !errors.Is(err, ErrGap) || !errors.As(err, &gap) || gap.Expected != 4 {
		t.Fatalf("%v does not match ErrGap with Expected 4", err)
	}
	if errors.Is(err, ErrInvalid) {
		t.Fatal("a gap matches ErrInvalid")
	}
}

func TestInvalidErrorNamesField(t *testing.T) {
	err := ValidateMetricSamples([]MetricSample{{Time: time.Now(), Source: "s", Name: "n"}, {Time: time.Now(), Name: "n"}})
	var ie *InvalidError
	if !errors.Is(err, ErrInvalid) || !errors.As(err, &ie) || ie.Field != "samples[1].source" {
		t.Fatalf("err = %v, want ErrInvalid on samples[1].source", err)
	}
}

func TestPending(t *testing.T) {
	b := Batch{FirstSeq: 5, Records: []Record{{Seq: 5}, {Seq: 6}, {Seq: 7}}}
	for wm, want := range map[int64]int64{0: 5, 4: 5, 5: 6, 6: 7, 7: 0, 100: 0} {
		p := b.Pending(wm)
		got := int64(0)
		if len(p) > 0 {
			got = p[0].Seq
		}
		if got != want {
			t.Errorf("Pending(%d) starts at %d, want %d", wm, got, want)
		}
	}
}

func TestRecordVector(t *testing.T) {
	in := []float32{math.Float32frombits(0x7f800001), float32(math.Copysign(0, -1)), math.Float32frombits(1)}
	r := Record{Vector: syncproto.PackFloat32(in)}
	out, err := r.Values()
	if err != nil || r.Dim() != 3 || !r.HasVector() {
		t.Fatalf("Values %v, Dim %d: %v", out, r.Dim(), err)
	}
	for i := range in {
		if math.Float32bits(in[i]) != math.Float32bits(out[i]) {
			t.Fatalf("value %d: %08x became %08x", i, math.Float32bits(in[i]), math.Float32bits(out[i]))
		}
	}
	if r := (Record{Vector: []byte{1, 2, 3}}); r.Dim() != 0 {
		if _, err := r.Values(); err == nil {
			t.Fatal("Values of 3 bytes succeeded")
		}
	}
	r = Record{VectorID: "v", Vector: syncproto.PackFloat32(in), Metadata: []byte(`{"a":1}`)}
	if r.Sum() != Checksum(r.CanonicalVector()) {
		t.Fatal("Sum of a vector record is not the CRC-32C of its canonical record")
	}
}

func TestChecksumIsCRC32C(t *testing.T) {
	// The CRC-32C check value (RFC 3720, B.4).
	if got := Checksum([]byte("123456789")); got != 0xe3069283 {
		t.Fatalf("Checksum = %08x, want e3069283", got)
	}
}

func TestNormalizeTime(t *testing.T) {
	in := time.Date(2025, 1, 2, 3, 4, 5, 678901234, time.FixedZone("X", 3600))
	got := NormalizeTime(in)
	if got.Location() != time.UTC || got.Nanosecond() != 678901000 || !got.Equal(in.Truncate(time.Microsecond)) {
		t.Fatalf("NormalizeTime(%v) = %v", in, got)
	}
}
