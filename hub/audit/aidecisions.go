package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/redforge/controltower/hub/store"
)

// Limits on AI decisions, so one request cannot store unbounded data.
const (
	MaxAIDecisionBatch = 1000
	MaxNameBytes       = 256       // flow_name, model, instance_id, edge_id
	MaxPromptBytes     = 256 << 10 // prompt
	MaxResponseBytes   = 256 << 10 // response
	MaxMetadataBytes   = 64 << 10  // metadata JSON
)

// ValidateAIDecision checks one decision as an instance or edge sends it:
// flow_name and model required; confidence finite and in [0, 1];
// tokens_used and latency_ms not negative; sizes bounded; text UTF-8
// without NUL; metadata valid JSON. The error is a *store.InvalidError
// naming the field (e.g. "confidence").
func ValidateAIDecision(d *store.AIDecision) error {
	for _, f := range []struct {
		name     string
		v        string
		required bool
		max      int
	}{
		{"flow_name", d.FlowName, true, MaxNameBytes},
		{"model", d.Model, true, MaxNameBytes},
		{"instance_id", d.InstanceID, false, MaxNameBytes},
		{"edge_id", d.EdgeID, false, MaxNameBytes},
		{"prompt", d.Prompt, false, MaxPromptBytes},
		{"response", d.Response, false, MaxResponseBytes},
	} {
		if f.required && f.v == "" {
			return &store.InvalidError{Field: f.name, Reason: "is required"}
		}
		if err := checkText(f.name, f.v, f.max, f.max < MaxPromptBytes); err != nil {
			return err
		}
	}
	switch {
	case math.IsNaN(d.Confidence) || d.Confidence < 0 || d.Confidence > 1:
		return &store.InvalidError{Field: "confidence", Reason: "must be between 0 and 1"}
	case d.TokensUsed < 0:
		return &store.InvalidError{Field: "tokens_used", Reason: "must not be negative"}
	case d.LatencyMS < 0:
		return &store.InvalidError{Field: "latency_ms", Reason: "must not be negative"}
	case len(d.Metadata) > MaxMetadataBytes:
		return &store.InvalidError{Field: "metadata", Reason: fmt.Sprintf("must be at most %d bytes of JSON", MaxMetadataBytes)}
	case len(d.Metadata) > 0 && (!utf8.Valid(d.Metadata) || !json.Valid(d.Metadata)):
		return &store.InvalidError{Field: "metadata", Reason: "must be valid UTF-8 JSON"}
	}
	return nil
}

// RecordAIDecision validates d (errors name the field without a prefix,
// for POST /api/audit/ai_decision), sets its time to now when zero, and
// stores it. Errors: store.ErrInvalid; the store's errors.
func (l *Logger) RecordAIDecision(ctx context.Context, d store.AIDecision) error {
	if err := ValidateAIDecision(&d); err != nil {
		return err
	}
	return l.RecordAIDecisions(ctx, []store.AIDecision{d})
}

// RecordAIDecisions validates every decision (errors name the element:
// "decisions[2].model"), sets zero times to now and stores them in one
// transaction: all or nothing. Errors: store.ErrInvalid for a bad element
// or more than MaxAIDecisionBatch; the store's errors.
func (l *Logger) RecordAIDecisions(ctx context.Context, ds []store.AIDecision) error {
	if len(ds) > MaxAIDecisionBatch {
		return &store.InvalidError{Field: "decisions", Reason: fmt.Sprintf("at most %d per request", MaxAIDecisionBatch)}
	}
	if len(ds) == 0 {
		return nil
	}
	now := store.NormalizeTime(l.now())
	out := make([]store.AIDecision, len(ds))
	for i, d := range ds {
		if err := ValidateAIDecision(&d); err != nil {
			var ie *store.InvalidError
			if errors.As(err, &ie) {
				return &store.InvalidError{Field: fmt.Sprintf("decisions[%d].%s", i, ie.Field), Reason: ie.Reason}
			}
			return err
		}
		if d.Time.IsZero() {
			d.Time = now
		}
		d.ID = 0
		out[i] = d
	}
	if err := l.st.AppendAIDecisions(ctx, out); err != nil {
		return fmt.Errorf("record ai decisions: %w", err)
	}
	return nil
}

// AIDecisions returns the AI decisions matching f, newest first. Errors:
// store.ErrInvalid for a bad filter; the store's errors.
func (l *Logger) AIDecisions(ctx context.Context, f store.AIDecisionFilter) ([]store.AIDecision, error) {
	return l.st.ListAIDecisions(ctx, f)
}

// checkText refuses an over-long value, invalid UTF-8 and NUL, and, when
// noControl is set (names and ids), every control character.
func checkText(name, v string, maxBytes int, noControl bool) error {
	if noControl {
		return checkField(name, v, maxBytes)
	}
	switch {
	case len(v) > maxBytes:
		return &store.InvalidError{Field: name, Reason: fmt.Sprintf("must be at most %d bytes", maxBytes)}
	case !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0:
		return &store.InvalidError{Field: name, Reason: "must be UTF-8 text without NUL"}
	}
	return nil
}
