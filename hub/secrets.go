package hub

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Secrets from files, as Docker and Kubernetes mount them. Every setting
// REDFORGE_X (the admin password, the cluster secret, the store and Redis
// URLs with their passwords, and any setting added later) can also come
// from a file:
//   - REDFORGE_X_FILE names a file holding the value;
//   - --secrets-dir DIR (env REDFORGE_SECRETS_DIR) holds one file per
//     setting, named as the flag: DIR/cluster-secret, DIR/admin-password,
//     DIR/store …
//
// Precedence: a flag, then REDFORGE_X or REDFORGE_X_FILE (both set is an
// error), then the secrets dir, then the config file, then the default.
// One trailing newline is dropped (echo and kubectl create secret add
// one). A value is read once at start; it is never logged.

// MaxSecretFileBytes caps a secret file: a setting is never larger, and a
// wrong path (a log, a device) fails fast.
const MaxSecretFileBytes = 64 << 10

// secretFiles wraps getenv so that each REDFORGE_X also comes from
// REDFORGE_X_FILE or the secrets dir. Problems are kept for err.
type secretFiles struct {
	getenv func(string) string
	dir    string
	errs   []error
	seen   map[string]bool
}

func newSecretFiles(getenv func(string) string, dir string) *secretFiles {
	return &secretFiles{getenv: getenv, dir: dir, seen: map[string]bool{}}
}

// Getenv returns the value of env var key, from the environment, from the
// file REDFORGE_X_FILE names, or from the secrets dir.
func (s *secretFiles) Getenv(key string) string {
	v := s.getenv(key)
	if !strings.HasPrefix(key, "REDFORGE_") || strings.HasSuffix(key, "_FILE") || key == "REDFORGE_SECRETS_DIR" {
		return v
	}
	if path := s.getenv(key + "_FILE"); path != "" {
		if v != "" {
			s.fail(key, fmt.Errorf("%s and %s_FILE are both set: set one", key, key))
			return v
		}
		return s.read(key, key+"_FILE", path)
	}
	if v != "" || s.dir == "" {
		return v
	}
	name := strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(key, "REDFORGE_"), "_", "-"))
	path := filepath.Join(s.dir, name)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return ""
	}
	return s.read(key, "--secrets-dir", path)
}

// read returns the content of the secret file at path, without one
// trailing newline, or "" after recording why it cannot.
func (s *secretFiles) read(key, from, path string) string {
	f, err := os.Open(path)
	if err != nil {
		s.fail(key, fmt.Errorf("%s: %w", from, err))
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		s.fail(key, fmt.Errorf("%s: %s is not a regular file", from, path))
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretFileBytes+1))
	if err != nil {
		s.fail(key, fmt.Errorf("%s: read %s: %w", from, path, err))
		return ""
	}
	if len(b) > MaxSecretFileBytes {
		s.fail(key, fmt.Errorf("%s: %s is larger than %d bytes", from, path, MaxSecretFileBytes))
		return ""
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		s.fail(key, fmt.Errorf("%s: %s is empty", from, path))
	}
	return v
}

func (s *secretFiles) fail(key string, err error) {
	if !s.seen[key] { // a key may be looked up more than once
		s.seen[key] = true
		s.errs = append(s.errs, fmt.Errorf("%s: %w", key, err))
	}
}

// Err returns every problem met, naming the setting.
func (s *secretFiles) Err() error { return errors.Join(s.errs...) }
