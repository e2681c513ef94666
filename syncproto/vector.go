package syncproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// A vectors record has two forms. Local flows publish it as JSON,
// {"id": "...", "vector": [numbers], "metadata": {...}}; the edge turns it
// into the canonical vector record when it accepts the publish, and from
// then on only the canonical form exists: the edge outbox stores it, its
// checksum is the CRC-32C of it, it travels as a Record's vector_id,
// vector and metadata (payload empty), and the hub keeps its parts in the
// vectors table and rebuilds it to answer reads. Parsing the decimal
// numbers once, at the edge, is what keeps a backlog drain cheap: no JSON
// numbers are stored twice, sent, or parsed again.
//
// Canonical vector record, version 1:
//
//	"RFV\x01"                     4 bytes: magic and version
//	uvarint len(id)   id          UTF-8
//	uvarint dim       vector      dim little-endian IEEE 754 float32s
//	uvarint len(meta) metadata    a JSON object, or empty
const vectorMagic = "RFV\x01"

// MaxVectorDim is the largest vector dimension a vectors record may have.
const MaxVectorDim = 65536

// MaxVectorIDBytes bounds a vector id.
const MaxVectorIDBytes = 1024

// AppendVectorRecord appends the canonical vector record of (id, packed,
// metadata) to dst; packed is PackFloat32's encoding.
func AppendVectorRecord(dst []byte, id string, packed, metadata []byte) []byte {
	dst = append(dst, vectorMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	dst = binary.AppendUvarint(dst, uint64(len(packed)/4))
	dst = append(dst, packed...)
	dst = binary.AppendUvarint(dst, uint64(len(metadata)))
	return append(dst, metadata...)
}

// VectorRecordSize is len(AppendVectorRecord(nil, id, packed, metadata)).
func VectorRecordSize(id string, packed, metadata []byte) int {
	return len(vectorMagic) + uvarintLen(len(id)) + len(id) + uvarintLen(len(packed)/4) + len(packed) +
		uvarintLen(len(metadata)) + len(metadata)
}

func uvarintLen(n int) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], uint64(n))
}

// IsVectorRecord reports whether b starts like a canonical vector record.
func IsVectorRecord(b []byte) bool { return bytes.HasPrefix(b, []byte(vectorMagic)) }

// SplitVectorRecord returns the parts of a canonical vector record; the
// slices alias b. ok is false if b is not exactly one well-formed record.
func SplitVectorRecord(b []byte) (id string, packed, metadata []byte, ok bool) {
	if !IsVectorRecord(b) {
		return "", nil, nil, false
	}
	rest := b[len(vectorMagic):]
	next := func(unit int) ([]byte, bool) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k)/uint64(unit) {
			return nil, false
		}
		end := k + int(n)*unit
		part := rest[k:end:end]
		rest = rest[end:]
		return part, true
	}
	rawID, ok1 := next(1)
	packed, ok2 := next(4)
	metadata, ok3 := next(1)
	if !ok1 || !ok2 || !ok3 || len(rest) != 0 {
		return "", nil, nil, false
	}
	return string(rawID), packed, metadata, true
}

// VectorRecordChecksum returns Checksum(AppendVectorRecord(nil, id,
// packed, metadata)) without building the record.
func VectorRecordChecksum(id string, packed, metadata []byte) uint32 {
	var head [len(vectorMagic) + 2*binary.MaxVarintLen64]byte
	h := binary.AppendUvarint(append(head[:0], vectorMagic...), uint64(len(id)))
	sum := crc32.Update(0, castagnoli, h)
	sum = crc32.Update(sum, castagnoli, unsafe.Slice(unsafe.StringData(id), len(id)))
	sum = crc32.Update(sum, castagnoli, binary.AppendUvarint(head[:0], uint64(len(packed)/4)))
	sum = crc32.Update(sum, castagnoli, packed)
	sum = crc32.Update(sum, castagnoli, binary.AppendUvarint(head[:0], uint64(len(metadata))))
	return crc32.Update(sum, castagnoli, metadata)
}

// RecordChecksum returns the checksum r must carry: the CRC-32C of its
// payload, or, for a vectors record sent as its parts (vector set,
// payload empty), of its canonical vector record.
func RecordChecksum(r *Record) uint32 {
	if len(r.Payload) == 0 && len(r.Vector) > 0 {
		return VectorRecordChecksum(r.VectorId, r.Vector, r.Metadata)
	}
	return Checksum(r.Payload)
}

// VectorError is a vectors publish that is not a valid vector record; Field
// names the JSON field at fault.
type VectorError struct {
	Field  string
	Reason string
}

func (e *VectorError) Error() string { return e.Field + ": " + e.Reason }

// ErrNotVector is wrapped by every VectorError.
var ErrNotVector = errors.New("not a vector record")

// Unwrap lets errors.Is(err, ErrNotVector) match.
func (e *VectorError) Unwrap() error { return ErrNotVector }

// VectorRecordFromJSON parses a published vectors payload,
// {"id": string, "vector": [numbers], "metadata": object|null (optional)},
// and appends its canonical vector record to dst. Every number must be a
// finite float32 (a value outside float32's range is refused, not rounded
// to infinity); unknown and repeated fields are refused so nothing is
// dropped silently. On a refusal dst is returned unchanged.
//
// It scans the payload once (a vector is hundreds of numbers, and
// encoding/json would scan them twice and then again to parse them).
func VectorRecordFromJSON(dst, payload []byte) ([]byte, error) {
	p := vparser{b: payload}
	var id, vec, meta []byte
	var seen [3]bool
	p.ws()
	if !p.eat('{') {
		return dst, &VectorError{"payload", "must be a JSON object"}
	}
	start := len(dst)
	p.ws()
	for first := true; !p.eat('}'); first = false {
		if !first && (!p.eat(',') || !p.wsThen()) {
			return dst[:start], &VectorError{"payload", "must be a JSON object: expected , or } at byte " + strconv.Itoa(p.i)}
		}
		key, ok := p.str()
		p.ws()
		if !ok || !p.eat(':') {
			return dst[:start], &VectorError{"payload", "must be a JSON object: bad key at byte " + strconv.Itoa(p.i)}
		}
		p.ws()
		k := slices.Index([]string{"id", "vector", "metadata"}, string(key))
		if k < 0 {
			return dst[:start], &VectorError{string(key), "is not a field of a vector record (id, vector, metadata)"}
		}
		if seen[k] {
			return dst[:start], &VectorError{string(key), "appears twice"}
		}
		seen[k] = true
		switch k {
		case 0:
			if id, ok = p.str(); !ok {
				return dst[:start], &VectorError{"id", "must be a string"}
			}
		case 1:
			at := p.i
			if !p.eat('[') {
				return dst[:start], &VectorError{"vector", "must be an array of numbers"}
			}
			p.i = at
			vec = payload[at:] // parsed below, once id is known
			if err := p.skipFloats(); err != nil {
				return dst[:start], err
			}
			vec = vec[:p.i-at]
		case 2:
			at := p.i
			if !p.skipValue(0) {
				return dst[:start], &VectorError{"metadata", "must be valid JSON"}
			}
			meta = payload[at:p.i]
		}
		p.ws()
	}
	p.ws()
	if p.i != len(payload) {
		return dst[:start], &VectorError{"payload", "must be exactly one JSON object"}
	}
	switch {
	case id == nil:
		return dst, &VectorError{"id", "is required"}
	case len(id) == 0:
		return dst, &VectorError{"id", "must not be empty"}
	case len(id) > MaxVectorIDBytes:
		return dst, &VectorError{"id", fmt.Sprintf("is %d bytes, limit %d", len(id), MaxVectorIDBytes)}
	case vec == nil:
		return dst, &VectorError{"vector", "is required"}
	}
	if bytes.Equal(meta, []byte("null")) {
		meta = nil
	}
	if len(meta) > 0 && (meta[0] != '{' || !json.Valid(meta)) {
		return dst, &VectorError{"metadata", "must be a JSON object"}
	}
	dst = append(dst, vectorMagic...)
	dst = binary.AppendUvarint(dst, uint64(len(id)))
	dst = append(dst, id...)
	dst, err := appendFloats(dst, vec)
	if err != nil {
		return dst[:start], err
	}
	dst = binary.AppendUvarint(dst, uint64(len(meta)))
	return append(dst, meta...), nil
}

// vparser is a cursor over a JSON text, just enough of a JSON scanner for
// VectorRecordFromJSON; metadata, which it only delimits, is checked with
// json.Valid afterwards.
type vparser struct {
	b []byte
	i int
}

func (p *vparser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// wsThen skips white space and reports whether anything follows.
func (p *vparser) wsThen() bool { p.ws(); return p.i < len(p.b) }

func (p *vparser) eat(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// str reads a JSON string and returns its decoded bytes.
func (p *vparser) str() ([]byte, bool) {
	at := p.i
	if !p.eat('"') {
		return nil, false
	}
	escaped := false
	for {
		end := bytes.IndexByte(p.b[p.i:], '"')
		if end < 0 {
			return nil, false
		}
		seg := p.b[p.i : p.i+end]
		for _, c := range seg {
			if c < 0x20 {
				return nil, false
			}
		}
		if k := bytes.IndexByte(seg, '\\'); k >= 0 {
			// An escape: step past it (\" must not end the string).
			escaped = true
			p.i += k + 2
			if p.i > len(p.b) {
				return nil, false
			}
			continue
		}
		p.i += end + 1
		break
	}
	raw := p.b[at:p.i]
	if !utf8.Valid(raw) {
		return nil, false
	}
	if !escaped {
		return raw[1 : len(raw)-1], true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// num skips a JSON number and returns it.
func (p *vparser) num() ([]byte, bool) {
	at := p.i
	p.eat('-')
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	n := digits()
	if n == 0 || n > 1 && p.b[p.i-n] == '0' {
		return nil, false
	}
	if p.eat('.') && digits() == 0 {
		return nil, false
	}
	if p.eat('e') || p.eat('E') {
		_ = p.eat('+') || p.eat('-')
		if digits() == 0 {
			return nil, false
		}
	}
	return p.b[at:p.i], true
}

// skipFloats checks an array of numbers.
func (p *vparser) skipFloats() error {
	p.eat('[')
	p.ws()
	if p.eat(']') {
		return &VectorError{"vector", "must not be empty"}
	}
	for n := 0; ; n++ {
		if _, ok := p.num(); !ok {
			return &VectorError{fmt.Sprintf("vector[%d]", n), "must be a number"}
		}
		p.ws()
		if p.eat(']') {
			return nil
		}
		if !p.eat(',') {
			return &VectorError{"vector", "must be an array of numbers: expected , or ] at byte " + strconv.Itoa(p.i)}
		}
		p.ws()
	}
}

// maxDepth bounds the nesting skipValue follows.
const maxDepth = 512

// skipValue skips one JSON value, nested at most maxDepth deep.
func (p *vparser) skipValue(depth int) bool {
	if depth > maxDepth || p.i >= len(p.b) {
		return false
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, ok := p.str()
		return ok
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.ws()
		for first := true; !p.eat(end); first = false {
			if !first && !p.eat(',') {
				return false
			}
			p.ws()
			if c == '{' {
				if _, ok := p.str(); !ok {
					return false
				}
				p.ws()
				if !p.eat(':') {
					return false
				}
				p.ws()
			}
			if !p.skipValue(depth + 1) {
				return false
			}
			p.ws()
		}
		return true
	case c == '-' || c >= '0' && c <= '9':
		_, ok := p.num()
		return ok
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.b[p.i:], []byte(lit)) {
			p.i += len(lit)
			return true
		}
	}
	return false
}

// appendFloats appends uvarint(dim) and the packed float32s of raw, an
// array of JSON numbers that skipFloats accepted.
func appendFloats(dst []byte, raw []byte) ([]byte, error) {
	dim := bytes.Count(raw, []byte{','}) + 1
	if dim > MaxVectorDim {
		return dst, &VectorError{"vector", fmt.Sprintf("has %d values, limit %d", dim, MaxVectorDim)}
	}
	return appendPacked(binary.AppendUvarint(dst, uint64(dim)), raw, dim)
}

// appendPacked appends the dim packed float32s of raw, an array of JSON
// numbers that skipFloats accepted.
func appendPacked(dst []byte, raw []byte, dim int) ([]byte, error) {
	p := vparser{b: raw, i: 1}
	for i := range dim {
		p.ws()
		tok, _ := p.num()
		p.ws()
		p.i++ // , or ]
		// The string aliases tok only for the call; ParseFloat keeps no reference.
		f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(tok), len(tok)), 32)
		if err != nil {
			return dst, &VectorError{fmt.Sprintf("vector[%d]", i), "is not a finite float32: " + string(tok)}
		}
		dst = binary.LittleEndian.AppendUint32(dst, math.Float32bits(float32(f)))
	}
	return dst, nil
}

// PackJSONFloats parses raw, a JSON array of numbers (white space around
// it allowed), into packed float32s (PackFloat32's encoding), with the
// rules of VectorRecordFromJSON: not empty, each a finite float32, at most
// MaxVectorDim values.
func PackJSONFloats(raw []byte) ([]byte, error) {
	p := vparser{b: raw}
	p.ws()
	if p.i >= len(raw) || raw[p.i] != '[' {
		return nil, &VectorError{"vector", "must be an array of numbers"}
	}
	start := p.i
	if err := p.skipFloats(); err != nil {
		return nil, err
	}
	arr := raw[start:p.i]
	if p.ws(); p.i != len(raw) {
		return nil, &VectorError{"vector", "must be exactly one array"}
	}
	dim := bytes.Count(arr, []byte{','}) + 1
	if dim > MaxVectorDim {
		return nil, &VectorError{"vector", fmt.Sprintf("has %d values, limit %d", dim, MaxVectorDim)}
	}
	return appendPacked(make([]byte, 0, 4*dim), arr, dim)
}

// ValidJSONObject reports whether payload is exactly one JSON object
// (white space around it allowed), in UTF-8: what a record payload other
// than a vector must be. It is a one-pass check, several times faster than
// json.Valid on the edge's hot path.
func ValidJSONObject(payload []byte) bool {
	p := vparser{b: payload}
	p.ws()
	if p.i >= len(payload) || payload[p.i] != '{' || !p.skipValue(0) {
		return false
	}
	p.ws()
	return p.i == len(payload)
}
