package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a Destination in an S3-compatible bucket (AWS S3, MinIO,
// SeaweedFS, Ceph …) through minio-go.
type S3 struct {
	client   *minio.Client
	endpoint string
	bucket   string
	prefix   string
}

// S3PartSize is the multipart part size of an upload: the memory an upload
// of unknown length buffers.
const S3PartSize = 16 << 20

func newS3(raw string, getenv func(string) string) (*S3, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not an s3://bucket/prefix?endpoint=host:port URL", raw)
	}
	if u.User != nil {
		return nil, errors.New("s3 destination: put the credentials in REDFORGE_BACKUP_S3_ACCESS_KEY and REDFORGE_BACKUP_S3_SECRET_KEY (or _FILE), not in the URL")
	}
	q := u.Query()
	endpoint := q.Get("endpoint")
	if endpoint == "" {
		endpoint = "s3.amazonaws.com"
	}
	access, err := secretFrom(getenv, "REDFORGE_BACKUP_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
	if err != nil {
		return nil, err
	}
	secret, err := secretFrom(getenv, "REDFORGE_BACKUP_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY")
	if err != nil {
		return nil, err
	}
	if access == "" || secret == "" {
		return nil, errors.New("s3 destination: set REDFORGE_BACKUP_S3_ACCESS_KEY and REDFORGE_BACKUP_S3_SECRET_KEY (or their _FILE variants, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)")
	}
	insecure := q.Get("insecure") == "1" || q.Get("insecure") == "true"
	cl, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(access, secret, ""),
		Secure:       !insecure,
		Region:       q.Get("region"),
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 destination %s: %w", endpoint, err)
	}
	prefix := strings.Trim(u.Path, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &S3{client: cl, endpoint: endpoint, bucket: u.Host, prefix: prefix}, nil
}

// secretFrom reads a credential from env name, the file named by
// name_FILE, or the fallback env variable.
func secretFrom(getenv func(string) string, name, fallback string) (string, error) {
	if v := getenv(name); v != "" {
		return v, nil
	}
	if f := getenv(name + "_FILE"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", fmt.Errorf("%s_FILE: %w", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return getenv(fallback), nil
}

func (s *S3) String() string { return "s3://" + s.bucket + "/" + s.prefix + " at " + s.endpoint }

// Put uploads the archive in parts of S3PartSize; the object exists only
// once the upload completed.
func (s *S3) Put(ctx context.Context, name string, r io.Reader) error {
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+name, r, -1, minio.PutObjectOptions{
		PartSize: S3PartSize, ContentType: "application/octet-stream", NumThreads: 1})
	if err != nil {
		return fmt.Errorf("backup: upload %s to %s: %w", name, s, err)
	}
	return nil
}

// Get opens the archive name.
func (s *S3) Get(ctx context.Context, name string) (io.ReadCloser, error) {
	if _, err := s.client.StatObject(ctx, s.bucket, s.prefix+name, minio.StatObjectOptions{}); err != nil {
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			return nil, fmt.Errorf("%w: %s in %s", ErrNotFound, name, s)
		}
		return nil, fmt.Errorf("backup: %s in %s: %w", name, s, err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+name, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("backup: download %s from %s: %w", name, s, err)
	}
	return obj, nil
}

// List returns the bucket's archives under the prefix, newest first.
func (s *S3) List(ctx context.Context) ([]Object, error) {
	var out []Object
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix}) {
		if o.Err != nil {
			return nil, fmt.Errorf("backup: list %s: %w", s, o.Err)
		}
		obj, ok := parseName(strings.TrimPrefix(o.Key, s.prefix))
		if !ok {
			continue
		}
		obj.Size = o.Size
		out = append(out, obj)
	}
	sortNewestFirst(out)
	return out, nil
}

// Delete removes the archive name.
func (s *S3) Delete(ctx context.Context, name string) error {
	if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+name, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("backup: delete %s from %s: %w", name, s, err)
	}
	return nil
}

// Client returns the minio client (for PITR's WAL archive).
func (s *S3) Client() (*minio.Client, string, string) { return s.client, s.bucket, s.prefix }
