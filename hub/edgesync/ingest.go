package edgesync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

// Ingest commits a decoded, verified batch (syncproto.Verify: a known
// stream, payloads of its shape, checksums) from edgeID exactly once and
// returns the ack. On stream store.AIDecisionsStream each payload that is a
// valid AI decision is also committed to the ai_decisions table, in the
// same transaction; one that is not stays in the ledger only (see
// projectAIDecisions). A gap, a checksum mismatch or an invalid record is
// answered with an Ack carrying a Refusal (nothing was written) and a nil
// error; the caller picks the HTTP status from the reason (RefusalStatus).
// Errors: ErrForbidden when the batch names another edge; store errors.
func (s *Service) Ingest(ctx context.Context, edgeID string, b *syncproto.Batch) (*syncproto.Ack, error) {
	if b.GetEdgeId() != edgeID {
		return nil, fmt.Errorf("edge %q may not write the streams of edge %q: %w", edgeID, b.GetEdgeId(), ErrForbidden)
	}
	return s.ingest(ctx, toStoreBatch(b))
}

func (s *Service) ingest(ctx context.Context, sb store.Batch) (*syncproto.Ack, error) {
	if sb.Stream == store.AIDecisionsStream {
		s.projectAIDecisions(&sb)
	}
	wm, err := s.cfg.Store.IngestBatch(ctx, sb)
	var gap *store.GapError
	var inv *store.InvalidError
	switch {
	case errors.As(err, &gap):
		return refusal(sb.Stream, syncproto.RefusalReason_REFUSAL_REASON_GAP, gap.Expected, gap.Error()), nil
	case errors.Is(err, store.ErrChecksum):
		return refusal(sb.Stream, syncproto.RefusalReason_REFUSAL_REASON_CHECKSUM, 0, err.Error()), nil
	case errors.As(err, &inv):
		return refusal(sb.Stream, syncproto.RefusalReason_REFUSAL_REASON_INVALID, 0, inv.Field+": "+inv.Reason), nil
	case err != nil:
		return nil, fmt.Errorf("ingest %s/%s from %d: %w", sb.EdgeID, sb.Stream, sb.FirstSeq, err)
	}
	return &syncproto.Ack{Stream: sb.Stream, Result: &syncproto.Ack_DurableWatermark{DurableWatermark: wm}}, nil
}

// checkJSONBatch applies to a JSON batch the checks syncproto.Verify
// applies to a protobuf one: a known stream, payloads of its shape.
func checkJSONBatch(jb JSONBatch) error {
	err := syncproto.CheckStream(jb.Stream)
	for i := 0; err == nil && i < len(jb.Records); i++ {
		r := &jb.Records[i]
		err = syncproto.CheckPayload(fmt.Sprintf("records[%d]", i), jb.Stream, r.Payload, len(r.Vector) > 0)
	}
	var de *syncproto.DecodeError
	if errors.As(err, &de) {
		return &store.InvalidError{Field: de.Field, Reason: de.Detail}
	}
	return err
}

func refusal(stream string, reason syncproto.RefusalReason, expected int64, msg string) *syncproto.Ack {
	return &syncproto.Ack{Stream: stream, Result: &syncproto.Ack_Refusal{Refusal: &syncproto.Refusal{Reason: reason, ExpectedSeq: expected, Message: msg}}}
}

// toStoreBatch is b as the store takes it: vectors stay packed, as they
// travelled (the store keeps them so).
func toStoreBatch(b *syncproto.Batch) store.Batch {
	sb := store.Batch{EdgeID: b.EdgeId, Stream: b.Stream, FirstSeq: b.FirstSeq, Records: make([]store.Record, len(b.Records))}
	for i, r := range b.Records {
		sb.Records[i] = store.Record{Seq: r.Seq, Time: time.Unix(0, r.ArrivedUnixNanos).UTC(), Checksum: r.Checksum, Payload: r.Payload,
			Vector: r.Vector, VectorID: r.VectorId, Metadata: json.RawMessage(r.Metadata)}
	}
	return sb
}

// JSONBatch is the body of POST /api/sync/vectors, for scripts: the same
// exactly-once contract as a protobuf batch, on any stream.
type JSONBatch struct {
	Stream   string       `json:"stream"`
	FirstSeq int64        `json:"first_seq"`
	Records  []JSONRecord `json:"records"`
}

// JSONRecord is one record of a JSONBatch. Payload is stored byte for byte
// as sent; Checksum, when given, must be its CRC-32C (for a vector without
// a payload: of its canonical vector record, see store.Record); Arrived
// defaults to now.
type JSONRecord struct {
	Seq      int64           `json:"seq"`
	Arrived  time.Time       `json:"arrived,omitzero"`
	Checksum *uint32         `json:"checksum,omitempty"`
	Payload  json.RawMessage `json:"payload"`
	Vector   []float32       `json:"vector,omitempty"`
	VectorID string          `json:"vector_id,omitempty"`
	Metadata json.RawMessage `json:"metadata,omitempty"`
}

// IngestJSON commits a JSON batch from edgeID with Ingest's semantics.
// The stream must be one of syncproto.Streams and every payload of the
// shape its stream requires (syncproto.CheckPayload), else the batch is
// refused whole with a *store.InvalidError naming the field.
func (s *Service) IngestJSON(ctx context.Context, edgeID string, jb JSONBatch) (*syncproto.Ack, error) {
	if err := checkJSONBatch(jb); err != nil {
		return nil, err
	}
	sb := store.Batch{EdgeID: edgeID, Stream: jb.Stream, FirstSeq: jb.FirstSeq, Records: make([]store.Record, len(jb.Records))}
	now := s.cfg.Now().UTC()
	for i, r := range jb.Records {
		at := r.Arrived
		if at.IsZero() {
			at = now
		}
		rec := store.Record{Seq: r.Seq, Time: at, Payload: r.Payload, VectorID: r.VectorID, Metadata: r.Metadata}
		if len(r.Vector) > 0 {
			rec.Vector = syncproto.PackFloat32(r.Vector)
		}
		rec.Checksum = rec.Sum()
		if r.Checksum != nil {
			rec.Checksum = *r.Checksum
		}
		sb.Records[i] = rec
	}
	return s.ingest(ctx, sb)
}
