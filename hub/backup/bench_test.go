package backup_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/testenv"
)

// benchScale scales the data set (REDFORGE_BENCH_BACKUP_SCALE, default 1:
// 1,000 instances, 1,000,000 audit records, 1,000,000 vectors of 32
// dimensions).
func benchScale() float64 {
	if v, err := strconv.ParseFloat(os.Getenv("REDFORGE_BENCH_BACKUP_SCALE"), 64); err == nil && v > 0 {
		return v
	}
	return 1
}

// machine is the CPU model, cores and commit, printed with the figures.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	commit := "unknown"
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		commit = strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("%s, %d cores, commit %s", model, runtime.NumCPU(), commit)
}

// benchCatalog is a catalog with n instances.
func benchCatalog(b *testing.B, n int) *catalog.State {
	st := catalog.NewState()
	for i := 1; i <= n; i++ {
		inst := catalog.Instance{ID: fmt.Sprintf("inst-%04d", i), Name: fmt.Sprintf("app-%04d", i), Replicas: 1,
			Env: map[string]string{"REGION": "eu", "TIER": "gold"}, CreatedAt: time.Now(), UpdatedAt: time.Now()}
		if _, err := st.Apply(uint64(i), catalog.UpsertInstance(inst)); err != nil {
			b.Fatal(err)
		}
	}
	return st
}

const (
	benchDim = 32
	// auditRow and vectorRow fill the tables in SQL (a hash chain is not
	// needed to time a copy).
	sqliteFill = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d)
INSERT INTO audit_log (id, time, user_id, username, action, resource_type, resource_id, details, ip, user_agent, prev_hash, hash)
SELECT x, 1767225600000000 + x*1000, 'u-' || (x %% 50), 'user' || (x %% 50), 'INSTANCE_UPDATED', 'instance', 'inst-' || (x %% 1000),
 '{"field":"memory_mb","from":256,"to":512,"n":' || x || '}', '10.0.0.' || (x %% 250), 'towerctl/1.0',
 lower(hex(randomblob(32))), lower(hex(randomblob(32))) FROM c`
	sqliteVectors = `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d)
INSERT INTO vectors (edge_id, seq, vector_id, dim, vector, metadata, time)
SELECT 'edge-' || (x %% 10), x, 'vec-' || x, %d, randomblob(%d), '{"doc":"d-' || x || '"}', 1767225600000000 + x*1000 FROM c`
	pgFill = `INSERT INTO audit_log (id, time, user_id, username, action, resource_type, resource_id, details, ip, user_agent, prev_hash, hash)
SELECT x, timestamptz '2026-01-01' + x * interval '1 ms', 'u-' || (x %% 50), 'user' || (x %% 50), 'INSTANCE_UPDATED', 'instance', 'inst-' || (x %% 1000),
 '{"field":"memory_mb","from":256,"to":512,"n":' || x || '}', '10.0.0.' || (x %% 250), 'towerctl/1.0', md5(x::text) || md5((x+1)::text), md5((x+2)::text) || md5((x+3)::text)
FROM generate_series(1, %d) x`
	pgVectors = `INSERT INTO vectors (edge_id, seq, vector_id, dim, vector, metadata, time)
SELECT 'edge-' || (x %% 10), x, 'vec-' || x, %d, decode(repeat(md5(x::text), %d), 'hex'), '{"doc":"d-' || x || '"}', timestamptz '2026-01-01' + x * interval '1 ms'
FROM generate_series(1, %d) x`
)

// BenchmarkBackupRestore times a backup and a restore of a hub with 1,000
// instances' records, 1,000,000 audit records and 1,000,000 vectors, on
// SQLite and on PostgreSQL, and pg_dump -Fc / pg_restore of the same
// PostgreSQL database in the same run, printing the archive sizes, the
// ratios to pg_dump and the machine.
func BenchmarkBackupRestore(b *testing.B) {
	scale := benchScale()
	nAudit, nVec := int(1e6*scale), int(1e6*scale)
	fmt.Printf("backup bench: %d instances, %d audit records, %d vectors of %d dims; %s\n", 1000, nAudit, nVec, benchDim, machine())
	b.Run("sqlite", func(b *testing.B) { benchSQLite(b, nAudit, nVec) })
	b.Run("postgres", func(b *testing.B) { benchPostgres(b, nAudit, nVec) })
}

func timed(f func() error) (time.Duration, error) {
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func archiveSize(b *testing.B, dir string) int64 {
	ents, _ := os.ReadDir(dir)
	var n int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}

func benchSQLite(b *testing.B, nAudit, nVec int) {
	ctx := context.Background()
	dir := b.TempDir()
	path := filepath.Join(dir, "hub.db")
	st := sqlite.New(path)
	if err := st.Open(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=synchronous(OFF)")
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf(sqliteFill, nAudit), fmt.Sprintf(sqliteVectors, nVec, benchDim, 4*benchDim)} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	fi, _ := os.Stat(path)
	cat := benchCatalog(b, 1000)
	destDir := filepath.Join(dir, "backups")
	svc := backup.New(backup.Config{Dest: backup.NewDir(destDir), StoreKind: backup.StoreSQLite, StorePath: path, KeyID: "k", TempDir: dir}, cat, nil)
	b.ResetTimer()
	var m *backup.Manifest
	tb, err := timed(func() (err error) { m, err = svc.Create(ctx); return err })
	if err != nil {
		b.Fatal(err)
	}
	size := archiveSize(b, destDir)
	t := target(b, dir, backup.StoreSQLite, "")
	tr, err := timed(func() error {
		rc, err := backup.NewDir(destDir).Get(ctx, m.ID)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = backup.Restore(ctx, rc, t)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	mb := float64(fi.Size()) / (1 << 20)
	fmt.Printf("sqlite:   database %.0f MiB; backup %v (%.0f MiB/s), archive %.0f MiB (%.1f%%); restore %v\n",
		mb, tb.Round(time.Millisecond), mb/tb.Seconds(), float64(size)/(1<<20), 100*float64(size)/float64(fi.Size()), tr.Round(time.Millisecond))
	b.ReportMetric(tb.Seconds(), "backup-s")
	b.ReportMetric(tr.Seconds(), "restore-s")
	b.ReportMetric(float64(size)/(1<<20), "archive-MiB")
}

func target(b *testing.B, dir, kind, store string) backup.Target {
	data := filepath.Join(dir, "restored")
	if kind == backup.StoreSQLite {
		store = filepath.Join(data, "hub.db")
	}
	return backup.Target{DataDir: data, RaftDir: filepath.Join(data, "raft", "raft"), NodeIDFiles: []string{filepath.Join(data, "node-id")},
		NodeID: "bench", RaftAddr: "127.0.0.1:7000", StoreKind: kind, StorePath: store, KeyID: "k", KeyFile: filepath.Join(data, "secrets.key"),
		MigrateStore: func(ctx context.Context, dsn string) error {
			db := postgres.New(dsn)
			if err := db.Open(ctx); err != nil {
				return err
			}
			return db.Close()
		}}
}

func benchPostgres(b *testing.B, nAudit, nVec int) {
	ctx := context.Background()
	dir := b.TempDir()
	dsn := testenv.Postgres(b)
	st := postgres.New(dsn)
	if err := st.Open(ctx); err != nil {
		b.Fatal(err)
	}
	st.Close()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{fmt.Sprintf(pgFill, nAudit), fmt.Sprintf(pgVectors, benchDim, 4*benchDim/16, nVec), "VACUUM ANALYZE"} {
		if _, err := conn.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	var dbSize int64
	_ = conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&dbSize)
	conn.Close(ctx)
	cat := benchCatalog(b, 1000)
	destDir := filepath.Join(dir, "backups")
	svc := backup.New(backup.Config{Dest: backup.NewDir(destDir), StoreKind: backup.StorePostgres, StorePath: dsn, KeyID: "k", TempDir: dir}, cat, nil)
	b.ResetTimer()
	var m *backup.Manifest
	tb, err := timed(func() (err error) { m, err = svc.Create(ctx); return err })
	if err != nil {
		b.Fatal(err)
	}
	size := archiveSize(b, destDir)
	t := target(b, dir, backup.StorePostgres, testenv.Postgres(b))
	tr, err := timed(func() error {
		rc, err := backup.NewDir(destDir).Get(ctx, m.ID)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = backup.Restore(ctx, rc, t)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	bin := testenv.PGBin(b)
	dump := filepath.Join(dir, "pg.dump")
	td, err := timed(func() error { return run(filepath.Join(bin, "pg_dump"), "-Fc", "-f", dump, "-d", dsn) })
	if err != nil {
		b.Fatal(err)
	}
	fi, _ := os.Stat(dump)
	other := testenv.Postgres(b)
	trr, err := timed(func() error { return run(filepath.Join(bin, "pg_restore"), "-d", other, dump) })
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	mb := float64(dbSize) / (1 << 20)
	fmt.Printf("postgres: database %.0f MiB; backup %v (%.0f MiB/s), archive %.0f MiB; restore %v\n",
		mb, tb.Round(time.Millisecond), mb/tb.Seconds(), float64(size)/(1<<20), tr.Round(time.Millisecond))
	fmt.Printf("pg_dump -Fc %v, dump %.0f MiB; pg_restore %v\n", td.Round(time.Millisecond), float64(fi.Size())/(1<<20), trr.Round(time.Millisecond))
	fmt.Printf("ratios: backup throughput %.2f of pg_dump's (goal >= 0.80), restore time %.2f of pg_restore's, archive size %.2f of the dump's\n",
		td.Seconds()/tb.Seconds(), tr.Seconds()/trr.Seconds(), float64(size)/float64(fi.Size()))
	b.ReportMetric(tb.Seconds(), "backup-s")
	b.ReportMetric(tr.Seconds(), "restore-s")
	b.ReportMetric(td.Seconds()/tb.Seconds(), "throughput-vs-pg_dump")
}

func run(name string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v: %s", name, err, out.String())
	}
	return nil
}
