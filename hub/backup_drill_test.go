package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/secrets"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// backupCreated is POST /api/backups' answer.
type backupCreated struct {
	Name     string          `json:"name"`
	Size     int64           `json:"size_bytes"`
	Manifest backup.Manifest `json:"manifest"`
}

// drillLoad writes to the catalog (users) and the store (AI decisions,
// audit records) until stopped.
type drillLoad struct {
	stop   chan struct{}
	done   sync.WaitGroup
	writes atomic.Int64
}

func startDrillLoad(t *testing.T, h *hubtest.Hub) *drillLoad {
	l := &drillLoad{stop: make(chan struct{})}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			if code, b := h.Do(t, "POST", "/api/users", h.AdminToken, map[string]string{"username": fmt.Sprintf("load-%d", i),
				"password": "password-of-load-user", "role": "VIEWER"}); code != 201 {
				t.Errorf("load: create user: %d %s", code, b)
				return
			}
			if code, b := h.Do(t, "POST", "/api/audit/ai_decision", h.AdminToken, map[string]any{"instance_id": "load", "flow_name": "wf",
				"model": "m", "prompt": "in", "response": fmt.Sprint(i), "confidence": 0.5}); code != 201 && code != 200 {
				t.Errorf("load: ai decision: %d %s", code, b)
				return
			}
			l.writes.Add(2)
		}
	}()
	return l
}

func (l *drillLoad) finish() int64 {
	close(l.stop)
	l.done.Wait()
	return l.writes.Load()
}

// keyOf returns the id of the sealing key of a hub without a cluster
// secret, and its key file's bytes.
func keyOf(t *testing.T, dataDir string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, secrets.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	s, err := secrets.New(b)
	if err != nil {
		t.Fatal(err)
	}
	return s.KeyID(), b
}

// restoreHub restores the archive name from dest into a new data dir (and
// store, for postgres) as redforge-hub restore does, and returns the
// options that start a hub on it.
func restoreHub(t *testing.T, dest backup.Destination, name, backend string, keyID string, key []byte) (func(*hub.Config), *backup.Manifest, time.Duration) {
	t.Helper()
	ctx := context.Background()
	cfg := hub.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "restored")
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if backend == "postgres" {
		cfg.Store = testenv.Postgres(t)
	}
	start := time.Now()
	rc, err := dest.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	m, err := backup.Restore(ctx, rc, hub.RestoreTarget(cfg, "", keyID))
	if err != nil {
		t.Fatalf("restore %s: %v", name, err)
	}
	if key != nil {
		if err := os.WriteFile(filepath.Join(cfg.DataDir, secrets.KeyFile), key, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	return func(c *hub.Config) { c.DataDir, c.RaftListen, c.Store = cfg.DataDir, cfg.RaftListen, cfg.Store }, m, took
}

// sameAtIndex checks that the restored catalog holds exactly the rows of
// the live one as they were at index: every live row last changed at or
// before it is there and equal, and every restored row is one the live
// catalog had then (changed or deleted since, or equal).
func sameAtIndex[T any](t *testing.T, what string, index uint64, live, restored []T, key func(T) string, modify func(T) uint64) {
	t.Helper()
	rs := map[string]T{}
	for _, r := range restored {
		if modify(r) > index {
			t.Errorf("%s %s: restored row modified at %d, after the backup's index %d", what, key(r), modify(r), index)
		}
		rs[key(r)] = r
	}
	for _, l := range live {
		r, ok := rs[key(l)]
		if modify(l) <= index {
			if !ok {
				t.Errorf("%s %s (modified at %d ≤ %d) is missing from the backup", what, key(l), modify(l), index)
			} else if !reflect.DeepEqual(l, r) {
				t.Errorf("%s %s differs:\nlive     %+v\nrestored %+v", what, key(l), l, r)
			}
		}
		delete(rs, key(l))
	}
	for k := range rs {
		// Deleted from the live catalog since: fine only if it was
		// deleted after the backup; the live table cannot say when, so
		// such rows must be rows the test deletes (none here).
		t.Errorf("%s %s is in the backup but not in the live catalog", what, k)
	}
}

// TestBackupDrillUnderLoad backs up a hub while users and AI decisions are
// written and a blue-green deployment is in flight, then: the archive's
// catalog is the live catalog at the archive's index, row for row; a
// fresh hub restored from it has the store's rows, the audit chain up to
// the archive's head and the flows versions; its instance comes back
// serving its flows. verify passes on it and refuses a copy with one byte
// flipped, naming the entry; nothing is half-restored.
func TestBackupDrillUnderLoad(t *testing.T) {
	for _, backend := range hubtest.Backends {
		t.Run(backend, func(t *testing.T) { testBackupDrillUnderLoad(t, backend) })
	}
}

func testBackupDrillUnderLoad(t *testing.T, backend string) {
	ctx := context.Background()
	h := hubtest.Start(t, hubtest.WithBackend(t, backend))
	w := watchStatus(t, h)
	var inst instance
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "dr"}, 201, &inst)
	w.wait(t, inst.ID, fleet.StatusRunning, 90*time.Second)
	h.JSON(t, "PUT", "/api/instances/dr/flows", []byte(bgFlows(t, "bluegreen-v1.json")), 200, nil)

	load := startDrillLoad(t, h)
	var dep bgDeployment
	h.JSON(t, "POST", "/api/deployments", map[string]any{"instance": "dr", "flows": bgFlows(t, "bluegreen-v2.json"),
		"drain_timeout": "2s", "rollback_window": "0s"}, 201, &dep)
	testenv.WaitFor(t, 30*time.Second, "load writes", func() error {
		if load.writes.Load() < 10 {
			return errors.New("fewer than 10 writes")
		}
		return nil
	})
	var made backupCreated
	h.JSON(t, "POST", "/api/backups", nil, 201, &made)
	writes := load.finish()
	m := made.Manifest
	t.Logf("backup %s: %d bytes in %.2fs under load (%d writes during the test), catalog index %d, audit head %d, deployment %s in flight",
		made.Name, made.Size, m.Duration, writes, m.CatalogIndex, m.Store.AuditHeadID, dep.ID)
	testenv.WaitFor(t, 3*time.Minute, "deployment "+dep.ID+" to end", func() error {
		h.JSON(t, "GET", "/api/deployments/"+dep.ID, nil, 200, &dep)
		if dep.Status == "pending" || dep.Status == "running" {
			return fmt.Errorf("%s %s", dep.Status, dep.Phase)
		}
		return nil
	})

	dest := h.Backups.Config().Dest
	// The archive's catalog is the live catalog at its index.
	rc, _ := dest.Get(ctx, made.Name)
	_, cat, err := backup.ReadArchive(ctx, rc, nil, t.TempDir())
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	sameAtIndex(t, "user", m.CatalogIndex, h.State.Users(), cat.Users(), func(u catalog.User) string { return u.ID }, func(u catalog.User) uint64 { return u.ModifyIndex })
	sameAtIndex(t, "deployment", m.CatalogIndex, h.State.Deployments(""), cat.Deployments(""), func(d catalog.Deployment) string { return d.ID }, func(d catalog.Deployment) uint64 { return d.ModifyIndex })
	if len(cat.Users()) != m.Catalog.Users || m.Catalog.Users < 2 {
		t.Errorf("archive holds %d users, the manifest counts %d", len(cat.Users()), m.Catalog.Users)
	}

	// verify: checksums plus a scratch hub on a restored copy.
	var ver backup.VerifyResult
	h.JSON(t, "POST", "/api/backups/"+made.Name+"/verify", nil, 200, &ver)
	if !ver.Restored || ver.Checked != len(m.Files)+1 {
		t.Fatalf("verify: %+v", ver)
	}
	t.Logf("verify: %d files, scratch hub up and audit chain verified in %.2fs", ver.Checked, ver.Seconds)

	// One byte flipped: verify and restore refuse it, naming the entry.
	raw := readAll(t, dest, made.Name)
	raw[len(raw)*2/3] ^= 0x20
	bad := "redforge-20000101T000000.000Z.tar.zst" // another archive's name
	if err := dest.Put(ctx, bad, strings.NewReader(string(raw))); err != nil {
		t.Fatal(err)
	}
	code, body := h.Do(t, "POST", "/api/backups/"+bad+"/verify", h.AdminToken, nil)
	if code != 422 || !strings.Contains(string(body), "corrupt") {
		t.Fatalf("verify of a flipped archive: %d %s", code, body)
	}
	t.Logf("flipped archive refused: %s", body)
	keyID, key := keyOf(t, h.Config.DataDir)
	cfg := hub.DefaultConfig()
	cfg.DataDir = filepath.Join(t.TempDir(), "half")
	rc, _ = dest.Get(ctx, bad)
	_, err = backup.Restore(ctx, rc, hub.RestoreTarget(cfg, "", keyID))
	rc.Close()
	if !errors.Is(err, backup.ErrCorrupt) {
		t.Fatalf("restore of a flipped archive: %v", err)
	}
	if _, serr := os.Stat(cfg.DataDir); !errors.Is(serr, os.ErrNotExist) {
		t.Fatalf("a refused restore left %s (%v)", cfg.DataDir, serr)
	}

	// The old hub goes, with its runtimes; a fresh one comes from the backup.
	var liveVersions []flowsVersion
	var res struct {
		Versions []flowsVersion `json:"versions"`
	}
	h.JSON(t, "GET", "/api/instances/dr/flows/versions", nil, 200, &res)
	liveVersions = res.Versions
	var liveAudit []store.AuditRecord
	if err := h.Store.IterateAudit(ctx, store.AuditFilter{}, func(r store.AuditRecord) error {
		if r.ID <= m.Store.AuditHeadID {
			liveAudit = append(liveAudit, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	closeAndRemove(t, h)

	lost := time.Now()
	opt, rm, took := restoreHub(t, dest, made.Name, backend, keyID, key)
	h2 := hubtest.Start(t, opt)
	t.Logf("restored in %v; hub up %v after the restore began", took, time.Since(lost))
	if rm.Store.AuditHeadHash != m.Store.AuditHeadHash {
		t.Fatalf("restored manifest head %s, want %s", rm.Store.AuditHeadHash, m.Store.AuditHeadHash)
	}
	var got []store.AuditRecord
	if err := h2.Store.IterateAudit(ctx, store.AuditFilter{}, func(r store.AuditRecord) error {
		if r.ID <= m.Store.AuditHeadID {
			got = append(got, r)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(liveAudit) || len(got) != int(m.Store.AuditHeadID) {
		t.Fatalf("restored audit records up to the head: %d, live %d, head %d", len(got), len(liveAudit), m.Store.AuditHeadID)
	}
	for i := range got {
		if got[i].Hash != liveAudit[i].Hash || got[i].ID != liveAudit[i].ID {
			t.Fatalf("audit record %d differs: %s vs %s", got[i].ID, got[i].Hash, liveAudit[i].Hash)
		}
	}
	var ok struct {
		OK bool `json:"ok"`
	}
	h2.JSON(t, "GET", "/api/audit/verify", nil, 200, &ok)
	if !ok.OK {
		t.Fatal("the restored audit chain does not verify")
	}
	h2.JSON(t, "GET", "/api/instances/dr/flows/versions", nil, 200, &res)
	if len(res.Versions) == 0 || len(res.Versions) > len(liveVersions) {
		t.Fatalf("restored flows versions %d, live %d", len(res.Versions), len(liveVersions))
	}
	for i, v := range res.Versions {
		lv := liveVersions[len(liveVersions)-len(res.Versions)+i]
		if v.Version != lv.Version || v.SHA256 != lv.SHA256 {
			t.Fatalf("flows version %d: %s, live %d %s", v.Version, v.SHA256, lv.Version, lv.SHA256)
		}
	}
	testenv.WaitFor(t, 3*time.Minute, "the restored instance serving its flows", func() error {
		code, body, err := get(h2.URL + "/i/dr/hello")
		if err != nil || code != 200 || !(strings.Contains(body, `"v1"`) || strings.Contains(body, `"v2"`)) {
			return fmt.Errorf("%d %q %v", code, body, err)
		}
		return nil
	})
	t.Logf("RTO (restore, start, instance serving): %v; RPO: writes after the backup's point", time.Since(lost).Round(100*time.Millisecond))
}

func readAll(t *testing.T, dest backup.Destination, name string) []byte {
	t.Helper()
	rc, err := dest.Get(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return []byte(b.String())
}

// closeAndRemove stops a hub and removes its runtimes, as a lost host
// would lose them.
func closeAndRemove(t *testing.T, h *hubtest.Hub) {
	t.Helper()
	if err := h.Close(); err != nil {
		t.Logf("close: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rts, _ := h.Driver.List(ctx)
	for _, rt := range rts {
		if err := h.Driver.Remove(ctx, rt.InstanceID); err != nil {
			t.Errorf("remove runtime %s: %v", rt.InstanceID, err)
		}
	}
}

var _ = json.Marshal
