package store

import (
	"encoding/json"
	"time"
)

// Checkpoint is a saved state of a workflow run on an instance.
type Checkpoint struct {
	ID         int64           `json:"id"` // set by the store
	WorkflowID string          `json:"workflow_id"`
	InstanceID string          `json:"instance_id"`
	Step       string          `json:"step"` // the step name or number as the workflow reports it
	State      json.RawMessage `json:"state,omitempty"`
	Time       time.Time       `json:"time"`
}

// Validate checks c: WorkflowID, InstanceID and Time are required, text
// UTF-8 without NUL, State valid JSON or empty.
func (c *Checkpoint) Validate() error {
	if err := checkRequired("workflow_id", c.WorkflowID); err != nil {
		return err
	}
	if err := checkRequired("instance_id", c.InstanceID); err != nil {
		return err
	}
	if err := checkText("step", c.Step); err != nil {
		return err
	}
	if err := checkTime("time", c.Time); err != nil {
		return err
	}
	return checkJSON("state", c.State)
}

// ValidateCheckpointQuery checks the key and limit of a checkpoint query.
func ValidateCheckpointQuery(field, id string, limit int) error {
	if err := checkRequired(field, id); err != nil {
		return err
	}
	_, err := ResolveLimit(limit)
	return err
}
