package store

import (
	"context"
	"time"
)

// Paging limits shared by every List and Query method.
const (
	// DefaultLimit is used when a filter's Limit is 0.
	DefaultLimit = 100
	// MaxLimit is the largest Limit accepted; larger is ErrInvalid.
	MaxLimit = 10000
)

// Store is the hub's append-data store. Implementations are safe for
// concurrent use. Every write is atomic: it either commits whole or returns
// an error having written nothing. Bad input returns an error wrapping
// ErrInvalid (an *InvalidError naming the field) before anything is written.
//
// Times are stored in UTC, truncated to the microsecond, and returned in
// time.UTC; a time written is returned as NormalizeTime of it on every
// implementation.
type Store interface {
	// Ping reports whether the backend is reachable and writable. It
	// returns promptly (implementations bound it by their PingTimeout)
	// and is cheap enough for a health endpoint.
	Ping(ctx context.Context) error
	// Close releases the store's resources. Calls after Close fail.
	Close() error

	// AppendAudit appends rec to the audit hash chain. Inside one
	// transaction serialized against every other append it sets rec.ID to
	// the previous record's ID+1 (IDs are gapless from 1), rec.PrevHash to
	// the previous record's Hash ("" for the first), rec.Time to the
	// current time if zero, normalizes rec.Time and rec.Details to what
	// will be stored, calls hash(rec) for rec.Hash, and inserts. hash must
	// be fast, must return a non-empty string, and must not call the
	// store. On error rec is left unchanged.
	AppendAudit(ctx context.Context, rec *AuditRecord, hash func(*AuditRecord) string) error
	// AppendAuditBatch appends recs, in order, to the audit hash chain in
	// one transaction (one commit, one fsync), as AppendAudit appends
	// one: recs[i+1] links to recs[i], and recs[0] to the record before
	// the batch. It is all or nothing: on any error (ErrInvalid naming
	// the record, "records[2].action", for a bad one) nothing is written
	// and every record is left unchanged. At most MaxAuditBatch records.
	AppendAuditBatch(ctx context.Context, recs []*AuditRecord, hash func(*AuditRecord) string) error
	// GetAudit returns the audit record with id, or ErrNotFound.
	GetAudit(ctx context.Context, id int64) (AuditRecord, error)
	// ListAudit returns the records matching f, newest (highest ID) first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error)
	// IterateAudit calls fn for each record matching f in ID order
	// (oldest first), streaming from one consistent snapshot; f.Limit 0
	// means no limit. It stops at and returns the first error fn returns.
	// fn may call read methods of the store but not write methods.
	IterateAudit(ctx context.Context, f AuditFilter, fn func(AuditRecord) error) error

	// AppendAIDecisions appends ds in one transaction; IDs are assigned by
	// the store (the ID fields of ds are ignored).
	AppendAIDecisions(ctx context.Context, ds []AIDecision) error
	// ListAIDecisions returns the decisions matching f, newest first
	// (by Time, then ID).
	ListAIDecisions(ctx context.Context, f AIDecisionFilter) ([]AIDecision, error)

	// IngestBatch commits an edge batch exactly once and returns the
	// stream's new watermark. In one transaction serialized per
	// (edge, stream): a batch starting past watermark+1 is refused with a
	// *GapError; records at or below the watermark are skipped (a replay
	// changes nothing and returns the same watermark); the rest are
	// inserted, with their vectors on the "vectors" stream, and the
	// watermark advances to the batch's last seq. See Batch.Validate for
	// the input rules (contiguous seqs, checksums).
	IngestBatch(ctx context.Context, b Batch) (watermark int64, err error)
	// Watermarks returns the watermark of every stream of edgeID, keyed by
	// stream; an edge that never synced has an empty map.
	Watermarks(ctx context.Context, edgeID string) (map[string]Watermark, error)
	// ListEdgeRecords returns up to limit records of (edgeID, stream) with
	// seq > afterSeq in seq order, with Vector, VectorID and Metadata set
	// for records that carried a vector.
	ListEdgeRecords(ctx context.Context, edgeID, stream string, afterSeq int64, limit int) ([]Record, error)
	// ListVectors returns up to limit vectors of edgeID with seq > afterSeq
	// in seq order.
	ListVectors(ctx context.Context, edgeID string, afterSeq int64, limit int) ([]Vector, error)

	// PutCheckpoint appends a checkpoint.
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestCheckpoints returns, for each workflow of instanceID, its
	// latest checkpoint (greatest Time, then greatest ID), ordered by
	// WorkflowID.
	LatestCheckpoints(ctx context.Context, instanceID string) ([]Checkpoint, error)
	// ListCheckpoints returns up to limit checkpoints of workflowID,
	// newest first (by Time, then ID).
	ListCheckpoints(ctx context.Context, workflowID string, limit int) ([]Checkpoint, error)

	// AppendMetricSamples appends ms in one transaction.
	AppendMetricSamples(ctx context.Context, ms []MetricSample) error
	// QueryMetricSamples returns the samples matching q, oldest first.
	QueryMetricSamples(ctx context.Context, q MetricQuery) ([]MetricSample, error)
	// PruneMetricSamples deletes the samples with Time before before and
	// returns how many it deleted.
	PruneMetricSamples(ctx context.Context, before time.Time) (int64, error)

	// AppendStatusTransition appends t and sets t.ID (assigned by the
	// store) and t.Time (the current time if zero, normalized). On error t
	// is left unchanged.
	AppendStatusTransition(ctx context.Context, t *StatusTransition) error
	// ListStatusTransitions returns the transitions of f.InstanceID
	// matching f, newest first (by Time, then ID).
	ListStatusTransitions(ctx context.Context, f TransitionFilter) ([]StatusTransition, error)
	// PruneStatusTransitions deletes the transitions with Time before
	// before and returns how many it deleted.
	PruneStatusTransitions(ctx context.Context, before time.Time) (int64, error)

	// AppendFlowsVersion records a flows document deployed to
	// v.InstanceID. Inside one transaction serialized against every other
	// append for that instance it sets v.Version to the instance's latest
	// version+1 (versions are gapless from 1 per instance), v.SHA256,
	// v.Size and v.Time as PrepareFlowsVersion does, and inserts. On error
	// v is left unchanged.
	AppendFlowsVersion(ctx context.Context, v *FlowsVersion) error
	// ListFlowsVersions returns the versions of f.InstanceID, newest
	// (highest Version) first, without their Flows.
	ListFlowsVersions(ctx context.Context, f FlowsVersionFilter) ([]FlowsVersion, error)
	// GetFlowsVersion returns one version with its Flows, or ErrNotFound.
	GetFlowsVersion(ctx context.Context, instanceID string, version int64) (FlowsVersion, error)
	// PruneFlowsVersions keeps the keep newest versions of every instance
	// (keep ≥ 1), deletes the older ones and returns how many it deleted.
	// Numbering goes on from the newest version kept.
	PruneFlowsVersions(ctx context.Context, keep int) (int64, error)
}
