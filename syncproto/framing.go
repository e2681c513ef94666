package syncproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/proto"
)

// Content types of a batch body.
const (
	// ContentTypeBatchZstd is a zstd-compressed protobuf Batch, what the edge sends.
	ContentTypeBatchZstd = "application/x-redforge-batch+zstd"
	// ContentTypeProtobuf is an uncompressed protobuf message (a Batch in a
	// request, an Ack or ConfigBundle in a response).
	ContentTypeProtobuf = "application/x-protobuf"
)

// Progress of a batch request. An edge that sends ProgressHeader (any
// value) with a batch gets, while the hub waits for its turn, decodes and
// commits it, a "102 Processing" informational answer every
// ProgressInterval before the final one; the edge gives a hub up when a
// request makes no progress (no bytes either way, no 102) for a few
// intervals, instead of waiting out a whole request timeout when the hub
// died silently.
const (
	ProgressHeader   = "X-Redforge-Progress"
	ProgressInterval = time.Second
)

// Default limits of DecodeBatch.
const (
	// DefaultMaxBodyBytes bounds the body as received (compressed or not).
	DefaultMaxBodyBytes = 32 << 20
	// DefaultMaxDecodedBytes bounds the protobuf after decompression, so a
	// small zstd frame cannot expand into a huge allocation. An edge's
	// batch is at most its syncer's MaxBatchBytes (8 MiB) plus one record
	// (an MQTT packet, at most 1 MiB), well inside it.
	DefaultMaxDecodedBytes = 32 << 20
	// DefaultMaxRecords bounds the records of one batch.
	DefaultMaxRecords = 100_000
)

// Limits bound what DecodeBatch accepts. Zero fields take the defaults.
type Limits struct {
	MaxBodyBytes    int
	MaxDecodedBytes int
	MaxRecords      int
}

func (l Limits) withDefaults() Limits {
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxDecodedBytes <= 0 {
		l.MaxDecodedBytes = DefaultMaxDecodedBytes
	}
	if l.MaxRecords <= 0 {
		l.MaxRecords = DefaultMaxRecords
	}
	return l
}

// Errors of DecodeBatch and Verify. A *DecodeError wraps one of them.
var (
	// ErrTooLarge: the body, its decompressed form or the record count passes a limit.
	ErrTooLarge = errors.New("syncproto: batch too large")
	// ErrMalformed: not zstd, not protobuf, an unknown content type, or a
	// batch that breaks the schema (missing fields, non-contiguous seqs,
	// a vector that is not packed float32).
	ErrMalformed = errors.New("syncproto: malformed batch")
	// ErrChecksum: a record's payload does not match its CRC-32C.
	ErrChecksum = errors.New("syncproto: checksum mismatch")
)

// DecodeError says why a batch was refused: Err is ErrTooLarge,
// ErrMalformed or ErrChecksum; Field names the offending field when known.
type DecodeError struct {
	Err    error
	Field  string
	Detail string
}

func (e *DecodeError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("%v: %s: %s", e.Err, e.Field, e.Detail)
	}
	return fmt.Sprintf("%v: %s", e.Err, e.Detail)
}

// Unwrap returns the sentinel.
func (e *DecodeError) Unwrap() error { return e.Err }

// Reason maps the error to the refusal reason an Ack carries.
func (e *DecodeError) Reason() RefusalReason {
	if errors.Is(e.Err, ErrChecksum) {
		return RefusalReason_REFUSAL_REASON_CHECKSUM
	}
	return RefusalReason_REFUSAL_REASON_INVALID
}

func decodeErr(err error, field, format string, args ...any) *DecodeError {
	return &DecodeError{Err: err, Field: field, Detail: fmt.Sprintf(format, args...)}
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C (Castagnoli) of payload, the checksum a
// Record carries (the same as the edge outbox and the hub store compute).
func Checksum(payload []byte) uint32 { return crc32.Checksum(payload, castagnoli) }

// PackFloat32 encodes v as packed little-endian IEEE 754 float32s, the
// form vectors travel in and the hub stores; every bit pattern (NaN
// payloads, -0, denormals) survives.
func PackFloat32(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, f := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(f))
	}
	return b
}

// UnpackFloat32 decodes PackFloat32's encoding; it fails if len(b) is not a
// multiple of 4.
func UnpackFloat32(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, decodeErr(ErrMalformed, "vector", "%d bytes is not a multiple of 4", len(b))
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v, nil
}

// MaxWindowBytes bounds the zstd window a batch may use, which is the
// history the decoder must hold. It is the window of the edge's encoder
// (klauspost/compress's default, 8 MiB): a frame of up to that size is
// one segment whose window is its content size; a larger one uses an
// 8 MiB window.
const MaxWindowBytes = 8 << 20

var (
	encOnce sync.Once
	encoder *zstd.Encoder
	decPool sync.Pool // of *zstd.Decoder, streaming, concurrency 1
	bufPool sync.Pool // of *[]byte, decompressed bodies
)

// maxPooledBuf is the largest decompression buffer kept for reuse: a
// typical batch fits, a refused bomb's buffer is left to the collector.
const maxPooledBuf = 16 << 20

func zstdEncoder() *zstd.Encoder {
	encOnce.Do(func() {
		encoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	})
	return encoder
}

// EncodeBatch marshals b and compresses it with zstd, the body of a
// ContentTypeBatchZstd request.
func EncodeBatch(b *Batch) ([]byte, error) {
	raw, err := proto.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	return Compress(raw), nil
}

// Compress zstd-compresses a marshalled batch (the body of a
// ContentTypeBatchZstd request).
func Compress(raw []byte) []byte {
	return zstdEncoder().EncodeAll(raw, make([]byte, 0, len(raw)/2+64))
}

// DecodeBatch decodes a batch body of the given content type
// (ContentTypeBatchZstd or ContentTypeProtobuf) under lim and checks it
// with Verify. Every failure is a *DecodeError.
//
// A zstd body is decompressed as a stream, never trusting the sizes its
// frame header claims: the decoder holds at most a MaxWindowBytes window,
// and the output grows only as bytes are produced, up to
// lim.MaxDecodedBytes, at which point decoding stops with ErrTooLarge. So
// one call allocates at most about MaxWindowBytes + 1.5 × MaxDecodedBytes,
// whatever the body expands to.
func DecodeBatch(contentType string, body []byte, lim Limits) (*Batch, error) {
	lim = lim.withDefaults()
	if len(body) > lim.MaxBodyBytes {
		return nil, decodeErr(ErrTooLarge, "", "body is %d bytes, limit %d", len(body), lim.MaxBodyBytes)
	}
	raw := body
	switch contentType {
	case ContentTypeBatchZstd:
		bp := getBuf()
		defer putBuf(bp)
		var err error
		if *bp, err = decompress(body, (*bp)[:0], lim.MaxDecodedBytes); err != nil {
			return nil, err
		}
		raw = *bp
	case ContentTypeProtobuf:
		if len(raw) > lim.MaxDecodedBytes {
			return nil, decodeErr(ErrTooLarge, "", "body is %d bytes, limit %d", len(raw), lim.MaxDecodedBytes)
		}
	default:
		return nil, decodeErr(ErrMalformed, "", "content type %q; send %s or %s", contentType, ContentTypeBatchZstd, ContentTypeProtobuf)
	}
	b := &Batch{}
	// Unmarshal copies bytes fields, so the buffer can go back to the pool.
	if err := proto.Unmarshal(raw, b); err != nil {
		return nil, decodeErr(ErrMalformed, "", "not a protobuf Batch: %v", err)
	}
	if len(b.Records) > lim.MaxRecords {
		return nil, decodeErr(ErrTooLarge, "records", "%d records, limit %d", len(b.Records), lim.MaxRecords)
	}
	if err := Verify(b); err != nil {
		return nil, err
	}
	return b, nil
}

func getBuf() *[]byte {
	if bp, ok := bufPool.Get().(*[]byte); ok {
		return bp
	}
	return new([]byte)
}

func putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		bufPool.Put(bp)
	}
}

func zstdDecoder() (*zstd.Decoder, error) {
	if d, ok := decPool.Get().(*zstd.Decoder); ok {
		return d, nil
	}
	// Concurrency 1 decodes synchronously in Read, block by block, into a
	// history of at most MaxWindowBytes (a one-segment frame's window is
	// its content size, held to the same bound).
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(MaxWindowBytes))
	if err != nil {
		return nil, fmt.Errorf("zstd decoder: %w", err)
	}
	return d, nil
}

// decompress appends the decompression of body to dst, refusing with
// ErrTooLarge as soon as the output passes maxDecoded bytes.
func decompress(body, dst []byte, maxDecoded int) ([]byte, error) {
	d, err := zstdDecoder()
	if err != nil {
		return dst, err
	}
	defer func() {
		_ = d.Reset(nil) // drop the reference to body
		decPool.Put(d)
	}()
	if err := d.Reset(bytes.NewReader(body)); err != nil {
		return dst, decodeErr(ErrMalformed, "", "not zstd: %v", err)
	}
	dst, err = readLimited(d, dst, maxDecoded)
	switch {
	case errors.Is(err, errLimit):
		return dst, decodeErr(ErrTooLarge, "", "decompresses to more than %d bytes", maxDecoded)
	case errors.Is(err, zstd.ErrDecoderSizeExceeded) || errors.Is(err, zstd.ErrWindowSizeExceeded):
		return dst, decodeErr(ErrTooLarge, "", "zstd window passes %d bytes", MaxWindowBytes)
	case err != nil:
		return dst, decodeErr(ErrMalformed, "", "not zstd: %v", err)
	}
	return dst, nil
}

var errLimit = errors.New("read limit")

// readLimited appends what r yields to dst until EOF, growing dst only as
// bytes arrive (doubling, capped at limit+1 so one byte too many is seen);
// it returns errLimit once more than limit bytes were read.
func readLimited(r io.Reader, dst []byte, limit int) ([]byte, error) {
	const minGrow = 64 << 10
	for {
		if len(dst) == cap(dst) {
			if len(dst) > limit {
				return dst, errLimit
			}
			n := max(2*cap(dst), minGrow)
			if n >= limit {
				n = limit + 1 // the last step: room for the limit and the byte that passes it
			}
			grown := make([]byte, len(dst), n)
			copy(grown, dst)
			dst = grown
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if len(dst) > limit {
			return dst, errLimit
		}
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// Verify checks a batch whole: edge_id set, stream one of Streams,
// first_seq ≥ 1, records[i].seq == first_seq+i, arrival times set, every
// checksum matching its payload or, for a vector sent as its parts, its
// canonical vector record (else ErrChecksum), every payload of the shape
// its stream requires (CheckPayload), vectors packed float32 with
// vector_id and metadata only beside a vector. Every failure is a
// *DecodeError naming the field.
func Verify(b *Batch) error {
	switch {
	case b.EdgeId == "":
		return decodeErr(ErrMalformed, "edge_id", "is required")
	case b.Stream == "":
		return decodeErr(ErrMalformed, "stream", "is required")
	case b.FirstSeq < 1:
		return decodeErr(ErrMalformed, "first_seq", "must be at least 1, got %d", b.FirstSeq)
	case b.FirstSeq > math.MaxInt64-int64(len(b.Records)):
		return decodeErr(ErrMalformed, "first_seq", "%d overflows with %d records", b.FirstSeq, len(b.Records))
	}
	if err := CheckStream(b.Stream); err != nil {
		return err
	}
	for i, r := range b.Records {
		if err := verifyRecord(b, i, r); err != nil {
			return err
		}
	}
	return nil
}

func verifyRecord(b *Batch, i int, r *Record) error {
	field := func() string { return fmt.Sprintf("records[%d]", i) }
	if want := b.FirstSeq + int64(i); r.Seq != want {
		return decodeErr(ErrMalformed, field()+".seq", "seqs must be contiguous from first_seq %d: got %d, want %d", b.FirstSeq, r.Seq, want)
	}
	if r.ArrivedUnixNanos <= 0 {
		return decodeErr(ErrMalformed, field()+".arrived_unix_nanos", "must be set")
	}
	if got := RecordChecksum(r); got != r.Checksum {
		return decodeErr(ErrChecksum, field()+".checksum", "seq %d: record CRC-32C is %08x, record says %08x", r.Seq, got, r.Checksum)
	}
	if len(r.Vector)%4 != 0 {
		return decodeErr(ErrMalformed, field()+".vector", "%d bytes is not packed float32", len(r.Vector))
	}
	if len(r.Vector) == 0 && (r.VectorId != "" || len(r.Metadata) != 0) {
		return decodeErr(ErrMalformed, field()+".vector", "vector_id and metadata need a vector")
	}
	if err := CheckPayload("", b.Stream, r.Payload, len(r.Vector) > 0); err != nil {
		var de *DecodeError
		errors.As(err, &de)
		de.Field = field() + de.Field
		return de
	}
	return nil
}

// LastSeq returns the seq of the batch's last record, or first_seq-1 when
// it has none.
func (x *Batch) LastSeq() int64 { return x.GetFirstSeq() + int64(len(x.GetRecords())) - 1 }
