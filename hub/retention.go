package hub

import (
	"context"
	"flag"
	"fmt"
	"strconv"
	"time"
)

// Defaults of RetentionConfig.
const (
	// DefaultStatusHistoryRetention keeps 90 days of instance status
	// transitions.
	DefaultStatusHistoryRetention = 90 * 24 * time.Hour
	// DefaultFlowsVersionsKeep keeps the 100 newest flows versions of
	// every instance.
	DefaultFlowsVersionsKeep = 100
	// DefaultRetentionInterval is how often the leader prunes.
	DefaultRetentionInterval = time.Hour
)

// RetentionConfig bounds the history the store keeps: instance status
// transitions by age, flows versions by count per instance. The Raft
// leader prunes (the store is shared by every hub of a cluster).
type RetentionConfig struct {
	// StatusHistoryRetention is how long status transitions are kept.
	StatusHistoryRetention time.Duration `json:"status_history_retention"`
	// FlowsVersionsKeep is how many of its newest flows versions each
	// instance keeps (at least 1).
	FlowsVersionsKeep int `json:"flows_versions_keep"`
	// RetentionInterval is how often the leader prunes.
	RetentionInterval time.Duration `json:"retention_interval"`
}

func defaultRetentionConfig() RetentionConfig {
	return RetentionConfig{StatusHistoryRetention: DefaultStatusHistoryRetention,
		FlowsVersionsKeep: DefaultFlowsVersionsKeep, RetentionInterval: DefaultRetentionInterval}
}

// retentionFlags registers the retention flags and returns what applies
// them (flags over REDFORGE_* env over the file).
func retentionFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	def := defaultRetentionConfig()
	durs := map[string]*time.Duration{
		"status-history-retention": fs.Duration("status-history-retention", def.StatusHistoryRetention, "how long instance status transitions are kept (env REDFORGE_STATUS_HISTORY_RETENTION)"),
		"retention-interval":       fs.Duration("retention-interval", def.RetentionInterval, "how often the leader prunes status history and flows versions (env REDFORGE_RETENTION_INTERVAL)"),
	}
	keep := fs.Int("flows-versions-keep", def.FlowsVersionsKeep, "how many of its newest flows versions each instance keeps, at least 1 (env REDFORGE_FLOWS_VERSIONS_KEEP)")
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		c := &cfg.RetentionConfig
		for name, ptr := range map[string]*time.Duration{"status-history-retention": &c.StatusHistoryRetention, "retention-interval": &c.RetentionInterval} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a duration such as 720h", EnvName(name), v)
				}
				*ptr = d
			}
			if set[name] {
				*ptr = *durs[name]
			}
		}
		if v := getenv(EnvName("flows-versions-keep")); v != "" && !set["flows-versions-keep"] {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number", EnvName("flows-versions-keep"), v)
			}
			c.FlowsVersionsKeep = n
		}
		if set["flows-versions-keep"] {
			c.FlowsVersionsKeep = *keep
		}
		return nil
	}
}

// effective is c with each zero field set to its default.
func (c RetentionConfig) effective() RetentionConfig {
	def := defaultRetentionConfig()
	if c.StatusHistoryRetention == 0 {
		c.StatusHistoryRetention = def.StatusHistoryRetention
	}
	if c.FlowsVersionsKeep == 0 {
		c.FlowsVersionsKeep = def.FlowsVersionsKeep
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = def.RetentionInterval
	}
	return c
}

// validate reports each bad retention setting through bad (a zero one
// takes its default).
func (c RetentionConfig) validate(bad func(field, format string, a ...any)) {
	c = c.effective()
	if c.StatusHistoryRetention < time.Minute {
		bad("status-history-retention", "%s is shorter than a minute", c.StatusHistoryRetention)
	}
	if c.FlowsVersionsKeep < 1 {
		bad("flows-versions-keep", "%d: every instance keeps at least its newest version", c.FlowsVersionsKeep)
	}
	if c.RetentionInterval < time.Second {
		bad("retention-interval", "%s is shorter than a second", c.RetentionInterval)
	}
}

// pruneHistory prunes the store's history on the leader every
// RetentionInterval until ctx ends.
func (h *Hub) pruneHistory(ctx context.Context) {
	c := h.Config.RetentionConfig.effective()
	h.every(ctx, c.RetentionInterval, func(ctx context.Context) {
		if !h.Raft.IsLeader() {
			return
		}
		if n, err := h.Store.PruneStatusTransitions(ctx, time.Now().Add(-c.StatusHistoryRetention)); err != nil {
			h.Logger.Warn("prune status history", "error", err)
		} else if n > 0 {
			h.Logger.Info("status history pruned", "deleted", n, "retention", c.StatusHistoryRetention)
		}
		if n, err := h.Store.PruneFlowsVersions(ctx, c.FlowsVersionsKeep); err != nil {
			h.Logger.Warn("prune flows versions", "error", err)
		} else if n > 0 {
			h.Logger.Info("flows versions pruned", "deleted", n, "keep", c.FlowsVersionsKeep)
		}
	})
}
