package main

import (
	"io"
	"os/exec"
	"strings"
	"testing"

	"github.com/redforge/controltower/internal/testenv"
)

// TestMetricsPassPromtool: the edge's /metrics, after a record went
// through, passes `promtool check metrics` (Prometheus's linter, from
// Debian's prometheus package).
func TestMetricsPassPromtool(t *testing.T) {
	m := MustRunMain(t, io.Discard)
	publishQoS1(t, m, "redforge/v1/audit", `{"action":"login"}`)
	_, body := get(t, m, "/metrics")
	cmd := exec.Command(testenv.Promtool(t), "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool check metrics on the edge's /metrics: %v\n%s", err, out)
	}
}
