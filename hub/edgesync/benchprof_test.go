package edgesync_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/procfs"
)

// The edge, the hub and the publishers of a benchmark run in one process.
// Their goroutines carry a pprof label side=edge|hub|client|bridge (set
// where they are started; goroutines inherit it), so one CPU or block
// profile of the benchmark splits by side:
//
//	go test -run '^$' -bench VectorDrain -cpuprofile cpu.out ./hub/edgesync
//	go tool pprof -tagfocus side=hub -top cpu.out

// profileSection profiles the measured part of a benchmark when
// REDFORGE_BENCH_PROFILE names a directory: a CPU profile and a block
// profile (one event per 10 µs blocked) of the section, written to
// <dir>/<name>.cpu and <dir>/<name>.block by the returned stop. Not with
// -cpuprofile, which holds the one CPU profile a process may run.
func profileSection(tb testing.TB, name string) (stop func()) {
	dir := os.Getenv("REDFORGE_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	cpu, err := os.Create(filepath.Join(dir, name+".cpu"))
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		tb.Fatal(err)
	}
	runtime.SetBlockProfileRate(10_000)
	return func() {
		pprof.StopCPUProfile()
		cpu.Close()
		blk, err := os.Create(filepath.Join(dir, name+".block"))
		if err != nil {
			tb.Fatal(err)
		}
		defer blk.Close()
		pprof.Lookup("block").WriteTo(blk, 0)
		runtime.SetBlockProfileRate(0)
	}
}

// onSide runs f with the pprof label side=side; goroutines f starts keep it.
func onSide(side string, f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", side), func(context.Context) { f() })
}

// pgWatch samples, while a benchmark runs, what the backends of dsn's
// database wait on (pg_stat_activity every 5 ms) and, if the server has
// pg_stat_statements loaded, which statements took its time. It does
// nothing unless REDFORGE_BENCH_PGSTAT is set; the returned stop prints
// both as shares.
func pgWatch(tb testing.TB, dsn string, rows int) (stop func()) {
	if os.Getenv("REDFORGE_BENCH_PGSTAT") == "" {
		return func() {}
	}
	ctx := context.Background()
	done := make(chan struct{})
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		tb.Fatal(err)
	}
	serverCPU := pgServerCPU(tb, conn)
	cpu0 := serverCPU()
	// The view and its functions live in the database that created the
	// extension; creating it here fails unless the server preloads it.
	_, statErr := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
	if statErr == nil {
		_, statErr = conn.Exec(ctx, "SELECT pg_stat_statements_reset()")
	}
	waits := map[string]int{}
	var samples int
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done: // not a canceled ctx: that would close conn mid-query
				return
			case <-t.C:
			}
			rows, err := conn.Query(ctx, `SELECT coalesce(wait_event_type, 'CPU'), coalesce(wait_event || CASE WHEN state = 'active' THEN '' ELSE ' (' || state || ')' END, state) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle'`)
			if err != nil {
				return
			}
			for rows.Next() {
				var typ, ev string
				if rows.Scan(&typ, &ev) == nil {
					waits[typ+"/"+ev]++
				}
			}
			rows.Close()
			samples++
		}
	})
	return func() {
		cpu := serverCPU() - cpu0
		close(done)
		wg.Wait()
		defer conn.Close(context.Background())
		printServerCPU("", cpu, rows)
		var total int
		for _, n := range waits {
			total += n
		}
		keys := make([]string, 0, len(waits))
		for k := range waits {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return waits[keys[i]] > waits[keys[j]] })
		var sb strings.Builder
		fmt.Fprintf(&sb, "pg wait events (%d samples, %.1f active backends on average):", samples, float64(total)/float64(max(samples, 1)))
		for _, k := range keys[:min(len(keys), 8)] {
			fmt.Fprintf(&sb, " %s %.0f%%", k, 100*float64(waits[k])/float64(max(total, 1)))
		}
		fmt.Println(sb.String())
		if statErr != nil {
			fmt.Printf("pg_stat_statements: not loaded (%v)\n", statErr)
			return
		}
		rows, err := conn.Query(context.Background(), `SELECT calls, total_exec_time, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
			FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
			ORDER BY total_exec_time DESC LIMIT 8`)
		if err != nil {
			fmt.Printf("pg_stat_statements: %v\n", err)
			return
		}
		defer rows.Close()
		type stmt struct {
			calls, rows int64
			ms          float64
			q           string
		}
		var ss []stmt
		var sum float64
		for rows.Next() {
			var s stmt
			if rows.Scan(&s.calls, &s.ms, &s.rows, &s.q) == nil {
				ss = append(ss, s)
				sum += s.ms
			}
		}
		fmt.Println("pg_stat_statements, by execution time:")
		for _, s := range ss {
			fmt.Printf("  %5.1f%% %8.0f ms %7d calls %9d rows  %s\n", 100*s.ms/max(sum, 1e-9), s.ms, s.calls, s.rows, s.q)
		}
	}
}

// startBenchHub is startHub with the hub's goroutines labelled side=hub.
func startBenchHub(tb testing.TB, dsn string) (th *testHub) {
	onSide("hub", func() { th = startHub(tb, dsn) })
	return th
}

// pgServerCPU returns a reader of the CPU time the PostgreSQL server of
// conn has used so far: its postmaster's and every child's, live or
// exited (the postmaster's cutime and cstime), read from /proc with
// prometheus/procfs. The server must run on this machine, as the test
// servers do.
func pgServerCPU(tb testing.TB, conn *pgx.Conn) func() time.Duration {
	var backend int
	if err := conn.QueryRow(context.Background(), "SELECT pg_backend_pid()").Scan(&backend); err != nil {
		tb.Fatal(err)
	}
	st, err := procStat(backend)
	if err != nil {
		tb.Fatalf("postgres backend %d: %v (a server on another machine?)", backend, err)
	}
	postmaster := st.PPID
	return func() time.Duration {
		var seconds float64
		if st, err := procStat(postmaster); err == nil {
			seconds += st.CPUTime() + float64(st.CUTime+st.CSTime)/clockTicks
		}
		procs, _ := procfs.AllProcs()
		for _, p := range procs {
			if st, err := p.Stat(); err == nil && st.PPID == postmaster {
				seconds += st.CPUTime()
			}
		}
		return time.Duration(seconds * float64(time.Second))
	}
}

// clockTicks is Linux's USER_HZ, the unit of cutime and cstime.
const clockTicks = 100

func procStat(pid int) (procfs.ProcStat, error) {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return procfs.ProcStat{}, err
	}
	return p.Stat()
}

// printServerCPU prints what pgServerCPU measured over rows rows.
func printServerCPU(what string, cpu time.Duration, rows int) {
	fmt.Printf("%spostgres server CPU (every process, from /proc): %.2f s, %.1f µs per row\n", what, cpu.Seconds(), float64(cpu.Microseconds())/float64(max(rows, 1)))
}
