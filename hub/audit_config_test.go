package hub_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub"
)

func TestAuditConfig(t *testing.T) {
	none := func(string) string { return "" }
	cfg, err := hub.ParseConfig(nil, none, io.Discard)
	if err != nil || cfg.AuditMaxBatch != 0 {
		t.Fatalf("default: %d, %v; want 0 (the audit package's default)", cfg.AuditMaxBatch, err)
	}
	env := func(k string) string { return map[string]string{"REDFORGE_AUDIT_MAX_BATCH": "8"}[k] }
	if cfg, _ = hub.ParseConfig(nil, env, io.Discard); cfg.AuditMaxBatch != 8 {
		t.Fatalf("from the environment: %d, want 8", cfg.AuditMaxBatch)
	}
	if cfg, _ = hub.ParseConfig([]string{"--audit-max-batch", "1"}, env, io.Discard); cfg.AuditMaxBatch != 1 {
		t.Fatalf("flag over environment: %d, want 1", cfg.AuditMaxBatch)
	}
	for _, args := range [][]string{{"--audit-max-batch", "-1"}, {"--audit-max-batch", "1001"}} {
		cfg, err := hub.ParseConfig(args, none, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var fe *hub.FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--audit-max-batch") {
			t.Errorf("%v: Validate = %v, want an error naming --audit-max-batch", args, err)
		}
	}
	if _, err := hub.ParseConfig(nil, func(k string) string {
		return map[string]string{"REDFORGE_AUDIT_MAX_BATCH": "many"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "REDFORGE_AUDIT_MAX_BATCH") {
		t.Errorf("a bad env value: %v", err)
	}
}
