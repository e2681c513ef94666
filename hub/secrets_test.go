package hub

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseWith(args []string, env map[string]string) (Config, error) {
	return ParseConfig(args, func(k string) string { return env[k] }, io.Discard)
}

func TestSecretsFromFiles(t *testing.T) {
	dir := t.TempDir()
	secretsDir := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secretsDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeSecret(t, secretsDir, "admin-password", "from-the-secrets-dir\n")
	writeSecret(t, secretsDir, "store", "postgres://redforge:pg-pass@db:5432/redforge\n")
	writeSecret(t, secretsDir, "redis", "redis://:dir-redis@r:6379/0")
	clusterFile := writeSecret(t, dir, "cluster", "cluster-secret-from-a-file-0123\n")

	cfg, err := parseWith([]string{"--secrets-dir", secretsDir, "--redis", "redis://flag:6379/1"}, map[string]string{
		"REDFORGE_CLUSTER_SECRET_FILE": clusterFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"cluster secret from REDFORGE_CLUSTER_SECRET_FILE, newline dropped", cfg.ClusterSecret, "cluster-secret-from-a-file-0123"},
		{"admin password from the secrets dir", cfg.AdminPassword, "from-the-secrets-dir"},
		{"store from the secrets dir", cfg.Store, "postgres://redforge:pg-pass@db:5432/redforge"},
		{"a flag wins over the secrets dir", cfg.Redis, "redis://flag:6379/1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("config from files does not validate: %v", err)
	}

	// The environment wins over the secrets dir (env dir both set the same setting).
	cfg, err = parseWith(nil, map[string]string{"REDFORGE_SECRETS_DIR": secretsDir, "REDFORGE_ADMIN_PASSWORD": "from-the-environment"})
	if err != nil || cfg.AdminPassword != "from-the-environment" || cfg.Store == "" {
		t.Errorf("env over secrets dir: admin %q store %q err %v", cfg.AdminPassword, cfg.Store, err)
	}
}

func TestSecretFileErrorsNameTheSetting(t *testing.T) {
	dir := t.TempDir()
	empty := writeSecret(t, dir, "empty", "\n")
	big := writeSecret(t, dir, "big", strings.Repeat("x", MaxSecretFileBytes+1))
	cases := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"both set", map[string]string{"REDFORGE_CLUSTER_SECRET": "x", "REDFORGE_CLUSTER_SECRET_FILE": empty},
			[]string{"REDFORGE_CLUSTER_SECRET and REDFORGE_CLUSTER_SECRET_FILE are both set"}},
		{"missing file", map[string]string{"REDFORGE_ADMIN_PASSWORD_FILE": filepath.Join(dir, "nope")},
			[]string{"REDFORGE_ADMIN_PASSWORD", "REDFORGE_ADMIN_PASSWORD_FILE", "no such file"}},
		{"empty file", map[string]string{"REDFORGE_STORE_FILE": empty}, []string{"REDFORGE_STORE", "is empty"}},
		{"too large", map[string]string{"REDFORGE_REDIS_FILE": big}, []string{"REDFORGE_REDIS", "larger than"}},
		{"a directory", map[string]string{"REDFORGE_CLUSTER_SECRET_FILE": dir}, []string{"REDFORGE_CLUSTER_SECRET", "not a regular file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := parseWith(nil, c.env)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}
