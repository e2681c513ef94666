package store

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math"
	"time"

	"github.com/redforge/controltower/syncproto"
)

// VectorsStream is the edge stream whose records may carry a vector; those
// vectors are also kept in the vectors table (ListVectors).
const VectorsStream = "vectors"

// AIDecisionsStream is the edge stream whose records may carry an AI
// decision; those decisions are also kept in the ai_decisions table
// (ListAIDecisions), with EdgeID and EdgeSeq set.
const AIDecisionsStream = "ai_decisions"

// MaxVectorDim is the largest vector dimension accepted.
const MaxVectorDim = 65536

// Batch is a run of records of one (edge, stream), as sent by the edge.
type Batch struct {
	EdgeID   string
	Stream   string
	FirstSeq int64 // seq of Records[0]; must be ≥ 1
	Records  []Record
}

// Record is one edge record.
//
// Checksum is the CRC-32C (Castagnoli) of Payload, as computed by Checksum
// (of the canonical vector record for a vector sent as its parts, see
// IsVectorRecord);
// the store verifies it for every record of a batch and refuses the whole
// batch with ErrChecksum on a mismatch. Vector, VectorID and Metadata are
// only meaningful on VectorsStream: a record there with a non-empty Vector
// is also stored as a Vector. Vector is packed little-endian IEEE 754
// float32s (syncproto.PackFloat32's encoding), the form the edge sends and
// the store keeps, so nothing is unpacked on the way in. VectorID or
// Metadata without a Vector, or a Vector on another stream, is ErrInvalid
// (the store never drops fields silently).
//
// Decision is only meaningful on AIDecisionsStream: a record there with a
// Decision also adds it to the ai_decisions table, in the same transaction
// and only when the record itself is inserted (a replay adds nothing). The
// store sets its EdgeID (the batch's) and EdgeSeq (the record's seq) and
// ignores its ID; a Decision on another stream, or one that fails
// AIDecision.Validate, is ErrInvalid ("records[3].decision.model").
// ListEdgeRecords does not return Decision.
type Record struct {
	Seq      int64
	Time     time.Time
	Checksum uint32
	Payload  []byte // an empty payload may be returned as nil
	Vector   []byte // packed float32s; Dim values
	VectorID string
	Metadata json.RawMessage
	Decision *AIDecision
}

// Watermark is the ingest state of one (edge, stream): every record with
// seq ≤ Seq is committed; Count is the number of records committed so far.
type Watermark struct {
	Seq       int64     `json:"seq"`
	Count     int64     `json:"count"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Vector is a synced embedding, stored bit for bit.
type Vector struct {
	EdgeID   string          `json:"edge_id"`
	Seq      int64           `json:"seq"`
	VectorID string          `json:"vector_id"`
	Values   []float32       `json:"values"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
	Time     time.Time       `json:"time"`
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C (Castagnoli) of payload, the checksum a
// Record carries.
func Checksum(payload []byte) uint32 {
	return crc32.Checksum(payload, castagnoli)
}

// Validate checks b whole, before anything is written: EdgeID and Stream
// are required; FirstSeq ≥ 1; Records[i].Seq == FirstSeq+i (else
// ErrInvalid); every Time is set; every Checksum matches (else an error
// wrapping ErrChecksum); vectors only on VectorsStream with 1..MaxVectorDim
// values; decisions only on AIDecisionsStream, valid, with EdgeID empty or
// the batch's and EdgeSeq 0 or the record's; text UTF-8 without NUL;
// Metadata valid JSON or empty. An empty
// Records is valid (IngestBatch then only checks for a gap).
func (b *Batch) Validate() error {
	if err := checkRequired("edge_id", b.EdgeID); err != nil {
		return err
	}
	if err := checkRequired("stream", b.Stream); err != nil {
		return err
	}
	if b.FirstSeq < 1 {
		return invalid("first_seq", "must be at least 1, got %d", b.FirstSeq)
	}
	if b.FirstSeq > math.MaxInt64-int64(len(b.Records)) {
		return invalid("first_seq", "%d overflows with %d records", b.FirstSeq, len(b.Records))
	}
	for i := range b.Records {
		if err := b.validateRecord(i); err != nil {
			return err
		}
	}
	return nil
}

func (b *Batch) validateRecord(i int) error {
	r := &b.Records[i]
	field := fmt.Sprintf("records[%d]", i)
	if want := b.FirstSeq + int64(i); r.Seq != want {
		return invalid(field+".seq", "seqs must be contiguous from first_seq %d: got %d, want %d", b.FirstSeq, r.Seq, want)
	}
	if err := checkTime("time", r.Time); err != nil {
		return prefixed(field, err)
	}
	if got := r.Sum(); got != r.Checksum {
		return fmt.Errorf("%w: %s (seq %d): record CRC-32C is %08x, record says %08x",
			ErrChecksum, field, r.Seq, got, r.Checksum)
	}
	if err := r.validateVector(b.Stream); err != nil {
		return prefixed(field, err)
	}
	return prefixed(field, r.validateDecision(b))
}

func (r *Record) validateDecision(b *Batch) error {
	d := r.Decision
	switch {
	case d == nil:
		return nil
	case b.Stream != AIDecisionsStream:
		return invalid("decision", "only records of stream %q carry decisions", AIDecisionsStream)
	case d.EdgeID != "" && d.EdgeID != b.EdgeID:
		return invalid("decision.edge_id", "must be empty or the batch's edge_id %q", b.EdgeID)
	case d.EdgeSeq != 0 && d.EdgeSeq != r.Seq:
		return invalid("decision.edge_seq", "must be 0 or the record's seq %d", r.Seq)
	}
	return prefixed("decision", d.Validate())
}

// EdgeDecision returns r's decision as IngestBatch stores it, with
// EdgeID and EdgeSeq set, or nil if r has none.
func (r *Record) EdgeDecision(edgeID string) *AIDecision {
	if r.Decision == nil {
		return nil
	}
	d := *r.Decision
	d.ID, d.EdgeID, d.EdgeSeq = 0, edgeID, r.Seq
	return &d
}

func (r *Record) validateVector(stream string) error {
	if len(r.Vector) == 0 {
		if r.VectorID != "" || len(r.Metadata) != 0 {
			return invalid("vector", "vector_id and metadata need a vector")
		}
		return nil
	}
	if stream != VectorsStream {
		return invalid("vector", "only records of stream %q carry vectors", VectorsStream)
	}
	if len(r.Vector)%4 != 0 {
		return invalid("vector", "%d bytes are not packed float32s", len(r.Vector))
	}
	if r.Dim() > MaxVectorDim {
		return invalid("vector", "dimension %d exceeds %d", r.Dim(), MaxVectorDim)
	}
	if err := checkText("vector_id", r.VectorID); err != nil {
		return err
	}
	return checkJSON("metadata", r.Metadata)
}

// HasVector reports whether r is stored with a vector.
func (r *Record) HasVector() bool { return len(r.Vector) > 0 }

// Dim is the dimension of r's vector, 0 without one.
func (r *Record) Dim() int { return len(r.Vector) / 4 }

// Values unpacks r's vector (syncproto.UnpackFloat32), nil without one.
func (r *Record) Values() ([]float32, error) {
	if len(r.Vector) == 0 {
		return nil, nil
	}
	return syncproto.UnpackFloat32(r.Vector)
}

// IsVectorRecord reports whether r is a vector sent as its parts: a
// Vector and an empty Payload. Its Checksum covers its canonical vector
// record (syncproto.AppendVectorRecord of VectorID, the packed Vector and
// Metadata); the store keeps only the parts (no payload bytes twice) and
// ListEdgeRecords returns the canonical record rebuilt as Payload.
func (r *Record) IsVectorRecord() bool { return len(r.Payload) == 0 && len(r.Vector) > 0 }

// CanonicalVector returns r's canonical vector record.
func (r *Record) CanonicalVector() []byte {
	return syncproto.AppendVectorRecord(make([]byte, 0, syncproto.VectorRecordSize(r.VectorID, r.Vector, r.Metadata)), r.VectorID, r.Vector, r.Metadata)
}

// Sum returns the checksum r must carry: the CRC-32C of its Payload, or of
// its canonical vector record when it IsVectorRecord.
func (r *Record) Sum() uint32 {
	if r.IsVectorRecord() {
		return syncproto.VectorRecordChecksum(r.VectorID, r.Vector, r.Metadata)
	}
	return Checksum(r.Payload)
}

// RebuildVectorPayload sets the Payload of a record read back without one
// to its canonical vector record (see IsVectorRecord).
func (r *Record) RebuildVectorPayload() {
	if r.IsVectorRecord() {
		r.Payload = r.CanonicalVector()
	}
}

// ValidateEdgeQuery checks the arguments of ListEdgeRecords (ListVectors
// passes VectorsStream) and returns the limit to apply.
func ValidateEdgeQuery(edgeID, stream string, afterSeq int64, limit int) (int, error) {
	if err := checkRequired("edge_id", edgeID); err != nil {
		return 0, err
	}
	if err := checkRequired("stream", stream); err != nil {
		return 0, err
	}
	if afterSeq < 0 {
		return 0, invalid("after_seq", "must not be negative")
	}
	return ResolveLimit(limit)
}

// ValidateEdgeID checks an edge id argument.
func ValidateEdgeID(edgeID string) error {
	return checkRequired("edge_id", edgeID)
}

// LastSeq is the seq of b's last record, FirstSeq-1 when it has none.
func (b *Batch) LastSeq() int64 { return b.FirstSeq + int64(len(b.Records)) - 1 }

// GapCheck returns a *GapError if a batch starting at b.FirstSeq cannot
// follow watermark.
func (b *Batch) GapCheck(watermark int64) error {
	if b.FirstSeq > watermark+1 {
		return &GapError{EdgeID: b.EdgeID, Stream: b.Stream, FirstSeq: b.FirstSeq, Expected: watermark + 1}
	}
	return nil
}

// Pending returns the records of b above watermark, which IngestBatch
// inserts; the rest are replays and are skipped.
func (b *Batch) Pending(watermark int64) []Record {
	skip := watermark - b.FirstSeq + 1
	switch {
	case skip <= 0:
		return b.Records
	case skip >= int64(len(b.Records)):
		return nil
	}
	return b.Records[skip:]
}
