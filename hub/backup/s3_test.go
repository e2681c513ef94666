package backup

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// TestS3Destination runs the destination contract against a real
// S3-compatible server (SeaweedFS): put, list newest first, get, prune
// (delete), a missing archive, and the raw keys PITR uses.
func TestS3Destination(t *testing.T) {
	ctx := context.Background()
	s3 := testenv.S3(t)
	env := s3.Env()
	dest, err := ParseDestination(s3.URL, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ParseDestination("s3://key:secret@bucket/x?endpoint=h:1", func(k string) string { return env[k] }); err == nil {
		t.Fatal("credentials in the URL were accepted")
	}
	f := newFixture(t)
	now := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	svc := f.service(t, dest, func(c *Config) {
		c.Now = func() time.Time { return now }
		c.Retention = Retention{Daily: 1}
	})
	var names []string
	for i := 0; i < 3; i++ {
		m, err := svc.Create(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, m.ID)
		now = now.Add(24 * time.Hour)
	}
	objs, err := svc.List(ctx)
	if err != nil || len(objs) != 3 || objs[0].Name != names[2] || objs[0].Size == 0 {
		t.Fatalf("list: %+v %v", objs, err)
	}
	rc, err := dest.Get(ctx, names[1])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, rc, target(t, "k1")); err != nil {
		t.Fatalf("restore from S3: %v", err)
	}
	rc.Close()
	keep, drop, err := svc.Prune(ctx, false)
	if err != nil || len(keep) != 1 || len(drop) != 2 || keep[0].Name != names[2] {
		t.Fatalf("prune: keep %+v drop %+v %v", keep, drop, err)
	}
	if objs, _ := svc.List(ctx); len(objs) != 1 {
		t.Fatalf("after prune: %+v", objs)
	}
	if _, err := dest.Get(ctx, names[0]); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get of a pruned archive: %v", err)
	}

	objsKeys, err := ObjectsOf(dest)
	if err != nil {
		t.Fatal(err)
	}
	seg := filepath.Join(t.TempDir(), "000000010000000000000001")
	if err := os.WriteFile(seg, []byte("wal segment"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WALPush(ctx, objsKeys, seg, "000000010000000000000001"); err != nil {
		t.Fatal(err)
	}
	if err := WALPush(ctx, objsKeys, seg, "000000010000000000000001"); err != nil {
		t.Fatalf("pushing the same segment again: %v", err)
	}
	os.WriteFile(seg, []byte("other content"), 0o600)
	if err := WALPush(ctx, objsKeys, seg, "000000010000000000000001"); err == nil {
		t.Fatal("a segment archived with other content was overwritten")
	}
	out := filepath.Join(t.TempDir(), "fetched")
	if err := WALFetch(ctx, objsKeys, "000000010000000000000001", out); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(out); !bytes.Equal(b, []byte("wal segment")) {
		t.Fatalf("fetched %q", b)
	}
	if err := WALFetch(ctx, objsKeys, "000000010000000000000009", out); !errors.Is(err, ErrNotFound) {
		t.Fatalf("fetch of a missing segment: %v", err)
	}
	_ = io.EOF
}
