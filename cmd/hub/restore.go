package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/secrets"
)

// Restore is `redforge-hub restore ARCHIVE --data-dir DIR [--store URL]`:
// it rebuilds a hub from a backup into an empty data dir and store, as a
// one-hub cluster the others then join.
type Restore struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string
}

const restoreUsage = `usage: redforge-hub restore ARCHIVE --data-dir DIR [--store URL] [flags]

ARCHIVE is an archive file, or with --from a backup destination (a
directory or s3://bucket/prefix?endpoint=host:port) the name of one of its
archives, or "latest". The data dir and the store must be empty. The
secrets key is REDFORGE_CLUSTER_SECRET's, --secrets-key's, or the one the
archive carries (--backup-include-key).

flags:
`

// Run restores and reports; it returns the process exit code.
func (r *Restore) Run(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("redforge-hub restore", flag.ContinueOnError)
	fs.SetOutput(r.Stderr)
	fs.Usage = func() { fmt.Fprint(r.Stderr, restoreUsage); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", "", "the new hub's data directory (must be empty or absent)")
	store := fs.String("store", "", "the new hub's store: empty for SQLite in the data dir, a file path, or postgres://… (an empty database)")
	from := fs.String("from", "", "backup destination to take ARCHIVE from (its credentials from the environment, as the hub's)")
	nodeID := fs.String("node-id", "", "the restored hub's node id (default: the id of the hub that made the backup)")
	raftListen := fs.String("raft-listen", hub.DefaultRaftListen, "the Raft address the restored hub will listen on")
	raftAdvertise := fs.String("raft-advertise", "", "the Raft address other hubs will dial (default --raft-listen)")
	identity := fs.String("age-identity", "", "age identity file that opens an encrypted archive")
	keyFile := fs.String("secrets-key", "", "secrets.key of the hub that made the archive (a hub without a cluster secret)")
	if err := fs.Parse(reorder(args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 || *dataDir == "" {
		fmt.Fprintln(r.Stderr, "redforge-hub restore: need one ARCHIVE and --data-dir")
		fs.Usage()
		return 2
	}
	cfg := hub.DefaultConfig()
	cfg.DataDir, cfg.Store, cfg.RaftListen, cfg.RaftAdvertise = *dataDir, *store, *raftListen, *raftAdvertise
	m, err := r.restore(ctx, cfg, fs.Arg(0), *from, *nodeID, *identity, *keyFile)
	if err != nil {
		fmt.Fprintln(r.Stderr, "redforge-hub restore:", err)
		return 1
	}
	fmt.Fprintf(r.Stdout, "restored %s (made %s by hub %s, version %s) into %s\n", m.ID, m.Created.Format("2006-01-02 15:04:05Z"), m.HubID, m.HubVersion, *dataDir)
	fmt.Fprintf(r.Stdout, "catalog index %d: %d users, %d instances, %d deployments; store: audit head %d, %d tables\n",
		m.CatalogIndex, m.Catalog.Users, m.Catalog.Instances, m.Catalog.Deployments, m.Store.AuditHeadID, len(m.Store.Rows))
	storeFlag := ""
	if *store != "" {
		storeFlag = " --store " + hub.Redact(*store)
	}
	fmt.Fprintf(r.Stdout, "start it: redforge-hub --data-dir %s%s --raft-listen %s (other hubs then join it with --join)\n", *dataDir, storeFlag, *raftListen)
	return 0
}

func (r *Restore) restore(ctx context.Context, cfg hub.Config, archive, from, nodeID, identity, keyFile string) (*backup.Manifest, error) {
	if kind, _ := hub.StoreKind(cfg.Store); kind == "" {
		return nil, fmt.Errorf("--store %q is neither a file path nor a postgres:// URL", hub.Redact(cfg.Store))
	}
	keyID, key, err := r.key(keyFile)
	if err != nil {
		return nil, err
	}
	t := hub.RestoreTarget(cfg, nodeID, keyID)
	if identity != "" {
		if t.Identities, err = backup.ReadIdentities(identity); err != nil {
			return nil, err
		}
	}
	src, err := open(ctx, archive, from, r.Getenv)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	m, err := backup.Restore(ctx, src, t)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", archive, err)
	}
	if key != nil {
		if err := os.WriteFile(t.KeyFile, key, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", t.KeyFile, err)
		}
	}
	return m, nil
}

// key returns the id of the key the restored hub will seal with: the
// cluster secret's, or --secrets-key's (whose bytes are then written into
// the data dir), or none ("": the archive must carry its key).
func (r *Restore) key(keyFile string) (string, []byte, error) {
	if s := r.Getenv("REDFORGE_CLUSTER_SECRET"); s != "" {
		sl, err := secrets.FromClusterSecret(s)
		if err != nil {
			return "", nil, err
		}
		return sl.KeyID(), nil, nil
	}
	if keyFile == "" {
		return "", nil, nil
	}
	b, err := os.ReadFile(keyFile)
	if err != nil {
		return "", nil, fmt.Errorf("--secrets-key: %w", err)
	}
	sl, err := secrets.New(b)
	if err != nil {
		return "", nil, fmt.Errorf("--secrets-key %s: %w", keyFile, err)
	}
	return sl.KeyID(), b, nil
}

// open opens the archive: a file, or a name (or "latest") at --from.
func open(ctx context.Context, archive, from string, getenv func(string) string) (io.ReadCloser, error) {
	if from == "" {
		f, err := os.Open(archive)
		if err != nil {
			return nil, fmt.Errorf("archive: %w", err)
		}
		return f, nil
	}
	dest, err := backup.ParseDestination(from, getenv)
	if err != nil {
		return nil, fmt.Errorf("--from: %w", err)
	}
	if archive == "latest" {
		objs, err := dest.List(ctx)
		if err != nil {
			return nil, err
		}
		if len(objs) == 0 {
			return nil, fmt.Errorf("--from %s holds no backup", dest)
		}
		archive = objs[0].Name
	}
	return dest.Get(ctx, filepath.Base(archive))
}

// reorder moves flags before the positional ARCHIVE, so that both
// `restore A --data-dir D` and `restore --data-dir D A` parse.
func reorder(args []string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			pos = append(pos, args[i+1:]...)
			i = len(args)
		case strings.HasPrefix(a, "-"):
			flags = append(flags, a)
			if !strings.Contains(a, "=") && i+1 < len(args) {
				flags = append(flags, args[i+1])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	return append(flags, pos...)
}
