package hub_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/regions"
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

// TestRegionStoreIsReadReplica: without --store-replicas, the store of
// the hub's region in the topology (when it is not --store itself) is
// where stale reads go; --store-replicas wins; another region's store is
// not used; a region store that is not postgres:// (or without a
// PostgreSQL --store) is refused naming the topology and the region, with
// no password printed.
func TestRegionStoreIsReadReplica(t *testing.T) {
	topo := func(us, eu string) *regions.Topology {
		return &regions.Topology{Regions: []regions.Region{{Name: "us", Store: us}, {Name: "eu", Store: eu}},
			Hubs: []regions.Hub{{ID: "a", Region: "us", API: "http://a:3000"}, {ID: "b", Region: "eu", API: "http://b:3000"}}}
	}
	cfg := hub.DefaultConfig()
	cfg.Store, cfg.Region = "postgres://u:pw@primary/db", "eu"
	cfg.Topology = topo("postgres://u:pw@replica-us/db", "postgres://u:pw@replica-eu/db")
	if got := strings.Join(cfg.ReadReplicas(), " "); got != "postgres://u:pw@replica-eu/db" {
		t.Fatalf("eu hub reads from %q, want its region's store", got)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	cfg.StoreReplicas = "postgres://u:pw@flag/db"
	if got := strings.Join(cfg.ReadReplicas(), " "); got != "postgres://u:pw@flag/db" {
		t.Fatalf("--store-replicas should win: %q", got)
	}
	cfg.StoreReplicas = ""
	cfg.Topology = topo("postgres://u:pw@replica-us/db", cfg.Store)
	if got := cfg.ReadReplicas(); len(got) != 0 {
		t.Fatalf("a region store that is --store itself is no replica: %q", got)
	}
	cfg.Topology = topo("", "")
	if got := cfg.ReadReplicas(); len(got) != 0 {
		t.Fatalf("no region store: %q", got)
	}
	cfg.Topology = topo("", "mysql://u:s3cret@r/db")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), `topology: region "eu": store`) ||
		!strings.Contains(err.Error(), "not a postgres:// URL") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a region store that is not postgres://: %v", err)
	}
	cfg.Store = t.TempDir() + "/hub.db"
	cfg.Topology = topo("", "postgres://u:s3cret@replica-eu/db")
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "needs --store postgres://") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a region replica without a PostgreSQL store: %v", err)
	}
}
