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

	"github.com/minio/minio-go/v7"
)

// Objects is a destination's raw key space, which PITR uses for base
// backups and WAL segments (keys such as pitr/wal/000000010000000000000003).
type Objects interface {
	PutKey(ctx context.Context, key string, r io.Reader) error
	GetKey(ctx context.Context, key string) (io.ReadCloser, error)
	// ListKeys returns the keys under prefix, sorted.
	ListKeys(ctx context.Context, prefix string) ([]string, error)
}

// ObjectsOf returns the raw key space of a destination.
func ObjectsOf(d Destination) (Objects, error) {
	o, ok := d.(Objects)
	if !ok {
		return nil, fmt.Errorf("%s has no raw key space", d)
	}
	return o, nil
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "..") {
		return fmt.Errorf("backup: bad key %q", key)
	}
	return nil
}

// PutKey writes key through a temp file and a rename.
func (d *Dir) PutKey(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	sub := NewDir(filepath.Join(d.Path, filepath.Dir(filepath.FromSlash(key))))
	return sub.Put(ctx, filepath.Base(key), r)
}

// GetKey opens key; ErrNotFound when missing.
func (d *Dir) GetKey(_ context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.Path, filepath.FromSlash(key)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, key, d.Path)
	}
	return f, err
}

// ListKeys lists the files under prefix (a directory path), sorted.
func (d *Dir) ListKeys(_ context.Context, prefix string) ([]string, error) {
	root := filepath.Join(d.Path, filepath.FromSlash(prefix))
	var out []string
	err := filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.Type().IsRegular() && !strings.HasSuffix(p, ".partial") {
			rel, _ := filepath.Rel(d.Path, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out, err
}

// PutKey uploads key.
func (s *S3) PutKey(ctx context.Context, key string, r io.Reader) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, r, -1, minio.PutObjectOptions{PartSize: S3PartSize, NumThreads: 1})
	if err != nil {
		return fmt.Errorf("backup: upload %s to %s: %w", key, s, err)
	}
	return nil
}

// GetKey downloads key; ErrNotFound when missing.
func (s *S3) GetKey(ctx context.Context, key string) (io.ReadCloser, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.Get(ctx, key)
}

// ListKeys lists the keys under prefix, sorted.
func (s *S3) ListKeys(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return nil, fmt.Errorf("backup: list %s: %w", s, o.Err)
		}
		out = append(out, strings.TrimPrefix(o.Key, s.prefix))
	}
	return out, nil
}
