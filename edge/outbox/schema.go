package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// schemaVersion is stored in PRAGMA user_version.
const schemaVersion = 2

// schema creates the tables. streams.last_seq is the only source of the
// next seq: it is never lowered, and it lives apart from records so that
// deleting every record (Ack) cannot make a seq come back after a restart.
const schema = `
CREATE TABLE IF NOT EXISTS streams (
	name      TEXT    PRIMARY KEY,
	last_seq  INTEGER NOT NULL DEFAULT 0, -- highest seq ever assigned; never decreases
	acked_seq INTEGER NOT NULL DEFAULT 0, -- highest seq acked; records <= it are deleted
	depth     INTEGER NOT NULL DEFAULT 0, -- rows in records for this stream
	bytes     INTEGER NOT NULL DEFAULT 0, -- sum of their payload lengths
	evicted_seq   INTEGER NOT NULL DEFAULT 0, -- highest seq whose payload was evicted (v2)
	evicted_count INTEGER NOT NULL DEFAULT 0  -- records evicted since creation (v2)
) STRICT;
CREATE TABLE IF NOT EXISTS records (
	stream   TEXT    NOT NULL REFERENCES streams(name),
	seq      INTEGER NOT NULL,
	arrived  INTEGER NOT NULL, -- unix nanoseconds
	checksum INTEGER NOT NULL, -- CRC32C (Castagnoli) of payload
	payload  BLOB    NOT NULL,
	PRIMARY KEY (stream, seq)
) STRICT;
`

const (
	sqlInsert    = `INSERT INTO records (stream, seq, arrived, checksum, payload) VALUES (?, ?, ?, ?, ?)`
	sqlBumpLast  = `UPDATE streams SET last_seq = ?, depth = depth + ?, bytes = bytes + ? WHERE name = ?`
	sqlAckDelete = `DELETE FROM records WHERE stream = ? AND seq <= ? RETURNING length(payload)`
	sqlAckBump   = `UPDATE streams SET acked_seq = ?, depth = depth - ?, bytes = bytes - ? WHERE name = ?`
	sqlPending   = `SELECT seq, arrived, checksum, payload FROM records WHERE stream = ? AND seq > ? ORDER BY seq LIMIT ?`
	sqlEvictPick = `SELECT seq, length(payload) FROM records WHERE stream = ? AND seq > ? ORDER BY seq LIMIT 256`
	sqlEvictOne  = `UPDATE records SET payload = ?, checksum = ? WHERE stream = ? AND seq = ?`
	sqlEvictBump = `UPDATE streams SET bytes = bytes - ?, evicted_seq = ?, evicted_count = evicted_count + ? WHERE name = ?`
	sqlStats     = `SELECT s.name, s.last_seq, s.depth, s.bytes, s.evicted_count,
		(SELECT r.arrived FROM records r WHERE r.stream = s.name ORDER BY r.seq LIMIT 1)
		FROM streams s`
)

// dsn builds a modernc.org/sqlite data source name. The _pragma values run
// on every new connection, so each pooled connection gets them.
func (o *Outbox) dsn(readOnly bool) string {
	q := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", o.BusyTimeout.Milliseconds()),
		"_pragma=foreign_keys(1)",
		"_pragma=synchronous(FULL)",
	}
	if readOnly {
		q = append(q, "_pragma=query_only(1)")
	} else {
		// journal_mode is persistent in the file; setting it on the writer is enough.
		q = append(q, "_pragma=journal_mode(WAL)", "_txlock=immediate")
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
	if _, err := tx.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return err
	}
	for _, s := range o.Streams {
		if _, err := tx.ExecContext(ctx, "INSERT OR IGNORE INTO streams (name) VALUES (?)", s); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func loadWriterState(ctx context.Context, tx *sql.Tx) (writerState, error) {
	ws := writerState{last: map[string]int64{}, acked: map[string]int64{}, bytes: map[string]int64{}, evicted: map[string]int64{}}
	rows, err := tx.QueryContext(ctx, "SELECT name, last_seq, acked_seq, bytes, evicted_seq FROM streams")
	if err != nil {
		return ws, err
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var last, acked, bytes, evicted int64
		if err := rows.Scan(&name, &last, &acked, &bytes, &evicted); err != nil {
			return ws, err
		}
		ws.last[name], ws.acked[name], ws.bytes[name], ws.evicted[name] = last, acked, bytes, evicted
	}
	return ws, rows.Err()
}

func (o *Outbox) closeDBs() error {
	var errs []error
	if o.r != nil {
		errs = append(errs, o.r.Close())
	}
	if o.w != nil {
		errs = append(errs, o.w.Close())
	}
	return errors.Join(errs...)
}
