package outbox

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// checkSegments fails unless the segment files agree with the database:
// per stream, the committed sizes of its segments are the seglen of its
// segment records plus its dead bytes; every record's (seg, off, seglen)
// lies inside a segment of its stream; every committed segment has its
// file, holding at least its committed bytes; and, if exact, the files
// are exactly the committed segments at their committed sizes (nothing
// left behind, no uncommitted tail: after a reopen, or with no write in
// flight).
func checkSegments(t *testing.T, db *sql.DB, dir string, exact bool) {
	t.Helper()
	rows, err := db.Query(`SELECT s.name, s.dead,
		(SELECT coalesce(sum(g.size), 0) FROM segments g WHERE g.no = s.no),
		(SELECT coalesce(sum(r.seglen), 0) FROM records r WHERE r.key > s.no << 48 AND r.key < (s.no + 1) << 48 AND r.seg > 0)
		FROM streams s`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		var dead, segBytes, recBytes int64
		if err := rows.Scan(&name, &dead, &segBytes, &recBytes); err != nil {
			t.Fatal(err)
		}
		if segBytes != recBytes+dead {
			t.Fatalf("stream %s: segments hold %d bytes, its segment records %d and dead %d", name, segBytes, recBytes, dead)
		}
	}
	rows.Close()
	var bad int64
	if err := db.QueryRow(`SELECT count(*) FROM records r LEFT JOIN segments g ON g.id = r.seg
		WHERE r.seg > 0 AND (g.id IS NULL OR r.off + r.seglen > g.size OR g.no != r.key >> 48
			OR (r.key & 281474976710655) NOT BETWEEN g.first_seq AND g.last_seq)`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d records point outside their segment", bad)
	}
	sizes := committedSizes(t, db)
	files := segmentFiles(t, dir)
	for id, size := range sizes {
		got, ok := files[id]
		if !ok && !exact {
			var still int
			if err := db.QueryRow(`SELECT count(*) FROM segments WHERE id = ?`, id).Scan(&still); err != nil {
				t.Fatal(err)
			}
			if still == 0 {
				continue // released (and unlinked) since the query
			}
		}
		if !ok || got < size || exact && got != size {
			t.Fatalf("segment %d: committed %d bytes, file has %d (exists %v)", id, size, got, ok)
		}
	}
	for id := range files {
		if _, ok := sizes[id]; !ok && exact {
			t.Fatalf("segment file %d is left behind", id)
		}
	}
}

// segmentFiles returns the size of every segment file in dir by id.
func segmentFiles(t *testing.T, dir string) map[int64]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, e := range entries {
		if e.Name() == "lock" {
			continue
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(e.Name(), ".seg"), 10, 64)
		if err != nil {
			t.Fatalf("unexpected file %s in %s", e.Name(), dir)
		}
		info, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[id] = info.Size()
	}
	return out
}

// segPayload is a payload of the given size, different for every (tag, i).
func segPayload(tag string, i, size int) []byte {
	p := make([]byte, 0, size+32)
	for len(p) < size {
		p = fmt.Appendf(p, "%s/%d/%d;", tag, i, len(p))
	}
	return p[:size]
}

// openSeg opens an outbox at path with segment size size (the threshold
// stays the default) and closes it when the test ends.
func openSeg(tb testing.TB, path string, size int64, budget int64) *Outbox {
	tb.Helper()
	o := New(path)
	o.SegmentThreshold, o.SegmentSize, o.Budget = DefaultSegmentThreshold, size, budget
	if err := o.Open(context.Background()); err != nil {
		tb.Fatalf("open: %v", err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

// TestSegmentAndInlineRecordsInOrder appends small (inline) and large
// (segment) payloads, interleaved on two streams, through segments that
// roll every 64 KiB, reads them back with several limits (contiguous
// runs of one segment, runs that cross a roll, inline records between),
// acks part, and checks payloads, checksums, order, Stats and the segment
// files, before and after a reopen.
func TestSegmentAndInlineRecordsInOrder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openSeg(t, path, 64<<10, 0)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	want := map[string][][]byte{}
	for i := range 600 {
		stream := []string{StreamVectors, StreamMetrics}[rng.IntN(2)]
		size := 10 + rng.IntN(300) // inline
		if rng.IntN(3) > 0 {
			size = DefaultSegmentThreshold + rng.IntN(8000) // segment
		}
		p := segPayload(stream, i, size)
		seq, err := o.Append(ctx, stream, p, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		want[stream] = append(want[stream], p)
		if seq != int64(len(want[stream])) {
			t.Fatalf("%s: seq %d, want %d", stream, seq, len(want[stream]))
		}
	}
	check := func(acked map[string]int64) {
		t.Helper()
		st := mustStats(t, o)
		for stream, ps := range want {
			for _, limit := range []int{1, 7, 1000} {
				var got []Record
				for after := acked[stream]; ; {
					recs, err := o.Pending(ctx, stream, after, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(recs) == 0 {
						break
					}
					got = append(got, recs...)
					after = recs[len(recs)-1].Seq
				}
				if int64(len(got)) != int64(len(ps))-acked[stream] {
					t.Fatalf("%s limit %d: %d records, want %d", stream, limit, len(got), int64(len(ps))-acked[stream])
				}
				var held int64
				for i, r := range got {
					seq := acked[stream] + int64(i) + 1
					if r.Seq != seq || !bytes.Equal(r.Payload, ps[seq-1]) || r.Verify() != nil {
						t.Fatalf("%s limit %d: record %d is seq %d, %d bytes (verify %v); want seq %d, %d bytes",
							stream, limit, i, r.Seq, len(r.Payload), r.Verify(), seq, len(ps[seq-1]))
					}
					held += int64(len(r.Payload))
				}
				if s := st[stream]; s.Depth != int64(len(got)) || s.Bytes != held || s.LastSeq != int64(len(ps)) {
					t.Fatalf("%s: stats %+v, want depth %d, bytes %d", stream, s, len(got), held)
				}
			}
		}
		checkSegments(t, o.r, o.segDir(), true)
	}
	var inSeg int
	if err := o.r.QueryRow(`SELECT count(*) FROM records WHERE seg > 0`).Scan(&inSeg); err != nil || inSeg < 300 {
		t.Fatalf("%d records in segments (%v): the test does not mix", inSeg, err)
	}
	if n := len(segmentFiles(t, o.segDir())); n < 10 {
		t.Fatalf("%d segment files: segments did not roll", n)
	}
	check(nil)
	acked := map[string]int64{StreamVectors: int64(len(want[StreamVectors]) / 3), StreamMetrics: int64(len(want[StreamMetrics]) / 2)}
	for s, n := range acked {
		if err := o.Ack(ctx, s, n); err != nil {
			t.Fatal(err)
		}
	}
	check(acked)
	MustClose(t, o)
	o = openSeg(t, path, 64<<10, 0)
	check(acked)
}

// TestAckDeletesSegmentFiles: an ack unlinks every segment whose records
// it all released and keeps the one it cut (its acked prefix counted as
// dead bytes); acking everything leaves no file; and a crash between the
// ack's commit and the unlink (a child SIGKILLs itself there) leaves files
// that the next Open deletes.
func TestAckDeletesSegmentFiles(t *testing.T) {
	if path := os.Getenv(unlinkChildEnv); path != "" {
		unlinkChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openSeg(t, path, 64<<10, 0)
	ctx := context.Background()
	for i := range 100 {
		if _, err := o.Append(ctx, StreamVectors, segPayload("v", i, 4000), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	files := len(segmentFiles(t, o.segDir()))
	if files < 6 {
		t.Fatalf("%d segment files for 400 kB in 64 KiB segments", files)
	}
	if err := o.Ack(ctx, StreamVectors, 50); err != nil { // 16 a segment: ends inside the 4th
		t.Fatal(err)
	}
	checkSegments(t, o.r, o.segDir(), true)
	if got := len(segmentFiles(t, o.segDir())); got != files-3 {
		t.Fatalf("after acking 50 of 100: %d segment files, want %d", got, files-3)
	}
	var dead int64
	if err := o.r.QueryRow(`SELECT dead FROM streams WHERE name = ?`, StreamVectors).Scan(&dead); err != nil || dead != 2*4000 {
		t.Fatalf("dead bytes %d (%v), want 8000 (seqs 49 and 50 of the 4th segment)", dead, err)
	}
	if err := o.Ack(ctx, StreamVectors, 100); err != nil {
		t.Fatal(err)
	}
	if got := segmentFiles(t, o.segDir()); len(got) != 0 {
		t.Fatalf("after acking everything: segment files %v", got)
	}
	checkSegments(t, o.r, o.segDir(), true)
	if seq := mustAppend(t, o, StreamVectors, string(segPayload("v", 100, 4000))); seq != 101 {
		t.Fatalf("append after ack-all: seq %d", seq)
	}
	MustClose(t, o)

	// The crash between commit and unlink, in a child.
	cpath := filepath.Join(t.TempDir(), "outbox.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestAckDeletesSegmentFiles$", "-test.count=1")
	cmd.Env = append(os.Environ(), unlinkChildEnv+"="+cpath)
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL before the unlink", err)
	}
	left := segmentFiles(t, cpath+".segments")
	if len(left) < 2 {
		t.Fatalf("the child left %d segment files; the test needs its acked segments still on disk", len(left))
	}
	o = openSeg(t, cpath, 64<<10, 0)
	if got := segmentFiles(t, o.segDir()); len(got) != 0 {
		t.Fatalf("after reopen: segment files %v left of %v", got, left)
	}
	checkSegments(t, o.r, o.segDir(), true)
	if st := mustStats(t, o)[StreamVectors]; st.Depth != 0 || st.Bytes != 0 || st.LastSeq != 40 {
		t.Fatalf("stats after the crash: %+v", st)
	}
	if seq := mustAppend(t, o, StreamVectors, string(segPayload("v", 40, 4000))); seq != 41 {
		t.Fatalf("append after the crash: seq %d", seq)
	}
	checkSegments(t, o.r, o.segDir(), true)
}

const unlinkChildEnv = "REDFORGE_OUTBOX_UNLINK_CHILD"

// unlinkChild appends 40 large records, then acks them all and SIGKILLs
// itself after the ack's commit, before the segment files are unlinked.
func unlinkChild(path string) {
	o := New(path)
	o.SegmentSize = 64 << 10
	if err := o.Open(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "unlink child:", err)
		os.Exit(3)
	}
	for i := range 40 {
		if _, err := o.Append(context.Background(), StreamVectors, segPayload("v", i, 4000), time.Now()); err != nil {
			fmt.Fprintln(os.Stderr, "unlink child:", err)
			os.Exit(4)
		}
	}
	testHookBeforeUnlink = func() { syscall.Kill(os.Getpid(), syscall.SIGKILL) }
	err := o.Ack(context.Background(), StreamVectors, 40)
	fmt.Fprintln(os.Stderr, "unlink child: still alive after the ack:", err)
	os.Exit(5)
}

// TestBudgetEvictsWholeSegments: under a 1 MiB budget (so 128 KiB
// segments), 8 KiB vectors keep being accepted by evicting the oldest
// segment whole: the segment files plus the inline payloads stay within
// the budget after every append, evicted records are a prefix of
// tombstones with valid checksums, seqs stay contiguous, a large audit
// record is refused with ErrFull, and an ack makes room again.
func TestBudgetEvictsWholeSegments(t *testing.T) {
	const budget = 1 << 20
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := openSeg(t, path, DefaultSegmentSize, budget)
	ctx := context.Background()
	if o.segmentSize() != budget/8 {
		t.Fatalf("segment size %d under a %d budget", o.segmentSize(), budget)
	}
	const n = 400
	for i := range n {
		if _, err := o.Append(ctx, StreamVectors, segPayload("v", i, 8<<10), time.Now()); err != nil {
			t.Fatalf("vector %d: %v", i, err)
		}
		if i%10 == 0 {
			mustAppend(t, o, StreamMetrics, `{"small":true}`) // inline
		}
		if used := diskUsed(t, o); used > budget {
			t.Fatalf("after vector %d: %d bytes on disk (segments + inline), budget %d", i, used, budget)
		}
	}
	checkSegments(t, o.r, o.segDir(), true)
	st := mustStats(t, o)[StreamVectors]
	if st.Evicted < n/2 || st.LastSeq != n {
		t.Fatalf("stats %+v: want most of %d evicted", st, n)
	}
	recs := allRecords(t, o, StreamVectors)
	for i, r := range recs {
		evicted := bytes.Equal(r.Payload, Tombstone)
		if r.Seq != int64(i+1) || r.Verify() != nil || evicted != (int64(i) < st.Evicted) {
			t.Fatalf("record %d: seq %d, verify %v, evicted %v (%d evicted, oldest first)", i, r.Seq, r.Verify(), evicted, st.Evicted)
		}
	}
	if _, err := o.Append(ctx, StreamAudit, segPayload("a", 0, 200<<10), time.Now()); !errors.Is(err, ErrFull) {
		t.Fatalf("audit on a full budget: %v, want ErrFull", err)
	}
	if err := o.Ack(ctx, StreamVectors, n); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Append(ctx, StreamAudit, segPayload("a", 0, 200<<10), time.Now()); err != nil {
		t.Fatalf("audit after the ack: %v", err)
	}
	checkSegments(t, o.r, o.segDir(), true)
	t.Logf("evicted %d of %d vectors; %d segment files left", st.Evicted, n, len(segmentFiles(t, o.segDir())))

	// Pipelined: batches that create, roll and evict segments in one
	// transaction (a segment evicted by the batch that wrote it).
	waits := make([]func() (int64, error), 0, 300)
	for i := range 300 {
		waits = append(waits, o.AppendAsync(ctx, StreamVectors, segPayload("p", i, 8<<10), time.Now()))
	}
	for _, w := range waits {
		if _, err := w(); err != nil {
			t.Fatal(err)
		}
	}
	if used := diskUsed(t, o); used > budget {
		t.Fatalf("after pipelined appends: %d bytes on disk, budget %d", used, budget)
	}
	checkSegments(t, o.r, o.segDir(), true)
	commits := o.Commits()
	MustClose(t, o)
	o = openSeg(t, path, DefaultSegmentSize, budget)
	checkSegments(t, o.r, o.segDir(), true)
	recs = allRecords(t, o, StreamVectors)
	st = mustStats(t, o)[StreamVectors]
	for i, r := range recs {
		if r.Seq != n+int64(i)+1 || r.Verify() != nil {
			t.Fatalf("after pipelined appends and reopen: record %d is seq %d (verify %v)", i, r.Seq, r.Verify())
		}
	}
	if st.LastSeq != n+300 || st.Depth != 300 {
		t.Fatalf("after pipelined appends and reopen: %+v", st)
	}
	t.Logf("pipelined: %d commits since Open for %d+%d appends, %d vectors evicted in all", commits, n+n/10+2, 300, st.Evicted)
}

// diskUsed is what the budget must bound: the segment files and the
// inline payloads.
func diskUsed(t *testing.T, o *Outbox) int64 {
	t.Helper()
	var used int64
	for _, size := range segmentFiles(t, o.segDir()) {
		used += size
	}
	var inline int64
	if err := o.r.QueryRow(`SELECT coalesce(sum(length(payload)), 0) FROM records WHERE seg = 0`).Scan(&inline); err != nil {
		t.Fatal(err)
	}
	return used + inline
}

const segCrashChildEnv = "REDFORGE_OUTBOX_SEGMENT_CRASH_CHILD"

// TestCrashDuringSegmentAppend re-executes the test binary as a child that
// appends large payloads (2-40 KiB, so most go to 256 KiB segments that
// roll all the time) from four goroutines, interleaved with small inline
// ones, and acks the vectors stream now and then; it prints each seq
// Append returned and each ack that returned. Four rounds on one file:
// in rounds 0 and 2 the parent SIGKILLs the child at a random point; in
// rounds 1 and 3 the child SIGKILLs itself at a random batch after its
// payloads were written and fsynced and before its commit (a torn tail
// for certain, and a new file no committed row names when the batch
// rolled). After each round, every printed seq above the stream's acked
// seq is there with its payload, seqs are gap-free, no printed ack is
// undone, Stats agree with the records, and the segment files are exactly
// the committed ones at their committed sizes.
func TestCrashDuringSegmentAppend(t *testing.T) {
	if path := os.Getenv(segCrashChildEnv); path != "" {
		segCrashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	type printed struct{ round, w, i int }
	seen := map[string]map[int64]printed{}
	ackedPrinted := map[string]int64{}
	for round := range 4 {
		selfKill := round%2 == 1
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashDuringSegmentAppend$", "-test.count=1")
		cmd.Env = append(os.Environ(), segCrashChildEnv+"="+path, fmt.Sprintf("REDFORGE_OUTBOX_CRASH_ROUND=%d", round))
		var lines []string
		if selfKill {
			cmd.Env = append(cmd.Env, fmt.Sprintf("REDFORGE_OUTBOX_KILL_AT_BATCH=%d", 5+rand.IntN(60)))
			lines = runUntilKilled(t, cmd)
		} else {
			lines = killChildAfter(t, cmd, 30+rand.IntN(400))
		}
		for _, l := range lines {
			var stream string
			var seq int64
			var p printed
			if _, err := fmt.Sscanf(l, "seq %s %d %d %d %d", &stream, &seq, &p.round, &p.w, &p.i); err == nil {
				if seen[stream] == nil {
					seen[stream] = map[int64]printed{}
				}
				seen[stream][seq] = p
			} else if _, err := fmt.Sscanf(l, "ack %s %d", &stream, &seq); err == nil {
				ackedPrinted[stream] = max(ackedPrinted[stream], seq)
			} else {
				t.Fatalf("bad child line %q", l)
			}
		}
		torn, orphans := segmentsBeyondCommit(t, path)
		if selfKill && torn+orphans == 0 {
			t.Fatalf("round %d: the child died between its segment fsync and its commit, but no segment holds uncommitted bytes", round)
		}
		o := openSeg(t, path, 256<<10, 0)
		checkSegments(t, o.r, o.segDir(), true)
		stats := mustStats(t, o)
		var segRecs int
		for stream, want := range seen {
			var acked int64
			if err := o.r.QueryRow(`SELECT acked_seq FROM streams WHERE name = ?`, stream).Scan(&acked); err != nil {
				t.Fatal(err)
			}
			if acked < ackedPrinted[stream] {
				t.Fatalf("%s: acked seq %d after the crash, but the child printed an ack of %d", stream, acked, ackedPrinted[stream])
			}
			recs := allRecords(t, o, stream)
			got := map[int64][]byte{}
			var held int64
			for i, r := range recs {
				if err := r.Verify(); err != nil {
					t.Fatal(err)
				}
				if r.Seq != acked+int64(i)+1 {
					t.Fatalf("%s: record %d is seq %d after acked %d: gap", stream, i, r.Seq, acked)
				}
				got[r.Seq] = r.Payload
				held += int64(len(r.Payload))
			}
			for seq, p := range want {
				if seq <= acked {
					continue
				}
				if wantP := segCrashPayload(stream, p.round, p.w, p.i); !bytes.Equal(got[seq], wantP) {
					t.Fatalf("%s seq %d was acknowledged with %d bytes, after the crash it has %d", stream, seq, len(wantP), len(got[seq]))
				}
			}
			if st := stats[stream]; st.LastSeq != acked+int64(len(recs)) || st.Depth != int64(len(recs)) || st.Bytes != held {
				t.Fatalf("%s: stats %+v disagree with %d records of %d bytes after acked %d", stream, st, len(recs), held, acked)
			}
		}
		if err := o.r.QueryRow(`SELECT count(*) FROM records WHERE seg > 0`).Scan(&segRecs); err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d (self-kill %v): %d lines before SIGKILL; %d segment files with an uncommitted tail and %d no committed row names; %d records in %d segment files after reopen",
			round, selfKill, len(lines), torn, orphans, segRecs, len(segmentFiles(t, o.segDir())))
		MustClose(t, o)
	}
}

// runUntilKilled runs cmd to its end, which must be a SIGKILL, and
// returns its stdout lines.
func runUntilKilled(t *testing.T, cmd *exec.Cmd) []string {
	t.Helper()
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL", err)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// segCrashPayload is the payload the crash child appends as goroutine w's
// i-th record of round: mostly 2-40 KiB, one in five small (inline).
func segCrashPayload(stream string, round, w, i int) []byte {
	size := 2048 + (i*7919+w*104729+round*31)%(38<<10)
	if i%5 == 4 {
		size = 50 + i%200
	}
	return segPayload(fmt.Sprintf("%s-%d-%d", stream, round, w), i, size)
}

// killChildAfter starts cmd, collects its stdout lines, and SIGKILLs it
// once it printed n of them (or fails the test after a minute).
func killChildAfter(t *testing.T, cmd *exec.Cmd, n int) []string {
	t.Helper()
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	reached, eof := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) == n {
				close(reached)
			}
		}
	}()
	select {
	case <-reached:
	case <-eof:
		cmd.Wait()
		t.Fatalf("child exited early: %v", cmd.ProcessState)
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		<-eof
		cmd.Wait()
		t.Fatalf("child did not print %d lines in 60s", n)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-eof // everything the child wrote before it died
	cmd.Wait()
	return lines
}

// segCrashChild appends and acks until it is killed. Each line is written
// with one write(2) after Append or Ack returned.
func segCrashChild(path string) {
	o := New(path)
	o.SegmentSize = 256 << 10
	if err := o.Open(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "segment crash child:", err)
		os.Exit(3)
	}
	round, _ := strconv.Atoi(os.Getenv("REDFORGE_OUTBOX_CRASH_ROUND"))
	if at, err := strconv.Atoi(os.Getenv("REDFORGE_OUTBOX_KILL_AT_BATCH")); err == nil {
		batches := 0
		testHookBeforeCommit = func() { // on the writer goroutine
			if batches++; batches == at {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	streams := []string{StreamVectors, StreamMetrics}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				stream := streams[(w+i)%2]
				seq, err := o.Append(context.Background(), stream, segCrashPayload(stream, round, w, i), time.Now())
				if err != nil {
					fmt.Fprintln(os.Stderr, "segment crash child append:", err)
					os.Exit(4)
				}
				os.Stdout.WriteString(fmt.Sprintf("seq %s %d %d %d %d\n", stream, seq, round, w, i))
				if w == 0 && i%16 == 15 { // release the older half of what vectors holds
					st, err := o.Stats(context.Background())
					if err != nil {
						os.Exit(5)
					}
					v := st[StreamVectors]
					upto := v.LastSeq - v.Depth/2
					if err := o.Ack(context.Background(), StreamVectors, upto); err != nil {
						fmt.Fprintln(os.Stderr, "segment crash child ack:", err)
						os.Exit(6)
					}
					os.Stdout.WriteString(fmt.Sprintf("ack %s %d\n", StreamVectors, upto))
				}
			}
		})
	}
	wg.Wait()
}

// committedSizes returns the committed size of every segment, by id.
func committedSizes(t *testing.T, db *sql.DB) map[int64]int64 {
	t.Helper()
	rows, err := db.Query(`SELECT id, size FROM segments`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	sizes := map[int64]int64{}
	for rows.Next() {
		var id, size int64
		if err := rows.Scan(&id, &size); err != nil {
			t.Fatal(err)
		}
		sizes[id] = size
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return sizes
}

// segmentsBeyondCommit counts, before an Open recovers them, the segment
// files that hold bytes past their committed size and those that no
// committed row names.
func segmentsBeyondCommit(t *testing.T, path string) (torn, orphans int) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	sizes := committedSizes(t, db)
	for id, size := range segmentFiles(t, path+".segments") {
		committed, ok := sizes[id]
		switch {
		case !ok:
			orphans++
		case size > committed:
			torn++
		}
	}
	return torn, orphans
}

// TestSecondOpenIsRefused: one outbox, one owner; the lock goes with Close.
func TestSecondOpenIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	o := MustOpen(t, path)
	err := New(path).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second open: %v, want refused as locked", err)
	}
	MustClose(t, o)
	o = MustOpen(t, path)
	mustAppend(t, o, StreamAudit, `{}`)
}
