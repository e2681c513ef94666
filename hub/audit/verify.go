package audit

import (
	"context"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/store"
)

// VerifyResult is the outcome of checking a hash chain, from the database
// (Verify) or from an export file (VerifyExport).
type VerifyResult struct {
	// OK is true when every check passed.
	OK bool `json:"ok"`
	// Checked is how many records were read and had their hash recomputed.
	Checked int64 `json:"checked"`
	// FirstBroken is the ID of the first record where the chain breaks:
	// a record whose content does not match its hash (edited), the first
	// ID missing from a gap (deleted), a record whose prev_hash is not the
	// previous record's hash (re-hashed or reordered), or the first ID
	// past a truncated end. Nil when OK.
	FirstBroken *int64 `json:"first_broken,omitempty"`
	// Reason says what was checked and, when not OK, what is wrong.
	Reason string `json:"reason"`
	// HeadID and HeadHash are the last record checked: the chain head for
	// a full check. Compare HeadHash with the hub's (GET /api/audit/verify)
	// to prove a file is the hub's log and not a re-hashed copy.
	HeadID   int64  `json:"head_id"`
	HeadHash string `json:"head_hash"`
	// FirstID is the first record checked.
	FirstID int64 `json:"first_id"`
	// Complete is true when the records checked are the whole chain from
	// its first record with every link verified (always for Verify; for
	// an export only when it is unfiltered).
	Complete bool `json:"complete"`
	// LinksChecked counts prev_hash links verified; Unlinked counts
	// records whose link to the record before could not be checked
	// because that record is not in a filtered export.
	LinksChecked int64 `json:"links_checked"`
	Unlinked     int64 `json:"unlinked"`
}

// chain checks records in ID order. In partial mode (a filtered export)
// it checks every record's own hash and the links between consecutive
// IDs, and counts the links it cannot check.
type chain struct {
	partial bool
	start   int64 // the first ID expected when not partial; 0 means 1
	anchor  *Anchor
	res     VerifyResult
	prevID  int64
	prev    string
	started bool
}

// broken records the first break and returns errStop.
func (c *chain) broken(id int64, format string, args ...any) error {
	c.res.FirstBroken = &id
	c.res.Reason = fmt.Sprintf(format, args...)
	return errStop
}

// errStop ends an iteration at the first broken link.
var errStop = errors.New("stop")

func (c *chain) add(r store.AuditRecord) error {
	start := max(c.start, 1)
	switch {
	case !c.started && !c.partial && r.ID != start:
		return c.broken(start, "the chain starts at record %d: %s missing", r.ID, idRange(start, r.ID-1))
	case c.started && r.ID <= c.prevID:
		return c.broken(r.ID, "record %d comes after record %d: records are duplicated or out of order", r.ID, c.prevID)
	case c.started && r.ID != c.prevID+1 && !c.partial:
		return c.broken(c.prevID+1, "%s missing (record %d is followed by %d)", idRange(c.prevID+1, r.ID-1), c.prevID, r.ID)
	case !knownHashVersion(r.Hash):
		return c.broken(r.ID, "record %d has a hash of an unknown version (%.8q)", r.ID, r.Hash)
	}
	h, err := HashRecord(r)
	if err != nil || h != r.Hash {
		return c.broken(r.ID, "record %d does not match its hash: it was edited after it was written", r.ID)
	}
	if err := c.link(r); err != nil {
		return err
	}
	if c.anchor != nil && r.ID == c.anchor.ID && r.Hash != c.anchor.Hash {
		return c.broken(r.ID, "record %d does not match the anchor the catalog recorded at %s: the log was rewritten from here or before",
			r.ID, FormatTime(c.anchor.Time))
	}
	if !c.started {
		c.res.FirstID = r.ID
	}
	c.started, c.prevID, c.prev = true, r.ID, r.Hash
	c.res.Checked++
	c.res.HeadID, c.res.HeadHash = r.ID, r.Hash
	return nil
}

// link checks r's prev_hash against the record before it, when known.
func (c *chain) link(r store.AuditRecord) error {
	switch {
	case r.ID == 1:
		if r.PrevHash != "" {
			return c.broken(r.ID, "record 1 has a prev_hash; the first record's must be empty")
		}
		c.res.LinksChecked++
	case c.started && r.ID == c.prevID+1:
		if r.PrevHash != c.prev {
			return c.broken(r.ID, "record %d's prev_hash is not the hash of record %d: record %d was altered and re-hashed, or records were removed or reordered",
				r.ID, c.prevID, c.prevID)
		}
		c.res.LinksChecked++
	default:
		c.res.Unlinked++
	}
	return nil
}

// finish completes the result after the last record.
func (c *chain) finish(what string) VerifyResult {
	if c.res.FirstBroken != nil {
		return c.res
	}
	if c.anchor != nil && c.res.HeadID < c.anchor.ID {
		c.broken(c.res.HeadID+1, "the log ends at record %d but the catalog anchored record %d at %s: %s removed",
			c.res.HeadID, c.anchor.ID, FormatTime(c.anchor.Time), idRange(c.res.HeadID+1, c.anchor.ID))
		return c.res
	}
	c.res.OK = true
	switch {
	case c.res.Checked == 0:
		c.res.Complete = !c.partial
		c.res.Reason = what + ": no records"
	case c.partial:
		c.res.Reason = fmt.Sprintf("%s: partial: the hashes of %d records (ids %d to %d) and %d links between consecutive records verified; "+
			"%d records' links to records outside this selection cannot be checked, so it cannot prove that nothing is missing",
			what, c.res.Checked, c.res.FirstID, c.res.HeadID, c.res.LinksChecked, c.res.Unlinked)
	default:
		c.res.Complete = true
		c.res.Reason = fmt.Sprintf("%s: chain intact: %d records, ids %d to %d, every hash and link verified",
			what, c.res.Checked, c.res.FirstID, c.res.HeadID)
	}
	if c.anchor != nil && !c.partial {
		c.res.Reason += fmt.Sprintf("; matches the catalog anchor at record %d", c.anchor.ID)
	}
	return c.res
}

// Verify reads the whole audit log in ID order and checks the hash chain:
// IDs gapless from 1, each record's hash recomputed from its content, each
// prev_hash equal to the previous record's hash, and, when Anchors is
// configured, the anchored record present with its anchored hash (which
// catches a truncated or wholesale rewritten log). It stops at the first
// broken link and reports it; a broken chain is a result (OK false), not
// an error. Errors: the store's and the anchor store's.
func (l *Logger) Verify(ctx context.Context) (VerifyResult, error) {
	c := &chain{}
	if l.anchors != nil {
		a, ok, err := l.anchors.LoadAnchor()
		if err != nil {
			return VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
		}
		if ok {
			c.anchor = &a
		}
	}
	err := l.st.IterateAudit(ctx, store.AuditFilter{}, c.add)
	if err != nil && !errors.Is(err, errStop) {
		return VerifyResult{}, fmt.Errorf("verify audit chain: %w", err)
	}
	return c.finish("audit log"), nil
}

// idRange names IDs a to b with their verb: "record 5 is", "records 5 to 7 are".
func idRange(a, b int64) string {
	if a == b {
		return fmt.Sprintf("record %d is", a)
	}
	return fmt.Sprintf("records %d to %d are", a, b)
}
