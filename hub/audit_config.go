package hub

import (
	"flag"
	"fmt"
	"strconv"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/store"
)

// AuditConfig tunes the audit log's writes.
type AuditConfig struct {
	// AuditMaxBatch bounds how many concurrent audit records share one
	// store transaction (group commit, audit.Config.MaxBatch): 0 takes
	// audit.DefaultMaxBatch, 1 writes each record in its own transaction.
	AuditMaxBatch int `json:"audit_max_batch"`
}

// auditFlags registers the audit flags and returns what applies them
// (flags over REDFORGE_* env over the file).
func auditFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	const name = "audit-max-batch"
	n := fs.Int(name, 0, fmt.Sprintf("most audit records written in one store transaction when requests record concurrently (group commit); 0 means %d, 1 turns it off (env %s)",
		audit.DefaultMaxBatch, EnvName(name)))
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		if v := getenv(EnvName(name)); v != "" && !set[name] {
			i, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s: %q is not a whole number", EnvName(name), v)
			}
			cfg.AuditMaxBatch = i
		}
		if set[name] {
			cfg.AuditMaxBatch = *n
		}
		return nil
	}
}

// validate reports a bad audit setting through bad.
func (c AuditConfig) validate(bad func(field, format string, a ...any)) {
	if c.AuditMaxBatch < 0 || c.AuditMaxBatch > store.MaxAuditBatch {
		bad("audit-max-batch", "%d is not within 0..%d", c.AuditMaxBatch, store.MaxAuditBatch)
	}
}
