package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 4

// schema creates the tables. streams.last_seq is the only source of the
// next seq: it is never lowered, and it lives apart from records so that
// deleting every record (Ack) cannot make a seq come back after a restart.
//
// A record's key is its stream's number and its seq in one integer
// (recordKey): records is a plain rowid table, so an append is one b-tree
// insert, and Pending, Ack and eviction are range scans of that b-tree.
// (Before v3 the primary key was (stream, seq): a second b-tree to insert
// into, search and rebalance on every append, read and delete.)
const schema = `
CREATE TABLE IF NOT EXISTS streams (
	name      TEXT    PRIMARY KEY,
	last_seq  INTEGER NOT NULL DEFAULT 0, -- highest seq ever assigned; never decreases
	acked_seq INTEGER NOT NULL DEFAULT 0, -- highest seq acked; records <= it are deleted
	depth     INTEGER NOT NULL DEFAULT 0, -- rows in records for this stream
	bytes     INTEGER NOT NULL DEFAULT 0, -- sum of their payload lengths
	evicted_seq   INTEGER NOT NULL DEFAULT 0, -- highest seq whose payload was evicted (v2)
	evicted_count INTEGER NOT NULL DEFAULT 0, -- records evicted since creation (v2)
	no        INTEGER NOT NULL DEFAULT 0, -- the stream's number in record keys, 1..maxStreamNo (v3)
	dead      INTEGER NOT NULL DEFAULT 0  -- acked bytes still in the stream's oldest segment file (v4)
) STRICT;
CREATE UNIQUE INDEX IF NOT EXISTS streams_no ON streams (no);
CREATE TABLE IF NOT EXISTS records (
	key      INTEGER PRIMARY KEY, -- recordKey(streams.no, seq) (v3)
	arrived  INTEGER NOT NULL, -- unix nanoseconds
	checksum INTEGER NOT NULL, -- CRC32C (Castagnoli) of payload
	payload  BLOB    NOT NULL, -- empty when the payload is in a segment file
	seg      INTEGER NOT NULL DEFAULT 0, -- segments.id holding the payload; 0: inline (v4)
	off      INTEGER NOT NULL DEFAULT 0, -- its offset in the segment file (v4)
	seglen   INTEGER NOT NULL DEFAULT 0  -- its length there; 0 for inline payloads (v4)
) STRICT;
CREATE TABLE IF NOT EXISTS segments ( -- segment files (v4, segments.go)
	id        INTEGER PRIMARY KEY AUTOINCREMENT, -- file <Path>.segments/<id>.seg; never reused
	no        INTEGER NOT NULL, -- streams.no
	first_seq INTEGER NOT NULL, -- seqs of its first and last record
	last_seq  INTEGER NOT NULL,
	size      INTEGER NOT NULL  -- committed bytes; beyond them the file holds nothing committed
) STRICT;
CREATE INDEX IF NOT EXISTS segments_no ON segments (no, last_seq);
`

// migrateV4 adds segment files to a v3 database: new columns only, every
// existing record keeps its inline payload (seg = 0), nothing is copied.
const migrateV4 = `
ALTER TABLE records ADD COLUMN seg INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN off INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN seglen INTEGER NOT NULL DEFAULT 0;
ALTER TABLE streams ADD COLUMN dead INTEGER NOT NULL DEFAULT 0;
`

// migrateV3 moves a v2 database to record keys: every stream gets a
// number (its rowid, which is stable until a VACUUM) and every record is
// copied, in one transaction, to a records table keyed by recordKey. The
// copy needs room for a second copy of the backlog while it runs.
const migrateV3 = `
ALTER TABLE streams ADD COLUMN no INTEGER NOT NULL DEFAULT 0;
UPDATE streams SET no = rowid;
CREATE TABLE records_v3 (
	key      INTEGER PRIMARY KEY,
	arrived  INTEGER NOT NULL,
	checksum INTEGER NOT NULL,
	payload  BLOB    NOT NULL
) STRICT;
INSERT INTO records_v3 (key, arrived, checksum, payload)
	SELECT (s.no << 48) | r.seq, r.arrived, r.checksum, r.payload
	FROM records r JOIN streams s ON s.name = r.stream ORDER BY s.no, r.seq;
DROP TABLE records;
ALTER TABLE records_v3 RENAME TO records;
`

// Record keys: the stream number in the high bits, the seq in the low 48
// (2.8e14 seqs a stream: over 290 years at 30,000 records a second).
const (
	seqBits     = 48
	maxSeq      = 1<<seqBits - 1
	maxStreamNo = 1<<(63-seqBits) - 1
)

// recordKey is the records.key of stream number no's record seq.
func recordKey(no, seq int64) int64 { return no<<seqBits | seq }

// keySeq is the seq in a record key.
func keySeq(key int64) int64 { return key & maxSeq }

const (
	sqlInsert    = `INSERT INTO records (key, arrived, checksum, payload, seg, off, seglen) VALUES (?, ?, ?, ?, ?, ?, ?)`
	sqlBumpLast  = `UPDATE streams SET last_seq = ?, depth = depth + ?, bytes = bytes + ? WHERE name = ?`
	sqlAckSize   = `SELECT count(*), coalesce(sum(length(payload) + seglen), 0) FROM records WHERE key > ? AND key <= ?`
	sqlAckDelete = `DELETE FROM records WHERE key > ? AND key <= ?`
	sqlAckBump   = `UPDATE streams SET acked_seq = ?, depth = depth - ?, bytes = bytes - ?, dead = ? WHERE name = ?`
	sqlPending   = `SELECT key, arrived, checksum, payload, seg, off, seglen FROM records WHERE key > ? AND key <= ? ORDER BY key LIMIT ?`
	sqlEvictPick = `SELECT key, length(payload) + seglen, seg FROM records WHERE key > ? AND key <= ? ORDER BY key LIMIT 256`
	sqlEvictOne  = `UPDATE records SET payload = ?, checksum = ? WHERE key = ?`
	sqlEvictBump = `UPDATE streams SET bytes = bytes - ?, evicted_seq = ?, evicted_count = evicted_count + ?, dead = ? WHERE name = ?`
	// Evicting a segment tombstones every record of the range up to its
	// last (inline ones only if larger than Tombstone, as one by one).
	sqlEvictRangeSize = `SELECT count(*), coalesce(sum(length(payload) + seglen), 0) FROM records
		WHERE key > ? AND key <= ? AND (seg > 0 OR length(payload) > ?)`
	sqlEvictRange = `UPDATE records SET payload = ?, checksum = ?, seg = 0, off = 0, seglen = 0
		WHERE key > ? AND key <= ? AND (seg > 0 OR length(payload) > ?)`
	sqlStreamSegments = `SELECT id, first_seq, last_seq, size FROM segments WHERE no = ? ORDER BY id`
	sqlStats          = `SELECT s.name, s.last_seq, s.depth, s.bytes, s.evicted_count,
		(SELECT r.arrived FROM records r WHERE r.key > s.no << 48 AND r.key < (s.no + 1) << 48 -- seqBits
			ORDER BY r.key LIMIT 1)
		FROM streams s`
)

// walAutoCheckpoint is the WAL size, in pages, at which the writer's
// commit checkpoints (SQLite's default is 1000). The background
// checkpointer has copied most of those pages by then, so the writer only
// finishes the rest, and, with no writer adding frames meanwhile, brings
// the checkpoint to the end of the WAL, which lets the next commit restart
// it from the beginning: a checkpoint that runs beside a busy writer never
// reaches the end, and the WAL would grow for ever.
const walAutoCheckpoint = 8192

// mmapSize is how much of the file each connection reads through mmap
// instead of read(2) into its page cache: Pending's payload reads were
// most of the drain's edge CPU. Writes still go through the WAL, so
// durability is unchanged. A 32-bit edge (armv7) has 3 GiB of address
// space for every connection, so it maps less.
const mmapSize = 1 << 30 >> ((64 - strconv.IntSize) / 16) // 1 GiB on 64-bit, 256 MiB on 32-bit

// dsn builds a modernc.org/sqlite data source name. The _pragma values run
// on every new connection, so each pooled connection gets them.
func (o *Outbox) dsn(readOnly bool) string {
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", o.BusyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
		fmt.Sprintf("_pragma=mmap_size(%d)", mmapSize),
	}
	if readOnly {
		q = append(q, "_pragma=query_only(1)")
	} else {
		// journal_mode is persistent in the file; setting it on the writer is enough.
		// The checkpointer goroutine folds the WAL into the file off the
		// commit path; the writer's own checkpoint, at walAutoCheckpoint
		// pages, finishes what is left and lets the WAL start over (see
		// Outbox.CheckpointInterval).
		q = append(q, "_pragma=journal_mode(WAL)", "_txlock=immediate", fmt.Sprintf("_pragma=wal_autocheckpoint(%d)", walAutoCheckpoint))
	}
	// A plain file name (no "file:" URI) keeps SQLite from decoding '%' in
	// the path; the driver strips the query before opening.
	return o.Path + "?" + strings.Join(q, "&")
}

func (o *Outbox) openDBs(ctx context.Context) error {
	w, err := sql.Open("sqlite", o.dsn(false))
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	o.w = w
	if err := checkDurable(ctx, w); err != nil {
		return err
	}
	r, err := sql.Open("sqlite", o.dsn(true))
	if err != nil {
		return err
	}
	r.SetMaxOpenConns(o.MaxReaders)
	r.SetMaxIdleConns(o.MaxReaders)
	o.r = r
	// The checkpointer's own connection: not query_only, and not the
	// writer's, so a checkpoint never holds a commit up.
	ck, err := sql.Open("sqlite", o.Path+"?"+fmt.Sprintf("_pragma=busy_timeout(%d)&_pragma=synchronous(FULL)&_pragma=mmap_size(%d)", o.BusyTimeout.Milliseconds(), mmapSize))
	if err != nil {
		return err
	}
	ck.SetMaxOpenConns(1)
	ck.SetMaxIdleConns(1)
	o.ck = ck
	return nil
}

// checkDurable fails unless the writer connection really runs in WAL mode
// with synchronous=FULL: a silently ignored pragma would void every
// durability promise of Append.
func checkDurable(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return err
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal_mode is %q, want wal (is the file on a filesystem without shared memory support?)", mode)
	}
	var sync int
	if err := db.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&sync); err != nil {
		return err
	}
	if sync != 2 {
		return fmt.Errorf("synchronous is %d, want 2 (FULL)", sync)
	}
	return nil
}

// migrate creates or checks the schema and adds rows for configured streams.
func (o *Outbox) migrate(ctx context.Context) error {
	tx, err := o.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return err
	}
	if version > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this binary's %d; run a newer redforge-edge", version, schemaVersion)
	}
	if version == 1 { // v1 -> v2: eviction columns
		for _, col := range []string{"evicted_seq", "evicted_count"} {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE streams ADD COLUMN "+col+" INTEGER NOT NULL DEFAULT 0"); err != nil {
				return fmt.Errorf("migrate to v2: %w", err)
			}
		}
	}
	if version == 1 || version == 2 { // v2 -> v3: record keys
		if _, err := tx.ExecContext(ctx, migrateV3); err != nil {
			return fmt.Errorf("migrate to v3: %w", err)
		}
	}
	if version >= 1 && version <= 3 { // v3 -> v4: segment files
		if _, err := tx.ExecContext(ctx, migrateV4); err != nil {
			return fmt.Errorf("migrate to v4: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	nos, err := streamNumbers(ctx, tx)
	if err != nil {
		return err
	}
	next := int64(0)
	for _, no := range nos {
		next = max(next, no)
	}
	for _, s := range o.Streams {
		if _, ok := nos[s]; ok {
			continue
		}
		if next++; next > maxStreamNo {
			return fmt.Errorf("add stream %s: more than %d streams", s, maxStreamNo)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO streams (name, no) VALUES (?, ?)", s, next); err != nil {
			return fmt.Errorf("add stream %s: %w", s, err)
		}
		nos[s] = next
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	o.nos = nos
	return nil
}

// streamNumbers reads every stream's number.
func streamNumbers(ctx context.Context, tx *sql.Tx) (map[string]int64, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name, no FROM streams")
	if err != nil {
		return nil, fmt.Errorf("read streams: %w", err)
	}
	defer rows.Close()
	nos := map[string]int64{}
	for rows.Next() {
		var name string
		var no int64
		if err := rows.Scan(&name, &no); err != nil {
			return nil, fmt.Errorf("read streams: %w", err)
		}
		if no < 1 || no > maxStreamNo {
			return nil, fmt.Errorf("stream %s has number %d, want 1..%d", name, no, maxStreamNo)
		}
		nos[name] = no
	}
	return nos, rows.Err()
}

func loadWriterState(ctx context.Context, tx *sql.Tx) (writerState, error) {
	ws := writerState{last: map[string]int64{}, acked: map[string]int64{}, bytes: map[string]int64{}, evicted: map[string]int64{}, dead: map[string]int64{}}
	rows, err := tx.QueryContext(ctx, "SELECT name, last_seq, acked_seq, bytes, evicted_seq, dead FROM streams")
	if err != nil {
		return ws, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var last, acked, bytes, evicted, dead int64
		if err := rows.Scan(&name, &last, &acked, &bytes, &evicted, &dead); err != nil {
			return ws, err
		}
		ws.last[name], ws.acked[name], ws.bytes[name], ws.evicted[name], ws.dead[name] = last, acked, bytes, evicted, dead
	}
	return ws, rows.Err()
}

func (o *Outbox) closeDBs() error {
	var errs []error
	if o.lock != nil {
		errs = append(errs, o.lock.Close())
		o.lock = nil
	}
	if o.ck != nil {
		errs = append(errs, o.ck.Close())
	}
	if o.r != nil {
		errs = append(errs, o.r.Close())
	}
	if o.w != nil {
		errs = append(errs, o.w.Close())
	}
	return errors.Join(errs...)
}
