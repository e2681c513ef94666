package syncproto

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestVectorRecordFromJSON(t *testing.T) {
	rec, err := VectorRecordFromJSON(nil, []byte(` {"id":"doc-1","vector":[0.5, -1e-3,3.4028235e38 ,-0],"metadata":{"k":"v, w"}} `))
	if err != nil {
		t.Fatal(err)
	}
	id, packed, meta, ok := SplitVectorRecord(rec)
	if !ok || id != "doc-1" || string(meta) != `{"k":"v, w"}` {
		t.Fatalf("split = %q %q %v", id, meta, ok)
	}
	v, _ := UnpackFloat32(packed)
	want := []float32{0.5, -1e-3, math.MaxFloat32, float32(math.Copysign(0, -1))}
	for i := range want {
		if math.Float32bits(v[i]) != math.Float32bits(want[i]) {
			t.Fatalf("vector[%d] = %v, want %v", i, v[i], want[i])
		}
	}
	if len(rec) != VectorRecordSize(id, packed, meta) || !bytes.Equal(rec, AppendVectorRecord(nil, id, packed, meta)) {
		t.Fatal("the parsed record is not the canonical encoding of its parts")
	}

	// Escapes in the id are decoded.
	if rec, err := VectorRecordFromJSON(nil, []byte(`{"vector":[1],"id":"d\u00e9\""}`)); err != nil {
		t.Fatal(err)
	} else if id, _, _, _ := SplitVectorRecord(rec); id != "dé\"" {
		t.Fatalf("id = %q", id)
	}
	// Metadata is optional; null is the same as absent.
	a, err1 := VectorRecordFromJSON(nil, []byte(`{"id":"x","vector":[1]}`))
	b, err2 := VectorRecordFromJSON(nil, []byte(`{"id":"x","vector":[1],"metadata":null}`))
	if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
		t.Fatalf("absent and null metadata differ: %v %v", err1, err2)
	}
	// dst is appended to, and left as it was on a refusal.
	pre := []byte("keep")
	out, err := VectorRecordFromJSON(pre, []byte(`{"id":"x","vector":[1,"2"]}`))
	if err == nil || string(out) != "keep" {
		t.Fatalf("refusal changed dst to %q (err %v)", out, err)
	}
}

func TestVectorRecordFromJSONRefusals(t *testing.T) {
	for _, c := range []struct{ payload, field string }{
		{`[1,2]`, "payload"},
		{`{"id":"x","vector":[1]} {}`, "payload"},
		{`{"vector":[1]}`, "id"},
		{`{"id":"","vector":[1]}`, "id"},
		{`{"id":7,"vector":[1]}`, "id"},
		{`{"id":"` + strings.Repeat("x", MaxVectorIDBytes+1) + `","vector":[1]}`, "id"},
		{`{"id":"x"}`, "vector"},
		{`{"id":"x","vector":[]}`, "vector"},
		{`{"id":"x","vector":"1,2"}`, "vector"},
		{`{"id":"x","vector":[1,"2"]}`, "vector[1]"},
		{`{"id":"x","vector":[1,[2]]}`, "vector[1]"},
		{`{"id":"x","vector":[1,null]}`, "vector[1]"},
		{`{"id":"x","vector":[1e39]}`, "vector[0]"},
		{`{"id":"x","vector":[1],"metadata":[1]}`, "metadata"},
		{`{"id":"x","vector":[1],"text":"hi"}`, "text"},
		{`{"id":"x","vector":[1,2`, "vector"},
		{`{"id":"x","vector":[01]}`, "vector[0]"},
		{`{"id":"x","vector":[1.]}`, "vector[0]"},
		{`{"id":"x","vector":[NaN]}`, "vector[0]"},
		{`{"id":"x","id":"y","vector":[1]}`, "id"},
		{"{\"id\":\"\xff\",\"vector\":[1]}", "id"},
		{`{"id":"x","vector":[1],"metadata":{"a":}}`, "metadata"},
		{`{"id":"x","vector":[1],"metadata":{"a":1}`, "payload"},
		{`{"id":"x","vector":[1]}}`, "payload"},
	} {
		_, err := VectorRecordFromJSON(nil, []byte(c.payload))
		var ve *VectorError
		if !errors.As(err, &ve) || ve.Field != c.field || !errors.Is(err, ErrNotVector) {
			t.Errorf("%.60s: err %v, want a VectorError on %q", c.payload, err, c.field)
		}
	}
}

func TestSplitVectorRecordRejectsDamage(t *testing.T) {
	rec := AppendVectorRecord(nil, "id", PackFloat32([]float32{1, 2}), []byte(`{}`))
	if _, _, _, ok := SplitVectorRecord(rec); !ok {
		t.Fatal("a good record does not split")
	}
	for i := range len(rec) {
		if _, _, _, ok := SplitVectorRecord(rec[:i]); ok {
			t.Fatalf("a record cut to %d bytes splits", i)
		}
	}
	if _, _, _, ok := SplitVectorRecord(append(rec, 0)); ok {
		t.Fatal("trailing bytes accepted")
	}
	if _, _, _, ok := SplitVectorRecord([]byte(`{"id":"x"}`)); ok {
		t.Fatal("JSON accepted as a canonical record")
	}
}

func TestVerifyVectorSentAsParts(t *testing.T) {
	packed := PackFloat32([]float32{1, 2, 3})
	canon := AppendVectorRecord(nil, "v1", packed, []byte(`{"a":1}`))
	b := &Batch{EdgeId: "e", Stream: "vectors", FirstSeq: 1, Records: []*Record{
		{Seq: 1, ArrivedUnixNanos: 1, Checksum: Checksum(canon), Vector: packed, VectorId: "v1", Metadata: []byte(`{"a":1}`)},
	}}
	if err := Verify(b); err != nil {
		t.Fatal(err)
	}
	b.Records[0].VectorId = "v2" // the checksum covers the id too
	var de *DecodeError
	if err := Verify(b); !errors.As(err, &de) || !errors.Is(err, ErrChecksum) {
		t.Fatalf("changed id: err %v, want ErrChecksum", err)
	}
}

func BenchmarkVectorRecordFromJSON(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`{"id":"v1","vector":[`)
	for d := range 768 {
		if d > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString("-0.12345678")
		_ = d
	}
	sb.WriteString(`],"metadata":{"i":1}}`)
	p := []byte(sb.String())
	var dst []byte
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		var err error
		if dst, err = VectorRecordFromJSON(dst[:0], p); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzVectorRecordFromJSON: the scanner never panics, and whatever it
// accepts encoding/json reads the same way (id, values, metadata).
func FuzzVectorRecordFromJSON(f *testing.F) {
	for _, s := range []string{`{"id":"a","vector":[1,-2.5e-3,0],"metadata":{"x":[1,{"y":null}]}}`,
		`{"vector":[1e38],"id":"\u00e9"}`, `{"id":"a","vector":[1],"metadata":null}`, `{"id":"a","vector":[-0.0]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		rec, err := VectorRecordFromJSON(nil, payload)
		if err != nil {
			var ve *VectorError
			if !errors.As(err, &ve) || len(rec) != 0 {
				t.Fatalf("refusal %v is not a VectorError or wrote %d bytes", err, len(rec))
			}
			return
		}
		id, packed, meta, ok := SplitVectorRecord(rec)
		if !ok {
			t.Fatal("accepted record does not split")
		}
		var std struct {
			ID       string          `json:"id"`
			Vector   []float64       `json:"vector"`
			Metadata json.RawMessage `json:"metadata"`
		}
		if err := json.Unmarshal(payload, &std); err != nil {
			t.Fatalf("accepted %q that encoding/json refuses: %v", payload, err)
		}
		vals, _ := UnpackFloat32(packed)
		if std.ID != id || len(std.Vector) != len(vals) {
			t.Fatalf("id %q/%q or dim %d/%d differ", id, std.ID, len(vals), len(std.Vector))
		}
		for i, v := range std.Vector {
			if math.Float32bits(float32(v)) != math.Float32bits(vals[i]) {
				t.Fatalf("vector[%d] = %v, encoding/json says %v", i, vals[i], float32(v))
			}
		}
		if m := bytes.TrimSpace(std.Metadata); !bytes.Equal(m, meta) && !(string(m) == "null" && len(meta) == 0) {
			t.Fatalf("metadata %q, encoding/json says %q", meta, m)
		}
	})
}

// FuzzValidJSONObject: ValidJSONObject agrees with encoding/json (plus
// UTF-8 and "an object") on everything not nested deeper than maxDepth.
func FuzzValidJSONObject(f *testing.F) {
	for _, s := range []string{`{}`, ` {"a":[1,2.5e-3,{"b":null}],"c":"x\"y\\"} `, `{"a":}`, `[1]`, `{"a":"\u00e9"}`, "{\"a\":\"\xff\"}", `{"a":1}{}`, `{"a":01}`, `{"a":tru}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if bytes.Count(b, []byte("["))+bytes.Count(b, []byte("{")) > maxDepth {
			return
		}
		t0 := bytes.TrimLeft(b, " \t\r\n")
		want := json.Valid(b) && utf8.Valid(b) && len(t0) > 0 && t0[0] == '{'
		if got := ValidJSONObject(b); got != want {
			t.Fatalf("ValidJSONObject(%q) = %v, encoding/json says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSONObject(b *testing.B) {
	p := []byte(`{"name":"m","value":1,"labels":{"pad":"` + strings.Repeat("x", 1024-40) + `"}}`)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !ValidJSONObject(p) {
			b.Fatal("refused")
		}
	}
}

func BenchmarkJSONValid(b *testing.B) {
	p := []byte(`{"name":"m","value":1,"labels":{"pad":"` + strings.Repeat("x", 1024-40) + `"}}`)
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if !json.Valid(p) {
			b.Fatal("refused")
		}
	}
}

func TestValidJSONObject(t *testing.T) {
	for in, want := range map[string]bool{
		`{}`:                   true,
		" \n\t{\"a\":[1]}\r\n": true,
		`{"a":{"b":null}}`:     true,
		`{"a":"x\"}\\"}`:       true,
		``:                     false,
		`   `:                  false,
		`null`:                 false,
		`[{}]`:                 false,
		`"{}"`:                 false,
		`{"a":1`:               false,
		`{} {}`:                false,
		`{}x`:                  false,
		"\ufeff{}":             false, // a BOM is not JSON whitespace
		"{\"a\":\"\xff\"}":     false, // not UTF-8
		"{\"a\":\"\t\"}":       false, // a raw control character in a string
		`{"a":"\x"}`:           false,
	} {
		if got := ValidJSONObject([]byte(in)); got != want {
			t.Errorf("ValidJSONObject(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestPackJSONFloats(t *testing.T) {
	got, err := PackJSONFloats([]byte(" [0.5, -2 ,3e-1]\n"))
	if err != nil || !bytes.Equal(got, PackFloat32([]float32{0.5, -2, 0.3})) {
		t.Fatalf("PackJSONFloats = %v, %v", got, err)
	}
	for _, bad := range []string{``, `[]`, `[1,"2"]`, `[1e39]`, `[1] [2]`, `{"a":1}`, `[1,]`} {
		if _, err := PackJSONFloats([]byte(bad)); err == nil {
			t.Errorf("PackJSONFloats(%q) accepted", bad)
		}
	}
}

func TestVectorRecordChecksum(t *testing.T) {
	long := strings.Repeat("i", 300) // a two-byte length
	for _, c := range []struct {
		id   string
		vec  []float32
		meta string
	}{{"a", []float32{1, -2}, `{"k":1}`}, {long, make([]float32, 200), ""}, {"", nil, ""}} {
		packed := PackFloat32(c.vec)
		want := Checksum(AppendVectorRecord(nil, c.id, packed, []byte(c.meta)))
		if got := VectorRecordChecksum(c.id, packed, []byte(c.meta)); got != want {
			t.Errorf("VectorRecordChecksum(%.8q, %d floats, %q) = %08x, want %08x", c.id, len(c.vec), c.meta, got, want)
		}
	}
}
