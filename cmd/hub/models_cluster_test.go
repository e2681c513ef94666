package main

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/llmtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestModelsOnEveryHub: on a three-hub cluster with a regional Redis, the
// registry written through one hub routes on every hub (each opens the
// provider key sealed with the cluster secret), every hub's live figures
// show in any hub's registry, and a daily budget spent through one hub
// refuses on another.
func TestModelsOnEveryHub(t *testing.T) {
	redis := testenv.Redis(t)
	hubs, token := startCluster(t, clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Minute, extra: []string{"--redis", redis}})
	cloud := llmtest.Start(t, llmtest.OpenAI, llmtest.WithKey("sk-cluster-key-1234567890"))
	must := func(h *hubProc, method, path string, body any, want int) []byte {
		t.Helper()
		code, b, _, err := h.do(method, path, token, body)
		if err != nil || code != want {
			t.Fatalf("%s %s on %s = %d %s %v, want %d", method, path, h.id, code, b, err, want)
		}
		return b
	}
	must(hubs[1], "PUT", "/api/models/providers/cloud", map[string]any{"kind": "openai", "base_url": cloud.URL, "api_key": "sk-cluster-key-1234567890"}, 200)
	must(hubs[2], "POST", "/api/models", map[string]any{"name": "gpt", "version": "v1", "provider": "cloud", "upstream": "gpt-4o-mini", "input_price": 1000, "output_price": 1000}, 201)
	must(hubs[0], "PUT", "/api/routes/llm/shared", map[string]any{"policy": "fixed", "candidates": []string{"gpt"}}, 200)
	chat := map[string]any{"model": "shared", "messages": []map[string]string{{"role": "user", "content": "hello from every hub"}}}
	for _, h := range hubs {
		testenv.WaitFor(t, 10*time.Second, "the route on "+h.id, func() error {
			code, b, _, err := h.do("POST", "/v1/chat/completions", token, chat)
			if err != nil || code != 200 {
				return fmt.Errorf("%d %s %v", code, b, err)
			}
			return nil
		})
	}
	// Every hub publishes its figures; any hub shows them all.
	testenv.WaitFor(t, 20*time.Second, "every hub's figures on "+hubs[2].id, func() error {
		var resp struct {
			Models []struct {
				ID    string         `json:"id"`
				ByHub map[string]any `json:"by_hub"`
			} `json:"models"`
		}
		if err := json.Unmarshal(must(hubs[2], "GET", "/api/models", nil, 200), &resp); err != nil {
			return err
		}
		if len(resp.Models) != 1 || len(resp.Models[0].ByHub) != 3 {
			return fmt.Errorf("by_hub = %v", resp.Models)
		}
		return nil
	})
	// A budget spent through one hub refuses on the others.
	// The day's spend so far counts: set the budget just above it.
	must(hubs[0], "PUT", "/api/models/budgets/route:shared", map[string]any{"daily_usd": 1, "action": "refuse"}, 200)
	var budgets struct {
		Budgets []struct {
			Spent float64 `json:"spent_today_usd"`
		} `json:"budgets"`
	}
	testenv.WaitFor(t, 10*time.Second, "the spend so far", func() error {
		if err := json.Unmarshal(must(hubs[0], "GET", "/api/models/budgets", nil, 200), &budgets); err != nil {
			return err
		}
		if len(budgets.Budgets) != 1 || budgets.Budgets[0].Spent < 0.03 {
			return fmt.Errorf("budgets %+v", budgets.Budgets)
		}
		return nil
	})
	must(hubs[0], "PUT", "/api/models/budgets/route:shared", map[string]any{"daily_usd": budgets.Budgets[0].Spent + 0.001, "action": "refuse"}, 200)
	must(hubs[0], "POST", "/v1/chat/completions", chat, 200) // costs more than the budget
	testenv.WaitFor(t, 20*time.Second, "the budget to refuse on "+hubs[2].id, func() error {
		code, b, _, err := hubs[2].do("POST", "/v1/chat/completions", token, chat)
		if err != nil || code != 429 {
			return fmt.Errorf("hub %s: %d %s %v", hubs[2].id, code, b, err)
		}
		return nil
	})
}
