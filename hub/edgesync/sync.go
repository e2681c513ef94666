// Package edgesync is the hub side of edge sync: enrollment tokens and edge
// credentials, edge authentication, exactly-once batch ingest (through
// store.Store.IngestBatch, with the AI decisions of stream ai_decisions
// decoded so they land in the ai_decisions table in the same transaction),
// heartbeats and the desired config bundle.
//
// It owns the credential format, the heartbeat throttle, the admission of
// batch bodies (how many are read and decoded at once, per edge and in
// total), the checks of the JSON route that syncproto.Verify makes of a
// protobuf batch (known streams, payloads of their stream's shape) and
// the mapping of store outcomes to syncproto acks. It does not
// own HTTP (hub/api), the catalog (it writes through Raft commands) or the
// records (hub/store).
package edgesync

import (
	"context"
	"errors"
	"log/slog"
	gosync "sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// Defaults.
const (
	// DefaultHeartbeatInterval is how often edges are told to report.
	DefaultHeartbeatInterval = 60 * time.Second
	// DefaultTokenTTL is how long an enrollment token stays usable.
	DefaultTokenTTL = 24 * time.Hour
	// MaxTokenTTL bounds a requested TTL.
	MaxTokenTTL = 30 * 24 * time.Hour
	// MissedHeartbeats is how many missed heartbeats make an edge offline.
	MissedHeartbeats = 3
)

// Errors. hub/api maps them to HTTP statuses.
var (
	// ErrUnauthenticated: a missing, unknown or wrong edge credential or
	// enrollment token (used or expired tokens too; the message does not
	// say which, to give nothing away).
	ErrUnauthenticated = errors.New("sync: unauthenticated")
	// ErrForbidden: an edge wrote or read another edge's data.
	ErrForbidden = errors.New("sync: forbidden")
	// ErrInvalid: a bad request field.
	ErrInvalid = errors.New("sync: invalid argument")
)

// Catalog is the catalog read side the service needs; *catalog.State implements it.
type Catalog interface {
	Edge(id string) (catalog.Edge, error)
	Edges() []catalog.Edge
	Setting(key string) (catalog.Setting, error)
}

// Applier commits catalog commands through Raft; *cluster.Node implements it.
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Store is the part of the data store the service needs.
type Store interface {
	IngestBatch(ctx context.Context, b store.Batch) (int64, error)
	Watermarks(ctx context.Context, edgeID string) (map[string]store.Watermark, error)
}

// Config configures a Service.
type Config struct {
	Catalog Catalog
	Raft    Applier
	Store   Store
	// HeartbeatInterval is what edges are told; an edge is offline after
	// MissedHeartbeats of them. Heartbeats are recorded (a Raft write) at
	// most every HeartbeatInterval/2 unless the applied version changed.
	HeartbeatInterval time.Duration
	TokenTTL          time.Duration
	// CAPin, when set, is appended to every enrollment token
	// (syncproto.TokenWithPin): the edge then accepts only a hub whose
	// certificate chains to that CA.
	CAPin string
	// MaxBatchesPerEdge, MaxDecodes and AdmitWait bound the batches
	// ReadBatch reads and decodes at once (defaults
	// DefaultMaxBatchesPerEdge, DefaultMaxDecodes, DefaultAdmitWait).
	MaxBatchesPerEdge int
	MaxDecodes        int
	AdmitWait         time.Duration
	Now               func() time.Time
	Logger            *slog.Logger
}

// Service is the hub's edge sync service. New does no I/O; it is safe for
// concurrent use.
type Service struct {
	cfg Config

	mu     gosync.Mutex
	lastHB map[string]heartbeatMark // by edge: what was last written to Raft

	admit admission
}

type heartbeatMark struct {
	at      time.Time
	applied uint64
}

// New returns a Service; zero tunables take their defaults.
func New(cfg Config) *Service {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxBatchesPerEdge <= 0 {
		cfg.MaxBatchesPerEdge = DefaultMaxBatchesPerEdge
	}
	if cfg.MaxDecodes <= 0 {
		cfg.MaxDecodes = DefaultMaxDecodes
	}
	if cfg.AdmitWait <= 0 {
		cfg.AdmitWait = DefaultAdmitWait
	}
	s := &Service{cfg: cfg, lastHB: map[string]heartbeatMark{}}
	s.admit.init(cfg.MaxDecodes)
	return s
}

// Log keys.
const (
	logKeyEdge   = "edge"
	logKeyStream = "stream"
	logKeyError  = "error"
	logKeySeq    = "seq"
	logKeyField  = "field"
	logKeyReason = "reason"
)
