package store

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// StatusTransition is one observed change of an instance's status, as the
// fleet leader recorded it. InstanceID is the logical instance; RowID and
// RowName name the catalog row whose status changed (the logical row
// itself, or a blue-green deployment's color row serving it).
type StatusTransition struct {
	ID         int64     `json:"id"`
	Time       time.Time `json:"time"`
	InstanceID string    `json:"instance_id"`
	RowID      string    `json:"row_id"`
	RowName    string    `json:"row_name,omitempty"`
	Status     string    `json:"status"`
	PrevStatus string    `json:"prev_status,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// Validate checks t: InstanceID, RowID and Status required, Time in range
// when set, text UTF-8 without NUL.
func (t *StatusTransition) Validate() error {
	if err := checkRequired("instance_id", t.InstanceID); err != nil {
		return err
	}
	if err := checkRequired("row_id", t.RowID); err != nil {
		return err
	}
	if err := checkRequired("status", t.Status); err != nil {
		return err
	}
	if err := checkTimeRange("time", t.Time); err != nil {
		return err
	}
	return checkTexts("row_name", t.RowName, "prev_status", t.PrevStatus, "message", t.Message)
}

// TransitionFilter selects the transitions of one instance. Since is
// inclusive, Until exclusive; zero times do not filter.
type TransitionFilter struct {
	InstanceID   string
	Since, Until time.Time
	Limit        int // 0: DefaultLimit
	Offset       int
}

// Validate checks f: InstanceID required, limit in 0..MaxLimit, offset ≥ 0,
// Until not before Since.
func (f TransitionFilter) Validate() error {
	if err := checkRequired("instance_id", f.InstanceID); err != nil {
		return err
	}
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return err
	}
	if err := checkTimeRange("since", f.Since); err != nil {
		return err
	}
	if err := checkTimeRange("until", f.Until); err != nil {
		return err
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
		return invalid("until", "must not be before since")
	}
	return nil
}

// Sources of a flows version.
const (
	FlowsSourcePut        = "put"        // PUT /api/instances/:id/flows
	FlowsSourceDeployment = "deployment" // a blue-green deployment
)

// FlowsVersion is one flows document deployed to a logical instance.
// Versions count from 1 per instance, without gaps.
type FlowsVersion struct {
	InstanceID   string          `json:"instance_id"`
	Version      int64           `json:"version"`
	Flows        json.RawMessage `json:"flows,omitempty"` // omitted by ListFlowsVersions
	SHA256       string          `json:"sha256"`          // hex SHA-256 of Flows
	Size         int64           `json:"size"`            // bytes of Flows
	Source       string          `json:"source"`          // FlowsSourcePut or FlowsSourceDeployment
	DeploymentID string          `json:"deployment_id,omitempty"`
	UserID       string          `json:"user_id,omitempty"`
	Username     string          `json:"username,omitempty"`
	Time         time.Time       `json:"time"`
}

// Validate checks v before an append: InstanceID required, Flows non-empty
// valid JSON, Source one of the known sources, a DeploymentID exactly for
// deployments, Time in range when set, text UTF-8 without NUL.
func (v *FlowsVersion) Validate() error {
	if err := checkRequired("instance_id", v.InstanceID); err != nil {
		return err
	}
	if len(v.Flows) == 0 {
		return invalid("flows", "is required")
	}
	if err := checkJSON("flows", v.Flows); err != nil {
		return err
	}
	switch v.Source {
	case FlowsSourcePut:
		if v.DeploymentID != "" {
			return invalid("deployment_id", "must be empty when source is %q", FlowsSourcePut)
		}
	case FlowsSourceDeployment:
		if err := checkRequired("deployment_id", v.DeploymentID); err != nil {
			return err
		}
	default:
		return invalid("source", "must be %q or %q", FlowsSourcePut, FlowsSourceDeployment)
	}
	if err := checkTimeRange("time", v.Time); err != nil {
		return err
	}
	return checkTexts("user_id", v.UserID, "username", v.Username)
}

// PrepareFlowsVersion readies v for insertion by an implementation of
// AppendFlowsVersion, given the instance's latest version (0 for none): it
// sets Version, SHA256, Size, and Time (to now() if zero, normalized).
func PrepareFlowsVersion(v *FlowsVersion, latest int64, now func() time.Time) {
	v.Version = latest + 1
	sum := sha256.Sum256(v.Flows)
	v.SHA256 = hex.EncodeToString(sum[:])
	v.Size = int64(len(v.Flows))
	if v.Time.IsZero() {
		v.Time = now()
	}
	v.Time = NormalizeTime(v.Time)
}

// FlowsVersionFilter selects the versions of one instance.
type FlowsVersionFilter struct {
	InstanceID string
	Limit      int // 0: DefaultLimit
	Offset     int
}

// Validate checks f: InstanceID required, limit in 0..MaxLimit, offset ≥ 0.
func (f FlowsVersionFilter) Validate() error {
	if err := checkRequired("instance_id", f.InstanceID); err != nil {
		return err
	}
	return checkPage(f.Limit, f.Offset)
}

// ValidateKeep checks the count of PruneFlowsVersions: at least 1, so an
// instance always keeps its newest version.
func ValidateKeep(keep int) error {
	if keep < 1 {
		return invalid("keep", "must be at least 1")
	}
	return nil
}
