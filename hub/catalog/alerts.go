package catalog

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// Command types 51-60: alerting (hub/alert).
const (
	CmdPutAlertRule     CommandType = 51
	CmdDeleteAlertRule  CommandType = 52
	CmdPutAlert         CommandType = 53
	CmdSetAlertDelivery CommandType = 54
	CmdDeleteAlerts     CommandType = 55
)

const (
	tableAlertRules     = "alert_rules"
	tableAlerts         = "alerts"
	alertActiveIndex    = "active"
	alertRuleIndex      = "rule"
	maxAlertDeliveries  = 64
	maxAlertDeleteBatch = 1000
)

// AlertChannel is where a rule's notifications go. Type is webhook (the
// Alertmanager webhook format), alertmanager (an Alertmanager's
// /api/v2/alerts), slack (a Slack-compatible incoming webhook) or email;
// URL is set for the first three, To for email. hub/alert validates them.
type AlertChannel struct {
	Type string   `json:"type"`
	URL  string   `json:"url,omitempty"`
	To   []string `json:"to,omitempty"`
}

// AlertRule is a hub-native alert rule: it fires when Metric's value
// (per series, narrowed by Match) satisfies Condition against Threshold
// for at least For, and notifies Channels. The Raft leader evaluates every
// rule (hub/alert).
type AlertRule struct {
	ID          string            `json:"id"`
	Name        string            `json:"name"`
	Description string            `json:"description,omitempty"`
	Metric      string            `json:"metric"`
	Match       map[string]string `json:"match,omitempty"` // label equality matchers
	Condition   string            `json:"condition"`       // >, >=, <, <=, ==, !=
	Threshold   float64           `json:"threshold"`
	For         time.Duration     `json:"for"`
	Severity    string            `json:"severity"` // critical, warning, info
	Channels    []AlertChannel    `json:"channels"`
	Disabled    bool              `json:"disabled,omitempty"`
	CreatedBy   string            `json:"created_by,omitempty"`
	CreatedAt   time.Time         `json:"created_at"`
	UpdatedAt   time.Time         `json:"updated_at"`
	Indexes
}

func (r *AlertRule) primaryKey() string { return r.ID }

func (r *AlertRule) clone() *AlertRule {
	c := *r
	c.Match = maps.Clone(r.Match)
	c.Channels = make([]AlertChannel, len(r.Channels))
	for i, ch := range r.Channels {
		ch.To = slices.Clone(ch.To)
		c.Channels[i] = ch
	}
	return &c
}

// AlertDelivery is one notification of one alert event (firing or
// resolved) to one channel, and how it went.
type AlertDelivery struct {
	Event     string       `json:"event"` // firing | resolved
	Channel   AlertChannel `json:"channel"`
	Status    string       `json:"status"` // pending | retrying | sent | failed
	Attempts  int          `json:"attempts"`
	LastError string       `json:"last_error,omitempty"`
	NextAt    time.Time    `json:"next_at,omitzero"`
	At        time.Time    `json:"at,omitzero"` // of the last attempt
}

// Alert is one firing of a rule for one series: firing until resolved,
// then kept as history. Active is the rule's key for the series while it
// fires ("" once resolved), so one series fires at most once at a time.
type Alert struct {
	ID         string            `json:"id"`
	RuleID     string            `json:"rule_id"`
	RuleName   string            `json:"rule_name"`
	Severity   string            `json:"severity"`
	Labels     map[string]string `json:"labels"`
	State      string            `json:"state"` // firing | resolved
	Active     string            `json:"active,omitempty"`
	Value      float64           `json:"value"`
	Summary    string            `json:"summary"`
	StartsAt   time.Time         `json:"starts_at"`
	EndsAt     time.Time         `json:"ends_at,omitzero"`
	Deliveries []AlertDelivery   `json:"deliveries,omitempty"`
	Indexes
}

func (a *Alert) primaryKey() string { return a.ID }

func (a *Alert) clone() *Alert {
	c := *a
	c.Labels = maps.Clone(a.Labels)
	c.Deliveries = make([]AlertDelivery, len(a.Deliveries))
	for i, d := range a.Deliveries {
		d.Channel.To = slices.Clone(d.Channel.To)
		c.Deliveries[i] = d
	}
	return &c
}

func alertRulesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableAlertRules, Indexes: map[string]*memdb.IndexSchema{
		"id":   idIndex("ID"),
		"name": uniqueIndex("name", "Name"),
	}}
}

func alertsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableAlerts, Indexes: map[string]*memdb.IndexSchema{
		"id":             idIndex("ID"),
		alertActiveIndex: refIndex(alertActiveIndex, "Active"),
		alertRuleIndex:   refIndex(alertRuleIndex, "RuleID"),
	}}
}

func checkAlertRule(w *write, r *AlertRule) error {
	if r.ID == "" || r.Name == "" || r.Metric == "" || r.Condition == "" || r.Severity == "" {
		return fmt.Errorf("alert rule: id, name, metric, condition and severity are required: %w", ErrInvalid)
	}
	return w.unique(tableAlertRules, "name", r.Name, r.ID)
}

func checkAlert(_ *write, a *Alert) error {
	switch {
	case a.ID == "" || a.RuleID == "":
		return fmt.Errorf("alert: id and rule_id are required: %w", ErrInvalid)
	case a.State != "firing" && a.State != "resolved":
		return fmt.Errorf("alert: state %q is not firing or resolved: %w", a.State, ErrInvalid)
	case (a.State == "firing") != (a.Active != ""):
		return fmt.Errorf("alert: active is set exactly while firing: %w", ErrInvalid)
	case len(a.Deliveries) > maxAlertDeliveries:
		return fmt.Errorf("alert: more than %d deliveries: %w", maxAlertDeliveries, ErrInvalid)
	}
	return nil
}

// PutAlertRule returns the command that creates or replaces an alert rule.
// Errors: ErrInvalid, ErrConflict (name taken, or IfIndex failed).
func PutAlertRule(r AlertRule, opts ...PutOption) Command { return newPut(CmdPutAlertRule, r, opts) }

func applyPutAlertRule(w *write, b putBody[AlertRule]) (any, error) {
	r := &b.Row
	old := first[AlertRule](w.tx, nil, tableAlertRules, "id", r.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put alert rule %q: %w", r.ID, err)
	}
	if err := checkAlertRule(w, r); err != nil {
		return nil, fmt.Errorf("put alert rule: %w", err)
	}
	return insert(w, tableAlertRules, r, old)
}

// DeleteAlertRule returns the command that deletes an alert rule (its
// alerts stay; the leader resolves those still firing). Errors:
// ErrNotFound.
func DeleteAlertRule(id string) Command { return newCommand(CmdDeleteAlertRule, keyBody{Key: id}) }

func applyDeleteAlertRule(w *write, b keyBody) (any, error) {
	r := first[AlertRule](w.tx, nil, tableAlertRules, "id", b.Key)
	if r == nil {
		return nil, fmt.Errorf("delete alert rule %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableAlertRules, r)
	return nil, nil
}

// PutAlert returns the command that records an alert (firing, resolved,
// or a change of its deliveries). With IfIndex(0) it must be new and no
// other alert may be Active under the same key: ErrConflict, which is how
// a series fires once cluster-wide.
func PutAlert(a Alert, opts ...PutOption) Command { return newPut(CmdPutAlert, a, opts) }

func applyPutAlert(w *write, b putBody[Alert]) (any, error) {
	a := &b.Row
	old := first[Alert](w.tx, nil, tableAlerts, "id", a.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put alert %q: %w", a.ID, err)
	}
	if err := checkAlert(w, a); err != nil {
		return nil, fmt.Errorf("put alert: %w", err)
	}
	if a.Active != "" {
		if err := w.unique(tableAlerts, alertActiveIndex, a.Active, a.ID); err != nil {
			return nil, fmt.Errorf("put alert: %w", err)
		}
	}
	return insert(w, tableAlerts, a, old)
}

// alertDeliveryBody is the payload of CmdSetAlertDelivery.
type alertDeliveryBody struct {
	AlertID  string        `json:"alert_id"`
	Index    int           `json:"index"`
	Delivery AlertDelivery `json:"delivery"`
}

// SetAlertDelivery returns the command that records how delivery index of
// an alert went, without touching the rest of the alert (so it never
// races the evaluator's writes). Errors: ErrNotFound; ErrInvalid for an
// index out of range.
func SetAlertDelivery(alertID string, index int, d AlertDelivery) Command {
	return newCommand(CmdSetAlertDelivery, alertDeliveryBody{AlertID: alertID, Index: index, Delivery: d})
}

func applySetAlertDelivery(w *write, b alertDeliveryBody) (any, error) {
	old := first[Alert](w.tx, nil, tableAlerts, "id", b.AlertID)
	if old == nil {
		return nil, fmt.Errorf("set alert delivery: alert %q: %w", b.AlertID, ErrNotFound)
	}
	if b.Index < 0 || b.Index >= len(old.Deliveries) {
		return nil, fmt.Errorf("set alert delivery: index %d of %d: %w", b.Index, len(old.Deliveries), ErrInvalid)
	}
	a := old.clone()
	a.Deliveries[b.Index] = b.Delivery
	return insert(w, tableAlerts, a, old)
}

// DeleteAlerts returns the command that deletes alerts (history pruning);
// ids that do not exist are skipped. Errors: ErrInvalid for more than
// 1000 ids.
func DeleteAlerts(ids []string) Command {
	return newCommand(CmdDeleteAlerts, struct {
		IDs []string `json:"ids"`
	}{ids})
}

func applyDeleteAlerts(w *write, b struct {
	IDs []string `json:"ids"`
}) (any, error) {
	if len(b.IDs) > maxAlertDeleteBatch {
		return nil, fmt.Errorf("delete alerts: %d ids, at most %d: %w", len(b.IDs), maxAlertDeleteBatch, ErrInvalid)
	}
	for _, id := range b.IDs {
		if a := first[Alert](w.tx, nil, tableAlerts, "id", id); a != nil {
			w.remove(tableAlerts, a)
		}
	}
	return nil, nil
}

// AlertRules returns every alert rule, by id.
func (s *State) AlertRules() []AlertRule {
	return list[AlertRule](s.read(nil), nil, tableAlertRules, "id")
}

// AlertRule returns one alert rule, or ErrNotFound.
func (s *State) AlertRule(id string) (AlertRule, error) {
	return get[AlertRule](s.read(nil), nil, tableAlertRules, id)
}

// Alert returns one alert, or ErrNotFound.
func (s *State) Alert(id string) (Alert, error) {
	return get[Alert](s.read(nil), nil, tableAlerts, id)
}

// Alerts returns every alert, firing and resolved, newest first (by
// StartsAt, then id).
func (s *State) Alerts() []Alert {
	out := list[Alert](s.read(nil), nil, tableAlerts, "id")
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].StartsAt.Equal(out[j].StartsAt) {
			return out[i].StartsAt.After(out[j].StartsAt)
		}
		return out[i].ID > out[j].ID
	})
	return out
}

// FiringAlerts returns the alerts firing now, by active key.
func (s *State) FiringAlerts() []Alert {
	var out []Alert
	for _, a := range list[Alert](s.read(nil), nil, tableAlerts, alertActiveIndex) {
		if a.Active != "" {
			out = append(out, a)
		}
	}
	return out
}

// WatchAlerts returns the alert rules and alerts and a channel closed when
// either changes (or ctx ends).
func (s *State) WatchAlerts(ctx context.Context) ([]AlertRule, []Alert, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	tx := s.read(ws)
	rules := list[AlertRule](tx, ws, tableAlertRules, "id")
	alerts := list[Alert](tx, ws, tableAlerts, "id")
	return rules, alerts, watch(ctx, ws)
}
