package backup

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PostgreSQL point-in-time recovery with PostgreSQL's own tools: a base
// backup taken with pg_basebackup (tar format, gzip) and every WAL segment
// the server archives (archive_command) go to the backup destination under
// pitr/; PreparePITR unpacks the newest base backup finished before the
// target time into a new data directory and sets recovery_target_time and
// a restore_command that fetches the archived WAL, so that PostgreSQL,
// started on it, replays to the target and promotes.
//
//	archive_command = 'towerctl backup wal-push --dest DEST %p %f'
//	towerctl backup basebackup --dest DEST --pg postgres://…
//	towerctl backup pitr --dest DEST --to 2026-01-02T03:04:05Z --pgdata /var/lib/postgresql/15/restored

const (
	pitrWAL  = "pitr/wal/"
	pitrBase = "pitr/base/"
)

// WALPush archives the WAL segment at path under name. A segment already
// archived with the same content succeeds (PostgreSQL may retry); with
// other content it fails, as archive_command must.
func WALPush(ctx context.Context, o Objects, path, name string) error {
	if strings.ContainsAny(name, "/\\") || name == "" {
		return fmt.Errorf("wal-push: bad segment name %q", name)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("wal-push: %w", err)
	}
	if rc, err := o.GetKey(ctx, pitrWAL+name); err == nil {
		have, rerr := io.ReadAll(rc)
		rc.Close()
		if rerr == nil && sha256.Sum256(have) == sha256.Sum256(b) {
			return nil
		}
		return fmt.Errorf("wal-push: %s is archived already with other content", name)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	return o.PutKey(ctx, pitrWAL+name, bytes.NewReader(b))
}

// WALFetch copies the archived segment name to path (restore_command);
// ErrNotFound when it was never archived, which ends recovery's replay.
func WALFetch(ctx context.Context, o Objects, name, path string) error {
	rc, err := o.GetKey(ctx, pitrWAL+name)
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp := path + ".fetch"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// BaseBackup runs pg_basebackup (from pgBin, or PATH) against dsn and
// uploads its tar files under pitr/base/<finish time>/; it returns that
// time.
func BaseBackup(ctx context.Context, o Objects, pgBin, dsn string, now func() time.Time) (time.Time, error) {
	tmp, err := os.MkdirTemp("", "redforge-basebackup-")
	if err != nil {
		return time.Time{}, err
	}
	defer os.RemoveAll(tmp)
	out := filepath.Join(tmp, "base")
	cmd := exec.CommandContext(ctx, tool(pgBin, "pg_basebackup"), "-d", dsn, "-D", out, "-Ft", "-z", "-X", "fetch", "--checkpoint=fast", "-l", "redforge")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return time.Time{}, fmt.Errorf("pg_basebackup: %v: %s", err, strings.TrimSpace(string(msg)))
	}
	done := now().UTC()
	ents, err := os.ReadDir(out)
	if err != nil {
		return time.Time{}, err
	}
	prefix := pitrBase + done.Format(nameTime) + "/"
	for _, e := range ents {
		f, err := os.Open(filepath.Join(out, e.Name()))
		if err != nil {
			return time.Time{}, err
		}
		err = o.PutKey(ctx, prefix+e.Name(), f)
		f.Close()
		if err != nil {
			return time.Time{}, err
		}
	}
	return done, nil
}

func tool(dir, name string) string {
	if dir == "" {
		return name
	}
	return filepath.Join(dir, name)
}

// PITROptions say where and to when PreparePITR prepares a recovery.
type PITROptions struct {
	To      time.Time // recovery_target_time
	DataDir string    // the new PostgreSQL data directory (absent or empty)
	// RestoreCommand is the restore_command, with %f and %p (e.g.
	// "towerctl backup wal-fetch --dest DEST %f %p").
	RestoreCommand string
}

// PreparePITR unpacks the newest base backup finished before o.To into
// o.DataDir and configures recovery to o.To; start PostgreSQL on it to
// replay and promote. It returns the base backup's time.
func PreparePITR(ctx context.Context, objs Objects, o PITROptions) (time.Time, error) {
	keys, err := objs.ListKeys(ctx, pitrBase)
	if err != nil {
		return time.Time{}, err
	}
	var best time.Time
	var bestPrefix string
	for _, k := range keys {
		stamp := strings.SplitN(strings.TrimPrefix(k, pitrBase), "/", 2)[0]
		t, err := time.Parse(nameTime, stamp)
		if err == nil && t.Before(o.To) && t.After(best) {
			best, bestPrefix = t, pitrBase+stamp+"/"
		}
	}
	if bestPrefix == "" {
		return time.Time{}, fmt.Errorf("pitr: no base backup finished before %s (take one with towerctl backup basebackup)", o.To.Format(time.RFC3339))
	}
	if ents, err := os.ReadDir(o.DataDir); err == nil && len(ents) > 0 {
		return time.Time{}, fmt.Errorf("%w: %s is not empty", ErrNotEmpty, o.DataDir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return time.Time{}, err
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, bestPrefix) || !(strings.HasSuffix(k, ".tar") || strings.HasSuffix(k, ".tar.gz")) {
			continue // backup_manifest stays beside the tars (pg_verifybackup)
		}
		dst := o.DataDir
		if path.Base(k) == "pg_wal.tar.gz" {
			dst = filepath.Join(o.DataDir, "pg_wal")
		}
		if err := untarKey(ctx, objs, k, dst); err != nil {
			return time.Time{}, fmt.Errorf("pitr: unpack %s: %w", k, err)
		}
	}
	conf := fmt.Sprintf("\n# Written by towerctl backup pitr: replay the archived WAL to the target, then promote.\nrestore_command = '%s'\nrecovery_target_time = '%s'\nrecovery_target_action = 'promote'\n",
		strings.ReplaceAll(o.RestoreCommand, "'", "''"), o.To.UTC().Format("2006-01-02 15:04:05.999999-07:00"))
	f, err := os.OpenFile(filepath.Join(o.DataDir, "postgresql.auto.conf"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return time.Time{}, err
	}
	if err := f.Close(); err != nil {
		return time.Time{}, err
	}
	if err := os.WriteFile(filepath.Join(o.DataDir, "recovery.signal"), nil, 0o600); err != nil {
		return time.Time{}, err
	}
	return best, nil
}

// untarKey unpacks the gzip-compressed tar at key into dir.
func untarKey(ctx context.Context, objs Objects, key, dir string) error {
	rc, err := objs.GetKey(ctx, key)
	if err != nil {
		return err
	}
	defer rc.Close()
	var r io.Reader = rc
	if strings.HasSuffix(key, ".gz") {
		gz, err := gzip.NewReader(rc)
		if err != nil {
			return err
		}
		defer gz.Close()
		r = gz
	}
	tr := tar.NewReader(r)
	var dirs []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if strings.HasPrefix(name, "..") || filepath.IsAbs(name) {
			return fmt.Errorf("entry %q leaves the data directory", h.Name)
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o700); err != nil {
				return err
			}
			dirs = append(dirs, p)
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(h.Mode)&0o700|0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			if err := os.Symlink(h.Linkname, p); err != nil {
				return err
			}
		}
	}
	sort.Strings(dirs)
	for _, d := range dirs {
		os.Chmod(d, 0o700)
	}
	return nil
}
