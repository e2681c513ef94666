package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/syncproto"
)

// SyncService is the edge sync service (hub/edgesync.Service) as the API uses it.
type SyncService interface {
	EdgeAuthenticator
	CreateToken(ctx context.Context, req edgesync.TokenRequest, createdBy string) (edgesync.NewToken, error)
	Enroll(ctx context.Context, req *syncproto.EnrollRequest) (*syncproto.EnrollResponse, error)
	ReadBatch(ctx context.Context, edgeID, contentType string, body io.Reader, contentLength int64) (*syncproto.Batch, error)
	Ingest(ctx context.Context, edgeID string, b *syncproto.Batch) (*syncproto.Ack, error)
	IngestJSON(ctx context.Context, edgeID string, b edgesync.JSONBatch) (*syncproto.Ack, error)
	ConfigBundle(ctx context.Context, edgeID string) (*syncproto.ConfigBundle, error)
	Heartbeat(ctx context.Context, edgeID string, hb *syncproto.Heartbeat) error
	Edges(ctx context.Context) ([]edgesync.EdgeView, error)
	Edge(ctx context.Context, id string) (edgesync.EdgeView, error)
	DesiredConfig(ctx context.Context, edgeID string) (edgesync.EdgeConfig, error)
	SetConfig(ctx context.Context, edgeID string, flows, settings json.RawMessage, by string) (edgesync.EdgeConfig, error)
}

func mapSync(err error) *Error {
	switch {
	case errors.Is(err, edgesync.ErrUnauthenticated):
		return &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: errMessage(err)}
	case errors.Is(err, edgesync.ErrForbidden):
		return &Error{Status: http.StatusForbidden, Code: "forbidden", Message: errMessage(err)}
	case errors.Is(err, edgesync.ErrInvalid):
		return &Error{Status: http.StatusBadRequest, Code: "invalid_argument", Message: errMessage(err)}
	}
	var be *edgesync.BusyError
	if errors.As(err, &be) {
		if be.Scope == "edge" {
			return &Error{Status: http.StatusTooManyRequests, Code: "too_many_batches", Message: be.Error()}
		}
		return &Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: be.Error()}
	}
	var de *syncproto.DecodeError
	if errors.As(err, &de) {
		status := http.StatusBadRequest
		if errors.Is(err, syncproto.ErrTooLarge) {
			status = http.StatusRequestEntityTooLarge
		}
		code := "invalid_batch"
		if errors.Is(err, syncproto.ErrChecksum) {
			code = "checksum_mismatch"
		}
		return &Error{Status: status, Code: code, Message: de.Error(), Field: de.Field}
	}
	return nil
}

// errMessage strips the wrapped sentinel's "sync: …" suffix from a message.
func errMessage(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": sync: "); i > 0 {
		return msg[:i]
	}
	return msg
}

// syncRoutes registers the edge sync and edge management routes.
func (s *Server) syncRoutes() {
	if s.cfg.Sync == nil {
		return
	}
	s.handle(http.MethodPost, "/api/sync/batches", EdgeOnly, s.syncBatch)
	s.handle(http.MethodPost, "/api/sync/vectors", EdgeOnly, s.syncJSON)
	s.handle(http.MethodGet, "/api/sync/config/:edge_id", EdgeOnly, s.syncConfig)
	s.handle(http.MethodPost, "/api/sync/heartbeat", EdgeOnly, s.syncHeartbeat)
	s.edgeRoutes()
}

// refusalStatus is the HTTP status of an ack.
func refusalStatus(ack *syncproto.Ack) int {
	switch ack.GetRefusal().GetReason() {
	case syncproto.RefusalReason_REFUSAL_REASON_UNSPECIFIED:
		if ack.GetRefusal() == nil {
			return http.StatusOK
		}
		return http.StatusBadRequest
	case syncproto.RefusalReason_REFUSAL_REASON_GAP:
		return http.StatusConflict
	case syncproto.RefusalReason_REFUSAL_REASON_FORBIDDEN:
		return http.StatusForbidden
	}
	return http.StatusBadRequest
}

func writeProto(c *gin.Context, status int, m proto.Message) {
	b, err := proto.Marshal(m)
	if err != nil {
		abort(c, err)
		return
	}
	c.Data(status, syncproto.ContentTypeProtobuf, b)
}

// syncBatch takes a protobuf batch (zstd or plain) and answers with a
// protobuf Ack: 200 with the durable watermark; 409 with a gap refusal and
// the expected seq; 400 for a checksum or schema refusal (nothing
// written); 403 for another edge's stream; 413 past the size limits; 429
// (too many batches of this edge at once) or 503 (the hub's decoders are
// all busy) with a Retry-After.
func (s *Server) syncBatch(c *gin.Context) {
	if ct := c.ContentType(); ct != syncproto.ContentTypeBatchZstd && ct != syncproto.ContentTypeProtobuf {
		abort(c, &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send the batch as " + syncproto.ContentTypeBatchZstd + " or " + syncproto.ContentTypeProtobuf + " (JSON batches go to /api/sync/vectors)"})
		return
	}
	stop := reportProgress(c)
	defer stop() // also on a panic, before recovery answers
	ack, b, err := s.takeBatch(c)
	stop()
	if err == nil {
		writeProto(c, refusalStatus(ack), ack)
		return
	}
	if b != nil && errors.Is(err, edgesync.ErrForbidden) {
		ack = &syncproto.Ack{Stream: b.Stream, Result: &syncproto.Ack_Refusal{Refusal: &syncproto.Refusal{
			Reason: syncproto.RefusalReason_REFUSAL_REASON_FORBIDDEN, Message: errMessage(err)}}}
		writeProto(c, http.StatusForbidden, ack)
		return
	}
	if b == nil {
		var de *syncproto.DecodeError
		var be *edgesync.BusyError
		switch {
		case errors.As(err, &de) && errors.Is(err, syncproto.ErrTooLarge):
			err = &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
				Message: "the batch is larger than the hub accepts (" + de.Error() + "); send smaller batches"}
		case errors.As(err, &de):
			ack := &syncproto.Ack{Result: &syncproto.Ack_Refusal{Refusal: &syncproto.Refusal{Reason: de.Reason(), Message: de.Error()}}}
			writeProto(c, http.StatusBadRequest, ack)
			return
		case errors.As(err, &be):
			c.Header("Retry-After", strconv.Itoa(max(1, int(be.RetryAfter.Seconds()))))
		}
	}
	abort(c, err)
}

// takeBatch reads, decodes and ingests the request's batch. b is nil when
// the batch was not decoded.
func (s *Server) takeBatch(c *gin.Context) (ack *syncproto.Ack, b *syncproto.Batch, err error) {
	b, err = s.cfg.Sync.ReadBatch(c.Request.Context(), edgeID(c), c.ContentType(), c.Request.Body, c.Request.ContentLength)
	if err != nil {
		return nil, nil, err
	}
	ack, err = s.cfg.Sync.Ingest(c.Request.Context(), edgeID(c), b)
	return ack, b, err
}

// reportProgress sends "102 Processing" every syncproto.ProgressInterval
// until the returned stop (idempotent) is called, when the edge asked for it
// (syncproto.ProgressHeader) over HTTP/1.1 without Expect: 100-continue
// (whose own interim answer net/http writes from the body reader). Only
// this goroutine writes to the connection until stop returns; the handler
// touches neither the response nor its headers meanwhile.
func reportProgress(c *gin.Context) (stop func()) {
	r := c.Request
	if r.Header.Get(syncproto.ProgressHeader) == "" || !r.ProtoAtLeast(1, 1) || r.Header.Get("Expect") != "" {
		return func() {}
	}
	var w http.ResponseWriter = c.Writer
	for {
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	done, exited := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(exited)
		t := time.NewTicker(syncproto.ProgressInterval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				w.WriteHeader(http.StatusProcessing)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-exited }) }
}

// maxJSONBatchBytes bounds a JSON batch body.
const maxJSONBatchBytes = 32 << 20

// syncJSON is the JSON form of syncBatch, for scripts:
// {"stream":"vectors","first_seq":1,"records":[{"seq":1,"payload":{…},"vector":[…]}]}.
// It answers {"stream","durable_watermark"}, or an error body; a gap is 409
// with "expected_seq" beside the error.
func (s *Server) syncJSON(c *gin.Context) {
	var jb edgesync.JSONBatch
	if !bindJSON(c, &jb, maxJSONBatchBytes) {
		return
	}
	ack, err := s.cfg.Sync.IngestJSON(c.Request.Context(), edgeID(c), jb)
	if err != nil {
		abort(c, err)
		return
	}
	if r := ack.GetRefusal(); r != nil {
		code := map[syncproto.RefusalReason]string{
			syncproto.RefusalReason_REFUSAL_REASON_GAP:      "sequence_gap",
			syncproto.RefusalReason_REFUSAL_REASON_CHECKSUM: "checksum_mismatch",
		}[r.Reason]
		if code == "" {
			code = "invalid_argument"
		}
		body := gin.H{"error": &Error{Code: code, Message: r.Message, Field: "records"}}
		if r.Reason == syncproto.RefusalReason_REFUSAL_REASON_GAP {
			body["expected_seq"] = r.ExpectedSeq
			body["error"] = &Error{Code: code, Message: r.Message, Field: "first_seq"}
		}
		c.AbortWithStatusJSON(refusalStatus(ack), body)
		return
	}
	c.JSON(http.StatusOK, gin.H{"stream": ack.Stream, "durable_watermark": ack.GetDurableWatermark()})
}

// syncConfig returns the calling edge's desired config bundle: protobuf
// when the edge accepts it, else JSON with flows and settings inline.
func (s *Server) syncConfig(c *gin.Context) {
	if c.Param("edge_id") != edgeID(c) {
		abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Message: "an edge may read only its own config"})
		return
	}
	b, err := s.cfg.Sync.ConfigBundle(c.Request.Context(), edgeID(c))
	if err != nil {
		abort(c, err)
		return
	}
	if strings.Contains(c.GetHeader("Accept"), syncproto.ContentTypeProtobuf) {
		writeProto(c, http.StatusOK, b)
		return
	}
	c.JSON(http.StatusOK, gin.H{"version": b.Version, "flows": rawJSON(b.Flows), "settings": rawJSON(b.Settings)})
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) {
	if len(r) == 0 {
		return []byte("null"), nil
	}
	return r, nil
}

// heartbeatJSON is the JSON form of a heartbeat.
type heartbeatJSON struct {
	AppliedConfigVersion uint64           `json:"applied_config_version"`
	Version              string           `json:"version,omitempty"`
	QueueDepth           map[string]int64 `json:"queue_depth,omitempty"`
}

// syncHeartbeat records the calling edge's heartbeat (protobuf or JSON)
// and answers 204.
func (s *Server) syncHeartbeat(c *gin.Context) {
	hb := &syncproto.Heartbeat{}
	if c.ContentType() == syncproto.ContentTypeProtobuf {
		body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, MaxBodyBytes))
		if err == nil {
			err = proto.Unmarshal(body, hb)
		}
		if err != nil {
			abort(c, Invalid("", "the body is not a protobuf Heartbeat"))
			return
		}
	} else {
		var j heartbeatJSON
		if !bindJSON(c, &j, 0) {
			return
		}
		hb = &syncproto.Heartbeat{AppliedConfigVersion: j.AppliedConfigVersion, Version: j.Version, QueueDepth: j.QueueDepth}
	}
	if err := s.cfg.Sync.Heartbeat(c.Request.Context(), edgeID(c), hb); err != nil {
		abort(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}
