package hub_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestDrillDatabaseCorruption damages the store under a running hub (a
// table dropped in PostgreSQL, the SQLite file truncated): the hub reports
// it in /api/health, naming it; a restore of the last backup into a fresh
// data dir and store brings a hub back with everything up to the backup.
// RPO is the time since that backup (the writes after it are lost, and
// counted); RTO is from the detection to the restored hub healthy.
func TestDrillDatabaseCorruption(t *testing.T) {
	for _, backend := range hubtest.Backends {
		t.Run(backend, func(t *testing.T) { testDrillDatabaseCorruption(t, backend) })
	}
}

func testDrillDatabaseCorruption(t *testing.T, backend string) {
	ctx := context.Background()
	h := hubtest.Start(t, hubtest.WithBackend(t, backend))
	h.CreateUser(t, "before", "VIEWER")
	var made backupCreated
	h.JSON(t, "POST", "/api/backups", nil, 201, &made)
	backedUp := time.Now()
	h.CreateUser(t, "after", "VIEWER") // lost with the store: the RPO

	switch backend {
	case "postgres":
		conn, err := pgx.Connect(ctx, h.Config.Store)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Exec(ctx, "DROP TABLE audit_log CASCADE"); err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
	default:
		p := filepath.Join(h.Config.DataDir, "hub.db")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Store.Close(); err != nil { // checkpoints the WAL into the file, as a crash after it would
			t.Fatal(err)
		}
		if err := os.Truncate(p, fi.Size()/2); err != nil {
			t.Fatal(err)
		}
	}
	corrupted := time.Now()
	var health struct {
		Status     string `json:"status"`
		Components map[string]struct {
			Status, Error string
		} `json:"components"`
	}
	testenv.WaitFor(t, 30*time.Second, "the damage reported in /api/health", func() error {
		code, body := h.Do(t, "GET", "/api/health", "", nil)
		_ = json.Unmarshal(body, &health)
		if code != 503 || health.Components["store-integrity"].Status != "fail" {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	detected := time.Now()
	msg := health.Components["store-integrity"].Error
	if want := map[string]string{"postgres": "audit_log", "sqlite": "truncated"}[backend]; !strings.Contains(msg, want) {
		t.Fatalf("health names %q, want it to say %q", msg, want)
	}
	t.Logf("detected in %v: %s", detected.Sub(corrupted).Round(time.Millisecond), msg)

	keyID, key := keyOf(t, h.Config.DataDir)
	closeAndRemove(t, h)
	opt, m, took := restoreHub(t, h.Backups.Config().Dest, made.Name, backend, keyID, key)
	h2 := hubtest.Start(t, opt)
	testenv.WaitFor(t, time.Minute, "the restored hub healthy", func() error {
		if code, body := h2.Do(t, "GET", "/api/health", "", nil); code != 200 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	rto := time.Since(detected)
	h2.Login(t, "before", "password-of-before")
	if code, _ := h2.Do(t, "POST", "/api/auth/login", "", map[string]string{"username": "after", "password": "password-of-after"}); code != 401 {
		t.Fatalf("a user made after the backup came back (login %d)", code)
	}
	var ok struct {
		OK     bool  `json:"ok"`
		HeadID int64 `json:"head_id"`
	}
	h2.JSON(t, "GET", "/api/audit/verify", nil, 200, &ok)
	if !ok.OK || ok.HeadID < m.Store.AuditHeadID {
		t.Fatalf("restored audit chain: %+v, archive head %d", ok, m.Store.AuditHeadID)
	}
	t.Logf("database corruption (%s): RPO %v (the time since the last backup; 1 user created after it lost), RTO %v (restore %v, then the hub up and healthy)",
		backend, corrupted.Sub(backedUp).Round(time.Millisecond), rto.Round(100*time.Millisecond), took.Round(time.Millisecond))
}
