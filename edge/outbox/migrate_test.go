package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// schemaV2 is the outbox schema as edges before v3 wrote it: records keyed
// by (stream, seq), a second b-tree beside the table.
const schemaV2 = `
CREATE TABLE streams (
	name      TEXT    PRIMARY KEY,
	last_seq  INTEGER NOT NULL DEFAULT 0,
	acked_seq INTEGER NOT NULL DEFAULT 0,
	depth     INTEGER NOT NULL DEFAULT 0,
	bytes     INTEGER NOT NULL DEFAULT 0,
	evicted_seq   INTEGER NOT NULL DEFAULT 0,
	evicted_count INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE TABLE records (
	stream   TEXT    NOT NULL REFERENCES streams(name),
	seq      INTEGER NOT NULL,
	arrived  INTEGER NOT NULL,
	checksum INTEGER NOT NULL,
	payload  BLOB    NOT NULL,
	PRIMARY KEY (stream, seq)
) STRICT;
PRAGMA user_version = 2;
`

// TestMigrateV2KeepsEveryRecord opens a v2 outbox holding a partly acked
// backlog on two streams (one with an evicted record) and checks that v3
// serves exactly the same records, counters and seqs, then keeps going:
// appends continue each stream's seq, acks delete only their own stream,
// and a stream added by the new configuration gets a number of its own.
func TestMigrateV2KeepsEveryRecord(t *testing.T) {
	path, db := legacyOutbox(t, schemaV2)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	want := map[string][]Record{}
	// audit: seqs 1..40 assigned, 1..10 acked; vectors: 1..25, seq 3 evicted.
	for _, s := range []struct {
		name         string
		last, acked  int64
		evicted      int64
		evictedCount int64
	}{{"audit", 40, 10, 0, 0}, {"vectors", 25, 0, 3, 1}} {
		var bytes int64
		for seq := s.acked + 1; seq <= s.last; seq++ {
			p := fmt.Appendf(nil, `{"stream":%q,"seq":%d}`, s.name, seq)
			if s.name == "vectors" && seq == s.evicted {
				p = Tombstone
			}
			rec := Record{Stream: s.name, Seq: seq, Arrived: base.Add(time.Duration(seq) * time.Second), Payload: p, Checksum: Checksum(p)}
			want[s.name] = append(want[s.name], rec)
			bytes += int64(len(p))
			if _, err := db.Exec("INSERT INTO records VALUES (?, ?, ?, ?, ?)", s.name, seq, rec.Arrived.UnixNano(), int64(rec.Checksum), p); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := db.Exec("INSERT INTO streams VALUES (?, ?, ?, ?, ?, ?, ?)", s.name, s.last, s.acked,
			s.last-s.acked, bytes, s.evicted, s.evictedCount); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	o := MustOpen(t, path) // default streams: adds ai_decisions, checkpoints, metrics
	for stream, recs := range want {
		got := allRecords(t, o, stream)
		if !slices.EqualFunc(got, recs, func(a, b Record) bool {
			return a.Stream == b.Stream && a.Seq == b.Seq && a.Arrived.Equal(b.Arrived) &&
				string(a.Payload) == string(b.Payload) && a.Checksum == b.Checksum
		}) {
			t.Fatalf("%s after migration: seqs %v, want %v", stream, seqs(got), seqs(recs))
		}
		for _, r := range got {
			if err := r.Verify(); err != nil {
				t.Fatal(err)
			}
		}
	}
	st := mustStats(t, o)
	if a := st["audit"]; a.Depth != 30 || a.LastSeq != 40 || !a.OldestArrived.Equal(base.Add(11*time.Second)) {
		t.Fatalf("audit stats after migration: %+v", a)
	}
	if v := st["vectors"]; v.Depth != 25 || v.LastSeq != 25 || v.Evicted != 1 {
		t.Fatalf("vectors stats after migration: %+v", v)
	}
	if got := mustAppend(t, o, "audit", `{"after":"migration"}`); got != 41 {
		t.Fatalf("first audit seq after migration %d, want 41", got)
	}
	if got := mustAppend(t, o, "metrics", `{"new":"stream"}`); got != 1 {
		t.Fatalf("first metrics seq %d, want 1", got)
	}
	if err := o.Ack(context.Background(), "audit", 41); err != nil {
		t.Fatal(err)
	}
	if got := allRecords(t, o, "audit"); len(got) != 0 {
		t.Fatalf("audit after ack of everything: seqs %v", seqs(got))
	}
	if got := allRecords(t, o, "vectors"); len(got) != 25 {
		t.Fatalf("vectors after acking audit: %d records, want 25", len(got))
	}
	if got := allRecords(t, o, "metrics"); len(got) != 1 || got[0].Seq != 1 {
		t.Fatalf("metrics: seqs %v, want [1]", seqs(got))
	}
	MustClose(t, o)

	// Reopening a v3 file migrates nothing and keeps the numbers.
	o = MustOpen(t, path)
	if got := allRecords(t, o, "vectors"); len(got) != 25 || got[24].Seq != 25 {
		t.Fatalf("vectors after reopen: seqs %v", seqs(got))
	}
	if got := mustAppend(t, o, "audit", `{}`); got != 42 {
		t.Fatalf("audit seq after reopen %d, want 42", got)
	}
}

// TestRecordKeysKeepStreamsApart checks the ends of a stream's key range:
// the highest possible seq of one stream and seq 1 of the next cannot meet.
func TestRecordKeysKeepStreamsApart(t *testing.T) {
	if recordKey(1, maxSeq) >= recordKey(2, 1) || recordKey(2, 0) != recordKey(1, maxSeq)+1 {
		t.Fatalf("key ranges overlap: %d %d", recordKey(1, maxSeq), recordKey(2, 1))
	}
	if keySeq(recordKey(maxStreamNo, maxSeq)) != maxSeq || recordKey(maxStreamNo, maxSeq) < 0 {
		t.Fatal("the largest key overflows")
	}
}

// schemaV3 is the outbox schema as edges before segment files wrote it:
// every payload inline.
const schemaV3 = `
CREATE TABLE streams (
	name      TEXT    PRIMARY KEY,
	last_seq  INTEGER NOT NULL DEFAULT 0,
	acked_seq INTEGER NOT NULL DEFAULT 0,
	depth     INTEGER NOT NULL DEFAULT 0,
	bytes     INTEGER NOT NULL DEFAULT 0,
	evicted_seq   INTEGER NOT NULL DEFAULT 0,
	evicted_count INTEGER NOT NULL DEFAULT 0,
	no        INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE UNIQUE INDEX streams_no ON streams (no);
CREATE TABLE records (
	key      INTEGER PRIMARY KEY,
	arrived  INTEGER NOT NULL,
	checksum INTEGER NOT NULL,
	payload  BLOB    NOT NULL
) STRICT;
PRAGMA user_version = 3;
`

// TestMigrateV3KeepsInlinePayloads opens a v3 outbox whose backlog holds
// large and small payloads inline: v4 serves them unchanged (no copy, no
// segment file), new large payloads go to segment files after them, the
// stream reads in order across both, an ack across the boundary releases
// both kinds and the segment file, and Stats agree throughout.
func TestMigrateV3KeepsInlinePayloads(t *testing.T) {
	path, db := legacyOutbox(t, schemaV3)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var want []Record
	var held int64
	for seq := int64(6); seq <= 30; seq++ { // 1..5 acked
		size := 100
		if seq%2 == 0 {
			size = 5000 // would be in a segment today
		}
		p := segPayload("old", int(seq), size)
		rec := Record{Stream: StreamVectors, Seq: seq, Arrived: base.Add(time.Duration(seq) * time.Second), Payload: p, Checksum: Checksum(p)}
		want = append(want, rec)
		held += int64(len(p))
		if _, err := db.Exec("INSERT INTO records VALUES (?, ?, ?, ?)", recordKey(2, seq), rec.Arrived.UnixNano(), int64(rec.Checksum), p); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO streams VALUES ('audit', 0, 0, 0, 0, 0, 0, 1), ('vectors', 30, 5, 25, ?, 0, 0, 2)", held); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	o := openSeg(t, path, DefaultSegmentSize, 0) // the default threshold and size, whatever the suite's
	if got := segmentFiles(t, o.segDir()); len(got) != 0 {
		t.Fatalf("migration wrote segment files %v", got)
	}
	for i := range 10 { // seqs 31..40: large ones in a segment
		size := 100
		if i%3 > 0 {
			size = 6000
		}
		p := segPayload("new", i, size)
		seq, err := o.Append(context.Background(), StreamVectors, p, base.Add(time.Hour))
		if err != nil || seq != int64(31+i) {
			t.Fatalf("append %d: seq %d, %v", i, seq, err)
		}
		want = append(want, Record{Stream: StreamVectors, Seq: seq, Arrived: base.Add(time.Hour), Payload: p, Checksum: Checksum(p)})
	}
	check := func(from int) {
		t.Helper()
		got := allRecords(t, o, StreamVectors)
		if !slices.EqualFunc(got, want[from:], func(a, b Record) bool {
			return a.Stream == b.Stream && a.Seq == b.Seq && a.Arrived.Equal(b.Arrived) &&
				bytes.Equal(a.Payload, b.Payload) && a.Checksum == b.Checksum && a.Verify() == nil
		}) {
			t.Fatalf("after migration: seqs %v, want %v", seqs(got), seqs(want[from:]))
		}
		var b int64
		for _, r := range want[from:] {
			b += int64(len(r.Payload))
		}
		if st := mustStats(t, o)[StreamVectors]; st.Depth != int64(len(want)-from) || st.Bytes != b || st.LastSeq != 40 {
			t.Fatalf("stats %+v, want depth %d, bytes %d", st, len(want)-from, b)
		}
		checkSegments(t, o.r, o.segDir(), true)
	}
	check(0)
	if got := len(segmentFiles(t, o.segDir())); got != 1 {
		t.Fatalf("%d segment files after 6 large appends, want 1", got)
	}
	if err := o.Ack(context.Background(), StreamVectors, 33); err != nil { // old inline ones and the first new
		t.Fatal(err)
	}
	check(28)
	MustClose(t, o)
	o = openSeg(t, path, DefaultSegmentSize, 0)
	check(28)
	if err := o.Ack(context.Background(), StreamVectors, 40); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, o.segDir()); len(got) != 0 {
		t.Fatalf("segment files %v after acking everything", got)
	}
}

// legacyOutbox creates an outbox database in a fresh directory with an
// older version's schema, for the migration tests to fill and then open.
func legacyOutbox(t *testing.T, schema string) (path string, db *sql.DB) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "outbox.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(schema); err != nil {
		t.Fatal(err)
	}
	return path, db
}
