package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"

	"github.com/redforge/controltower/hub/catalog"
)

// Catalog is what a backup reads of the catalog.
type Catalog interface {
	Snapshot() *catalog.Snapshot
}

// Config configures the backup service.
type Config struct {
	Dest       Destination
	Recipients []age.Recipient // encrypt archives to these (optional)
	Identities []age.Identity  // open encrypted archives (verify)
	// IncludeKey puts the secrets key file into each archive; it needs
	// Recipients (the key never goes into an archive in clear).
	IncludeKey bool
	KeyFile    string // the key file IncludeKey carries
	KeyID      string // the id of the key the catalog's secrets are sealed with
	Retention  Retention
	// StoreKind and StorePath name the store: the SQLite file or the
	// PostgreSQL DSN.
	StoreKind, StorePath string
	HubID, HubVersion    string
	Region               string
	// TempDir holds the SQLite copy and the catalog snapshot while they are
	// written into the archive (default: os.TempDir()).
	TempDir string
	Logger  *slog.Logger
	Now     func() time.Time
}

// Validate returns the configuration's problems.
func (c Config) Validate() error {
	if c.Dest == nil {
		return errors.New("backup: no destination")
	}
	if c.IncludeKey && len(c.Recipients) == 0 {
		return errors.New("backup: --backup-include-key needs --backup-age-recipients: the secrets key never goes into an archive in clear")
	}
	switch c.StoreKind {
	case StoreSQLite, StorePostgres:
	default:
		return fmt.Errorf("backup: unknown store kind %q", c.StoreKind)
	}
	return c.Retention.Validate()
}

// Service makes, lists, verifies and prunes backups. Backups are
// serialised: one at a time per hub.
type Service struct {
	cfg     Config
	cat     Catalog
	mu      sync.Mutex // one backup at a time
	stats   *Stats
	scratch Scratch
}

// Scratch is where Verify restores an archive: a throwaway data dir and
// store (Target, undone by the returned func), and a check that starts a
// hub on them, sees it serve and its audit chain verify, and stops it.
// The hub package provides it (this package cannot start a hub).
type Scratch interface {
	Target(ctx context.Context, m *Manifest) (Target, func(), error)
	Check(ctx context.Context, t Target, m *Manifest) error
}

// New returns a service; it does no I/O.
func New(cfg Config, cat Catalog, scratch Scratch) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TempDir == "" {
		cfg.TempDir = os.TempDir()
	}
	return &Service{cfg: cfg, cat: cat, stats: newStats(), scratch: scratch}
}

// Config returns the service's configuration.
func (s *Service) Config() Config { return s.cfg }

// Create makes one archive and puts it at the destination. The store's
// read transaction is begun, the catalog snapshot taken, and the store's
// snapshot fixed by the transaction's first read right after: one point
// in time up to the writes that land between two adjacent statements, and
// never a catalog ahead of the store (the audit anchor the catalog keeps
// names only records the store copy holds). Both positions are in the
// manifest. It runs while the hub serves writes and deployments.
func (s *Service) Create(ctx context.Context) (*Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := s.cfg.Now()
	m, err := s.create(ctx, start)
	s.stats.record(start, s.cfg.Now(), m, err)
	if err != nil {
		s.cfg.Logger.Error("backup failed", "error", err)
		return nil, err
	}
	s.cfg.Logger.Info("backup made", "name", m.ID, "dest", s.cfg.Dest.String(), "bytes", s.stats.lastBytes(),
		"catalog_index", m.CatalogIndex, "audit_head", m.Store.AuditHeadID, "seconds", m.Duration)
	return m, nil
}

func (s *Service) create(ctx context.Context, start time.Time) (*Manifest, error) {
	name := archiveName(start, len(s.cfg.Recipients) > 0)
	tmp, err := os.MkdirTemp(s.cfg.TempDir, "redforge-backup-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	m := &Manifest{Header: Header{Format: FormatVersion, ID: name, HubVersion: s.cfg.HubVersion, HubID: s.cfg.HubID,
		Region: s.cfg.Region, Created: start.UTC(), StoreKind: s.cfg.StoreKind, KeyID: s.cfg.KeyID,
		HasKey: s.cfg.IncludeKey}}

	var snap *catalog.Snapshot
	takeCatalog := func() { snap = s.cat.Snapshot() }
	// SQLite: copy the store (taking the catalog inside its transaction)
	// before the archive starts; PostgreSQL streams during it.
	var sqlitePos StorePosition
	if s.cfg.StoreKind == StoreSQLite {
		if sqlitePos, err = copySQLite(ctx, s.cfg.StorePath, filepath.Join(tmp, "sqlite.db"), takeCatalog); err != nil {
			return nil, err
		}
	}

	pr, pw := io.Pipe()
	putErr := make(chan error, 1)
	counter := &countingReader{r: pr}
	go func() {
		err := s.cfg.Dest.Put(ctx, name, counter)
		pr.CloseWithError(err)
		putErr <- err
	}()
	err = s.write(ctx, pw, m, tmp, &snap, takeCatalog, sqlitePos)
	pw.CloseWithError(err)
	if perr := <-putErr; err == nil {
		err = perr
	}
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", name, err)
	}
	m.Duration = s.cfg.Now().Sub(start).Seconds()
	s.stats.setSize(counter.n)
	return m, nil
}

func (s *Service) write(ctx context.Context, w io.Writer, m *Manifest, tmp string, snap **catalog.Snapshot, takeCatalog func(), sqlitePos StorePosition) error {
	aw, err := newArchiveWriter(w, s.cfg.Recipients, m.Created)
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			aw.abort()
		}
	}()
	if err := aw.addJSON(entryHeader, m.Header); err != nil {
		return err
	}
	addCatalog := func() error {
		if *snap == nil {
			takeCatalog()
		}
		return s.addCatalog(aw, m, *snap, tmp)
	}
	switch s.cfg.StoreKind {
	case StoreSQLite:
		if err := addCatalog(); err != nil {
			return err
		}
		if err := s.addKey(aw); err != nil {
			return err
		}
		if err := addFile(aw, entrySQLite, filepath.Join(tmp, "sqlite.db")); err != nil {
			return err
		}
		m.Store = sqlitePos
	case StorePostgres:
		atCopy := func() error {
			if err := addCatalog(); err != nil {
				return err
			}
			return s.addKey(aw)
		}
		if m.Store, err = copyPostgres(ctx, s.cfg.StorePath, aw, takeCatalog, atCopy); err != nil {
			return err
		}
	}
	if err := aw.finish(m); err != nil {
		return err
	}
	ok = true
	return nil
}

// addCatalog persists the snapshot to a temp file (a tar entry needs its
// size), counts its rows and adds it.
func (s *Service) addCatalog(aw *archiveWriter, m *Manifest, snap *catalog.Snapshot, tmp string) error {
	p := filepath.Join(tmp, "catalog.snap")
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	err = snap.Persist(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	m.CatalogIndex = snap.Index()
	if m.Catalog, err = countCatalog(p); err != nil {
		return err
	}
	return addFile(aw, entryCatalog, p)
}

func countCatalog(path string) (CatalogCounts, error) {
	f, err := os.Open(path)
	if err != nil {
		return CatalogCounts{}, err
	}
	defer f.Close()
	st := catalog.NewState()
	if err := st.Restore(f); err != nil {
		return CatalogCounts{}, fmt.Errorf("backup: read back the catalog snapshot: %w", err)
	}
	return CatalogCounts{Users: len(st.Users()), Instances: len(st.Instances()), Deployments: len(st.Deployments("")),
		Tokens: len(st.APITokens()), Edges: len(st.Edges()), Settings: len(st.Settings())}, nil
}

func (s *Service) addKey(aw *archiveWriter) error {
	if !s.cfg.IncludeKey {
		return nil
	}
	return addFile(aw, entryKey, s.cfg.KeyFile)
}

func addFile(aw *archiveWriter, name, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return aw.add(name, fi.Size(), f)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// List returns the archives at the destination, newest first.
func (s *Service) List(ctx context.Context) ([]Object, error) { return s.cfg.Dest.List(ctx) }

// Prune deletes the archives retention does not keep (none with dryRun)
// and returns both sets.
func (s *Service) Prune(ctx context.Context, dryRun bool) (keep, drop []Object, err error) {
	objs, err := s.cfg.Dest.List(ctx)
	if err != nil {
		return nil, nil, err
	}
	keep, drop = s.cfg.Retention.Split(objs)
	if dryRun {
		return keep, drop, nil
	}
	for _, o := range drop {
		if err := s.cfg.Dest.Delete(ctx, o.Name); err != nil {
			return keep, drop, err
		}
	}
	return keep, drop, nil
}

// VerifyResult is what Verify found.
type VerifyResult struct {
	Name     string    `json:"name"`
	Manifest *Manifest `json:"manifest,omitempty"`
	Checked  int       `json:"files_checked"`
	Restored bool      `json:"restored"` // the scratch hub came up and its audit chain verified
	Seconds  float64   `json:"seconds"`
}

// Verify re-reads the archive name, checks every checksum and the
// manifest, restores it into a scratch data dir and store and has a
// scratch hub come up on them and verify its audit chain. Errors name the
// archive and the entry at fault.
func (s *Service) Verify(ctx context.Context, name string) (*VerifyResult, error) {
	start := s.cfg.Now()
	res, err := s.verify(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return nil, err // nothing was verified
	}
	s.stats.recordVerify(start, s.cfg.Now(), err)
	if err != nil {
		s.cfg.Logger.Error("backup verification failed", "name", name, "error", err)
		return nil, fmt.Errorf("verify %s: %w", name, err)
	}
	res.Seconds = s.cfg.Now().Sub(start).Seconds()
	return res, nil
}

func (s *Service) verify(ctx context.Context, name string) (*VerifyResult, error) {
	if s.scratch == nil {
		return nil, errors.New("no scratch hub to restore into")
	}
	rc, err := s.cfg.Dest.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	t, cleanup, err := s.scratch.Target(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("scratch target: %w", err)
	}
	defer cleanup()
	if t.Identities == nil {
		t.Identities = s.cfg.Identities
	}
	m, err := Restore(ctx, rc, t)
	if err != nil {
		return nil, err
	}
	res := &VerifyResult{Name: name, Manifest: m, Checked: len(m.Files) + 1}
	if err := s.scratch.Check(ctx, t, m); err != nil {
		return nil, fmt.Errorf("scratch hub: %w", err)
	}
	res.Restored = true
	return res, nil
}
