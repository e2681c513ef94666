package store

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
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

func TestPackVectorKeepsBits(t *testing.T) {
	in := []float32{math.Float32frombits(0x7f800001), float32(math.Copysign(0, -1)), math.Float32frombits(1)}
	out, err := UnpackVector(PackVector(in))
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		if math.Float32bits(in[i]) != math.Float32bits(out[i]) {
			t.Fatalf("value %d: %08x became %08x", i, math.Float32bits(in[i]), math.Float32bits(out[i]))
		}
	}
	if b := PackVector([]float32{1}); b[3] != 0x3f || b[0] != 0 {
		t.Fatalf("PackVector(1) = % x, want little-endian 00 00 80 3f", b)
	}
	if _, err := UnpackVector([]byte{1, 2, 3}); err == nil {
		t.Fatal("UnpackVector of 3 bytes succeeded")
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
