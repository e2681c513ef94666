package alert

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/secrets"
)

// Defaults of Config.
const (
	DefaultEvalInterval = 5 * time.Second
	DefaultHistoryLimit = 1000
	DefaultRetryBase    = time.Second
	DefaultRetryMax     = 30 * time.Second
	DefaultMaxAttempts  = 6
	DefaultSendTimeout  = 5 * time.Second
	// absentResolve is how long a firing alert's series may be missing
	// (its instance deleted, its hub forgotten) before it resolves.
	absentResolve = 5 * time.Minute
)

// Event types on the hub's bus (and so the WebSocket).
const (
	EventFiring   = "alert.firing"
	EventResolved = "alert.resolved"
	EventRule     = "alert.rule"
	EventDelivery = "alert.delivery"
)

// Audit actions.
const (
	ActionRuleCreated = "ALERT_RULE_CREATED"
	ActionRuleUpdated = "ALERT_RULE_UPDATED"
	ActionRuleDeleted = "ALERT_RULE_DELETED"
	ActionFired       = "ALERT_FIRED"
	ActionResolved    = "ALERT_RESOLVED"
)

// Config tunes the engine; zero fields take the defaults.
type Config struct {
	// EvalInterval is how often the leader evaluates every rule; it also
	// evaluates at once on an instance, hub or deployment status event.
	EvalInterval time.Duration
	// HistoryLimit is how many resolved alerts are kept.
	HistoryLimit int
	// A failed notification is retried after RetryBase, doubling up to
	// RetryMax, MaxAttempts times in all; each attempt has SendTimeout.
	RetryBase, RetryMax time.Duration
	MaxAttempts         int
	SendTimeout         time.Duration
	// SMTP is the mail server of email channels.
	SMTP SMTPConfig
	// ExternalURL is the hub's URL, linked from notifications.
	ExternalURL string
}

func (c *Config) setDefaults() {
	if c.EvalInterval <= 0 {
		c.EvalInterval = DefaultEvalInterval
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = DefaultHistoryLimit
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = DefaultSendTimeout
	}
}

// Catalog is what the engine reads of the control plane.
type Catalog interface {
	AlertRules() []catalog.AlertRule
	AlertRule(id string) (catalog.AlertRule, error)
	Alerts() []catalog.Alert
	Alert(id string) (catalog.Alert, error)
	FiringAlerts() []catalog.Alert
	WatchAlerts(ctx context.Context) ([]catalog.AlertRule, []catalog.Alert, <-chan struct{})
}

// Applier writes to the control plane (the Raft node).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Auditor records audit entries.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Deps are the engine's collaborators.
type Deps struct {
	Catalog  Catalog
	Applier  Applier
	IsLeader func() bool
	Source   Source
	// Observe, when set, is given every event of the bus (Signals.Observe).
	Observe func(events.Event)
	Events  *events.Bus
	Metrics *metrics.Metrics
	Audit   Auditor
	Logger  *slog.Logger
	// HTTP sends webhook notifications; a client with no timeout of its
	// own by default (each attempt has Config.SendTimeout).
	HTTP *http.Client
	// Sealer opens channel URLs the Service sealed (they carry secrets:
	// a Slack webhook URL is its own credential).
	Sealer Sealer
}

// Sealer seals and opens secrets kept in the catalog (hub/secrets).
type Sealer interface {
	Seal(context, plaintext string) (string, error)
	Open(context, sealed string) (string, error)
}

// urlContext binds a sealed channel URL to its use.
const urlContext = "alert/channel-url"

// openURL returns a channel URL in clear: sealed ones are opened, others
// (written before sealing, or with no sealer) are as stored.
func openURL(s Sealer, u string) (string, error) {
	if !secrets.IsSealed(u) {
		return u, nil
	}
	if s == nil {
		return "", fmt.Errorf("channel URL is sealed and this hub has no sealing key")
	}
	return s.Open(urlContext, u)
}

// Engine evaluates the rules on the leader and delivers notifications.
type Engine struct {
	cfg  Config
	d    Deps
	log  *slog.Logger
	now  func() time.Time
	kick chan struct{}

	mu       sync.Mutex
	leading  bool
	pending  map[string]time.Time // series key → since when its condition holds
	lastSeen map[string]time.Time // series key of a firing alert → when its series was last present
	inflight map[string]bool      // alert id/index of deliveries being sent
	wake     chan struct{}        // the delivery loop's kick
}

// New returns an engine; it does no I/O until Run.
func New(cfg Config, d Deps) *Engine {
	cfg.setDefaults()
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.HTTP == nil {
		d.HTTP = &http.Client{}
	}
	if d.Events == nil {
		d.Events = events.NewBus()
	}
	return &Engine{cfg: cfg, d: d, log: d.Logger, now: time.Now, kick: make(chan struct{}, 1),
		pending: map[string]time.Time{}, lastSeen: map[string]time.Time{}, inflight: map[string]bool{},
		wake: make(chan struct{}, 1)}
}

// Kick asks for an evaluation now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Run evaluates (on the leader) and delivers until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	sub := e.d.Events.Subscribe(4096)
	defer sub.Close()
	go e.deliveryLoop(ctx)
	t := time.NewTicker(e.cfg.EvalInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-sub.C:
			if !ok {
				return
			}
			if e.d.Observe != nil {
				e.d.Observe(ev)
			}
			switch ev.Type {
			case events.InstanceStatus, events.HubStatus, events.DeploymentPhase:
			default:
				continue
			}
		case <-t.C:
		case <-e.kick:
		}
		e.Evaluate(ctx)
	}
}

// Evaluate runs every rule once if this hub leads (and forgets its pending
// state when it does not: a new leader starts its own).
func (e *Engine) Evaluate(ctx context.Context) {
	if !e.d.IsLeader() {
		e.mu.Lock()
		if e.leading {
			e.leading = false
			clear(e.pending)
			clear(e.lastSeen)
		}
		e.mu.Unlock()
		return
	}
	e.mu.Lock()
	e.leading = true
	e.mu.Unlock()
	start := e.now()
	rules := e.d.Catalog.AlertRules()
	firing := map[string]catalog.Alert{}
	for _, a := range e.d.Catalog.FiringAlerts() {
		firing[a.Active] = a
	}
	cache := map[string][]Series{}
	seenRule := map[string]bool{}
	for _, r := range rules {
		if r.Disabled {
			continue
		}
		seenRule[r.ID] = true
		series, ok := cache[r.Metric]
		if !ok {
			var err error
			series, err = e.d.Source.Series(ctx, r.Metric)
			if err != nil {
				e.log.Warn("alert rule metric", "rule", r.Name, "metric", r.Metric, "error", err)
				continue
			}
			cache[r.Metric] = series
		}
		e.evalRule(ctx, r, series, firing)
	}
	for key, a := range firing { // rules deleted or disabled
		if !seenRule[a.RuleID] {
			e.resolve(ctx, a, a.Value, "rule removed or disabled")
			delete(firing, key)
		}
	}
	e.prune(ctx)
	e.setGauges()
	if e.d.Metrics != nil {
		e.d.Metrics.AlertEvaluationTime.Observe(e.now().Sub(start).Seconds())
	}
}

// Key is the active key of a rule's series: the rule id and a digest of
// the series labels.
func Key(ruleID string, labels map[string]string) string {
	h := sha256.New()
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		fmt.Fprintf(h, "%s\x00%s\x00", k, labels[k])
	}
	return ruleID + "/" + hex.EncodeToString(h.Sum(nil)[:8])
}

func matches(match, labels map[string]string) bool {
	for k, v := range match {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func (e *Engine) evalRule(ctx context.Context, r catalog.AlertRule, series []Series, firing map[string]catalog.Alert) {
	now := e.now()
	present := map[string]bool{}
	for _, s := range series {
		if !matches(r.Match, s.Labels) {
			continue
		}
		key := Key(r.ID, s.Labels)
		present[key] = true
		a, isFiring := firing[key]
		e.mu.Lock()
		if isFiring {
			e.lastSeen[key] = now
		}
		if !holds(r.Condition, s.Value, r.Threshold) {
			delete(e.pending, key)
			e.mu.Unlock()
			if isFiring {
				e.resolve(ctx, a, s.Value, "")
			}
			continue
		}
		since, ok := e.pending[key]
		if !ok {
			since = now
			e.pending[key] = since
		}
		e.mu.Unlock()
		if !isFiring && now.Sub(since) >= r.For {
			e.fire(ctx, r, key, s)
		}
	}
	for key, a := range firing {
		if a.RuleID != r.ID || present[key] {
			continue
		}
		e.mu.Lock()
		seen, ok := e.lastSeen[key]
		if !ok {
			e.lastSeen[key] = now
			seen = now
		}
		e.mu.Unlock()
		if now.Sub(seen) >= absentResolve {
			e.resolve(ctx, a, a.Value, "its series is gone")
		}
	}
}

func summary(r catalog.AlertRule, s Series) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		if v := s.Labels[k]; v != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", k, v))
		}
	}
	return fmt.Sprintf("%s: %s{%s} = %g (%s %g)", r.Name, r.Metric, strings.Join(parts, ","), s.Value, r.Condition, r.Threshold)
}

func (e *Engine) fire(ctx context.Context, r catalog.AlertRule, key string, s Series) {
	now := e.now().UTC()
	labels := maps.Clone(s.Labels)
	labels["alertname"], labels["severity"], labels["rule_id"] = r.Name, r.Severity, r.ID
	a := catalog.Alert{ID: uuid.NewString(), RuleID: r.ID, RuleName: r.Name, Severity: r.Severity, Labels: labels,
		State: StateFiring, Active: key, Value: s.Value, Summary: summary(r, s), StartsAt: now}
	for _, ch := range r.Channels {
		a.Deliveries = append(a.Deliveries, catalog.AlertDelivery{Event: StateFiring, Channel: ch, Status: "pending", NextAt: now})
	}
	out, err := e.d.Applier.Apply(ctx, catalog.PutAlert(a, catalog.IfIndex(0)))
	if err != nil {
		if !errors.Is(err, catalog.ErrConflict) {
			e.log.Warn("record firing alert", "rule", r.Name, "error", err)
		}
		return
	}
	if stored, ok := out.(catalog.Alert); ok {
		a = stored
	}
	e.mu.Lock()
	e.lastSeen[key] = now
	e.mu.Unlock()
	e.log.Warn("alert firing", "rule", r.Name, "severity", r.Severity, "summary", a.Summary)
	e.announce(ctx, EventFiring, ActionFired, a)
	e.wakeDelivery()
}

func (e *Engine) resolve(ctx context.Context, a catalog.Alert, value float64, why string) {
	cur, err := e.d.Catalog.Alert(a.ID)
	if err != nil || cur.State != StateFiring {
		return
	}
	now := e.now().UTC()
	cur.State, cur.Active, cur.EndsAt, cur.Value = StateResolved, "", now, value
	if why != "" {
		cur.Summary += " — resolved: " + why
	}
	var channels []catalog.AlertChannel
	if r, err := e.d.Catalog.AlertRule(cur.RuleID); err == nil {
		channels = r.Channels
	} else {
		for _, d := range cur.Deliveries {
			if d.Event == StateFiring {
				channels = append(channels, d.Channel)
			}
		}
	}
	for _, ch := range channels {
		if len(cur.Deliveries) < 64 {
			cur.Deliveries = append(cur.Deliveries, catalog.AlertDelivery{Event: StateResolved, Channel: ch, Status: "pending", NextAt: now})
		}
	}
	if _, err := e.d.Applier.Apply(ctx, catalog.PutAlert(cur, catalog.IfIndex(cur.ModifyIndex))); err != nil {
		if !errors.Is(err, catalog.ErrConflict) {
			e.log.Warn("record resolved alert", "rule", cur.RuleName, "error", err)
		}
		return // retried at the next evaluation
	}
	e.mu.Lock()
	delete(e.lastSeen, a.Active)
	delete(e.pending, a.Active)
	e.mu.Unlock()
	e.log.Info("alert resolved", "rule", cur.RuleName, "summary", cur.Summary)
	e.announce(ctx, EventResolved, ActionResolved, cur)
	e.wakeDelivery()
}

// announce publishes an alert event and audits it.
func (e *Engine) announce(ctx context.Context, typ, action string, a catalog.Alert) {
	e.d.Events.Publish(events.New(typ, RedactAlert(e.d.Sealer, a)))
	if e.d.Audit != nil {
		err := e.d.Audit.Record(ctx, audit.Entry{Username: "system", Action: action, ResourceType: "alert", ResourceID: a.ID,
			Details: map[string]any{"rule_id": a.RuleID, "rule": a.RuleName, "severity": a.Severity, "labels": a.Labels, "value": a.Value, "summary": a.Summary}})
		if err != nil {
			e.log.Warn("audit alert", "alert", a.ID, "error", err)
		}
	}
}

// prune deletes the oldest resolved alerts past HistoryLimit whose
// deliveries are done.
func (e *Engine) prune(ctx context.Context) {
	var resolved []catalog.Alert
	for _, a := range e.d.Catalog.Alerts() {
		if a.State == StateResolved {
			resolved = append(resolved, a)
		}
	}
	if len(resolved) <= e.cfg.HistoryLimit {
		return
	}
	sort.Slice(resolved, func(i, j int) bool { return resolved[i].EndsAt.Before(resolved[j].EndsAt) })
	var ids []string
	for _, a := range resolved[:len(resolved)-e.cfg.HistoryLimit] {
		if !undelivered(a) && len(ids) < 1000 {
			ids = append(ids, a.ID)
		}
	}
	if len(ids) > 0 {
		if _, err := e.d.Applier.Apply(ctx, catalog.DeleteAlerts(ids)); err != nil {
			e.log.Warn("prune alert history", "error", err)
		}
	}
}

func undelivered(a catalog.Alert) bool {
	for _, d := range a.Deliveries {
		if d.Status == "pending" || d.Status == "retrying" {
			return true
		}
	}
	return false
}

func (e *Engine) setGauges() {
	if e.d.Metrics == nil {
		return
	}
	counts := map[string]int{}
	for _, a := range e.d.Catalog.FiringAlerts() {
		counts[a.Severity]++
	}
	for _, s := range Severities {
		e.d.Metrics.AlertsFiring.WithLabelValues(s).Set(float64(counts[s]))
	}
}
