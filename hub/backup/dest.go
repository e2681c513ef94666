package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Destination is where archives go: a directory or an S3-compatible
// bucket. An archive becomes visible under its name only once it is
// complete.
type Destination interface {
	// Put stores the archive read from r under name.
	Put(ctx context.Context, name string, r io.Reader) error
	// Get opens the archive name; ErrNotFound when there is none.
	Get(ctx context.Context, name string) (io.ReadCloser, error)
	// List returns the archives, newest first.
	List(ctx context.Context) ([]Object, error)
	// Delete removes the archive name.
	Delete(ctx context.Context, name string) error
	// String describes the destination without credentials.
	String() string
}

// ErrNotFound is returned for an archive that does not exist.
var ErrNotFound = errors.New("backup: no such archive")

// Object is an archive at a destination.
type Object struct {
	Name      string    `json:"name"`
	Size      int64     `json:"size"`
	Time      time.Time `json:"time"` // from the name: when the backup was taken
	Encrypted bool      `json:"encrypted"`
}

// Archive names: redforge-<UTC time>.tar.zst, with .age when encrypted.
var nameRE = regexp.MustCompile(`^redforge-(\d{8}T\d{6}\.\d{3}Z)\.tar\.zst(\.age)?$`)

const nameTime = "20060102T150405.000Z"

// archiveName returns the name of an archive taken at t.
func archiveName(t time.Time, encrypted bool) string {
	n := "redforge-" + t.UTC().Format(nameTime) + ".tar.zst"
	if encrypted {
		n += ".age"
	}
	return n
}

// parseName returns the object an archive name describes; ok is false for
// a name that is not an archive's.
func parseName(name string) (Object, bool) {
	m := nameRE.FindStringSubmatch(name)
	if m == nil {
		return Object{}, false
	}
	t, err := time.Parse(nameTime, m[1])
	if err != nil {
		return Object{}, false
	}
	return Object{Name: name, Time: t, Encrypted: m[2] != ""}, true
}

// CheckName returns an error unless name is an archive's name (so an API
// caller cannot name another file).
func CheckName(name string) error {
	if _, ok := parseName(name); !ok {
		return fmt.Errorf("%q is not a backup name such as redforge-20260101T020000.000Z.tar.zst", name)
	}
	return nil
}

func sortNewestFirst(objs []Object) {
	sort.Slice(objs, func(i, j int) bool { return objs[i].Time.After(objs[j].Time) })
}

// ParseDestination returns the destination a --backup-dest value names: a
// directory path (or file:///path), or s3://bucket/prefix?endpoint=host:port
// [&region=R][&insecure=1]. S3 credentials come from getenv
// (REDFORGE_BACKUP_S3_ACCESS_KEY and _SECRET_KEY, or their _FILE
// variants, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), never from
// the URL.
func ParseDestination(raw string, getenv func(string) string) (Destination, error) {
	switch {
	case strings.HasPrefix(raw, "s3://"):
		return newS3(raw, getenv)
	case strings.HasPrefix(raw, "file://"):
		u, err := url.Parse(raw)
		if err != nil || u.Path == "" {
			return nil, fmt.Errorf("%q is not a file:///path URL", raw)
		}
		return NewDir(u.Path), nil
	case strings.Contains(raw, "://"):
		return nil, fmt.Errorf("%q: want a directory, file:///path or s3://bucket/prefix?endpoint=host:port", raw)
	case strings.TrimSpace(raw) == "":
		return nil, errors.New("empty backup destination")
	}
	return NewDir(raw), nil
}

// Dir is a Destination in a local or mounted (NFS) directory.
type Dir struct{ Path string }

// NewDir returns the directory destination at path; it is created on the
// first Put.
func NewDir(path string) *Dir { return &Dir{Path: path} }

func (d *Dir) String() string { return d.Path }

// Put writes the archive to name.partial, syncs it and renames it.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) error {
	if err := os.MkdirAll(d.Path, 0o750); err != nil {
		return fmt.Errorf("backup: destination %s: %w", d.Path, err)
	}
	final := filepath.Join(d.Path, name)
	tmp := final + ".partial"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("backup: destination %s: %w", d.Path, err)
	}
	_, err = io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: write %s: %w", final, err)
	}
	if dir, err := os.Open(d.Path); err == nil {
		dir.Sync()
		dir.Close()
	}
	return nil
}

// Get opens name.
func (d *Dir) Get(_ context.Context, name string) (io.ReadCloser, error) {
	f, err := os.Open(filepath.Join(d.Path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, name, d.Path)
	}
	return f, err
}

// List returns the archives in the directory, newest first.
func (d *Dir) List(context.Context) ([]Object, error) {
	ents, err := os.ReadDir(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("backup: list %s: %w", d.Path, err)
	}
	var out []Object
	for _, e := range ents {
		o, ok := parseName(e.Name())
		if !ok || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil {
			o.Size = fi.Size()
		}
		out = append(out, o)
	}
	sortNewestFirst(out)
	return out, nil
}

// Delete removes name.
func (d *Dir) Delete(_ context.Context, name string) error {
	err := os.Remove(filepath.Join(d.Path, name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s in %s", ErrNotFound, name, d.Path)
	}
	return err
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
