package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const keyWeed = "REDFORGE_TEST_WEED"

// S3Server is a private S3-compatible server (SeaweedFS) with one bucket.
type S3Server struct {
	Endpoint  string // host:port, plain HTTP on loopback
	AccessKey string
	SecretKey string
	Bucket    string
	// URL is a backup destination URL for the bucket under the prefix
	// "backups": s3://bucket/backups?endpoint=…&insecure=1.
	URL string
	// Stop stops the server early (it is stopped by tb.Cleanup anyway).
	Stop func()
}

// Env returns the variables that give a hub or towerctl its credentials.
func (s S3Server) Env() map[string]string {
	return map[string]string{"REDFORGE_BACKUP_S3_ACCESS_KEY": s.AccessKey, "REDFORGE_BACKUP_S3_SECRET_KEY": s.SecretKey}
}

// S3 starts a private SeaweedFS (`weed server` with its filer and S3
// gateway; master, volume, filer and S3 on free 127.0.0.1 ports, gRPC
// included, telemetry off, data in a temp dir), creates a bucket and
// returns it. Only an identity with the returned keys may use it (an S3
// config file; no anonymous access). The server is stopped by tb.Cleanup.
// It fails the test when weed is not available: provision.sh builds it.
func S3(tb testing.TB) S3Server {
	tb.Helper()
	bin := mustExecutable(tb, "seaweedfs (weed)", keyWeed)
	s := S3Server{AccessKey: "rf" + randomHex(8), SecretKey: randomHex(20), Bucket: "redforge-" + randomHex(4)}
	var s3port int
	_, p := startServer(tb, server{
		what:    "seaweedfs",
		path:    bin,
		timeout: 90 * time.Second,
		args: func(dir string, port int) ([]string, error) {
			s3port = port
			cfg := map[string]any{"identities": []any{map[string]any{"name": "redforge",
				"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
				"actions":     []string{"Admin", "Read", "List", "Tagging", "Write"}}}}
			b, _ := json.Marshal(cfg)
			conf := filepath.Join(dir, "s3.json")
			if err := os.WriteFile(conf, b, 0o600); err != nil {
				return nil, err
			}
			data := filepath.Join(dir, "data-"+strconv.Itoa(port))
			if err := os.MkdirAll(data, 0o700); err != nil {
				return nil, err
			}
			ports := make([]int, 7)
			for i := range ports {
				pp, err := freePort()
				if err != nil {
					return nil, err
				}
				ports[i] = pp
			}
			return []string{"server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
				"-master.port=" + strconv.Itoa(ports[0]), "-master.port.grpc=" + strconv.Itoa(ports[1]),
				"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
				"-volume.port=" + strconv.Itoa(ports[2]), "-volume.port.grpc=" + strconv.Itoa(ports[3]), "-volume.max=16",
				"-filer", "-filer.port=" + strconv.Itoa(ports[4]), "-filer.port.grpc=" + strconv.Itoa(ports[5]),
				"-filer.localSocket=" + filepath.Join(data, "filer.sock"),
				"-s3", "-s3.port=" + strconv.Itoa(port), "-s3.port.grpc=" + strconv.Itoa(ports[6]),
				"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + conf,
				"-s3.localSocket=" + filepath.Join(data, "s3.sock")}, nil
		},
		ready: func(port int) error { return s3Ready(port, s) },
	})
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(s3port)
	s.URL = fmt.Sprintf("s3://%s/backups?endpoint=%s&insecure=1", s.Bucket, s.Endpoint)
	s.Stop = p.stop
	return s
}

// s3Ready creates the bucket (which needs master, volume, filer and
// gateway up) and writes and reads an object.
func s3Ready(port int, s S3Server) error {
	cl, err := minio.New("127.0.0.1:"+strconv.Itoa(port), &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""),
		BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if ok, err := cl.BucketExists(ctx, s.Bucket); err != nil {
		return err
	} else if !ok {
		if err := cl.MakeBucket(ctx, s.Bucket, minio.MakeBucketOptions{}); err != nil {
			return err
		}
	}
	_, err = cl.PutObject(ctx, s.Bucket, "ready", emptyReader{}, 0, minio.PutObjectOptions{})
	return err
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, eof }

var eof = io.EOF
