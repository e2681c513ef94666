package backup_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/internal/testenv"
)

// buildTowerctl builds towerctl into dir (PostgreSQL runs it as
// archive_command and restore_command).
func buildTowerctl(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(dir, "towerctl")
	cmd := exec.Command("go", "build", "-o", out, "github.com/redforge/controltower/cmd/towerctl")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build towerctl: %v: %s", err, b)
	}
	os.Chmod(out, 0o755)
	return out
}

func pgExec(t *testing.T, dsn, sql string, args ...any) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pgScalar[T any](t *testing.T, dsn, sql string) T {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var v T
	if err := c.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// TestPITRBetweenTwoWrites archives WAL with towerctl's archive_command,
// takes a base backup with pg_basebackup through towerctl, makes two
// writes, recovers with towerctl backup pitr to a moment between them on
// a fresh data directory and finds exactly the first.
func TestPITRBetweenTwoWrites(t *testing.T) {
	root := testenv.PostgresUserDir(t)
	towerctl := buildTowerctl(t, root)
	dest := filepath.Join(root, "backups")
	pg := testenv.PrivatePostgres(t, "wal_level = replica\narchive_mode = on\narchive_command = '"+towerctl+" backup wal-push --dest "+dest+" %p %f'\n")
	asPG := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("runuser", append([]string{"-u", "postgres", "--", towerctl}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("towerctl %v: %v: %s", args, err, out)
		}
		return string(out)
	}
	pgExec(t, pg.DSN, "CREATE TABLE writes (v int)")
	t.Log(asPG("backup", "basebackup", "--dest", dest, "--pg", pg.DSN, "--pg-bin", pg.Bin))

	pgExec(t, pg.DSN, "INSERT INTO writes VALUES (1)")
	between := pgScalar[time.Time](t, pg.DSN, "SELECT clock_timestamp()")
	pgExec(t, pg.DSN, "INSERT INTO writes VALUES (2)")
	seg := pgScalar[string](t, pg.DSN, "SELECT pg_walfile_name(pg_switch_wal())")
	testenv.WaitFor(t, time.Minute, "segment "+seg+" archived", func() error {
		if _, err := os.Stat(filepath.Join(dest, "pitr", "wal", seg)); err != nil {
			return err
		}
		return nil
	})
	pg.Stop()

	restored := filepath.Join(root, "restored")
	out, err := exec.Command(towerctl, "backup", "pitr", "--dest", dest, "--to", between.UTC().Format(time.RFC3339Nano), "--pgdata", restored).CombinedOutput()
	if err != nil {
		t.Fatalf("towerctl backup pitr: %v: %s", err, out)
	}
	t.Logf("%s", out)
	pg.UseDataDir(restored)
	pg.Start()
	pg.WaitReady(2 * time.Minute)
	got := pgScalar[string](t, pg.DSN, "SELECT coalesce(string_agg(v::text, ',' ORDER BY v), '') FROM writes")
	if got != "1" {
		t.Fatalf("after recovery to %s the table holds %q, want exactly the first write (1)\n%s", between, got, pg.Log())
	}
	if !strings.Contains(pg.Log(), "recovery stopping before commit") {
		t.Logf("server log: %s", pg.Log())
	}
}
