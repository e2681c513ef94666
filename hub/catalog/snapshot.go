package catalog

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"slices"

	memdb "github.com/hashicorp/go-memdb"
)

// Snapshot format. An encoded snapshot is:
//
//	"RFCATSNP"              8 bytes of magic
//	format version          uint16, big-endian (snapshotVersion)
//	gzip stream of JSON lines:
//	  {"index":N,"tables":[...]}          the last applied index, the tables
//	  {"table":"users","row":{...}}       one line per row, tables in tableOrder
//	  {"end":true,"rows":M}               the row count, a truncation check
//
// JSON per row keeps the format debuggable (zcat | jq) and lets a newer
// binary read an older format; gzip makes it compact (the repeated keys
// compress about tenfold) and adds a CRC-32 over the body, so corruption is
// caught on restore. The output is deterministic: the same state always
// encodes to the same bytes.
const (
	snapshotMagic = "RFCATSNP"
	// snapshotVersion 3 has the tables of the state kept in settings
	// before (authstate.go, specs.go, anchors.go, edgeconfigs.go); format
	// 4 adds green_logs (greenlogs.go). Each is format 3's layout with
	// more tables, so an older format restores as it is (its missing
	// tables empty: knownTables), its settings moved into the tables
	// (legacy.go); the bump makes an older hub refuse a newer snapshot
	// with ErrSnapshotVersion instead of failing on an unknown table.
	snapshotVersion = 4
)

// knownTables reports whether tables, as a snapshot header lists them,
// are tables this binary knows in tableOrder's order, ending with the
// index table: format 1 lacks the placement tables, which a restore of it
// leaves empty.
func knownTables(tables []string) bool {
	if len(tables) == 0 || tables[len(tables)-1] != tableIndex {
		return false
	}
	last := -1
	for _, t := range tables {
		pos := slices.Index(tableOrder, t)
		if pos <= last {
			return false
		}
		last = pos
	}
	return true
}

type snapshotMeta struct {
	Index  uint64   `json:"index"`
	Tables []string `json:"tables"`
}

type snapshotLine struct {
	Table string          `json:"table,omitempty"`
	Row   json.RawMessage `json:"row,omitempty"`
	End   bool            `json:"end,omitempty"`
	Rows  int             `json:"rows,omitempty"`
}

// Snapshot is a point-in-time view of the catalog. Taking one is cheap;
// writing it (Persist) can run while Apply goes on.
type Snapshot struct {
	tx *memdb.Txn
}

// Snapshot returns a point-in-time view of the catalog.
func (s *State) Snapshot() *Snapshot {
	return &Snapshot{tx: s.read(nil)}
}

// Index returns the last applied index the snapshot includes.
func (sn *Snapshot) Index() uint64 { return appliedIndex(sn.tx) }

// Persist writes the snapshot to w in the snapshot format. It returns the
// first write error.
func (sn *Snapshot) Persist(w io.Writer) error {
	var hdr [len(snapshotMagic) + 2]byte
	copy(hdr[:], snapshotMagic)
	binary.BigEndian.PutUint16(hdr[len(snapshotMagic):], snapshotVersion)
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("persist catalog snapshot: %w", err)
	}
	gz, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
	mustBeOK(err)
	if err := sn.writeRows(json.NewEncoder(gz)); err != nil {
		return fmt.Errorf("persist catalog snapshot: %w", err)
	}
	if err := gz.Close(); err != nil {
		return fmt.Errorf("persist catalog snapshot: %w", err)
	}
	return nil
}

func (sn *Snapshot) writeRows(enc *json.Encoder) error {
	if err := enc.Encode(snapshotMeta{Index: sn.Index(), Tables: tableOrder}); err != nil {
		return err
	}
	rows := 0
	for _, table := range tableOrder {
		it, err := sn.tx.Get(table, "id")
		mustBeOK(err)
		for obj := it.Next(); obj != nil; obj = it.Next() {
			raw, err := json.Marshal(obj)
			if err != nil {
				return fmt.Errorf("encode %s row: %w", table, err)
			}
			if err := enc.Encode(snapshotLine{Table: table, Row: raw}); err != nil {
				return err
			}
			rows++
		}
	}
	return enc.Encode(snapshotLine{End: true, Rows: rows})
}

// Restore replaces the whole catalog with the snapshot read from r. It
// reads and checks the entire snapshot first and changes nothing unless all
// of it is good: ErrSnapshotVersion for a format this binary does not know,
// ErrCorruptSnapshot for anything unreadable or inconsistent (bad magic or
// checksum, truncation, unknown tables or fields, duplicate keys, rows that
// break uniqueness or refer to missing rows). Watchers of the replaced state
// are woken.
func (s *State) Restore(r io.Reader) error {
	st, err := readSnapshot(bufio.NewReader(r))
	if err != nil {
		return fmt.Errorf("restore catalog: %w", err)
	}
	s.mu.Lock()
	old := s.cur.Swap(st)
	s.mu.Unlock()
	close(old.abandon)
	return nil
}

func readSnapshot(r io.Reader) (*store, error) {
	version, err := readSnapshotHeader(r)
	if err != nil {
		return nil, err
	}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptSnapshot, err)
	}
	dec := json.NewDecoder(gz)
	dec.DisallowUnknownFields()
	var meta snapshotMeta
	if err := dec.Decode(&meta); err != nil {
		return nil, fmt.Errorf("%w: header line: %v", ErrCorruptSnapshot, err)
	}
	if !knownTables(meta.Tables) {
		return nil, fmt.Errorf("%w: tables %q, want %q", ErrCorruptSnapshot, meta.Tables, tableOrder)
	}
	st := newStore()
	tx := st.db.Txn(true)
	defer tx.Abort()
	if err := readRows(dec, &write{tx: tx, index: meta.Index}); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: after the end line: %v", ErrCorruptSnapshot, err)
	}
	if got := appliedIndex(tx); got != meta.Index {
		return nil, fmt.Errorf("%w: header says index %d, index table says %d", ErrCorruptSnapshot, meta.Index, got)
	}
	if err := upgradeLegacySettings(&write{tx: tx, index: meta.Index}); err != nil {
		return nil, fmt.Errorf("%w: format %d: %v", ErrCorruptSnapshot, version, err)
	}
	tx.Commit()
	return st, nil
}

func readSnapshotHeader(r io.Reader) (uint16, error) {
	var hdr [len(snapshotMagic) + 2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, fmt.Errorf("%w: reading header: %v", ErrCorruptSnapshot, err)
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return 0, fmt.Errorf("%w: not a catalog snapshot (bad magic)", ErrCorruptSnapshot)
	}
	v := binary.BigEndian.Uint16(hdr[len(snapshotMagic):])
	switch {
	case v == 0:
		return 0, fmt.Errorf("%w: format version 0", ErrCorruptSnapshot)
	case v > snapshotVersion:
		return 0, fmt.Errorf("%w: format version %d is newer than this hub supports (%d); restore it with a newer hub", ErrSnapshotVersion, v, snapshotVersion)
	}
	return v, nil
}

// readRows inserts every row up to the end line, checking each one.
func readRows(dec *json.Decoder, w *write) error {
	rows, last := 0, -1
	for {
		var line snapshotLine
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("%w: after %d rows: %v", ErrCorruptSnapshot, rows, err)
		}
		if line.End {
			if line.Rows != rows {
				return fmt.Errorf("%w: end line counts %d rows, read %d", ErrCorruptSnapshot, line.Rows, rows)
			}
			return nil
		}
		pos := slices.Index(tableOrder, line.Table)
		if pos < last {
			return fmt.Errorf("%w: row %d: table %q out of order", ErrCorruptSnapshot, rows+1, line.Table)
		}
		last = pos
		if err := restoreRow(w, line.Table, line.Row); err != nil {
			return fmt.Errorf("%w: row %d (%s): %w", ErrCorruptSnapshot, rows+1, line.Table, err)
		}
		rows++
	}
}

func restoreRow(w *write, table string, raw json.RawMessage) error {
	switch table {
	case tableRegions:
		return restoreInto(w, table, raw, checkRegion)
	case tableSettings:
		return restoreInto(w, table, raw, checkSetting)
	case tableUsers:
		return restoreInto(w, table, raw, checkUser)
	case tableInstances:
		return restoreInto(w, table, raw, checkInstance)
	case tableDeployments:
		return restoreInto(w, table, raw, checkDeployment)
	case tableAPITokens:
		return restoreInto(w, table, raw, checkAPIToken)
	case tableEdges:
		return restoreInto(w, table, raw, checkEdge)
	case tableEnrollmentTokens:
		return restoreInto(w, table, raw, checkEnrollmentToken)
	case tableHubs:
		return restoreInto(w, table, raw, checkHub)
	case tableAllocations:
		return restoreInto(w, table, raw, checkAllocation)
	case tableFlows:
		return restoreInto(w, table, raw, checkFlows)
	case tableCredentials:
		return restoreInto(w, table, raw, checkCredentials)
	case tableMoves:
		return restoreInto(w, table, raw, checkMove)
	case tableAlertRules:
		return restoreInto(w, table, raw, checkAlertRule)
	case tableAlerts:
		return restoreInto(w, table, raw, checkAlert)
	case tableSigningKeys:
		return restoreInto(w, table, raw, checkSigningKey)
	case tableRefreshTokens:
		return restoreInto(w, table, raw, checkRefreshToken)
	case tableRevokedTokens, tableRevokedSessions:
		return restoreInto(w, table, raw, checkRevocation)
	case tableSessionGenerations:
		return restoreInto(w, table, raw, checkSessionGeneration)
	case tableDeploymentSpecs:
		return restoreInto(w, table, raw, checkDeploymentSpec)
	case tableAuditAnchors:
		return restoreInto(w, table, raw, checkAuditAnchor)
	case tableEdgeConfigs:
		return restoreInto(w, table, raw, checkEdgeConfig)
	case tableGreenLogs:
		return restoreInto(w, table, raw, checkGreenLogs)
	case tableSnapshots:
		return restoreInto(w, table, raw, checkSnapshot)
	case tableLLMProviders:
		return restoreInto(w, table, raw, checkLLMProvider)
	case tableModels:
		return restoreInto(w, table, raw, checkModel)
	case tableLLMRoutes:
		return restoreInto(w, table, raw, checkLLMRoute)
	case tableLLMBudgets:
		return restoreInto(w, table, raw, checkLLMBudget)
	case tableBenchmarks:
		return restoreInto(w, table, raw, checkBenchmark)
	case tableIndex:
		return restoreIndexRow(w, raw)
	}
	return fmt.Errorf("unknown table %q", table)
}

// restoreInto decodes one row, checks it as a write would (required keys,
// uniqueness, references) plus its indexes, and inserts it.
func restoreInto[T any, P row[T]](w *write, table string, raw json.RawMessage, check func(*write, P) error) error {
	r := P(new(T))
	if err := decodeStrict(raw, r); err != nil {
		return err
	}
	if first[T, P](w.tx, nil, table, "id", r.primaryKey()) != nil {
		return fmt.Errorf("duplicate key %q", r.primaryKey())
	}
	if err := check(w, r); err != nil {
		return err
	}
	if ix := r.indexes(); ix.CreateIndex == 0 || ix.CreateIndex > ix.ModifyIndex || ix.ModifyIndex > w.index {
		return fmt.Errorf("key %q: indexes create=%d modify=%d out of range (last applied %d)", r.primaryKey(), ix.CreateIndex, ix.ModifyIndex, w.index)
	}
	return w.tx.Insert(table, r)
}

func restoreIndexRow(w *write, raw json.RawMessage) error {
	var r indexRow
	if err := decodeStrict(raw, &r); err != nil {
		return err
	}
	if r.Table != appliedKey && !slices.Contains(tableOrder[:len(tableOrder)-1], r.Table) {
		return fmt.Errorf("index of unknown table %q", r.Table)
	}
	if r.Index > w.index {
		return fmt.Errorf("index of %q is %d, after the last applied index %d", r.Table, r.Index, w.index)
	}
	if obj, _ := w.tx.First(tableIndex, "id", r.Table); obj != nil {
		return fmt.Errorf("duplicate index of %q", r.Table)
	}
	return w.tx.Insert(tableIndex, &r)
}
