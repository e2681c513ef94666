package hub_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestRetentionConfig: defaults, env and flags set the retention, and a
// bad value is refused naming its setting.
func TestRetentionConfig(t *testing.T) {
	env := map[string]string{"REDFORGE_FLOWS_VERSIONS_KEEP": "7", "REDFORGE_STATUS_HISTORY_RETENTION": "240h"}
	getenv := func(k string) string { return env[k] }
	cfg, err := hub.ParseConfig(nil, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StatusHistoryRetention != hub.DefaultStatusHistoryRetention || cfg.FlowsVersionsKeep != hub.DefaultFlowsVersionsKeep ||
		cfg.RetentionInterval != hub.DefaultRetentionInterval {
		t.Fatalf("defaults: %+v", cfg.RetentionConfig)
	}
	cfg, err = hub.ParseConfig([]string{"--status-history-retention", "48h"}, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StatusHistoryRetention != 48*time.Hour || cfg.FlowsVersionsKeep != 7 {
		t.Fatalf("env and flags: %+v", cfg.RetentionConfig)
	}
	for _, c := range []struct {
		args  []string
		field string
	}{
		{[]string{"--flows-versions-keep", "-1"}, "flows-versions-keep"},
		{[]string{"--status-history-retention", "1s"}, "status-history-retention"},
		{[]string{"--retention-interval", "1ms"}, "retention-interval"},
	} {
		cfg, err := hub.ParseConfig(c.args, func(string) string { return "" }, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var fe *hub.FieldError
		if err := cfg.Validate(); !errors.As(err, &fe) || !strings.Contains(err.Error(), "--"+c.field) {
			t.Errorf("%v: Validate = %v, want an error naming %s", c.args, err, c.field)
		}
	}
	if _, err := hub.ParseConfig(nil, func(k string) string {
		return map[string]string{"REDFORGE_FLOWS_VERSIONS_KEEP": "many"}[k]
	}, io.Discard); err == nil || !strings.Contains(err.Error(), "REDFORGE_FLOWS_VERSIONS_KEEP") {
		t.Errorf("a bad env value: %v", err)
	}
}

// TestHistoryRetention: the leader prunes status transitions older than
// the retention and flows versions beyond the newest N per instance, and
// keeps the rest.
func TestHistoryRetention(t *testing.T) {
	h := hubtest.Start(t, func(c *hub.Config) {
		c.StatusHistoryRetention, c.FlowsVersionsKeep, c.RetentionInterval = time.Hour, 2, time.Second
	})
	ctx := t.Context()
	old := store.StatusTransition{Time: time.Now().Add(-2 * time.Hour), InstanceID: "ret", RowID: "ret", Status: "starting"}
	recent := store.StatusTransition{Time: time.Now().Add(-time.Minute), InstanceID: "ret", RowID: "ret", Status: "running", PrevStatus: "starting"}
	for _, tr := range []*store.StatusTransition{&old, &recent} {
		if err := h.Store.AppendStatusTransition(ctx, tr); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		v := store.FlowsVersion{InstanceID: "ret", Flows: json.RawMessage(fmt.Sprintf(`[{"id":"n%d"}]`, i)), Source: store.FlowsSourcePut}
		if err := h.Store.AppendFlowsVersion(ctx, &v); err != nil {
			t.Fatal(err)
		}
	}
	testenv.WaitFor(t, 30*time.Second, "history pruned", func() error {
		trs, err := h.Store.ListStatusTransitions(ctx, store.TransitionFilter{InstanceID: "ret"})
		if err != nil {
			return err
		}
		vs, err := h.Store.ListFlowsVersions(ctx, store.FlowsVersionFilter{InstanceID: "ret"})
		if err != nil {
			return err
		}
		var nums []int64
		for _, v := range vs {
			nums = append(nums, v.Version)
		}
		if len(trs) != 1 || trs[0].ID != recent.ID || !slices.Equal(nums, []int64{4, 3}) {
			return fmt.Errorf("transitions %+v, versions %v", trs, nums)
		}
		return nil
	})
}
