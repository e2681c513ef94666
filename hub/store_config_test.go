package hub_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/store/postgres"
)

// TestStoreHAConfig: --store-retry and --store-replicas come from flags
// and env; replicas without a PostgreSQL store, a replica that is not a
// postgres:// URL and a negative retry are refused naming the setting,
// with no password printed.
func TestStoreHAConfig(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := hub.ParseConfig(nil, none, io.Discard)
	if err != nil || cfg.StoreRetry != postgres.DefaultRetryFor || len(cfg.ReplicaList()) != 0 {
		t.Fatalf("defaults: %+v %v", cfg.StoreHAConfig, err)
	}
	env := map[string]string{"REDFORGE_STORE_REPLICAS": "postgres://r1/db, postgres://r2/db", "REDFORGE_STORE_RETRY": "5s"}
	cfg, err = hub.ParseConfig([]string{"--store", "postgres://h1,h2/db", "--store-retry", "12s"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StoreRetry != 12*time.Second || strings.Join(cfg.ReplicaList(), " ") != "postgres://r1/db postgres://r2/db" {
		t.Fatalf("flags over env: %+v", cfg.StoreHAConfig)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--store-replicas", "postgres://r/db"}, "store-replicas"},
		{[]string{"--store", "postgres://h/db", "--store-replicas", "mysql://u:s3cret@r/db"}, "store-replicas"},
		{[]string{"--store", "postgres://h/db", "--store-retry", "-1s"}, "store-retry"},
	} {
		cfg, err := hub.ParseConfig(append(c.args, "--data-dir", t.TempDir()), none, io.Discard)
		if err == nil {
			err = cfg.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%v: %v, want an error naming %s without the password", c.args, err, c.want)
		}
	}
}
