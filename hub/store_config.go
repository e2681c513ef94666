package hub

import (
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/store/postgres"
)

// StoreHAConfig is how the hub rides through a failover of its PostgreSQL
// primary and where it sends the reads that may be stale.
type StoreHAConfig struct {
	// StoreRetry is how long a write is retried through a failover of the
	// primary (postgres.DB.RetryFor); 0 never retries. While an outage is
	// younger than this, /api/health shows the store degraded, not failed.
	StoreRetry time.Duration `json:"store_retry"`
	// StoreReplicas are postgres:// URLs of read replicas (comma-separated
	// on the command line): the reads that may be stale (history,
	// metrics, audit listing, fleet analytics) go to the first healthy
	// one unless the request asks ?consistent=1.
	StoreReplicas string `json:"store_replicas"`
}

func defaultStoreHAConfig() StoreHAConfig {
	return StoreHAConfig{StoreRetry: postgres.DefaultRetryFor}
}

// ReplicaList returns the replica URLs of StoreReplicas.
func (c StoreHAConfig) ReplicaList() []string { return splitList(c.StoreReplicas) }

// ReadReplicas returns where the reads that may be stale go:
// --store-replicas, else the store of this hub's region in the topology
// when that is not the hub's own --store (the region's read replica of the
// shared PostgreSQL, comma-separated for several).
func (c Config) ReadReplicas() []string {
	if reps := c.ReplicaList(); len(reps) > 0 {
		return reps
	}
	if c.Topology != nil {
		if r, ok := c.Topology.Region(c.Region); ok && r.Store != "" && r.Store != c.Store {
			return splitList(r.Store)
		}
	}
	return nil
}

// storeFlags registers --store-retry and --store-replicas and returns what
// applies them (flags over REDFORGE_* env over the file).
func storeFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	def := defaultStoreHAConfig()
	retry := fs.Duration("store-retry", def.StoreRetry, "how long a PostgreSQL write is retried through a failover of the primary before it fails; 0 never retries (env REDFORGE_STORE_RETRY)")
	replicas := fs.String("store-replicas", "", "comma-separated postgres:// URLs of read replicas for reads that may be stale (history, metrics, audit listing, analytics); ?consistent=1 reads the primary (env REDFORGE_STORE_REPLICAS)")
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		c := &cfg.StoreHAConfig
		if v := getenv(EnvName("store-retry")); v != "" && !set["store-retry"] {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a duration such as 30s", EnvName("store-retry"), v)
			}
			c.StoreRetry = d
		}
		if set["store-retry"] {
			c.StoreRetry = *retry
		}
		if v := getenv(EnvName("store-replicas")); v != "" && !set["store-replicas"] {
			c.StoreReplicas = v
		}
		if set["store-replicas"] {
			c.StoreReplicas = *replicas
		}
		return nil
	}
}

// validateStoreHA checks the retry and the read replicas, from --store-replicas
// or else (field names "topology" then) the store of this hub's region.
func (c Config) validateStoreHA(bad func(field, format string, args ...any)) {
	if c.StoreRetry < 0 {
		bad("store-retry", "must not be negative")
	}
	reps, field := c.ReplicaList(), "store-replicas"
	if len(reps) == 0 {
		if reps = c.ReadReplicas(); len(reps) == 0 {
			return
		}
		field = fmt.Sprintf("topology: region %q: store (its read replica)", c.Region)
	}
	if kind, _ := StoreKind(c.Store); kind != "postgres" {
		bad(field, "needs --store postgres://…")
	}
	for _, r := range reps {
		if !strings.HasPrefix(r, "postgres://") && !strings.HasPrefix(r, "postgresql://") {
			bad(field, "%q is not a postgres:// URL", Redact(r))
		}
	}
}

// splitList returns the trimmed, non-empty items of a comma-separated list.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// storeObserver logs the store's write outages and exports them.
type storeObserver struct{ h *Hub }

func (o storeObserver) OutageStarted(cause error) {
	o.h.Metrics.Store.InOutage.Set(1)
	o.h.Logger.Warn("store write outage: writes are held and retried until a primary answers",
		"error", cause.Error(), "retry_for", o.h.Config.StoreRetry)
}

func (o storeObserver) OutageEnded(took time.Duration, cause error) {
	o.h.Metrics.Store.InOutage.Set(0)
	o.h.Metrics.Store.Outages.Inc()
	o.h.Metrics.Store.OutageSeconds.Observe(took.Seconds())
	o.h.Logger.Warn("store write outage over", "outage", took.Round(time.Millisecond), "cause", cause.Error())
}

// replicaLag exports a read replica's measured lag (-1: unreachable).
func (o storeObserver) replicaLag(replica string, lag time.Duration) {
	v := lag.Seconds()
	if lag < 0 {
		v = -1
	}
	o.h.Metrics.Store.ReplicaLag.WithLabelValues(replica).Set(v)
}
