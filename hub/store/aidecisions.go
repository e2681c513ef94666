package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// AIDecision is one logged model call made by a flow.
type AIDecision struct {
	ID         int64           `json:"id"`
	Time       time.Time       `json:"time"`
	InstanceID string          `json:"instance_id"`
	EdgeID     string          `json:"edge_id"`
	EdgeSeq    int64           `json:"edge_seq,omitempty"` // seq of its edge record; 0 unless synced from an edge
	FlowName   string          `json:"flow_name"`
	Model      string          `json:"model"`
	Prompt     string          `json:"prompt"`
	Response   string          `json:"response"`
	Confidence float64         `json:"confidence"` // 0 when not reported
	TokensUsed int64           `json:"tokens_used"`
	LatencyMS  int64           `json:"latency_ms"`
	Metadata   json.RawMessage `json:"metadata,omitempty"`
}

// Validate checks d: Time and Model are required, Confidence finite,
// TokensUsed and LatencyMS not negative, text UTF-8 without NUL, Metadata
// valid JSON or empty.
func (d *AIDecision) Validate() error {
	if err := checkTime("time", d.Time); err != nil {
		return err
	}
	if err := checkRequired("model", d.Model); err != nil {
		return err
	}
	if err := checkTexts("instance_id", d.InstanceID, "edge_id", d.EdgeID,
		"flow_name", d.FlowName, "prompt", d.Prompt, "response", d.Response); err != nil {
		return err
	}
	if err := checkFinite("confidence", d.Confidence); err != nil {
		return err
	}
	if err := checkNonNegative("tokens_used", d.TokensUsed); err != nil {
		return err
	}
	if err := checkNonNegative("latency_ms", d.LatencyMS); err != nil {
		return err
	}
	return checkJSON("metadata", d.Metadata)
}

// ValidateAIDecisions validates the input of AppendAIDecisions: every
// element must pass Validate and have EdgeSeq 0 (only IngestBatch sets it).
// The error names the index of the first bad one ("decisions[2].model").
func ValidateAIDecisions(ds []AIDecision) error {
	for i := range ds {
		err := ds[i].Validate()
		if err == nil && ds[i].EdgeSeq != 0 {
			err = invalid("edge_seq", "is set only for decisions synced from an edge (IngestBatch)")
		}
		if err != nil {
			return prefixed(fmt.Sprintf("decisions[%d]", i), err)
		}
	}
	return nil
}

// AIDecisionFilter selects AI decisions. Empty strings and zero times do
// not filter; Start is inclusive and End exclusive.
type AIDecisionFilter struct {
	InstanceID string
	Model      string
	Start, End time.Time
	Limit      int // 0: DefaultLimit
	Offset     int
}

// Validate checks f: limit in 0..MaxLimit, offset ≥ 0, End not before Start.
func (f AIDecisionFilter) Validate() error {
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return err
	}
	return checkRange(f.Start, f.End)
}
