package audit

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/store"
)

// Format is an export format.
type Format string

// Export formats.
const (
	FormatCSV  Format = "csv"
	FormatJSON Format = "json"
)

// ExportFormat names the export file format (JSON "format", CSV first cell).
const ExportFormat = "redforge-audit-export"

// exportVersion is the version of the export file layout.
const exportVersion = 1

// csvColumns are the record columns of a CSV export, in order.
var csvColumns = []string{"id", "time", "user_id", "username", "action", "resource_type",
	"resource_id", "details", "ip", "user_agent", "prev_hash", "hash"}

// ExportHeader is what an export says about itself before its records.
type ExportHeader struct {
	Format     string       `json:"format"`
	Version    int          `json:"version"`
	Hash       string       `json:"hash"` // hash version of the records
	ExportedAt time.Time    `json:"exported_at"`
	Filtered   bool         `json:"filtered"`
	Filter     exportFilter `json:"filter"`
}

// ExportTrailer is what an export says after its records: how many it
// holds, the last one, and the chain head when the export was made.
type ExportTrailer struct {
	Count         int64  `json:"count"`
	HeadID        int64  `json:"head_id"`
	HeadHash      string `json:"head_hash"`
	ChainHeadID   int64  `json:"chain_head_id"`
	ChainHeadHash string `json:"chain_head_hash"`
}

type exportFilter struct {
	UserID       string    `json:"user_id,omitempty"`
	Action       string    `json:"action,omitempty"`
	ResourceType string    `json:"resource_type,omitempty"`
	Start        time.Time `json:"start,omitzero"`
	End          time.Time `json:"end,omitzero"`
	Limit        int       `json:"limit,omitempty"`
	Offset       int       `json:"offset,omitempty"`
}

func (f exportFilter) filtered() bool { return f != exportFilter{} }

// exportRecord is a record as a JSON export writes it. Details is the
// canonical JSON value, omitted when absent.
type exportRecord struct {
	ID           int64           `json:"id"`
	Time         string          `json:"time"`
	UserID       string          `json:"user_id"`
	Username     string          `json:"username"`
	Action       string          `json:"action"`
	ResourceType string          `json:"resource_type"`
	ResourceID   string          `json:"resource_id"`
	Details      json.RawMessage `json:"details,omitempty"`
	IP           string          `json:"ip"`
	UserAgent    string          `json:"user_agent"`
	PrevHash     string          `json:"prev_hash"`
	Hash         string          `json:"hash"`
}

// Export streams the audit records matching f, oldest first, to w as CSV
// or JSON, each with its prev_hash and hash, between a header (format,
// filter) and a trailer (count, last record, chain head) so that
// VerifyExport can check the file offline. A failure midway leaves a file
// without a trailer, which VerifyExport reports as truncated. Errors:
// store.ErrInvalid for an unknown format or a bad filter; the store's and
// w's errors.
func (l *Logger) Export(ctx context.Context, w io.Writer, format Format, f store.AuditFilter) error {
	if err := f.Validate(); err != nil {
		return err
	}
	var enc exportEncoder
	switch format {
	case FormatJSON:
		enc = &jsonExport{w: bufio.NewWriterSize(w, 64<<10)}
	case FormatCSV:
		enc = &csvExport{w: csv.NewWriter(w)}
	default:
		return &store.InvalidError{Field: "format", Reason: `must be "csv" or "json"`}
	}
	ef := exportFilter{f.UserID, f.Action, f.ResourceType, f.Start, f.End, f.Limit, f.Offset}
	h := ExportHeader{Format: ExportFormat, Version: exportVersion, Hash: HashVersion,
		ExportedAt: store.NormalizeTime(l.now()), Filtered: ef.filtered(), Filter: ef}
	if err := enc.header(h); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	var t ExportTrailer
	err := l.st.IterateAudit(ctx, f, func(r store.AuditRecord) error {
		t.Count++
		t.HeadID, t.HeadHash = r.ID, r.Hash
		return enc.record(r)
	})
	if err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	t.ChainHeadID, t.ChainHeadHash = t.HeadID, t.HeadHash
	if h.Filtered {
		head, err := l.st.ListAudit(ctx, store.AuditFilter{Limit: 1})
		if err != nil {
			return fmt.Errorf("export audit log: chain head: %w", err)
		}
		if len(head) > 0 {
			t.ChainHeadID, t.ChainHeadHash = head[0].ID, head[0].Hash
		}
	}
	if err := enc.trailer(t); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	return nil
}

type exportEncoder interface {
	header(ExportHeader) error
	record(store.AuditRecord) error
	trailer(ExportTrailer) error
}

func toExport(r store.AuditRecord) exportRecord {
	return exportRecord{ID: r.ID, Time: FormatTime(r.Time), UserID: r.UserID, Username: r.Username,
		Action: r.Action, ResourceType: r.ResourceType, ResourceID: r.ResourceID, Details: r.Details,
		IP: r.IP, UserAgent: r.UserAgent, PrevHash: r.PrevHash, Hash: r.Hash}
}

// jsonExport writes one JSON object: the header members, "records" (one
// record per line), then the trailer members.
type jsonExport struct {
	w *bufio.Writer
	n int
}

func (e *jsonExport) marshal(v any) ([]byte, error) {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(b.String(), "\n")), nil
}

func (e *jsonExport) header(h ExportHeader) error {
	b, err := e.marshal(h)
	if err != nil {
		return err
	}
	e.w.Write(b[:len(b)-1]) // without the closing brace
	_, err = e.w.WriteString(",\n\"records\":[\n")
	return err
}

func (e *jsonExport) record(r store.AuditRecord) error {
	b, err := e.marshal(toExport(r))
	if err != nil {
		return err
	}
	if e.n > 0 {
		e.w.WriteString(",\n")
	}
	e.n++
	_, err = e.w.Write(b)
	return err
}

func (e *jsonExport) trailer(t ExportTrailer) error {
	b, err := e.marshal(t)
	if err != nil {
		return err
	}
	e.w.WriteString("\n],\n")
	e.w.Write(b[1:]) // without the opening brace
	e.w.WriteString("\n")
	return e.w.Flush()
}

// csvExport writes a marker row, the column names, one row per record and
// an end row. Text cells that a spreadsheet would run as a formula (they
// start with = + - @ tab or CR) get a leading apostrophe, and so does a
// cell that starts with one; VerifyExport removes it.
type csvExport struct {
	w *csv.Writer
}

func (e *csvExport) header(h ExportHeader) error {
	f, _ := json.Marshal(h.Filter)
	e.w.Write([]string{"#" + ExportFormat, "version=" + strconv.Itoa(h.Version), "hash=" + h.Hash,
		"exported_at=" + FormatTime(h.ExportedAt), "filtered=" + strconv.FormatBool(h.Filtered), "filter=" + string(f)})
	return e.w.Write(csvColumns)
}

func (e *csvExport) record(r store.AuditRecord) error {
	return e.w.Write([]string{strconv.FormatInt(r.ID, 10), FormatTime(r.Time), csvEscape(r.UserID),
		csvEscape(r.Username), csvEscape(r.Action), csvEscape(r.ResourceType), csvEscape(r.ResourceID),
		csvEscape(string(r.Details)), csvEscape(r.IP), csvEscape(r.UserAgent), r.PrevHash, r.Hash})
}

func (e *csvExport) trailer(t ExportTrailer) error {
	e.w.Write([]string{"#end", "count=" + strconv.FormatInt(t.Count, 10),
		"head_id=" + strconv.FormatInt(t.HeadID, 10), "head_hash=" + t.HeadHash,
		"chain_head_id=" + strconv.FormatInt(t.ChainHeadID, 10), "chain_head_hash=" + t.ChainHeadHash})
	e.w.Flush()
	return e.w.Error()
}

func csvEscape(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r'", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvUnescape(s string) string { return strings.TrimPrefix(s, "'") }

// ErrBadExport reports a file that is not a well-formed audit export (or
// is cut short before its trailer); nothing about the chain could be
// concluded.
var ErrBadExport = errors.New("audit: not a well-formed audit export")

// VerifyExport checks an export file offline, with no hub: every record's
// hash is recomputed, links between consecutive records are checked, and
// the trailer must match the last record (a file cut short, or with
// records removed from its end, fails). An unfiltered export must be the
// whole chain from record 1 without gaps (Complete); a filtered one is
// checked as far as its records allow and says so in Reason. Compare the
// result's HeadHash with the hub's to rule out a re-hashed forgery.
// A broken chain is a result (OK false). Errors: ErrBadExport for a file
// that does not parse as an export; r's errors.
func VerifyExport(r io.Reader) (VerifyResult, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		b, err := br.Peek(1)
		if err != nil {
			return VerifyResult{}, fmt.Errorf("%w: empty file", ErrBadExport)
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n', 0xEF, 0xBB, 0xBF: // whitespace, UTF-8 BOM
			br.ReadByte()
			continue
		case '{':
			return verifyJSON(br)
		case '#', '"':
			return verifyCSV(br)
		}
		return VerifyResult{}, fmt.Errorf("%w: neither a JSON nor a CSV export", ErrBadExport)
	}
}

// checkTrailer compares the trailer with what was read.
func checkTrailer(c *chain, t ExportTrailer, what string) VerifyResult {
	res := c.finish(what)
	if !res.OK {
		return res
	}
	if t.Count != res.Checked || t.HeadID != res.HeadID || t.HeadHash != res.HeadHash {
		id := res.HeadID + 1
		res.OK, res.Complete, res.FirstBroken = false, false, &id
		res.Reason = fmt.Sprintf("%s: the trailer says %d records ending with record %d, the file holds %d ending with record %d: records were removed from the end or the trailer was edited",
			what, t.Count, t.HeadID, res.Checked, res.HeadID)
	}
	return res
}
