package api

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/store"
)

func (s *Server) auditRoutes() {
	if s.cfg.Audit == nil {
		return
	}
	s.handle(http.MethodGet, "/api/audit", Perm(auth.ResourceAudit, auth.ActionRead), s.listAudit)
	s.handle(http.MethodGet, "/api/audit/verify", Perm(auth.ResourceAudit, auth.ActionRead), s.verifyAudit)
	s.handle(http.MethodGet, "/api/audit/export", Perm(auth.ResourceAudit, auth.ActionRead), s.exportAudit)
	s.handle(http.MethodPost, "/api/audit/ai_decision", Perm(auth.ResourceAIDecisions, auth.ActionCreate), s.postAIDecision)
	s.handle(http.MethodGet, "/api/audit/ai_decisions", Perm(auth.ResourceAIDecisions, auth.ActionRead), s.listAIDecisions)
}

// page parses limit and offset.
func page(c *gin.Context) (limit, offset int, e *Error) {
	parse := func(name string, max int) (int, *Error) {
		v := c.Query(name)
		if v == "" {
			return 0, nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > max {
			return 0, Invalid(name, name+" must be a whole number from 0 to "+strconv.Itoa(max))
		}
		return n, nil
	}
	if limit, e = parse("limit", store.MaxLimit); e != nil {
		return
	}
	offset, e = parse("offset", 1<<30)
	return
}

func auditFilter(c *gin.Context) (store.AuditFilter, *Error) {
	f := store.AuditFilter{UserID: c.Query("user_id"), Action: c.Query("action"), ResourceType: c.Query("resource_type")}
	var e *Error
	if f.Limit, f.Offset, e = page(c); e != nil {
		return f, e
	}
	if f.Start, f.End, e = dateRange(c); e != nil {
		return f, e
	}
	if f.Action != "" && !audit.ValidAction(f.Action) {
		return f, Invalid("action", "action must be an action name such as INSTANCE_CREATED")
	}
	return f, nil
}

func (s *Server) listAudit(c *gin.Context) {
	f, e := auditFilter(c)
	if e != nil {
		abort(c, e)
		return
	}
	recs, err := s.cfg.Audit.Query(c.Request.Context(), f)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"records": recs, "count": len(recs)})
}

func (s *Server) verifyAudit(c *gin.Context) {
	res, err := s.cfg.Audit.Verify(c.Request.Context())
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

func (s *Server) exportAudit(c *gin.Context) {
	f, e := auditFilter(c)
	if e != nil {
		abort(c, e)
		return
	}
	format := audit.Format(c.DefaultQuery("format", "json"))
	switch format {
	case audit.FormatCSV:
		c.Header("Content-Type", "text/csv; charset=utf-8")
	case audit.FormatJSON:
		c.Header("Content-Type", "application/json")
	default:
		abort(c, Invalid("format", "format must be csv or json"))
		return
	}
	c.Header("Content-Disposition", `attachment; filename="redforge-audit.`+string(format)+`"`)
	c.Status(http.StatusOK)
	if err := s.cfg.Audit.Export(c.Request.Context(), c.Writer, format, f); err != nil {
		// Headers are gone; the truncated file fails offline verification.
		s.log.Error("audit export failed", logKeyRequestID, c.GetString(ctxRequestID), logKeyError, err)
	}
}

// aiDecisionRequest is the body of POST /api/audit/ai_decision; the
// instance comes from an instance-scoped token, or from instance_id for
// other principals.
type aiDecisionRequest struct {
	InstanceID string  `json:"instance_id"`
	FlowName   string  `json:"flow_name"`
	Model      string  `json:"model"`
	Prompt     string  `json:"prompt"`
	Response   string  `json:"response"`
	Confidence float64 `json:"confidence"`
	TokensUsed int64   `json:"tokens_used"`
	LatencyMS  int64   `json:"latency_ms"`
	Metadata   jsonRaw `json:"metadata"`
}

func (s *Server) postAIDecision(c *gin.Context) {
	var req aiDecisionRequest
	if !bindJSON(c, &req, 0) {
		return
	}
	p := principal(c)
	inst := req.InstanceID
	if p.Scope == auth.ScopeInstance {
		if inst != "" && inst != p.InstanceID {
			abort(c, &Error{Status: http.StatusForbidden, Code: "forbidden", Field: "instance_id", Message: "this token may only record decisions for its own instance"})
			return
		}
		inst = p.InstanceID
	}
	d := store.AIDecision{InstanceID: inst, FlowName: req.FlowName, Model: req.Model, Prompt: req.Prompt, Response: req.Response,
		Confidence: req.Confidence, TokensUsed: req.TokensUsed, LatencyMS: req.LatencyMS, Metadata: req.Metadata}
	if err := s.cfg.Audit.RecordAIDecision(c.Request.Context(), d); err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"recorded": true, "instance_id": inst})
}

func (s *Server) listAIDecisions(c *gin.Context) {
	f := store.AIDecisionFilter{InstanceID: c.Query("instance_id"), Model: c.Query("model")}
	var e *Error
	if f.Limit, f.Offset, e = page(c); e != nil {
		abort(c, e)
		return
	}
	if f.Start, f.End, e = dateRange(c); e != nil {
		abort(c, e)
		return
	}
	ds, err := s.cfg.Audit.AIDecisions(c.Request.Context(), f)
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"decisions": ds, "count": len(ds)})
}

// dateRange parses the optional start_date and end_date parameters.
func dateRange(c *gin.Context) (start, end time.Time, e *Error) {
	if c.Query("start_date") != "" {
		if start, e = queryTime(c, "start_date", start); e != nil {
			return
		}
	}
	if c.Query("end_date") != "" {
		end, e = queryTime(c, "end_date", end)
	}
	return
}

func (s *Server) reportRoutes() {
	if s.cfg.Audit == nil {
		return
	}
	s.handle(http.MethodPost, "/api/reports/generate", Perm(auth.ResourceReports, auth.ActionCreate), s.generateReport)
}

// generateReport builds a compliance report over a date range as JSON,
// CSV or PDF: {"type":"soc2_change","start":…,"end":…,"format":"pdf"}.
func (s *Server) generateReport(c *gin.Context) {
	var req struct {
		audit.ReportRequest
		Format string `json:"format"`
	}
	if !bindJSON(c, &req, 4096) {
		return
	}
	switch req.Format {
	case "", "json", "csv", "pdf":
	default:
		abort(c, Invalid("format", "format must be json, csv or pdf"))
		return
	}
	rep, err := s.cfg.Audit.GenerateReport(c.Request.Context(), req.ReportRequest)
	if err != nil {
		abort(c, err)
		return
	}
	name := fmt.Sprintf("redforge-%s-%s", rep.Type, rep.GeneratedAt.Format("20060102T150405Z"))
	var buf bytes.Buffer
	switch req.Format {
	case "csv":
		err = rep.WriteCSV(&buf)
		c.Header("Content-Type", "text/csv; charset=utf-8")
		name += ".csv"
	case "pdf":
		err = rep.WritePDF(&buf)
		c.Header("Content-Type", "application/pdf")
		name += ".pdf"
	default:
		err = rep.WriteJSON(&buf)
		c.Header("Content-Type", "application/json")
		name += ".json"
	}
	if err != nil {
		abort(c, err)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(buf.Bytes())
}
