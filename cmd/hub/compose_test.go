package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"

	"github.com/redforge/controltower/hub"
)

// TestComposeFile checks docker-compose.yml without Docker (docker-compose
// config is not available here): it parses as YAML with anchors and
// merges; it has three hubs in three regions, Postgres, Redis, Mosquitto,
// Prometheus, Grafana and an edge; built images use Dockerfiles that
// exist; mounted files exist; and each hub's environment, with ${…}
// defaults filled in, is a valid hub configuration that joins an existing
// hub or bootstraps.
func TestComposeFile(t *testing.T) {
	root := filepath.Join("..", "..")
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Build       map[string]string `yaml:"build"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
			Secrets     []string          `yaml:"secrets"`
			Profiles    []string          `yaml:"profiles"`
		} `yaml:"services"`
		Secrets map[string]struct {
			Environment string `yaml:"environment"`
			File        string `yaml:"file"`
		} `yaml:"secrets"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, want := range []string{"postgres", "redis", "mosquitto", "hub-us", "hub-eu", "hub-apac", "prometheus", "grafana", "edge"} {
		if _, ok := doc.Services[want]; !ok {
			t.Errorf("no service %s", want)
		}
	}
	vars := regexp.MustCompile(`\$\{([A-Z_]+)(?::?-([^}]*)|:\?[^}]*)?\}`)
	fill := func(v string) string {
		return vars.ReplaceAllStringFunc(v, func(m string) string {
			sub := vars.FindStringSubmatch(m)
			if strings.Contains(m, ":?") {
				return "compose-test-secret-0123456789" // a required secret
			}
			return sub[2]
		})
	}
	regions, joins := map[string]bool{}, 0
	for name, svc := range doc.Services {
		if df := svc.Build["dockerfile"]; df != "" {
			if _, err := os.Stat(filepath.Join(root, df)); err != nil {
				t.Errorf("%s: dockerfile: %v", name, err)
			}
		}
		for _, v := range svc.Volumes {
			if src, _, ok := strings.Cut(v, ":"); ok && strings.HasPrefix(src, "./") {
				if _, err := os.Stat(filepath.Join(root, src)); err != nil {
					t.Errorf("%s: mounted file: %v", name, err)
				}
			}
		}
		if !strings.HasPrefix(name, "hub-") {
			continue
		}
		env := map[string]string{}
		for k, v := range svc.Environment {
			env[k] = fill(v)
		}
		// Compose secrets are files in /run/secrets, named as the secret:
		// here, files in a temp dir with test values.
		if dir := env["REDFORGE_SECRETS_DIR"]; dir != "" {
			if dir != "/run/secrets" {
				t.Errorf("%s: REDFORGE_SECRETS_DIR %q, want /run/secrets where Compose mounts secrets", name, dir)
			}
			env["REDFORGE_SECRETS_DIR"] = t.TempDir()
			for _, sec := range svc.Secrets {
				if _, ok := doc.Secrets[sec]; !ok {
					t.Errorf("%s: secret %s is not declared", name, sec)
				}
				if err := os.WriteFile(filepath.Join(env["REDFORGE_SECRETS_DIR"], sec), []byte("compose-test-secret-0123456789\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		cfg, err := hub.ParseConfig(nil, func(k string) string { return env[k] }, os.Stderr)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: environment is not a valid hub config: %v", name, err)
		}
		regions[cfg.Region] = true
		if cfg.Join != "" {
			joins++
			target := strings.TrimSuffix(strings.TrimPrefix(cfg.Join, "http://"), ":3000")
			if _, ok := doc.Services[target]; !ok || target == name {
				t.Errorf("%s joins %s, which is not another service", name, cfg.Join)
			}
		}
		if cfg.ClusterSecret == "" || cfg.NodeID != name {
			t.Errorf("%s: secret set %v, node id %q", name, cfg.ClusterSecret != "", cfg.NodeID)
		}
	}
	// Profile ha: the hubs' Redis URL through the three Sentinels of the
	// profile is a valid hub configuration, and names services of it.
	const sentinelURL = "redis-sentinel://:pw@redis-sentinel-1:26379,redis-sentinel-2:26379,redis-sentinel-3:26379/mymaster/0"
	if !strings.Contains(string(raw), strings.Replace(sentinelURL, ":pw@", ":${REDIS_HA_PASSWORD}@", 1)) {
		t.Errorf("the ha profile's comment does not give the hubs' REDFORGE_REDIS as %s", sentinelURL)
	}
	cfg := hub.DefaultConfig()
	cfg.Redis = sentinelURL
	if err := cfg.Validate(); err != nil {
		t.Errorf("ha profile: %v", err)
	}
	for _, name := range []string{"redis-ha-master", "redis-ha-replica-1", "redis-ha-replica-2", "redis-sentinel-1", "redis-sentinel-2", "redis-sentinel-3"} {
		if svc, ok := doc.Services[name]; !ok || len(svc.Profiles) != 1 || svc.Profiles[0] != "ha" {
			t.Errorf("no service %s in profile ha", name)
		}
	}
	if len(regions) != 3 || joins != 2 {
		t.Errorf("hubs in regions %v with %d joining, want 3 regions, 1 bootstrap + 2 joins", regions, joins)
	}
}
