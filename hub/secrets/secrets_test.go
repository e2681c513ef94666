package secrets

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	s, err := FromClusterSecret("a-cluster-secret-of-enough-length")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("credentials/i-1/admin", "hunter2-but-longer")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "hunter2") || !IsSealed(sealed) {
		t.Fatalf("sealed value shows the plaintext or lacks the prefix: %q", sealed)
	}
	if got, err := s.Open("credentials/i-1/admin", sealed); err != nil || got != "hunter2-but-longer" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if _, err := s.Open("credentials/i-2/admin", sealed); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("opened with another context: %v", err)
	}
	other, _ := FromClusterSecret("another-cluster-secret-of-length")
	if _, err := other.Open("credentials/i-1/admin", sealed); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("opened with another key: %v", err)
	}
	same, _ := FromClusterSecret("a-cluster-secret-of-enough-length")
	if got, err := same.Open("credentials/i-1/admin", sealed); err != nil || got != "hunter2-but-longer" {
		t.Fatalf("another hub with the same cluster secret: %q, %v", got, err)
	}
	flipped := sealed[:len(sealed)-2] + "AA"
	if _, err := s.Open("credentials/i-1/admin", flipped); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("altered value opened: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	a, err := FromKeyFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode: %v, %v", st, err)
	}
	b, err := FromKeyFile(dir)
	if err != nil || a.KeyID() != b.KeyID() {
		t.Fatalf("reopened key differs: %v", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o644)
	if _, err := FromKeyFile(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("a world-readable key file was accepted: %v", err)
	}
}
