package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/hashicorp/raft"

	"github.com/redforge/controltower/hub/catalog"
)

// Target is where Restore rebuilds a hub: an empty data dir and an empty
// store. The hub package fills the paths it owns (RaftDir, NodeIDFiles).
type Target struct {
	DataDir string
	// RaftDir is where the Raft node keeps its snapshots and node id.
	RaftDir string
	// NodeIDFiles are the files that hold the hub's node id.
	NodeIDFiles []string
	// NodeID and RaftAddr are the restored hub's Raft identity: a one-node
	// configuration that others join. An empty NodeID takes the id of the
	// hub that made the archive, so its allocations come back in place.
	NodeID, RaftAddr string
	// StoreKind is StoreSQLite or StorePostgres; StorePath the SQLite file
	// or the PostgreSQL DSN.
	StoreKind, StorePath string
	// KeyID is the id of the secrets key the restored hub will use ("" when
	// it has none yet: the archive must carry one). KeyFile is where a key
	// the archive carries is written.
	KeyID   string
	KeyFile string
	// MigrateStore creates the store's schema at dsn (PostgreSQL).
	MigrateStore func(ctx context.Context, dsn string) error
	// Identities open an age-encrypted archive.
	Identities []age.Identity
	// TempDir is where the archive is staged (default: inside DataDir).
	TempDir string
}

// staged is an archive read whole into a temp dir and checked.
type staged struct {
	dir      string
	manifest *Manifest
}

func (s *staged) path(name string) string {
	return filepath.Join(s.dir, filepath.FromSlash(name))
}

// stage reads the archive into dir, checking every entry against the
// manifest; nothing outside dir is touched.
func stage(ctx context.Context, src io.Reader, ids []age.Identity, dir string) (*staged, error) {
	ar, err := openArchive(ctxReader{ctx, src}, ids)
	if err != nil {
		return nil, err
	}
	defer ar.close()
	for {
		name, body, err := ar.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %s twice or unwritable: %v", ErrCorrupt, name, err)
		}
		_, err = io.Copy(f, body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
	}
	st := &staged{dir: dir, manifest: ar.Manifest}
	if err := st.check(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// check reads the staged catalog snapshot and store back.
func (s *staged) check(ctx context.Context) error {
	f, err := os.Open(s.path(entryCatalog))
	if err != nil {
		return fmt.Errorf("%w: no %s", ErrCorrupt, entryCatalog)
	}
	defer f.Close()
	st := catalog.NewState()
	if err := st.Restore(f); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, entryCatalog, err)
	}
	if st.Index() != s.manifest.CatalogIndex {
		return fmt.Errorf("%w: %s is at index %d, the manifest says %d", ErrCorrupt, entryCatalog, st.Index(), s.manifest.CatalogIndex)
	}
	switch s.manifest.StoreKind {
	case StoreSQLite:
		return checkSQLite(ctx, s.path(entrySQLite), s.manifest.Store)
	case StorePostgres:
		return nil // COPY data is checked by its checksums and by the load
	}
	return fmt.Errorf("%w: unknown store kind %q", ErrCorrupt, s.manifest.StoreKind)
}

// Restore rebuilds a hub from the archive read from src into t, which must
// be empty: ErrNotEmpty naming the data dir or the store otherwise. The
// archive is read and checked whole before anything is written to the
// target (ErrCorrupt, ErrFormat naming the entry or the versions), and a
// failure after that undoes what was written: nothing is half-restored.
func Restore(ctx context.Context, src io.Reader, t Target) (*Manifest, error) {
	if err := checkEmpty(ctx, t); err != nil {
		return nil, err
	}
	createdDir := false
	if _, err := os.Stat(t.DataDir); errors.Is(err, fs.ErrNotExist) {
		createdDir = true
	}
	if err := os.MkdirAll(t.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("backup: data dir %s: %w", t.DataDir, err)
	}
	tmpBase := t.TempDir
	if tmpBase == "" {
		tmpBase = t.DataDir
	}
	tmp, err := os.MkdirTemp(tmpBase, ".restore-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	m, err := restoreFrom(ctx, src, t, tmp)
	if err != nil {
		undo(ctx, t, tmp, createdDir)
		return nil, err
	}
	return m, nil
}

func restoreFrom(ctx context.Context, src io.Reader, t Target, tmp string) (*Manifest, error) {
	st, err := stage(ctx, src, t.Identities, tmp)
	if err != nil {
		return nil, err
	}
	m := st.manifest
	keyID := t.KeyID
	if keyID == "" && m.HasKey {
		keyID = m.KeyID
	}
	if keyID != m.KeyID {
		return nil, keyMismatch(m, keyID)
	}
	if t.StoreKind != m.StoreKind {
		return nil, fmt.Errorf("%w: the archive holds a %s store, the target is %s; restore it into a %s store", ErrFormat, m.StoreKind, t.StoreKind, m.StoreKind)
	}
	if t.NodeID == "" {
		t.NodeID = m.HubID
	}
	if err := writeRaft(st, t); err != nil {
		return nil, err
	}
	if t.KeyID == "" && m.HasKey {
		if err := copyFile(st.path(entryKey), t.KeyFile); err != nil {
			return nil, fmt.Errorf("backup: write %s: %w", t.KeyFile, err)
		}
	}
	for _, f := range t.NodeIDFiles {
		if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(f, []byte(t.NodeID+"\n"), 0o600); err != nil {
			return nil, err
		}
	}
	switch m.StoreKind {
	case StoreSQLite:
		if err := copyFile(st.path(entrySQLite), t.StorePath); err != nil {
			return nil, fmt.Errorf("backup: write store %s: %w", t.StorePath, err)
		}
	case StorePostgres:
		if err := t.MigrateStore(ctx, t.StorePath); err != nil {
			return nil, fmt.Errorf("backup: create the store's schema: %w", err)
		}
		err := loadPostgres(ctx, t.StorePath, m.Store, func(table string, n int) (io.ReadCloser, error) {
			return os.Open(st.path(fmt.Sprintf("%s%s.%06d.copy", entryPGPrefix, table, n)))
		})
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func keyMismatch(m *Manifest, have string) error {
	if have == "" {
		return fmt.Errorf("%w: the archive's secrets are sealed with key %s and it carries no key: set REDFORGE_CLUSTER_SECRET to the cluster's secret, or give --secrets-key with the secrets.key of the hub that made it", ErrKeyMismatch, m.KeyID)
	}
	return fmt.Errorf("%w: the archive's secrets are sealed with key %s, this restore would use key %s: set REDFORGE_CLUSTER_SECRET to the secret of the cluster that made it (or give --secrets-key with its secrets.key)", ErrKeyMismatch, m.KeyID, have)
}

// checkEmpty refuses a target that holds anything, naming it.
func checkEmpty(ctx context.Context, t Target) error {
	ents, err := os.ReadDir(t.DataDir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: data dir %s: %w", t.DataDir, err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) > 0 {
		return fmt.Errorf("%w: data dir %s holds %s; restore into an empty or new directory", ErrNotEmpty, t.DataDir, strings.Join(names, ", "))
	}
	switch t.StoreKind {
	case StoreSQLite:
		if _, err := os.Stat(t.StorePath); err == nil {
			return fmt.Errorf("%w: store file %s exists", ErrNotEmpty, t.StorePath)
		}
	case StorePostgres:
		return pgEmpty(ctx, t.StorePath)
	}
	return nil
}

// undo removes what a failed restore wrote.
func undo(ctx context.Context, t Target, tmp string, createdDir bool) {
	os.RemoveAll(tmp)
	if createdDir {
		os.RemoveAll(t.DataDir)
	} else if ents, err := os.ReadDir(t.DataDir); err == nil {
		for _, e := range ents {
			os.RemoveAll(filepath.Join(t.DataDir, e.Name()))
		}
	}
	switch t.StoreKind {
	case StoreSQLite:
		os.Remove(t.StorePath)
	case StorePostgres:
		_ = pgDropAll(context.WithoutCancel(ctx), t.StorePath)
	}
}

// writeRaft writes the catalog snapshot as the Raft snapshot of a
// one-node configuration (t.NodeID at t.RaftAddr): the restored hub opens
// it as existing state, restores the catalog from it and elects itself.
func writeRaft(st *staged, t Target) error {
	if err := os.MkdirAll(t.RaftDir, 0o700); err != nil {
		return err
	}
	snaps, err := raft.NewFileSnapshotStore(t.RaftDir, 2, io.Discard)
	if err != nil {
		return fmt.Errorf("backup: raft snapshot store: %w", err)
	}
	index := max(st.manifest.CatalogIndex, 1)
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(t.NodeID), Address: raft.ServerAddress(t.RaftAddr)}}}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(t.RaftAddr)) // encodes the peers only
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, index, 1, conf, index, trans)
	if err != nil {
		return fmt.Errorf("backup: raft snapshot: %w", err)
	}
	f, err := os.Open(st.path(entryCatalog))
	if err != nil {
		sink.Cancel()
		return err
	}
	defer f.Close()
	if _, err := io.Copy(sink, f); err != nil {
		sink.Cancel()
		return fmt.Errorf("backup: raft snapshot: %w", err)
	}
	return sink.Close()
}

// ReadArchive reads and checks the whole archive from src (every
// checksum, the manifest, the catalog snapshot and store copy read back)
// without restoring it, and returns its manifest and catalog. tmpDir
// holds the staged entries meanwhile.
func ReadArchive(ctx context.Context, src io.Reader, ids []age.Identity, tmpDir string) (*Manifest, *catalog.State, error) {
	dir, err := os.MkdirTemp(tmpDir, ".read-")
	if err != nil {
		return nil, nil, err
	}
	defer os.RemoveAll(dir)
	st, err := stage(ctx, src, ids, dir)
	if err != nil {
		return nil, nil, err
	}
	f, err := os.Open(st.path(entryCatalog))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	cat := catalog.NewState()
	if err := cat.Restore(f); err != nil {
		return nil, nil, err
	}
	return st.manifest, cat, nil
}
