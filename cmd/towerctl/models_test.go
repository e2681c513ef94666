package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub/models"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/llmtest"
)

// TestTowerctlModels drives the model marketplace from the CLI against a
// real hub and test providers: providers (key from stdin), models with
// versions, rollback, routes, and a benchmark over the sample dataset.
func TestTowerctlModels(t *testing.T) {
	h := hubtest.Start(t)
	session := filepath.Join(t.TempDir(), "session.json")
	env := map[string]string{"REDFORGE_TOKEN": h.AdminToken}
	local := llmtest.Start(t, llmtest.Ollama, llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.1}))
	cloud := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.5}))
	answers := map[string]string{}
	for _, q := range models.SampleDataset().Queries {
		answers[q.Prompt] = q.Expected
	}
	local.SetAnswers(answers)
	cloud.SetAnswers(answers)
	var out bytes.Buffer
	getenv := func(k string) string {
		switch k {
		case "REDFORGE_HUB":
			return h.URL
		case "REDFORGE_SESSION_FILE":
			return session
		}
		return env[k]
	}
	if code := Run(context.Background(), []string{"models", "providers", "set", "cloud", "--kind", "openai", "--base-url", cloud.URL, "--api-key-stdin"},
		strings.NewReader(cloud.APIKey+"\n"), &out, &out, getenv); code != 0 {
		t.Fatalf("providers set = %d\n%s", code, out.String())
	}
	steps := []struct {
		args []string
		want string
	}{
		{[]string{"models", "providers", "set", "local", "--kind", "ollama", "--base-url", local.URL}, "provider local set"},
		{[]string{"models", "providers", "list"}, "set (write-only)"},
		{[]string{"models", "add", "llama3.2:v1", "--provider", "local", "--upstream", "llama3.2:3b"}, "llama3.2:v1 added (current: true)"},
		{[]string{"models", "add", "llama3.2:v2", "--provider", "local", "--upstream", "llama3.2:3b-q8", "--current"}, "current: true"},
		{[]string{"models", "add", "gpt:v1", "--provider", "cloud", "--upstream", "gpt-4o-mini", "--input-price", "0.15", "--output-price", "0.6"}, "gpt:v1 added"},
		{[]string{"models", "show", "llama3.2"}, "llama3.2:v2"},
		{[]string{"models", "rollback", "llama3.2"}, "llama3.2:v2 → llama3.2:v1"},
		{[]string{"models", "list"}, "llama3.2:v1"},
		{[]string{"routes", "llm", "set", "default", "--policy", "cheapest_sla", "--candidates", "gpt,llama3.2", "--max-p95-ms", "500"}, "route default set"},
		{[]string{"routes", "llm", "show"}, "gpt → llama3.2"},
		{[]string{"models", "bench", "sample", "--models", "llama3.2,gpt", "--concurrency", "8", "--max-p95-ms", "1000"}, "best quality: llama3.2:v1"},
	}
	for _, s := range steps {
		code, got := run(t, h, session, env, s.args...)
		if code != 0 || !strings.Contains(got, s.want) {
			t.Fatalf("towerctl %s = %d, want %q in:\n%s", strings.Join(s.args, " "), code, s.want, got)
		}
		if s.args[1] == "bench" {
			if !strings.Contains(got, "90.0%") || !strings.Contains(got, "50.0%") {
				t.Fatalf("bench accuracies:\n%s", got)
			}
			t.Logf("towerctl models bench:\n%s", got)
		}
	}
	if code, got := run(t, h, session, env, "models", "add", "nover", "--provider", "local", "--upstream", "x"); code != 1 || !strings.Contains(got, "NAME:VERSION") {
		t.Fatalf("add without a version = %d\n%s", code, got)
	}
	if code, got := run(t, h, session, env, "routes", "llm", "set", "bad", "--policy", "fixed", "--candidates", "ghost"); code != 1 || !strings.Contains(got, "candidates[0]") {
		t.Fatalf("route with an unknown model = %d\n%s", code, got)
	}
}
