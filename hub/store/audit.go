package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// AuditRecord is one entry of the audit log. ID, PrevHash and Hash are set
// by Store.AppendAudit; the hash chain links each record to the one before.
type AuditRecord struct {
	ID           int64           `json:"id"`
	Time         time.Time       `json:"time"`
	UserID       string          `json:"user_id"`
	Username     string          `json:"username"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	Details      json.RawMessage `json:"details,omitempty"` // kept byte for byte
	IP           string          `json:"ip"`
	UserAgent    string          `json:"user_agent"`
	PrevHash     string          `json:"prev_hash"`
	Hash         string          `json:"hash"`
}

// Validate checks the caller-supplied fields of r: Action is required,
// Time may be zero (the store sets it), text must be UTF-8 without NUL and
// Details valid JSON or empty. ID, PrevHash and Hash are ignored.
func (r *AuditRecord) Validate() error {
	if err := checkRequired("action", r.Action); err != nil {
		return err
	}
	if err := checkTimeRange("time", r.Time); err != nil {
		return err
	}
	if err := checkTexts("user_id", r.UserID, "username", r.Username,
		"resource_type", r.ResourceType, "resource_id", r.ResourceID,
		"ip", r.IP, "user_agent", r.UserAgent); err != nil {
		return err
	}
	return checkJSON("details", r.Details)
}

// MaxAuditBatch bounds the records of one AppendAuditBatch.
const MaxAuditBatch = 1000

// ValidateAuditBatch checks a batch for AppendAuditBatch: 1 to
// MaxAuditBatch records, none nil, each valid (Validate); an error names
// the record ("records[2].action").
func ValidateAuditBatch(recs []*AuditRecord) error {
	if len(recs) == 0 || len(recs) > MaxAuditBatch {
		return invalid("records", "must hold 1 to %d records, not %d", MaxAuditBatch, len(recs))
	}
	for i, r := range recs {
		field := fmt.Sprintf("records[%d]", i)
		if r == nil {
			return invalid(field, "is nil")
		}
		if err := r.Validate(); err != nil {
			return prefixed(field, err)
		}
	}
	return nil
}

// AuditFilter selects audit records. Empty strings and zero times do not
// filter; Start is inclusive and End exclusive.
type AuditFilter struct {
	UserID       string
	Action       string
	ResourceType string
	Start, End   time.Time
	Limit        int // 0: DefaultLimit for ListAudit, no limit for IterateAudit
	Offset       int
}

// Validate checks f: limit in 0..MaxLimit, offset ≥ 0, End not before Start.
func (f AuditFilter) Validate() error {
	if err := checkPage(f.Limit, f.Offset); err != nil {
		return err
	}
	return checkRange(f.Start, f.End)
}

// ChainAudit links r after the last record of the chain (lastID, lastHash;
// 0 and "" for an empty log), for implementations of AppendAudit: it sets
// r.ID to lastID+1 and r.PrevHash to lastHash, sets r.Time to now() if
// zero, normalizes r.Time and r.Details to their stored form, and sets
// r.Hash to hash of a copy of r (whose Hash is ""). An empty or non-text
// hash is ErrInvalid.
func ChainAudit(r *AuditRecord, lastID int64, lastHash string, now func() time.Time, hash func(*AuditRecord) string) error {
	r.ID = lastID + 1
	r.PrevHash = lastHash
	r.Hash = ""
	if r.Time.IsZero() {
		r.Time = now()
	}
	r.Time = NormalizeTime(r.Time)
	r.Details = NormalizeJSON(r.Details)
	cp := *r
	h := hash(&cp)
	if h == "" {
		return invalid("hash", "the hash function returned an empty string")
	}
	if err := checkText("hash", h); err != nil {
		return err
	}
	r.Hash = h
	return nil
}
