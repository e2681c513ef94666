package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store/sqlite"
)

// fixture is a catalog and an SQLite store with a few rows, as a hub
// would hold them.
type fixture struct {
	cat   *catalog.State
	db    *sqlite.DB
	path  string
	audit *audit.Logger
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	f := &fixture{cat: catalog.NewState(), path: filepath.Join(dir, "hub.db")}
	f.db = sqlite.New(f.path)
	if err := f.db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.db.Close() })
	f.audit = audit.New(f.db, audit.Config{})
	for i := 1; i <= 5; i++ {
		if _, err := f.cat.Apply(uint64(i), catalog.PutSetting("test/"+string(rune('a'+i)), i)); err != nil {
			t.Fatal(err)
		}
		if err := f.audit.Record(ctx, audit.Entry{Action: audit.ConfigUpdated, ResourceType: "setting", ResourceID: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *fixture) service(t *testing.T, dest Destination, mod ...func(*Config)) *Service {
	cfg := Config{Dest: dest, StoreKind: StoreSQLite, StorePath: f.path, HubID: "hub-1", HubVersion: "test", KeyID: "k1",
		TempDir: t.TempDir(), Retention: Retention{Daily: DefaultKeepDaily, Monthly: DefaultKeepMonthly}}
	for _, m := range mod {
		m(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	return New(cfg, f.cat, nil)
}

func target(t *testing.T, keyID string) Target {
	dir := filepath.Join(t.TempDir(), "data")
	return Target{DataDir: dir, RaftDir: filepath.Join(dir, "raft", "raft"), NodeIDFiles: []string{filepath.Join(dir, "node-id")},
		NodeID: "hub-r", RaftAddr: "127.0.0.1:7000", StoreKind: StoreSQLite, StorePath: filepath.Join(dir, "hub.db"), KeyID: keyID,
		KeyFile: filepath.Join(dir, "secrets.key")}
}

func TestCreateAndRestoreSQLite(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dest := NewDir(t.TempDir())
	m, err := f.service(t, dest).Create(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.CatalogIndex != 5 || m.Store.AuditHeadID != 5 || m.Catalog.Settings != 5 || m.Store.Rows["audit_log"] != 5 {
		t.Fatalf("manifest %+v", m)
	}
	objs, err := dest.List(ctx)
	if err != nil || len(objs) != 1 || objs[0].Name != m.ID || objs[0].Size == 0 {
		t.Fatalf("list %+v %v", objs, err)
	}
	rc, _ := dest.Get(ctx, m.ID)
	defer rc.Close()
	tg := target(t, "k1")
	got, err := Restore(ctx, rc, tg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Store.AuditHeadHash != m.Store.AuditHeadHash {
		t.Fatalf("restored head %s, want %s", got.Store.AuditHeadHash, m.Store.AuditHeadHash)
	}
	db := sqlite.New(tg.StorePath)
	if err := db.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := audit.New(db, audit.Config{}).Verify(ctx)
	if err != nil || !res.OK || res.HeadHash != m.Store.AuditHeadHash {
		t.Fatalf("verify restored chain: %+v %v", res, err)
	}
	if b, _ := os.ReadFile(tg.NodeIDFiles[0]); strings.TrimSpace(string(b)) != "hub-r" {
		t.Fatalf("node id %q", b)
	}
	// A second restore into the same target is refused, naming it.
	rc2, _ := dest.Get(ctx, m.ID)
	defer rc2.Close()
	if _, err := Restore(ctx, rc2, tg); !errors.Is(err, ErrNotEmpty) || !strings.Contains(err.Error(), tg.DataDir) {
		t.Fatalf("restore into a used data dir: %v", err)
	}
}

func TestRestoreRefusesCorruptArchives(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	id, _ := age.GenerateX25519Identity()
	other, _ := age.GenerateX25519Identity()
	for _, tc := range []struct {
		name    string
		enc     bool
		mangle  func([]byte) []byte
		ids     []age.Identity
		keyID   string
		wantErr error
		want    string
	}{
		{name: "flipped byte", mangle: func(b []byte) []byte { b[len(b)/2] ^= 0x40; return b }, keyID: "k1", wantErr: ErrCorrupt},
		{name: "truncated", mangle: func(b []byte) []byte { return b[:len(b)*2/3] }, keyID: "k1", wantErr: ErrCorrupt},
		{name: "flipped byte, encrypted", enc: true, ids: []age.Identity{id}, mangle: func(b []byte) []byte { b[len(b)-100] ^= 1; return b }, keyID: "k1", wantErr: ErrCorrupt},
		{name: "wrong age key", enc: true, ids: []age.Identity{other}, keyID: "k1", wantErr: ErrCorrupt, want: "age"},
		{name: "no age key", enc: true, keyID: "k1", wantErr: ErrCorrupt, want: "--age-identity"},
		{name: "other secrets key", keyID: "k2", wantErr: ErrKeyMismatch, want: "k1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dest := NewDir(t.TempDir())
			svc := f.service(t, dest, func(c *Config) {
				if tc.enc {
					c.Recipients = []age.Recipient{id.Recipient()}
				}
			})
			m, err := svc.Create(ctx)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(dest.Path, m.ID))
			if tc.mangle != nil {
				b = tc.mangle(b)
			}
			tg := target(t, tc.keyID)
			tg.Identities = tc.ids
			_, err = Restore(ctx, bytes.NewReader(b), tg)
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("restore: %v, want %v containing %q", err, tc.wantErr, tc.want)
			}
			if _, serr := os.Stat(tg.DataDir); !errors.Is(serr, os.ErrNotExist) {
				t.Fatalf("a refused restore left %s behind (%v)", tg.DataDir, serr)
			}
			t.Logf("refused: %v", err)
		})
	}
}

func TestRetentionOverAYear(t *testing.T) {
	// Daily backups at 02:00 for a simulated year, pruned after each with
	// the injected clock: what is left is exactly the newest of each of
	// the last 30 days and of each of the last 12 months.
	ctx := context.Background()
	f := newFixture(t)
	dest := NewDir(t.TempDir())
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	svc := f.service(t, dest, func(c *Config) { c.Now = func() time.Time { return now } })
	sched, err := ParseSchedule("0 2 * * *")
	if err != nil {
		t.Fatal(err)
	}
	// A follower's scheduler makes nothing: the leader's runs once per cluster.
	follower := &Scheduler{Backup: sched, Service: svc, IsLeader: func() bool { return false }}
	for ; now.Before(time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)); now = now.Add(time.Hour) {
		if err := follower.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	if objs, _ := dest.List(ctx); len(objs) != 0 {
		t.Fatalf("a follower made %d backups", len(objs))
	}
	now = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := &Scheduler{Backup: sched, Service: svc, IsLeader: func() bool { return true }}
	end := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	for ; now.Before(end); now = now.Add(time.Hour) {
		if err := s.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	objs, err := dest.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	last := time.Date(2026, 12, 31, 2, 0, 0, 0, time.UTC)
	for d := 0; d < 30; d++ {
		want[last.AddDate(0, 0, -d).Format(nameTime)] = true
	}
	for mo := 1; mo <= 12; mo++ { // the last day of each month of 2026
		want[time.Date(2026, time.Month(mo)+1, 0, 2, 0, 0, 0, time.UTC).Format(nameTime)] = true
	}
	got := map[string]bool{}
	for _, o := range objs {
		got[o.Time.Format(nameTime)] = true
	}
	if len(got) != len(want) {
		t.Fatalf("kept %d backups, want %d", len(got), len(want))
	}
	for k := range want {
		if !got[k] {
			t.Errorf("backup of %s was pruned", k)
		}
	}
}

func TestRestoreRefusesNewerFormat(t *testing.T) {
	var buf bytes.Buffer
	aw, err := newArchiveWriter(&buf, nil, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := Header{Format: FormatVersion + 1, ID: "redforge-x", HubVersion: "v9.0.0", StoreKind: StoreSQLite}
	if err := aw.addJSON(entryHeader, h); err != nil {
		t.Fatal(err)
	}
	if err := aw.finish(&Manifest{Header: h}); err != nil {
		t.Fatal(err)
	}
	tg := target(t, "k1")
	_, err = Restore(context.Background(), &buf, tg)
	want := "the archive is format 2, this hub reads up to format 1; restore it with hub v9.0.0 or newer"
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), want) {
		t.Fatalf("restore of a newer format: %v", err)
	}
}

// FuzzOpenArchive feeds arbitrary bytes to the archive reader: it must
// refuse them with an error, never panic nor write outside its dir.
func FuzzOpenArchive(f *testing.F) {
	var buf bytes.Buffer
	aw, _ := newArchiveWriter(&buf, nil, time.Unix(0, 0))
	h := Header{Format: FormatVersion, ID: "redforge-x", StoreKind: StoreSQLite}
	_ = aw.addJSON(entryHeader, h)
	_ = aw.addBytes(entryCatalog, []byte("not a snapshot"))
	_ = aw.finish(&Manifest{Header: h})
	f.Add(buf.Bytes())
	f.Add([]byte(ageMagic + "\n"))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		_, _ = stage(context.Background(), bytes.NewReader(b), nil, dir)
	})
}
