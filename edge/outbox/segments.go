package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Segment files (schema v4). A payload of at least SegmentThreshold bytes
// is not stored in SQLite: it is appended to its stream's current segment
// file in <Path>.segments/, and its records row keeps the checksum and the
// (seg, off, seglen) where the bytes are, with an empty payload. A segment
// holds the raw payloads of one stream, back to back, in seq order; it is
// written only at its end and deleted whole, once an ack or an eviction
// has released every record in it. So an ack deletes small rows and
// unlinks files, and Pending reads a run of payloads with one pread.
//
// Durability order in a batch: the payloads are written and fsynced (and
// the directory, when the batch created a file) before the SQLite
// transaction that holds their rows and the segments rows commits. On disk
// a segment may therefore hold bytes past its committed size (a batch that
// crashed or failed before its commit) and a file may exist that no
// committed row names (created by such a batch, or acked and committed but
// not yet unlinked): Open truncates the first and deletes the second
// (recoverSegments).
//
// The budget counts segment bytes: streams.bytes is the payload of the
// records held (inline or not, as Stats reports it), and streams.dead the
// bytes of the records already acked that are still in the stream's oldest
// segment (acks release whole segments; evictions always release the
// oldest segment whole, so only the oldest can hold acked bytes). Per
// stream, the sizes of its segments = the seglen of its segment records +
// dead.

const (
	// DefaultSegmentThreshold is the payload size from which a record's
	// payload goes to a segment file. A payload over half a page takes an
	// SQLite page (or more, with overflow pages) of its own, whose insert,
	// read and delete dominated the outbox's CPU; smaller ones share pages
	// and stay inline, and a batch of them costs no second fsync.
	DefaultSegmentThreshold = 2048
	// DefaultSegmentSize is the size at which a stream's segment file is
	// closed and the next payload starts a new one.
	DefaultSegmentSize = 64 << 20
	// minSegmentSize bounds the segment size derived from a small budget.
	minSegmentSize = 64 << 10
	// segWriteChunk is how much of a batch's payloads is buffered before it
	// is written to the segment file (still before the fsync and commit).
	segWriteChunk = 1 << 20
)

// The defaults New sets; the tests may run the whole suite with others
// (main_test.go).
var (
	newSegmentThreshold       = DefaultSegmentThreshold
	newSegmentSize      int64 = DefaultSegmentSize
)

// segment is a segment file as the writer sees it.
type segment struct {
	id, no      int64
	first, last int64 // seqs of its first and last record
	size        int64 // committed bytes (segments.size)
	f           *os.File
	created     bool   // the file was created by the current batch
	wrote       int64  // bytes written past size by the current batch
	pend        []byte // bytes buffered by the current batch, after wrote
	dirty       bool   // its segments row needs writing in the current batch
	inBatch     bool   // in segStore.touched
	dropped     bool   // deleted (acked or evicted) by the current batch
}

// end is the offset the next payload gets.
func (s *segment) end() int64 { return s.size + s.wrote + int64(len(s.pend)) }

// segStore is the writer goroutine's segment state: each stream's current
// segment (the one appends go to) and what the current batch touched.
type segStore struct {
	dir     string
	next    int64              // next segment id
	active  map[int64]*segment // by stream number; absent: look it up
	looked  map[int64]bool     // streams whose active segment was looked up
	touched []*segment         // by the current batch, in order
	unlink  []int64            // segments deleted by the current batch
	created bool               // the current batch created a file
}

func segFileName(id int64) string { return fmt.Sprintf("%016d.seg", id) }

func (o *Outbox) segDir() string { return o.Path + ".segments" }

func (s *segStore) path(id int64) string { return filepath.Join(s.dir, segFileName(id)) }

// segmentSize is the size at which segments roll: SegmentSize, but small
// enough under a small budget that eviction, which frees whole segments,
// can free a fraction of it.
func (o *Outbox) segmentSize() int64 {
	size := o.SegmentSize
	if o.Budget > 0 {
		size = min(size, max(o.Budget/8, minSegmentSize))
	}
	return size
}

// inSegment reports whether a payload of n bytes goes to a segment file.
func (o *Outbox) inSegment(n int) bool { return o.SegmentThreshold > 0 && n >= o.SegmentThreshold }

// activeSegment returns stream no's segment for the next payload of n
// bytes, starting a new one when there is none or it is full. It runs
// inside the batch's transaction.
func (o *Outbox) activeSegment(tx *sql.Tx, no, seq int64, n int) (*segment, error) {
	s := o.segs
	seg := s.active[no]
	if seg == nil && !s.looked[no] {
		s.looked[no] = true
		seg = &segment{no: no}
		err := tx.QueryRow(`SELECT id, first_seq, last_seq, size FROM segments WHERE no = ? ORDER BY id DESC LIMIT 1`, no).
			Scan(&seg.id, &seg.first, &seg.last, &seg.size)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			seg = nil
		case err != nil:
			return nil, fmt.Errorf("read segment of stream %d: %w", no, err)
		case seg.size >= o.segmentSize():
			seg = nil
		default:
			if seg.f, err = os.OpenFile(s.path(seg.id), os.O_WRONLY, 0); err != nil {
				return nil, fmt.Errorf("open segment: %w", err)
			}
			s.active[no] = seg
		}
	}
	if seg != nil && seg.end() > 0 && seg.end()+int64(n) > o.segmentSize() {
		s.touch(seg) // full: roll; closed after the batch
		seg = nil
	}
	if seg == nil {
		seg = &segment{id: s.next, no: no, first: seq}
		s.next++
		s.active[no] = seg
	}
	seg.dirty = true
	s.touch(seg)
	return seg, nil
}

// add buffers payload as seg's record seq and returns its offset.
func (s *segStore) add(seg *segment, seq int64, payload []byte) (int64, error) {
	off := seg.end()
	seg.pend = append(seg.pend, payload...)
	seg.last = seq
	if len(seg.pend) >= segWriteChunk {
		if err := s.write(seg); err != nil {
			return 0, err
		}
	}
	return off, nil
}

// write writes seg's buffered bytes to its file, creating it if needed.
func (s *segStore) write(seg *segment) error {
	if len(seg.pend) == 0 {
		return nil
	}
	if seg.f == nil {
		f, err := os.OpenFile(s.path(seg.id), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
		if err != nil {
			return fmt.Errorf("create segment: %w", err)
		}
		seg.f, seg.created, s.created = f, true, true
	}
	if _, err := seg.f.WriteAt(seg.pend, seg.size+seg.wrote); err != nil {
		return fmt.Errorf("write segment %d: %w", seg.id, err)
	}
	seg.wrote += int64(len(seg.pend))
	seg.pend = seg.pend[:0]
	return nil
}

// flushRows writes the segments rows the batch changed so far, so that an
// ack or an eviction later in the batch sees them.
func (s *segStore) flushRows(tx *sql.Tx) error {
	for _, seg := range s.touched {
		if !seg.dirty || seg.dropped {
			continue
		}
		if _, err := tx.Exec(`INSERT INTO segments (id, no, first_seq, last_seq, size) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET last_seq = excluded.last_seq, size = excluded.size`,
			seg.id, seg.no, seg.first, seg.last, seg.end()); err != nil {
			return fmt.Errorf("write segment %d: %w", seg.id, err)
		}
		seg.dirty = false
	}
	return nil
}

// sync makes the batch's payloads durable: write, fsync every file it
// wrote, and the directory if it created one. It runs before the commit.
func (s *segStore) sync(tx *sql.Tx) error {
	for _, seg := range s.touched {
		if seg.dropped {
			continue
		}
		if err := s.write(seg); err != nil {
			return err
		}
		if seg.wrote > 0 {
			if err := seg.f.Sync(); err != nil {
				return fmt.Errorf("fsync segment %d: %w", seg.id, err)
			}
		}
	}
	if s.created {
		if err := syncDir(s.dir); err != nil {
			return err
		}
	}
	if testHookBeforeCommit != nil && len(s.touched) > 0 {
		testHookBeforeCommit()
	}
	return s.flushRows(tx)
}

// drop marks segment id (of stream no) deleted by the current batch; its
// file is unlinked after the commit.
func (s *segStore) drop(no, id int64) {
	s.unlink = append(s.unlink, id)
	if seg := s.active[no]; seg != nil && seg.id == id {
		delete(s.active, no)
		s.touch(seg) // closed after the batch
	}
	for _, seg := range s.touched { // the active one, or one this batch rolled from
		if seg.id == id {
			seg.dropped = true // neither written nor its row written again
		}
	}
}

func (s *segStore) touch(seg *segment) {
	if !seg.inBatch {
		seg.inBatch = true
		s.touched = append(s.touched, seg)
	}
}

// committed ends a batch whose transaction committed: the bytes written
// are now the segments' committed size, and the files of deleted segments
// are unlinked (a crash before that leaves them to Open).
func (s *segStore) committed(roll int64) {
	for _, seg := range s.touched {
		seg.size += seg.wrote
		seg.wrote, seg.created, seg.dirty, seg.inBatch = 0, false, false, false
		if s.active[seg.no] != seg || seg.size >= roll { // dropped, rolled or full
			if s.active[seg.no] == seg {
				delete(s.active, seg.no)
			}
			if seg.f != nil {
				seg.f.Close()
				seg.f = nil
			}
		}
	}
	s.touched, s.created = s.touched[:0], false
	if testHookBeforeUnlink != nil && len(s.unlink) > 0 {
		testHookBeforeUnlink()
	}
	for _, id := range s.unlink {
		os.Remove(s.path(id)) // an error leaves the file to the next Open
	}
	s.unlink = s.unlink[:0]
}

// failed ends a batch whose transaction did not commit: files it created
// are removed, bytes it wrote past a segment's committed size are left to
// be overwritten (the next write is at the committed size) or truncated
// by Open, and every cached segment is forgotten, to be read again from
// the database.
func (s *segStore) failed() {
	for _, seg := range s.touched {
		if seg.f != nil && s.active[seg.no] != seg {
			seg.f.Close()
		}
		if seg.created {
			os.Remove(s.path(seg.id))
		}
	}
	s.closeAll()
	s.touched, s.unlink, s.created = s.touched[:0], s.unlink[:0], false
}

func (s *segStore) closeAll() {
	for no, seg := range s.active {
		if seg.f != nil {
			seg.f.Close()
		}
		delete(s.active, no)
	}
	clear(s.looked)
}

// testHookBeforeCommit, if set, runs after a batch's payloads are written
// and fsynced, before its transaction commits (the crash test kills
// itself there).
var testHookBeforeCommit func()

// testHookBeforeUnlink, if set, runs after a commit that deleted segments
// and before their files are unlinked (the crash test kills itself there).
var testHookBeforeUnlink func()

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync segment directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync segment directory: %w", err)
	}
	return nil
}

// recoverSegments makes the segment directory agree with the committed
// segments rows, at Open: bytes past a segment's committed size (a batch
// that did not commit) are truncated, files no row names (a batch that
// did not commit, or segments acked or evicted whose unlink a crash
// prevented) are deleted. A committed segment whose file is missing or
// short is an error: its records cannot be read.
func (o *Outbox) recoverSegments(ctx context.Context) error {
	dir := o.segDir()
	if err := os.Mkdir(dir, 0o750); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("segment directory: %w", err)
	}
	// One process owns the segment files (the writer caches each stream's
	// current one): a second Open of the same outbox is refused. The lock
	// goes with the file descriptor, at Close or when the process dies.
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return fmt.Errorf("%s is locked (is another redforge-edge using this data dir?): %w", lock.Name(), err)
	}
	o.lock = lock
	sizes := map[int64]int64{}
	rows, err := o.w.QueryContext(ctx, "SELECT id, size FROM segments")
	if err != nil {
		return fmt.Errorf("read segments: %w", err)
	}
	var maxID int64
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			rows.Close()
			return fmt.Errorf("read segments: %w", err)
		}
		sizes[id] = size
		maxID = max(maxID, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read segments: %w", err)
	}
	var seq sql.NullInt64 // AUTOINCREMENT's high-water mark: ids are not reused
	if err := o.w.QueryRowContext(ctx, "SELECT max(seq) FROM sqlite_sequence WHERE name = 'segments'").Scan(&seq); err != nil {
		return fmt.Errorf("read segments: %w", err)
	}
	maxID = max(maxID, seq.Int64)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("segment directory: %w", err)
	}
	seen := map[int64]bool{}
	for _, e := range entries {
		name := e.Name()
		id, err := strconv.ParseInt(strings.TrimSuffix(name, ".seg"), 10, 64)
		if !strings.HasSuffix(name, ".seg") || err != nil || e.IsDir() {
			continue // not ours
		}
		path := filepath.Join(dir, name)
		size, ok := sizes[id]
		if !ok {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("remove released segment: %w", err)
			}
			continue
		}
		seen[id] = true
		info, err := e.Info()
		if err != nil {
			return fmt.Errorf("segment %s: %w", name, err)
		}
		switch {
		case info.Size() < size:
			return fmt.Errorf("segment %s holds %d bytes, %d committed: the file was cut short", path, info.Size(), size)
		case info.Size() > size:
			if err := truncateSync(path, size); err != nil {
				return err
			}
		}
	}
	for id := range sizes {
		if !seen[id] {
			return fmt.Errorf("segment %s is missing (%d committed bytes)", filepath.Join(dir, segFileName(id)), sizes[id])
		}
	}
	o.segs = &segStore{dir: dir, next: maxID + 1, active: map[int64]*segment{}, looked: map[int64]bool{}}
	return nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("truncate uncommitted segment tail: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate uncommitted segment tail: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("truncate uncommitted segment tail: %w", err)
	}
	return nil
}

// segRead is a payload Pending must read from a segment file.
type segRead struct {
	i        int // index in the records
	seg, off int64
	n        int64
}

// errSegmentGone means a segment file was unlinked between Pending's
// query and its read: an ack or an eviction released it; read again.
var errSegmentGone = errors.New("segment released during read")

// readSegments fills recs' payloads from segment files: one pread per run
// of payloads that lie back to back in one segment.
func (o *Outbox) readSegments(recs []Record, reads []segRead) error {
	var f *os.File
	var fid int64
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	for i := 0; i < len(reads); {
		j, end := i+1, reads[i].off+reads[i].n
		for j < len(reads) && reads[j].seg == reads[i].seg && reads[j].off == end {
			end += reads[j].n
			j++
		}
		if f == nil || fid != reads[i].seg {
			if f != nil {
				f.Close()
			}
			var err error
			fid = reads[i].seg
			if f, err = os.Open(filepath.Join(o.segDir(), segFileName(fid))); err != nil {
				f = nil
				if errors.Is(err, fs.ErrNotExist) {
					return errSegmentGone
				}
				return err
			}
		}
		buf := make([]byte, end-reads[i].off)
		if _, err := f.ReadAt(buf, reads[i].off); err != nil {
			return fmt.Errorf("read segment %d at %d: %w", fid, reads[i].off, err)
		}
		for k := i; k < j; k++ {
			at := reads[k].off - reads[i].off
			recs[reads[k].i].Payload = buf[at : at+reads[k].n : at+reads[k].n]
		}
		i = j
	}
	return nil
}
