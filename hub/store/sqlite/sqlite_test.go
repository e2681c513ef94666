package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/hub/store/storetest"
)

// MustOpen opens a store on a fresh file in a temp dir and closes it at
// the end of the test.
func MustOpen(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db := sqlite.New(filepath.Join(tb.TempDir(), "hub.db"))
	if err := db.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return MustOpen(t) })
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t,
		func(t *testing.T) string { return "sqlite://" + filepath.Join(t.TempDir(), "hub.db") },
		func(ctx context.Context, dsn string) (store.Store, error) {
			db := sqlite.New(dsn)
			return db, db.Open(ctx)
		})
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := sqlite.New(path)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	v, err := db.SchemaVersion(t.Context())
	if err != nil || v < 1 {
		t.Fatalf("SchemaVersion = %d, %v", v, err)
	}
	db.Close()

	raw, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.Exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'future.sql', 0)", v+1); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db = sqlite.New(path)
	err = db.Open(t.Context())
	if !errors.Is(err, store.ErrSchemaTooNew) || !strings.Contains(err.Error(), "upgrade") {
		t.Fatalf("Open of a newer schema = %v, want ErrSchemaTooNew saying how to fix it", err)
	}
}

func TestOpenRefusesBadPaths(t *testing.T) {
	for _, dsn := range []string{"", ":memory:", "sqlite://", "file:x.db?mode=memory",
		filepath.Join(t.TempDir(), "missing-dir", "hub.db")} {
		if err := sqlite.New(dsn).Open(t.Context()); err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
	// A file that is not an SQLite database.
	junk := filepath.Join(t.TempDir(), "junk.db")
	os.WriteFile(junk, []byte(strings.Repeat("not a database ", 100)), 0o600)
	if err := sqlite.New(junk).Open(t.Context()); err == nil {
		t.Error("Open of a junk file succeeded")
	}
}

func TestPathWithURIChars(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a b?c#d%20")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "hub.db")
	db := sqlite.New(path)
	if err := db.Open(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not created at the literal path: %v", err)
	}
}

func TestPingFailsWhenFileRemoved(t *testing.T) {
	db := MustOpen(t)
	if err := db.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(db.Path); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded after the database file was removed")
	}
}

func TestPingFailsWhenFileReplaced(t *testing.T) {
	db := MustOpen(t)
	other := db.Path + ".other"
	if err := os.WriteFile(other, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, db.Path); err != nil {
		t.Fatal(err)
	}
	if err := db.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded after the database file was replaced")
	}
}

func TestPingFailsWhenFileCorrupted(t *testing.T) {
	db := MustOpen(t)
	f, err := os.OpenFile(db.Path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xde\xad", 2048)), 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := db.Ping(t.Context()); err == nil {
		t.Fatal("Ping succeeded after the database header was overwritten")
	}
}

func TestPingBeforeOpen(t *testing.T) {
	if err := sqlite.New(filepath.Join(t.TempDir(), "x.db")).Ping(t.Context()); err == nil {
		t.Fatal("Ping before Open succeeded")
	}
}

func TestAuditLogAppendOnly(t *testing.T) {
	db := MustOpen(t)
	rec := store.AuditRecord{Action: "LOGIN"}
	if err := db.AppendAudit(t.Context(), &rec, storetest.Hash); err != nil {
		t.Fatal(err)
	}
	raw, err := sql.Open("sqlite", db.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, stmt := range []string{"UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"} {
		if _, err := raw.Exec(stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: %v, want refused as append-only", stmt, err)
		}
	}
}
