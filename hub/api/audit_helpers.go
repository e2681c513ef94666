package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

// Auditor records mutating actions in the tamper-evident audit log.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// AuditLog is hub/audit.Logger as the API uses it: the Auditor every
// mutating route records through, and the audit routes' queries.
type AuditLog interface {
	Auditor
	Query(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error)
	Verify(ctx context.Context) (audit.VerifyResult, error)
	Export(ctx context.Context, w io.Writer, format audit.Format, f store.AuditFilter) error
	GenerateReport(ctx context.Context, req audit.ReportRequest) (audit.Report, error)
	RecordAIDecision(ctx context.Context, d store.AIDecision) error
	AIDecisions(ctx context.Context, f store.AIDecisionFilter) ([]store.AIDecision, error)
}

// audit records action by the request's principal. A failure to record
// is logged at ERROR with the request id; the action itself already
// happened, so the response stands.
func (s *Server) audit(c *gin.Context, action, resourceType, resourceID string, details any) {
	if s.cfg.Audit == nil {
		return
	}
	p := principal(c)
	e := audit.Entry{
		UserID: p.UserID, Username: p.Username, Action: action,
		ResourceType: resourceType, ResourceID: resourceID, Details: details,
		IP: c.ClientIP(), UserAgent: c.Request.UserAgent(),
	}
	if err := s.cfg.Audit.Record(context.WithoutCancel(c.Request.Context()), e); err != nil {
		s.log.Error("audit record failed", logKeyRequestID, c.GetString(ctxRequestID), "action", action, logKeyError, err)
	}
}

// jsonRaw is a raw JSON value that stays raw through strictUnmarshal.
type jsonRaw = json.RawMessage

// strictUnmarshal decodes one JSON value refusing unknown fields.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
