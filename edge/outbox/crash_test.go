package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// crashChildEnv, when set, turns this test binary into the crash child: it
// appends to the outbox at that path until killed.
const crashChildEnv = "REDFORGE_OUTBOX_CRASH_CHILD"

// TestCrashKeepsEveryAcknowledgedRecord re-executes the test binary as a
// child that appends from several goroutines and prints every seq Append
// returned. The parent SIGKILLs it at a random point, reopens the database
// and checks that every printed seq is there with its payload, that seqs
// are gap-free and that the next child continues after them. Three rounds
// on the same file.
func TestCrashKeepsEveryAcknowledgedRecord(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path)
		return
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	printed := map[string]map[int64]string{} // stream -> seq -> payload
	for round := range 3 {
		lines := runAndKillChild(t, path, round)
		for _, l := range lines {
			stream, seq, payload := parseChildLine(t, l)
			if printed[stream] == nil {
				printed[stream] = map[int64]string{}
			}
			printed[stream][seq] = payload
		}
		t.Logf("round %d: child acknowledged %d appends before SIGKILL", round, len(lines))
		checkCrashSurvivors(t, path, printed)
	}
}

func runAndKillChild(t *testing.T, path string, round int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsEveryAcknowledgedRecord$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, fmt.Sprintf("REDFORGE_OUTBOX_CRASH_ROUND=%d", round))
	return killChildAfter(t, cmd, 50+rand.IntN(1500)) // a random moment, measured in progress
}

func parseChildLine(t *testing.T, l string) (stream string, seq int64, payload string) {
	t.Helper()
	if _, err := fmt.Sscanf(l, "seq %s %d %s", &stream, &seq, &payload); err != nil {
		t.Fatalf("bad child line %q: %v", l, err)
	}
	return stream, seq, payload
}

func checkCrashSurvivors(t *testing.T, path string, printed map[string]map[int64]string) {
	t.Helper()
	o := MustOpen(t, path)
	defer MustClose(t, o)
	stats := mustStats(t, o)
	for stream, want := range printed {
		recs := allRecords(t, o, stream)
		got := map[int64]string{}
		for _, r := range recs {
			if err := r.Verify(); err != nil {
				t.Fatal(err)
			}
			got[r.Seq] = string(r.Payload)
		}
		for seq, payload := range want {
			if got[seq] != payload {
				t.Fatalf("%s seq %d was acknowledged with %s, after crash: %q", stream, seq, payload, got[seq])
			}
		}
		if !slices.Equal(seqs(recs), seqRange(1, int64(len(recs)))) {
			t.Fatalf("%s: seqs have gaps after crash", stream)
		}
		if st := stats[stream]; st.LastSeq != int64(len(recs)) || st.Depth != int64(len(recs)) {
			t.Fatalf("%s: stats %+v disagree with %d records", stream, st, len(recs))
		}
	}
}

// crashChild appends until the process is killed. Each line is written with
// one write(2) after Append returned, so a printed seq was acknowledged.
func crashChild(path string) {
	o := New(path)
	if err := o.Open(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	round := os.Getenv("REDFORGE_OUTBOX_CRASH_ROUND")
	streams := DefaultStreams()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				stream := streams[(w+i)%2] // two streams share the writer
				payload := fmt.Sprintf(`{"round":%s,"w":%d,"i":%d}`, round, w, i)
				seq, err := o.Append(context.Background(), stream, []byte(payload), time.Now())
				if err != nil {
					fmt.Fprintln(os.Stderr, "crash child append:", err)
					os.Exit(4)
				}
				os.Stdout.WriteString(fmt.Sprintf("seq %s %d %s\n", stream, seq, payload))
			}
		})
	}
	wg.Wait()
}
