package audit

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func badExport(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadExport, fmt.Sprintf(format, args...))
}

// fromExport parses an exported record back into a store record.
func fromExport(e exportRecord) (store.AuditRecord, error) {
	t, err := time.Parse(time.RFC3339Nano, e.Time)
	if err != nil {
		return store.AuditRecord{}, badExport("record %d: time %q: %v", e.ID, e.Time, err)
	}
	return store.AuditRecord{ID: e.ID, Time: t.UTC(), UserID: e.UserID, Username: e.Username, Action: e.Action,
		ResourceType: e.ResourceType, ResourceID: e.ResourceID, Details: e.Details, IP: e.IP,
		UserAgent: e.UserAgent, PrevHash: e.PrevHash, Hash: e.Hash}, nil
}

func checkHeader(h ExportHeader) error {
	switch {
	case h.Format != ExportFormat:
		return badExport("format %q, want %q", h.Format, ExportFormat)
	case h.Version != exportVersion:
		return badExport("export version %d; this tool reads version %d (upgrade towerctl)", h.Version, exportVersion)
	case h.Hash != HashVersion:
		return badExport("hash version %q; this tool checks %q (upgrade towerctl)", h.Hash, HashVersion)
	}
	return nil
}

// verifyJSON reads a JSON export: one object whose members are the
// header's, "records" (an array), then the trailer's.
func verifyJSON(r io.Reader) (VerifyResult, error) {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if _, err := dec.Token(); err != nil {
		return VerifyResult{}, badExport("%v", err)
	}
	var (
		h                       ExportHeader
		t                       ExportTrailer
		c                       *chain
		sawTrailer, sawFiltered bool
	)
	fields := map[string]any{
		"format": &h.Format, "version": &h.Version, "hash": &h.Hash, "exported_at": &h.ExportedAt,
		"filtered": &h.Filtered, "filter": &h.Filter, "count": &t.Count, "head_id": &t.HeadID,
		"head_hash": &t.HeadHash, "chain_head_id": &t.ChainHeadID, "chain_head_hash": &t.ChainHeadHash,
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return VerifyResult{}, badExport("%v (cut short?)", err)
		}
		key, _ := tok.(string)
		sawTrailer = sawTrailer || key == "count"
		sawFiltered = sawFiltered || key == "filtered"
		if key == "records" {
			if c != nil {
				return VerifyResult{}, badExport("two record arrays")
			}
			if err := checkHeader(h); err != nil || !sawFiltered {
				return VerifyResult{}, errOr(err, badExport("the header (format, version, hash, filtered) must come before the records"))
			}
			c = &chain{partial: h.Filtered || h.Filter.filtered()}
			if res, stop, err := readJSONRecords(dec, c); stop || err != nil {
				return res, err
			}
			continue
		}
		dst, ok := fields[key]
		if !ok {
			return VerifyResult{}, badExport("unknown member %q", key)
		}
		if err := dec.Decode(dst); err != nil {
			return VerifyResult{}, badExport("%s: %v", key, err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return VerifyResult{}, badExport("%v (cut short?)", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return VerifyResult{}, badExport("data after the export object")
	}
	if c == nil || !sawTrailer {
		return VerifyResult{}, badExport("no records array or no trailer (count, head_id, head_hash): the file was cut short or edited")
	}
	return checkTrailer(c, t, "JSON export"), nil
}

// readJSONRecords reads the records array into c. stop is true when the
// chain broke (res then holds the result).
func readJSONRecords(dec *json.Decoder, c *chain) (res VerifyResult, stop bool, err error) {
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return res, true, badExport("records must be an array")
	}
	for dec.More() {
		var e exportRecord
		if err := dec.Decode(&e); err != nil {
			return res, true, badExport("record after %d: %v (cut short?)", c.res.HeadID, err)
		}
		rec, err := fromExport(e)
		if err != nil {
			return res, true, err
		}
		if err := c.add(rec); err != nil {
			return c.finish("JSON export"), true, nil
		}
	}
	if _, err := dec.Token(); err != nil {
		return res, true, badExport("%v (cut short?)", err)
	}
	return res, false, nil
}

func errOr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}

// verifyCSV reads a CSV export: the marker row, the column names, the
// records and the #end row.
func verifyCSV(r io.Reader) (VerifyResult, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	first, err := cr.Read()
	if err != nil || len(first) == 0 || first[0] != "#"+ExportFormat {
		return VerifyResult{}, badExport("the first row must start with #%s", ExportFormat)
	}
	h, err := csvHeader(first[1:])
	if err != nil {
		return VerifyResult{}, err
	}
	cols, err := cr.Read()
	if err != nil || !slices.Equal(cols, csvColumns) {
		return VerifyResult{}, badExport("the second row must name the columns %s", strings.Join(csvColumns, ","))
	}
	c := &chain{partial: h.Filtered || h.Filter.filtered()}
	for {
		row, err := cr.Read()
		if err == io.EOF {
			return VerifyResult{}, badExport("no #end row: the file was cut short")
		}
		if err != nil {
			return VerifyResult{}, badExport("%v", err)
		}
		if row[0] == "#end" {
			t, err := csvTrailer(row[1:])
			if err != nil {
				return VerifyResult{}, err
			}
			if _, err := cr.Read(); err != io.EOF {
				return VerifyResult{}, badExport("rows after #end")
			}
			return checkTrailer(c, t, "CSV export"), nil
		}
		rec, err := csvRecord(row)
		if err != nil {
			return VerifyResult{}, err
		}
		if err := c.add(rec); err != nil {
			return c.finish("CSV export"), nil
		}
	}
}

func csvRecord(row []string) (store.AuditRecord, error) {
	if len(row) != len(csvColumns) {
		return store.AuditRecord{}, badExport("a record row has %d cells, want %d", len(row), len(csvColumns))
	}
	id, err := strconv.ParseInt(row[0], 10, 64)
	if err != nil {
		return store.AuditRecord{}, badExport("record id %q is not a number", row[0])
	}
	e := exportRecord{ID: id, Time: row[1], UserID: csvUnescape(row[2]), Username: csvUnescape(row[3]),
		Action: csvUnescape(row[4]), ResourceType: csvUnescape(row[5]), ResourceID: csvUnescape(row[6]),
		IP: csvUnescape(row[8]), UserAgent: csvUnescape(row[9]), PrevHash: row[10], Hash: row[11]}
	if d := csvUnescape(row[7]); d != "" {
		e.Details = json.RawMessage(d)
	}
	return fromExport(e)
}

// keyValues parses key=value cells.
func keyValues(cells []string) map[string]string {
	m := map[string]string{}
	for _, c := range cells {
		k, v, _ := strings.Cut(c, "=")
		m[k] = v
	}
	return m
}

func csvHeader(cells []string) (ExportHeader, error) {
	m := keyValues(cells)
	h := ExportHeader{Format: ExportFormat, Hash: m["hash"]}
	var err1, err2, err3 error
	h.Version, err1 = strconv.Atoi(m["version"])
	h.Filtered, err2 = strconv.ParseBool(m["filtered"])
	err3 = json.Unmarshal([]byte(m["filter"]), &h.Filter)
	if err := errors.Join(err1, err2, err3); err != nil {
		return h, badExport("marker row: version, filtered or filter: %v", err)
	}
	return h, checkHeader(h)
}

func csvTrailer(cells []string) (ExportTrailer, error) {
	m := keyValues(cells)
	var t ExportTrailer
	var err1, err2, err3 error
	t.Count, err1 = strconv.ParseInt(m["count"], 10, 64)
	t.HeadID, err2 = strconv.ParseInt(m["head_id"], 10, 64)
	t.ChainHeadID, err3 = strconv.ParseInt(m["chain_head_id"], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return t, badExport("#end row: %v", err)
	}
	t.HeadHash, t.ChainHeadHash = m["head_hash"], m["chain_head_hash"]
	return t, nil
}
