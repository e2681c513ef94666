package consoletest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/redforge/controltower/console"
	"github.com/redforge/controltower/hub/models"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/llmtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestModelsPage prepares the model marketplace on a real hub (test
// providers, versions side by side, routes, a budget, gateway traffic from
// an instance token, a finished benchmark) and drives the Models page in
// the browser (console/e2e/models.mjs) as ADMIN and VIEWER, at desktop and
// phone width. Screenshots go to artifacts/screenshots/.
func TestModelsPage(t *testing.T) {
	if !console.Built() {
		t.Fatal("the console is not built into this binary: run `make console` (make test does)")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "console")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core")); err != nil {
		t.Fatal("playwright-core is not installed: run `make console` (npm ci in console/)")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatal("no " + chromium + ": run `make test-env`")
	}
	h := hubtest.Start(t)
	h.CreateUser(t, "victor", "VIEWER")
	const key = "sk-console-test-key-5566778899"
	answers := map[string]string{}
	for _, q := range models.SampleDataset().Queries {
		answers[q.Prompt] = q.Expected
	}
	local := llmtest.Start(t, llmtest.Ollama, llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.1, Latency: 3 * time.Millisecond}))
	cloud := llmtest.Start(t, llmtest.OpenAI, llmtest.WithKey(key), llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.5, Latency: 8 * time.Millisecond}))
	local.SetAnswers(answers)
	cloud.SetAnswers(answers)
	h.JSON(t, "PUT", "/api/models/providers/local", map[string]any{"kind": "ollama", "base_url": local.URL}, 200, nil)
	h.JSON(t, "PUT", "/api/models/providers/cloud", map[string]any{"kind": "openai", "base_url": cloud.URL, "api_key": key}, 200, nil)
	for _, m := range []map[string]any{
		{"name": "llama3.2", "version": "v1", "provider": "local", "upstream": "llama3.2:3b", "context_length": 8192},
		{"name": "llama3.2", "version": "v2", "provider": "local", "upstream": "llama3.2:3b-q8", "current": true},
		{"name": "gpt", "version": "v1", "provider": "cloud", "upstream": "gpt-4o-mini", "input_price": 0.15, "output_price": 0.6},
	} {
		h.JSON(t, "POST", "/api/models", m, 201, nil)
	}
	h.JSON(t, "PUT", "/api/routes/llm/default", map[string]any{"policy": "cheapest_sla", "candidates": []string{"gpt:v1", "llama3.2"}, "max_p95_ms": 500}, 200, nil)
	h.JSON(t, "PUT", "/api/routes/llm/critical-path", map[string]any{"policy": "fixed", "candidates": []string{"gpt:v1", "llama3.2:v1"}, "attempt_timeout_ms": 2000, "deadline_ms": 5000}, 200, nil)
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "agents", "desired_state": "stopped"}, 201, &inst)
	h.JSON(t, "PUT", "/api/models/budgets/instance:agents", map[string]any{"daily_usd": 0.5, "action": "downgrade", "downgrade_to": "llama3.2"}, 200, nil)
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/tokens", map[string]any{"name": "agents-llm", "role": "VIEWER", "scope": "instance", "instance_id": inst.ID}, 201, &tok)
	for i := range 30 {
		model := []string{"default", "gpt:v1", "llama3.2:v1"}[i%3]
		flow := []string{"triage", "summarise"}[i%2]
		body := map[string]any{"model": model, "metadata": map[string]string{"flow": flow},
			"messages": []map[string]string{{"role": "user", "content": fmt.Sprintf("question number %d about the fleet", i)}}}
		if code, b := h.Do(t, "POST", "/v1/chat/completions", tok.Token, body); code != 200 {
			t.Fatalf("gateway call = %d %s", code, b)
		}
	}
	var run struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/models/benchmarks", map[string]any{"dataset": "sample", "models": []string{"llama3.2:v1", "gpt"}, "concurrency": 8, "max_p95_ms": 1000}, 202, &run)
	testenv.WaitFor(t, 60*time.Second, "the benchmark to finish", func() error {
		var b struct{ Status string }
		h.JSON(t, "GET", "/api/models/benchmarks/"+run.ID, nil, 200, &b)
		if b.Status != "done" {
			return fmt.Errorf("status %s", b.Status)
		}
		return nil
	})
	testenv.WaitFor(t, 10*time.Second, "usage logged", func() error {
		var u struct{ Count int }
		h.JSON(t, "GET", "/api/models/usage", nil, 200, &u)
		if u.Count == 0 {
			return fmt.Errorf("no usage yet")
		}
		return nil
	})

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", "e2e/models.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"HUB_URL="+h.URL,
		"ADMIN_USER=admin", "ADMIN_PASSWORD="+hubtest.AdminPassword,
		"VIEWER_USER=victor", "VIEWER_PASSWORD=password-of-victor",
		"CHROMIUM="+chromium,
		"SCREENSHOT_DIR="+filepath.Join(root, "artifacts", "screenshots"),
		"PROVIDER_KEY="+key,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("Models page browser test failed (%v):\n%s", err, out)
	}
	t.Logf("Models page browser test:\n%s", out)
}
