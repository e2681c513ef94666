package edgesync

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

// edgeAIDecision is the JSON an edge publishes on redforge/v1/ai_decisions:
// the hub's AI decision record. Unknown fields are ignored; id, edge_id and
// edge_seq are the hub's to set.
type edgeAIDecision struct {
	Time       time.Time       `json:"time"`
	InstanceID string          `json:"instance_id"`
	FlowName   string          `json:"flow_name"`
	Model      string          `json:"model"`
	Prompt     string          `json:"prompt"`
	Response   string          `json:"response"`
	Confidence float64         `json:"confidence"`
	TokensUsed int64           `json:"tokens_used"`
	LatencyMS  int64           `json:"latency_ms"`
	Metadata   json.RawMessage `json:"metadata"`
}

// decodeAIDecision decodes the payload of r, a record of edgeID on stream
// store.AIDecisionsStream, into the decision IngestBatch stores with it:
// EdgeID is the edge, Time the payload's "time" or else r's arrival time.
// The error is a *store.InvalidError naming the field ("payload" when it
// is not a JSON object of the right shape); its text never quotes the
// payload. A decision it returns passes both audit.ValidateAIDecision and
// store.AIDecision.Validate, so it cannot make the store refuse the batch.
func decodeAIDecision(edgeID string, r *store.Record) (*store.AIDecision, error) {
	var e edgeAIDecision
	if err := json.Unmarshal(r.Payload, &e); err != nil {
		return nil, &store.InvalidError{Field: "payload", Reason: "is not an AI decision JSON object"}
	}
	if string(e.Metadata) == "null" {
		e.Metadata = nil
	}
	d := &store.AIDecision{Time: e.Time, InstanceID: e.InstanceID, EdgeID: edgeID, FlowName: e.FlowName,
		Model: e.Model, Prompt: e.Prompt, Response: e.Response, Confidence: e.Confidence,
		TokensUsed: e.TokensUsed, LatencyMS: e.LatencyMS, Metadata: e.Metadata}
	if d.Time.IsZero() {
		d.Time = r.Time
	}
	if err := audit.ValidateAIDecision(d); err != nil {
		return nil, err
	}
	if err := d.Validate(); err != nil {
		return nil, err
	}
	return d, nil
}

// projectAIDecisions sets the Decision of every record of sb, a batch of
// store.AIDecisionsStream, whose payload is a valid AI decision. A record
// that is not one stays in the ledger without a decision, so it cannot
// stall the stream; it is logged at WARN with the edge, seq and field,
// never the payload (it may hold prompts). A replayed record is decoded
// (and logged) again; the store then skips it.
func (s *Service) projectAIDecisions(sb *store.Batch) {
	for i := range sb.Records {
		r := &sb.Records[i]
		d, err := decodeAIDecision(sb.EdgeID, r)
		if err == nil {
			r.Decision = d
			continue
		}
		field, reason := "payload", "is not a valid AI decision"
		var ie *store.InvalidError
		if errors.As(err, &ie) {
			field, reason = ie.Field, ie.Reason
		}
		s.cfg.Logger.Warn("edge AI decision kept in the ledger only: not a valid AI decision",
			logKeyEdge, sb.EdgeID, logKeyStream, sb.Stream, logKeySeq, r.Seq, logKeyField, field, logKeyReason, reason)
	}
}
