package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/alert"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
)

// AlertService is hub-native alerting (hub/alert.Service).
type AlertService interface {
	Rules() []catalog.AlertRule
	Rule(id string) (catalog.AlertRule, error)
	CreateRule(ctx context.Context, by string, in alert.RuleInput) (catalog.AlertRule, error)
	UpdateRule(ctx context.Context, id string, in alert.RuleInput) (catalog.AlertRule, error)
	DeleteRule(ctx context.Context, id string) error
	Active() []catalog.Alert
	History(limit int, ruleID string) []catalog.Alert
}

func mapAlert(err error) *Error {
	var fe *alert.FieldError
	if errors.As(err, &fe) {
		return Invalid(fe.Field, fe.Error())
	}
	return nil
}

// Limits of GET /api/alerts/history.
const (
	DefaultAlertHistory = 100
	MaxAlertHistory     = 1000
)

func (s *Server) alertRoutes() {
	if s.cfg.Observability.Alerts == nil {
		return
	}
	p := func(a auth.Action) Access { return Perm(auth.ResourceAlerts, a) }
	s.handle(http.MethodGet, "/api/alerts/rules", p(auth.ActionRead), s.listAlertRules)
	s.handle(http.MethodPost, "/api/alerts/rules", p(auth.ActionCreate), s.createAlertRule)
	s.handle(http.MethodGet, "/api/alerts/rules/:id", p(auth.ActionRead), s.getAlertRule)
	s.handle(http.MethodPatch, "/api/alerts/rules/:id", p(auth.ActionUpdate), s.patchAlertRule)
	s.handle(http.MethodDelete, "/api/alerts/rules/:id", p(auth.ActionDelete), s.deleteAlertRule)
	s.handle(http.MethodGet, "/api/alerts/metrics", p(auth.ActionRead), s.listAlertMetrics)
	s.handle(http.MethodGet, "/api/alerts", p(auth.ActionRead), s.listActiveAlerts)
	s.handle(http.MethodGet, "/api/alerts/history", p(auth.ActionRead), s.alertHistory)
}

func (s *Server) listAlertRules(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"rules": s.cfg.Observability.Alerts.Rules()})
}

func (s *Server) getAlertRule(c *gin.Context) {
	r, err := s.cfg.Observability.Alerts.Rule(c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

func (s *Server) createAlertRule(c *gin.Context) {
	var in alert.RuleInput
	if !bindJSON(c, &in, 0) {
		return
	}
	r, err := s.cfg.Observability.Alerts.CreateRule(c.Request.Context(), principal(c).Username, in)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, alert.ActionRuleCreated, "alert_rule", r.ID, ruleDetails(r))
	s.publish(alert.EventRule, gin.H{"id": r.ID, "action": "created", "rule": r})
	c.JSON(http.StatusCreated, r)
}

func (s *Server) patchAlertRule(c *gin.Context) {
	var in alert.RuleInput
	if !bindJSON(c, &in, 0) {
		return
	}
	r, err := s.cfg.Observability.Alerts.UpdateRule(c.Request.Context(), c.Param("id"), in)
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, alert.ActionRuleUpdated, "alert_rule", r.ID, ruleDetails(r))
	s.publish(alert.EventRule, gin.H{"id": r.ID, "action": "updated", "rule": r})
	c.JSON(http.StatusOK, r)
}

func (s *Server) deleteAlertRule(c *gin.Context) {
	id := c.Param("id")
	r, err := s.cfg.Observability.Alerts.Rule(id)
	if err == nil {
		err = s.cfg.Observability.Alerts.DeleteRule(c.Request.Context(), id)
	}
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, alert.ActionRuleDeleted, "alert_rule", id, ruleDetails(r))
	s.publish(alert.EventRule, gin.H{"id": id, "action": "deleted", "rule": r})
	c.Status(http.StatusNoContent)
}

// ruleDetails is what the audit log keeps of a rule (channel URLs
// redacted).
func ruleDetails(r catalog.AlertRule) map[string]any {
	return map[string]any{"name": r.Name, "metric": r.Metric, "match": r.Match, "condition": r.Condition,
		"threshold": r.Threshold, "for": r.For.String(), "severity": r.Severity, "channels": r.Channels, "disabled": r.Disabled}
}

func (s *Server) listAlertMetrics(c *gin.Context) {
	c.JSON(http.StatusOK, gin.H{"metrics": alert.Metrics, "conditions": alert.Conditions,
		"severities": alert.Severities, "channel_types": alert.ChannelTypes})
}

func (s *Server) listActiveAlerts(c *gin.Context) {
	out := s.cfg.Observability.Alerts.Active()
	if out == nil {
		out = []catalog.Alert{}
	}
	c.JSON(http.StatusOK, gin.H{"alerts": out})
}

func (s *Server) alertHistory(c *gin.Context) {
	limit := DefaultAlertHistory
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxAlertHistory {
			abort(c, Invalid("limit", "limit must be a whole number from 1 to 1000"))
			return
		}
		limit = n
	}
	c.JSON(http.StatusOK, gin.H{"alerts": s.cfg.Observability.Alerts.History(limit, c.Query("rule"))})
}
