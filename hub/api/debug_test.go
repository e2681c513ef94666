package api

import (
	"slices"
	"strings"
	"testing"
)

// TestRedactArgs: /debug/pprof/cmdline shows no secret given on the
// command line.
func TestRedactArgs(t *testing.T) {
	in := []string{
		"redforge-hub",
		"--store", "postgres://hub:pg-secret@db:5432/hub",
		"--redis=redis-sentinel://:redis-secret@s1:26379,s2:26379/mymaster/0",
		"--smtp-password", "smtp-secret",
		"-cluster-secret=cs-secret",
		"--tls-key", "/etc/hub/key.pem",
		"--listen", ":3000",
		"--join", "https://hub-a:3000",
	}
	got := strings.Join(RedactArgs(in), " ")
	for _, secret := range []string{"pg-secret", "redis-secret", "smtp-secret", "cs-secret", "key.pem"} {
		if strings.Contains(got, secret) {
			t.Errorf("RedactArgs shows %q: %s", secret, got)
		}
	}
	for _, kept := range []string{"postgres://hub:xxxxx@db:5432/hub", "--listen :3000", "--join https://hub-a:3000", "-cluster-secret=[redacted]", "--smtp-password [redacted]"} {
		if !strings.Contains(got, kept) {
			t.Errorf("RedactArgs lost %q: %s", kept, got)
		}
	}
	if out := RedactArgs([]string{"redforge-hub"}); !slices.Equal(out, []string{"redforge-hub"}) {
		t.Errorf("RedactArgs of no flags = %q", out)
	}
}
