// Package alert owns hub-native alerting for the embedded default (no
// Prometheus needed): validating alert rules (stored in the catalog), the
// Raft leader's evaluation of every rule (so an alert fires and resolves
// once cluster-wide, whichever hub leads), and the delivery of its
// notifications to channels — an Alertmanager-format webhook, an
// Alertmanager, a Slack-compatible webhook and email — with retries that
// never hold up evaluation. It reads metric values from a Source
// (signals.go) and does not serve HTTP (hub/api does).
package alert

import (
	"errors"
	"fmt"
	"math"
	"net/mail"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redforge/controltower/hub/catalog"
)

// Limits on rules.
const (
	MaxRuleName    = 128
	MaxDescription = 1024
	MaxChannels    = 10
	MaxRecipients  = 20
	MaxMatchers    = 10
	MaxFor         = 24 * time.Hour
	MaxURLLength   = 2048
	maxLabelValue  = 256
	channelWebhook = "webhook"
	channelAM      = "alertmanager"
	channelSlack   = "slack"
	channelEmail   = "email"
	StateFiring    = "firing"
	StateResolved  = "resolved"
)

// Conditions, severities and channel types a rule may use.
var (
	Conditions   = []string{">", ">=", "<", "<=", "==", "!="}
	Severities   = []string{"critical", "warning", "info"}
	ChannelTypes = []string{channelWebhook, channelAM, channelSlack, channelEmail}
)

// ErrInvalid is wrapped by every *FieldError.
var ErrInvalid = errors.New("alert: invalid rule")

// FieldError names the request field a rule is refused for.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// RuleInput is a rule as a client sends it: every field optional, so one
// type serves create (where name, metric, condition, threshold, severity
// and channels are required) and update (what is set changes).
type RuleInput struct {
	Name        *string                 `json:"name,omitempty"`
	Description *string                 `json:"description,omitempty"`
	Metric      *string                 `json:"metric,omitempty"`
	Match       map[string]string       `json:"match,omitempty"`
	Condition   *string                 `json:"condition,omitempty"`
	Threshold   *float64                `json:"threshold,omitempty"`
	For         *string                 `json:"for,omitempty"` // a duration: "0s", "30s", "5m"
	Severity    *string                 `json:"severity,omitempty"`
	Channels    *[]catalog.AlertChannel `json:"channels,omitempty"`
	Disabled    *bool                   `json:"disabled,omitempty"`
}

// Apply validates in and applies it to r (a new rule when create). The
// first problem is a *FieldError naming the field.
func (in RuleInput) Apply(r *catalog.AlertRule, create bool) error {
	if create {
		for _, f := range []struct {
			field   string
			missing bool
		}{{"name", in.Name == nil}, {"metric", in.Metric == nil}, {"condition", in.Condition == nil},
			{"threshold", in.Threshold == nil}, {"severity", in.Severity == nil}, {"channels", in.Channels == nil}} {
			if f.missing {
				return invalid(f.field, "is required")
			}
		}
	}
	if in.Name != nil {
		n := strings.TrimSpace(*in.Name)
		if n == "" || utf8.RuneCountInString(n) > MaxRuleName || !utf8.ValidString(n) || hasControl(n) {
			return invalid("name", "must be 1 to %d printable characters", MaxRuleName)
		}
		r.Name = n
	}
	if in.Description != nil {
		if utf8.RuneCountInString(*in.Description) > MaxDescription || !utf8.ValidString(*in.Description) {
			return invalid("description", "must be UTF-8 text of at most %d characters", MaxDescription)
		}
		r.Description = *in.Description
	}
	if in.Metric != nil {
		m, ok := MetricByName(*in.Metric)
		if !ok {
			return invalid("metric", "unknown metric %q; known: %s", *in.Metric, strings.Join(MetricNames(), ", "))
		}
		r.Metric = m.Name
	}
	if in.Match != nil {
		if err := checkMatch(in.Match, r.Metric); err != nil {
			return err
		}
		r.Match = in.Match
	}
	if in.Condition != nil {
		if !slices.Contains(Conditions, *in.Condition) {
			return invalid("condition", "must be one of %s", strings.Join(Conditions, " "))
		}
		r.Condition = *in.Condition
	}
	if in.Threshold != nil {
		if math.IsNaN(*in.Threshold) || math.IsInf(*in.Threshold, 0) {
			return invalid("threshold", "must be a finite number")
		}
		r.Threshold = *in.Threshold
	}
	if in.For != nil {
		d, err := time.ParseDuration(*in.For)
		if err != nil || d < 0 || d > MaxFor {
			return invalid("for", "must be a duration from 0s to %s, such as 30s or 5m", MaxFor)
		}
		r.For = d
	}
	if in.Severity != nil {
		if !slices.Contains(Severities, *in.Severity) {
			return invalid("severity", "must be one of %s", strings.Join(Severities, ", "))
		}
		r.Severity = *in.Severity
	}
	if in.Channels != nil {
		if err := checkChannels(*in.Channels); err != nil {
			return err
		}
		r.Channels = *in.Channels
	}
	if in.Disabled != nil {
		r.Disabled = *in.Disabled
	}
	if r.Match != nil && in.Metric != nil && in.Match == nil {
		return checkMatch(r.Match, r.Metric) // the metric changed under existing matchers
	}
	return nil
}

func hasControl(s string) bool {
	return strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

func checkMatch(m map[string]string, metric string) error {
	if len(m) > MaxMatchers {
		return invalid("match", "at most %d matchers", MaxMatchers)
	}
	known, _ := MetricByName(metric)
	for k, v := range m {
		if metric != "" && !slices.Contains(known.Labels, k) {
			return invalid("match."+k, "%s has no label %q (it has %s)", metric, k, strings.Join(known.Labels, ", "))
		}
		if len(v) > maxLabelValue || !utf8.ValidString(v) {
			return invalid("match."+k, "must be UTF-8 of at most %d bytes", maxLabelValue)
		}
	}
	return nil
}

var hostPattern = regexp.MustCompile(`^[A-Za-z0-9.\-\[\]:]+$`)

func checkChannels(chs []catalog.AlertChannel) error {
	if len(chs) == 0 || len(chs) > MaxChannels {
		return invalid("channels", "give 1 to %d channels", MaxChannels)
	}
	for i, ch := range chs {
		f := fmt.Sprintf("channels[%d]", i)
		switch ch.Type {
		case channelWebhook, channelAM, channelSlack:
			if len(ch.To) > 0 {
				return invalid(f+".to", "is only for email channels")
			}
			if err := checkURL(ch.URL); err != nil {
				return invalid(f+".url", "%v", err)
			}
		case channelEmail:
			if ch.URL != "" {
				return invalid(f+".url", "is not used by email channels (give to)")
			}
			if len(ch.To) == 0 || len(ch.To) > MaxRecipients {
				return invalid(f+".to", "give 1 to %d addresses", MaxRecipients)
			}
			for j, addr := range ch.To {
				a, err := mail.ParseAddress(addr)
				if err != nil || a.Name != "" || a.Address != addr || hasControl(addr) {
					return invalid(fmt.Sprintf("%s.to[%d]", f, j), "%q is not an email address such as ops@example.com", addr)
				}
			}
		default:
			return invalid(f+".type", "must be one of %s", strings.Join(ChannelTypes, ", "))
		}
	}
	return nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	if strings.Contains(raw, "…") {
		return errors.New("is the redacted form the API shows; give the whole URL")
	}
	if len(raw) > MaxURLLength || hasControl(raw) {
		return fmt.Errorf("must be a URL of at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return errors.New("is not a URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an http or https URL")
	case u.Host == "" || !hostPattern.MatchString(u.Host):
		return errors.New("must name a host")
	case u.User != nil && u.Scheme != "https":
		return errors.New("credentials in a URL need https")
	}
	return nil
}

// Redact is what the API shows of a channel URL: scheme, host and the
// first path segment; the rest of a webhook URL (a Slack token, say) and
// any credentials or query are secrets.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "…"
	}
	out := u.Scheme + "://" + u.Host
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	if len(segs) > 0 && segs[0] != "" {
		out += "/" + segs[0]
	}
	if len(segs) > 1 || u.RawQuery != "" || u.User != nil {
		out += "/…"
	}
	return out
}

// RedactRule returns r with its channel URLs opened (when sealed) and
// redacted for showing.
func RedactRule(s Sealer, r catalog.AlertRule) catalog.AlertRule {
	r.Channels = slices.Clone(r.Channels)
	for i := range r.Channels {
		r.Channels[i] = RedactChannel(s, r.Channels[i])
	}
	return r
}

// RedactChannel returns ch with its URL opened (when sealed) and redacted.
func RedactChannel(s Sealer, ch catalog.AlertChannel) catalog.AlertChannel {
	if ch.URL != "" {
		ch.URL = shownURL(s, ch.URL)
	}
	return ch
}

// shownURL is the redacted form of a channel URL as stored: a sealed URL
// is opened first (redacting the sealed text itself shows nothing); one
// that cannot be opened shows as "…".
func shownURL(s Sealer, u string) string {
	clear, err := openURL(s, u)
	if err != nil {
		return "…"
	}
	return Redact(clear)
}

// RedactAlert returns a with the channel URLs of its deliveries redacted.
func RedactAlert(s Sealer, a catalog.Alert) catalog.Alert {
	a.Deliveries = slices.Clone(a.Deliveries)
	for i := range a.Deliveries {
		a.Deliveries[i].Channel = RedactChannel(s, a.Deliveries[i].Channel)
	}
	return a
}

// holds reports whether value satisfies cond against threshold.
func holds(cond string, value, threshold float64) bool {
	switch cond {
	case ">":
		return value > threshold
	case ">=":
		return value >= threshold
	case "<":
		return value < threshold
	case "<=":
		return value <= threshold
	case "==":
		return value == threshold
	case "!=":
		return value != threshold
	}
	return false
}
