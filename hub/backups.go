package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/secrets"
	"github.com/redforge/controltower/hub/store/postgres"
)

// openBackups builds the backup service over this hub's catalog and store
// and, on a hub that is not a scratch copy, starts its schedule (acting on
// the leader only).
func (h *Hub) openBackups() error {
	c := h.Config.BackupConfig
	destSpec := c.BackupDest
	if destSpec == "" {
		destSpec = filepath.Join(h.Config.DataDir, "backups")
	}
	dest, err := backup.ParseDestination(destSpec, os.Getenv)
	if err != nil {
		return fmt.Errorf("backup-dest: %w", err)
	}
	kind, _ := StoreKind(h.Config.Store)
	bc := backup.Config{Dest: dest, KeyID: h.Seal.KeyID(), StoreKind: kind, StorePath: h.storeTarget(),
		HubID: h.NodeID, HubVersion: h.Version, Region: h.Config.Region,
		Retention:  backup.Retention{Daily: c.BackupKeepDaily, Monthly: c.BackupKeepMonthly},
		IncludeKey: c.BackupIncludeKey, KeyFile: filepath.Join(h.Config.DataDir, secrets.KeyFile),
		Logger: h.Logger.With("component", "backup")}
	if c.BackupAgeRecipients != "" {
		if bc.Recipients, err = backup.ParseRecipients(c.BackupAgeRecipients); err != nil {
			return fmt.Errorf("backup-age-recipients: %w", err)
		}
	}
	if c.BackupAgeIdentity != "" {
		if bc.Identities, err = backup.ReadIdentities(c.BackupAgeIdentity); err != nil {
			return fmt.Errorf("backup-age-identity: %w", err)
		}
	}
	if err := bc.Validate(); err != nil {
		return err
	}
	h.Backups = backup.New(bc, h.State, scratchHubs{h})
	if h.Metrics != nil {
		for _, col := range h.Backups.Stats().Collectors() {
			h.Metrics.Registry.MustRegister(col)
		}
	}
	if c.scratch {
		return nil
	}
	h.background(func(ctx context.Context) {
		if err := h.Backups.Seed(ctx); err != nil {
			h.Logger.Warn("list backups", "dest", dest.String(), "error", err)
		}
	})
	if c.FlowsGit {
		h.FlowsGit = backup.NewGitMirror(backup.GitConfig{Dir: filepath.Join(h.Config.DataDir, "flows-git"), Remote: c.FlowsGitRemote,
			Logger: h.Logger.With("component", "flows-git")}, h.State, h.Store, h.Raft.IsLeader)
		h.background(h.FlowsGit.Run)
	}
	bs, _ := backup.ParseSchedule(c.BackupSchedule)
	vs, _ := backup.ParseSchedule(c.BackupVerifySchedule)
	if bs != nil || vs != nil {
		s := &backup.Scheduler{Backup: bs, Verify: vs, Service: h.Backups, IsLeader: h.Raft.IsLeader}
		h.background(s.Run)
	}
	return nil
}

// storeCheck is the store-integrity health check (hub/backup.StoreCheck):
// a truncated SQLite file or a dropped PostgreSQL table.
func (h *Hub) storeCheck() *backup.StoreCheck {
	kind, _ := StoreKind(h.Config.Store)
	c := &backup.StoreCheck{Kind: kind, Path: h.storeTarget(), Transient: postgres.Transient}
	_ = c.Ping(h.bgCtx()) // the baseline: the tables there at the start
	h.onClose("store-integrity", c.Close)
	return c
}

// flowsGit is the API's view of the mirror (nil when it is off).
func (h *Hub) flowsGit() api.FlowsGit {
	if h.FlowsGit == nil {
		return nil
	}
	return h.FlowsGit
}

// RestoreTarget returns where a restore rebuilds a hub configured as cfg:
// its data dir, Raft dir, node id files and store. nodeID is the restored
// hub's Raft id; keyID the id of the key it will seal with ("" when it has
// none yet).
func RestoreTarget(cfg Config, nodeID, keyID string) backup.Target {
	kind, target := StoreKind(cfg.Store)
	if kind == "sqlite" && target == "" {
		target = filepath.Join(cfg.DataDir, "hub.db")
	}
	raftAddr := cfg.RaftListen
	if cfg.RaftAdvertise != "" {
		raftAddr = cfg.RaftAdvertise
	}
	return backup.Target{
		DataDir: cfg.DataDir,
		// openRaft gives the node <data-dir>/raft, which keeps its state
		// in a raft directory of its own.
		RaftDir:      filepath.Join(cfg.DataDir, "raft", "raft"),
		NodeIDFiles:  []string{filepath.Join(cfg.DataDir, "node-id"), filepath.Join(cfg.DataDir, "raft", "raft", "node-id")},
		NodeID:       nodeID,
		RaftAddr:     raftAddr,
		StoreKind:    kind,
		StorePath:    target,
		KeyID:        keyID,
		KeyFile:      filepath.Join(cfg.DataDir, secrets.KeyFile),
		MigrateStore: migratePostgres,
	}
}

// migratePostgres creates the store's schema at dsn.
func migratePostgres(ctx context.Context, dsn string) error {
	db := postgres.New(dsn)
	if err := db.Open(ctx); err != nil {
		return err
	}
	return db.Close()
}

// scratchHubs is backup.Scratch for this hub: a temp data dir (and, for a
// PostgreSQL store, a scratch database) and a hub started on them with no
// runtimes, peers or schedules.
type scratchHubs struct{ h *Hub }

func (s scratchHubs) Target(ctx context.Context, _ *backup.Manifest) (backup.Target, func(), error) {
	h := s.h
	dir, err := os.MkdirTemp("", "redforge-verify-")
	if err != nil {
		return backup.Target{}, nil, err
	}
	cfg := h.scratchConfig(filepath.Join(dir, "data"))
	cleanup := func() { os.RemoveAll(dir) }
	if kind, _ := StoreKind(h.Config.Store); kind == "postgres" {
		dsn, drop, err := h.scratchDatabase(ctx)
		if err != nil {
			cleanup()
			return backup.Target{}, nil, err
		}
		cfg.Store = dsn
		cleanup = func() { drop(); os.RemoveAll(dir) }
	}
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	t := RestoreTarget(cfg, "verify-"+hex.EncodeToString(id), h.Seal.KeyID())
	t.TempDir = dir
	return t, cleanup, nil
}

// shareKeyFile gives a scratch hub this hub's secrets key at path, as
// `redforge-hub restore --secrets-key` does, when this hub seals with the
// key file of its data dir (with a cluster secret the scratch hub derives
// the same key itself). Without it the scratch hub would make a key of its
// own and could open nothing the archive holds sealed.
func (h *Hub) shareKeyFile(path string) error {
	if h.Config.ClusterSecret != "" {
		return nil
	}
	if _, err := os.Stat(path); err == nil {
		return nil // the archive carried its key
	}
	b, err := os.ReadFile(filepath.Join(h.Config.DataDir, secrets.KeyFile))
	if err != nil {
		return fmt.Errorf("this hub's secrets key for the restored hub: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// scratchConfig is the configuration of a verification hub on dataDir:
// private ports on loopback, this hub's secrets, nothing scheduled.
func (h *Hub) scratchConfig(dataDir string) Config {
	cfg := DefaultConfig()
	cfg.DataDir = dataDir
	cfg.Listen, cfg.MQTTListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RaftListen = "127.0.0.1:" + freePort()
	cfg.Region = h.Config.Region
	cfg.ClusterSecret = h.Config.ClusterSecret
	cfg.FlowsGit = false
	cfg.BackupDest = filepath.Join(dataDir, "backups")
	cfg.scratch = true
	return cfg
}

func freePort() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "0"
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// scratchDatabase returns an empty PostgreSQL database for a verification:
// --backup-verify-store, or one created on the store's server and dropped
// by the returned func.
func (h *Hub) scratchDatabase(ctx context.Context) (string, func(), error) {
	if v := h.Config.BackupVerifyStore; v != "" {
		return v, func() {}, nil
	}
	u, err := url.Parse(h.storeTarget())
	if err != nil {
		return "", nil, fmt.Errorf("store URL: %w", err)
	}
	id := make([]byte, 6)
	_, _ = rand.Read(id)
	name := "redforge_verify_" + hex.EncodeToString(id)
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create a scratch database for the restore test (or set --backup-verify-store): %w", err)
	}
	admin := u.String()
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if c, err := pgx.Connect(ctx, admin); err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
			c.Close(ctx)
		}
	}
	return u.String(), drop, nil
}

// Check starts a hub on the restored target, waits until /api/health
// answers, and has it verify its audit chain through /api/audit/verify as
// a throwaway admin; the chain must hold the archive's audit head.
func (s scratchHubs) Check(ctx context.Context, t backup.Target, m *backup.Manifest) error {
	cfg := s.h.scratchConfig(t.DataDir)
	if t.RaftAddr != "" {
		cfg.RaftListen = t.RaftAddr // the address the restore wrote into the node's Raft configuration
	}
	if t.StoreKind == backup.StorePostgres {
		cfg.Store = t.StorePath
	}
	if err := s.h.shareKeyFile(t.KeyFile); err != nil {
		return err
	}
	octx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var sh *Hub
	// The Raft port is picked free, then bound only when the hub opens:
	// another process may take it meanwhile, so a port taken is retried
	// with another.
	for attempt := 1; ; attempt++ {
		sh = New(cfg, s.h.Version, s.h.Logger.With("component", "backup-verify"))
		err := sh.Open(octx)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == 3 {
			return fmt.Errorf("the restored hub does not start: %w", err)
		}
		cfg.RaftListen = "127.0.0.1:" + freePort()
	}
	defer sh.Close()
	cl := &http.Client{Timeout: 30 * time.Second}
	if code, body, err := get(octx, cl, sh.URL()+"/api/health", ""); err != nil || code != http.StatusOK {
		return fmt.Errorf("the restored hub's health: %d %s %v", code, body, err)
	}
	pw := secrets.Random(24)
	name := "backup-verify-" + secrets.Random(6)
	by := auth.Principal{UserID: "backup-verify", Username: "backup-verify", Role: catalog.RoleAdmin, Kind: auth.KindSession, Scope: auth.ScopeAll}
	if _, err := sh.Auth.CreateUser(octx, by, auth.NewUser{Username: name, Password: pw, Role: catalog.RoleAdmin}); err != nil {
		return fmt.Errorf("a throwaway admin on the restored hub: %w", err)
	}
	tokens, _, err := sh.Auth.Login(octx, name, pw, "127.0.0.1")
	if err != nil {
		return err
	}
	code, body, err := get(octx, cl, sh.URL()+"/api/audit/verify", tokens.AccessToken)
	if err != nil || code != http.StatusOK {
		return fmt.Errorf("/api/audit/verify on the restored hub: %d %s %v", code, body, err)
	}
	var res struct {
		OK     bool   `json:"ok"`
		Reason string `json:"reason"`
	}
	if err := json.Unmarshal(body, &res); err != nil || !res.OK {
		return fmt.Errorf("the restored audit chain does not verify: %s", body)
	}
	if m.Store.AuditHeadID > 0 {
		rec, err := sh.Store.GetAudit(octx, m.Store.AuditHeadID)
		if err != nil || rec.Hash != m.Store.AuditHeadHash {
			return fmt.Errorf("the restored audit chain lacks the archive's head %d/%s (%v)", m.Store.AuditHeadID, m.Store.AuditHeadHash, err)
		}
	}
	if got := sh.State.Index(); got < m.CatalogIndex {
		return fmt.Errorf("the restored catalog is at index %d, the archive's at %d", got, m.CatalogIndex)
	}
	return nil
}

func get(ctx context.Context, cl *http.Client, u, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, nil
}

// scratchDriver is the fleet driver of a verification hub: it runs
// nothing (the restored instances run on the real hubs).
type scratchDriver struct{}

var errScratch = errors.New("a backup verification hub runs no runtimes")

func (scratchDriver) Name() string { return "none" }
func (scratchDriver) Create(context.Context, fleet.Spec) (fleet.Runtime, error) {
	return fleet.Runtime{}, errScratch
}
func (scratchDriver) Start(context.Context, string) error               { return errScratch }
func (scratchDriver) Stop(context.Context, string, time.Duration) error { return errScratch }
func (scratchDriver) Restart(context.Context, string) error             { return errScratch }
func (scratchDriver) Remove(context.Context, string) error              { return errScratch }
func (scratchDriver) Inspect(context.Context, string) (fleet.Runtime, error) {
	return fleet.Runtime{}, fleet.ErrNotFound
}
func (scratchDriver) List(context.Context) ([]fleet.Runtime, error) { return nil, nil }
func (scratchDriver) Stats(context.Context, string) (fleet.Stats, error) {
	return fleet.Stats{}, errScratch
}
func (scratchDriver) Logs(context.Context, string, int, bool) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("")), nil
}
