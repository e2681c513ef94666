package models

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/llmtest"
	"github.com/redforge/controltower/internal/testenv"
)

// TestProvidersSpeakEachAPI: the one Provider interface over each API:
// chat with usage, a stream piece by piece, embeddings where the API has
// them, token counting, and errors as *ProviderError with status and
// Retry-After.
func TestProvidersSpeakEachAPI(t *testing.T) {
	for _, kind := range []llmtest.Kind{llmtest.Ollama, llmtest.OpenAI, llmtest.Anthropic} {
		t.Run(string(kind), func(t *testing.T) {
			s := llmtest.Start(t, kind, llmtest.WithModels("m"))
			s.SetAnswers(map[string]string{"say four words": "alpha beta gamma delta"})
			p, err := NewProvider(catalog.LLMProvider{ID: "p", Kind: string(kind), BaseURL: s.URL}, s.APIKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			req := ChatRequest{Model: "m", Messages: []Message{{Role: "system", Content: "brief"}, {Role: "user", Content: "say four words"}}}
			res, err := p.Chat(ctx, req)
			if err != nil || res.Content != "alpha beta gamma delta" || res.Usage.OutputTokens != 4 || res.Usage.InputTokens < 3 || res.FinishReason != "stop" {
				t.Fatalf("chat = %+v, %v", res, err)
			}
			st, err := p.Stream(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			var pieces []string
			var usage *Usage
			for {
				c, err := st.Recv()
				if err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("stream: %v", err)
					}
					break
				}
				if c.Content != "" {
					pieces = append(pieces, c.Content)
				}
				if c.Usage != nil {
					usage = c.Usage
				}
			}
			_ = st.Close()
			if strings.Join(pieces, "") != "alpha beta gamma delta" || len(pieces) != 4 || usage == nil || usage.OutputTokens != 4 {
				t.Fatalf("stream pieces %q usage %+v", pieces, usage)
			}
			emb, err := p.Embed(ctx, EmbedRequest{Model: "m", Input: []string{"a b", "c"}})
			if kind == llmtest.Anthropic {
				if !errors.Is(err, ErrUnsupported) {
					t.Fatalf("anthropic embed: %v, want ErrUnsupported", err)
				}
			} else if err != nil || len(emb.Vectors) != 2 || len(emb.Vectors[0]) != llmtest.Dim {
				t.Fatalf("embed = %d vectors, %v", len(emb.Vectors), err)
			}
			if n, err := p.CountTokens(ctx, req); err != nil || n < 3 {
				t.Fatalf("count tokens = %d, %v", n, err)
			}
			s.Set(llmtest.Behavior{RateLimitRate: 1, RetryAfter: time.Second})
			_, err = p.Chat(ctx, req)
			var pe *ProviderError
			if !errors.As(err, &pe) || pe.Status != 429 || !pe.RateLimited() {
				t.Fatalf("rate limited: %v", err)
			}
			if kind != llmtest.Ollama && pe.RetryAfter != time.Second {
				t.Fatalf("Retry-After = %s", pe.RetryAfter)
			}
			s.Set(llmtest.Behavior{})
			if _, err := p.Chat(ctx, ChatRequest{Model: "unknown", Messages: req.Messages}); !errors.As(err, &pe) || pe.Status != 404 {
				t.Fatalf("unknown model: %v", err)
			}
		})
	}
}

// TestMaliciousProviderIsBounded: a provider that answers with a body
// that never ends, or a stream that never ends, costs a bounded amount:
// the call fails with ErrTooLarge or at the deadline, and the gateway
// does not hang.
func TestMaliciousProviderIsBounded(t *testing.T) {
	for _, kind := range []llmtest.Kind{llmtest.Ollama, llmtest.OpenAI, llmtest.Anthropic} {
		t.Run(string(kind), func(t *testing.T) {
			s := llmtest.Start(t, kind, llmtest.WithBehavior(llmtest.Behavior{HugeBody: true}))
			p, _ := NewProvider(catalog.LLMProvider{ID: "p", Kind: string(kind), BaseURL: s.URL}, s.APIKey, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			req := chat("hi")
			req.Model = "m"
			_, err := p.Chat(ctx, req)
			if err == nil || ctx.Err() != nil {
				t.Fatalf("huge body: %v (ctx %v)", err, ctx.Err())
			}
			if !errors.Is(err, ErrTooLarge) && !strings.Contains(err.Error(), "too large") {
				t.Fatalf("huge body: %v, want ErrTooLarge", err)
			}
			// An endless stream through the gateway ends at MaxAnswerBytes.
			s.Set(llmtest.Behavior{EndlessStream: true})
			e := newEnv(t)
			e.provider("evil", s)
			e.model("evil", "evil", "m", 0, 0)
			var got int
			start := time.Now()
			_, err = e.g.Stream(ctx, Call{Model: "evil", Chat: chat("hi")}, func(_ catalog.Model, c Chunk) error {
				got += len(c.Content)
				return nil
			})
			if !errors.Is(err, ErrTooLarge) || got > MaxAnswerBytes {
				t.Fatalf("endless stream: %v after %d bytes", err, got)
			}
			t.Logf("endless stream cut after %d bytes in %s", got, time.Since(start))
		})
	}
}

// TestCheapestWithinSLA: the cheap local model serves normal traffic and
// the fast one critical traffic; when the local model's p95 crosses the
// bound, normal traffic moves within one window, and moves back within
// one window of its recovery.
func TestCheapestWithinSLA(t *testing.T) {
	e := newEnv(t)
	local := llmtest.Start(t, llmtest.Ollama, llmtest.WithBehavior(llmtest.Behavior{Latency: 20 * time.Millisecond}))
	fast := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{Latency: time.Millisecond}))
	e.provider("local", local)
	e.provider("cloud", fast)
	e.model("llama", "local", "llama3.2", 0, 0)
	e.model("gpt", "cloud", "gpt-4o-mini", 0.15, 0.6)
	const window = 1500 * time.Millisecond
	e.route(catalog.LLMRoute{Name: "assist", Policy: PolicyCheapestSLA, Candidates: []string{"gpt", "llama"},
		MaxP95MS: 100, WindowMS: window.Milliseconds(), AttemptTimeoutMS: 5000, DeadlineMS: 10000})
	ctx := context.Background()
	call := func(priority string) string {
		t.Helper()
		res, err := e.g.Chat(ctx, Call{Model: "assist", Hints: Hints{Priority: priority}, Chat: chat("hello")})
		if err != nil {
			t.Fatal(err)
		}
		return res.Model.ID
	}
	// Warm up both with a direct call each, so both have figures.
	for _, m := range []string{"llama", "gpt"} {
		if _, err := e.g.Chat(ctx, Call{Model: m, Chat: chat("warm up")}); err != nil {
			t.Fatal(err)
		}
	}
	if got := call(PriorityNormal); got != "llama:v1" {
		t.Fatalf("normal → %s, want the cheap local llama:v1", got)
	}
	if got := call(PriorityCritical); got != "gpt:v1" {
		t.Fatalf("critical → %s, want the fast gpt:v1", got)
	}
	if got := call(PriorityBatch); got != "llama:v1" {
		t.Fatalf("batch → %s, want llama:v1", got)
	}

	local.Set(llmtest.Behavior{Latency: 250 * time.Millisecond})
	slowSince := time.Now()
	testenv.WaitFor(t, 2*window+5*time.Second, "normal traffic to leave the slow local model", func() error {
		if got := call(PriorityNormal); got != "gpt:v1" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	})
	moved := time.Since(slowSince)
	if moved > window+time.Second {
		t.Fatalf("traffic moved after %s, want within one window (%s)", moved, window)
	}
	local.Set(llmtest.Behavior{Latency: 20 * time.Millisecond})
	recovered := time.Now()
	testenv.WaitFor(t, 2*window+5*time.Second, "normal traffic to come back to the local model", func() error {
		if got := call(PriorityNormal); got != "llama:v1" {
			return fmt.Errorf("still %s", got)
		}
		return nil
	})
	back := time.Since(recovered)
	if back > window+time.Second {
		t.Fatalf("traffic came back after %s, want within one window (%s)", back, window)
	}
	t.Logf("moved away in %s, back in %s (window %s)", moved, back, window)
	testenv.WaitFor(t, 5*time.Second, "every routed call logged with why", func() error {
		ds, err := e.audit.AIDecisions(ctx, store.AIDecisionFilter{Limit: 1000})
		if err != nil {
			return err
		}
		routed := 0
		for _, d := range ds {
			var m DecisionMeta
			if err := json.Unmarshal(d.Metadata, &m); err != nil || m.Why == "" || !m.Gateway {
				return fmt.Errorf("decision %s without a why", d.Metadata)
			}
			if m.Route == "assist" {
				routed++
			}
		}
		if routed < 5 {
			return fmt.Errorf("%d routed decisions", routed)
		}
		return nil
	})
}

// TestFallbackChain: the first candidate times out, answers 500 or 429;
// the second answers, within the deadline; only the answer is billed,
// once, and the decision log names the fallback.
func TestFallbackChain(t *testing.T) {
	for _, tc := range []struct {
		name   string
		bad    llmtest.Behavior
		status int
	}{
		{"timeout", llmtest.Behavior{Hang: true}, 0},
		{"500", llmtest.Behavior{FailRate: 1}, 500},
		{"429", llmtest.Behavior{RateLimitRate: 1}, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			bad := llmtest.Start(t, llmtest.Ollama, llmtest.WithBehavior(tc.bad))
			good := llmtest.Start(t, llmtest.Anthropic)
			e.provider("local", bad)
			e.provider("cloud", good)
			e.model("llama", "local", "llama3.2", 0, 0)
			e.model("claude", "cloud", "claude-haiku", 1, 5)
			const attempt, deadline = 300 * time.Millisecond, 2 * time.Second
			e.route(catalog.LLMRoute{Name: "r", Policy: PolicyFixed, Candidates: []string{"llama", "claude"},
				AttemptTimeoutMS: attempt.Milliseconds(), DeadlineMS: deadline.Milliseconds()})
			start := time.Now()
			res, err := e.g.Chat(context.Background(), Call{Instance: "i-1", Flow: "triage", Model: "r", Chat: chat("hello there")})
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if res.Model.ID != "claude:v1" || len(res.Attempts) != 1 || res.Attempts[0].Status != tc.status {
				t.Fatalf("answered by %s after %+v", res.Model.ID, res.Attempts)
			}
			if took > deadline || (tc.name == "timeout" && (took < attempt || took > attempt+time.Second)) {
				t.Fatalf("took %s (attempt timeout %s, deadline %s)", took, attempt, deadline)
			}
			ds, metas := e.decisions(1)
			if ds[0].Model != "claude:v1" || ds[0].InstanceID != "i-1" || ds[0].FlowName != "triage" || len(metas[0].Fallbacks) != 1 ||
				metas[0].Fallbacks[0].Model != "llama:v1" || metas[0].CostUSD != res.CostUSD || res.CostUSD <= 0 {
				t.Fatalf("decision %+v meta %+v", ds[0], metas[0])
			}
			// Billed once: the day's spend is exactly the answer's cost.
			testenv.WaitFor(t, 5*time.Second, "spend recorded", func() error {
				spent, err := e.g.spend.Today(context.Background(), "instance:i-1")
				if err != nil {
					return err
				}
				if want := float64(int64(res.CostUSD*1e6+0.5)) / 1e6; spent != want {
					return fmt.Errorf("spend %v, want %v", spent, want)
				}
				return nil
			})
			t.Logf("%s: switched and answered in %s", tc.name, took)
		})
	}
}

// TestDeadlineBoundsTheChain: when every candidate hangs, the call ends
// at the overall deadline with a ChainError.
func TestDeadlineBoundsTheChain(t *testing.T) {
	e := newEnv(t)
	a := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{Hang: true}))
	e.provider("a", a)
	e.model("m1", "a", "x", 0, 0)
	e.model("m2", "a", "y", 0, 0)
	e.model("m3", "a", "z", 0, 0)
	e.route(catalog.LLMRoute{Name: "r", Policy: PolicyFixed, Candidates: []string{"m1", "m2", "m3"}, AttemptTimeoutMS: 400, DeadlineMS: 600})
	start := time.Now()
	_, err := e.g.Chat(context.Background(), Call{Model: "r", Chat: chat("hi")})
	took := time.Since(start)
	var ce *ChainError
	if !errors.As(err, &ce) || !ce.Deadline || len(ce.Attempts) != 2 {
		t.Fatalf("err = %v", err)
	}
	if took < 600*time.Millisecond || took > 1500*time.Millisecond {
		t.Fatalf("took %s, want about the 600ms deadline", took)
	}
}

// TestStreamingPassesThrough: a stream reaches the caller piece by piece
// as the provider sends it (not buffered), and a provider that fails
// before its first token is replaced by the next candidate.
func TestStreamingPassesThrough(t *testing.T) {
	e := newEnv(t)
	const delay = 40 * time.Millisecond
	slow := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{TokenDelay: delay}))
	broken := llmtest.Start(t, llmtest.Anthropic, llmtest.WithBehavior(llmtest.Behavior{FailRate: 1}))
	slow.SetAnswers(map[string]string{"count": "one two three four five six"})
	e.provider("slow", slow)
	e.provider("broken", broken)
	e.model("gpt", "slow", "gpt-4o-mini", 1, 1)
	e.model("claude", "broken", "claude", 1, 1)
	e.route(catalog.LLMRoute{Name: "r", Policy: PolicyFixed, Candidates: []string{"claude", "gpt"}})
	var at []time.Duration
	var text string
	start := time.Now()
	res, err := e.g.Stream(context.Background(), Call{Model: "r", Chat: chat("count")}, func(m catalog.Model, c Chunk) error {
		if c.Content != "" {
			at = append(at, time.Since(start))
			text += c.Content
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if text != "one two three four five six" || len(at) != 6 || res.Model.ID != "gpt:v1" || len(res.Attempts) != 1 || res.Usage.OutputTokens != 6 {
		t.Fatalf("streamed %q in %d pieces from %s after %+v, usage %+v", text, len(at), res.Model.ID, res.Attempts, res.Usage)
	}
	if spread := at[5] - at[0]; spread < 4*delay {
		t.Fatalf("pieces arrived within %s of each other: buffered, not passed through (%v)", spread, at)
	}
}

// TestBudget: a spent daily budget refuses, or downgrades to the cheaper
// model, as configured.
func TestBudget(t *testing.T) {
	e := newEnv(t)
	cheap := llmtest.Start(t, llmtest.Ollama)
	dear := llmtest.Start(t, llmtest.OpenAI)
	e.provider("local", cheap)
	e.provider("cloud", dear)
	e.model("llama", "local", "llama3.2", 0.01, 0.01)
	e.model("gpt", "cloud", "gpt-4o", 2000, 8000) // dear enough to spend the budget in one call
	e.route(catalog.LLMRoute{Name: "smart", Policy: PolicyFixed, Candidates: []string{"gpt", "llama"}})
	e.apply(catalog.PutLLMBudget(catalog.LLMBudget{ID: "instance:i-1", DailyUSD: 0.05, Action: BudgetDowngrade}))
	e.apply(catalog.PutLLMBudget(catalog.LLMBudget{ID: "instance:i-2", DailyUSD: 0.05, Action: BudgetRefuse}))
	ctx := context.Background()
	for _, inst := range []string{"i-1", "i-2"} {
		res, err := e.g.Chat(ctx, Call{Instance: inst, Model: "smart", Chat: chat("an expensive question")})
		if err != nil || res.Model.ID != "gpt:v1" || res.CostUSD < 0.05 {
			t.Fatalf("%s first call: %s cost %v, %v", inst, res.Model.ID, res.CostUSD, err)
		}
	}
	testenv.WaitFor(t, 5*time.Second, "instance i-1 downgraded", func() error {
		res, err := e.g.Chat(ctx, Call{Instance: "i-1", Model: "smart", Chat: chat("again")})
		if err != nil {
			return err
		}
		if res.Model.ID != "llama:v1" || !strings.Contains(res.Plan.Why, "budget instance:i-1") {
			return fmt.Errorf("answered by %s: %s", res.Model.ID, res.Plan.Why)
		}
		return nil
	})
	testenv.WaitFor(t, 5*time.Second, "instance i-2 refused", func() error {
		_, err := e.g.Chat(ctx, Call{Instance: "i-2", Model: "smart", Chat: chat("again")})
		var be *BudgetError
		if !errors.As(err, &be) || !errors.Is(err, ErrBudget) || be.ID != "instance:i-2" {
			return fmt.Errorf("err = %v", err)
		}
		return nil
	})
	// Another instance is not affected.
	if res, err := e.g.Chat(ctx, Call{Instance: "i-3", Model: "smart", Chat: chat("hi")}); err != nil || res.Model.ID != "gpt:v1" {
		t.Fatalf("i-3: %s %v", res.Model.ID, err)
	}
}

// TestPlanRefusals: unknown names, a prompt past every candidate's
// context, a max cost nothing meets and the wrong kind are refused with
// errors that say why.
func TestPlanRefusals(t *testing.T) {
	e := newEnv(t)
	s := llmtest.Start(t, llmtest.Ollama)
	e.provider("local", s)
	m := e.model("small", "local", "tiny", 1, 1)
	m.ContextLength = 100
	e.apply(catalog.PutModel(m))
	ctx := context.Background()
	if _, err := e.g.Chat(ctx, Call{Model: "nope", Chat: chat("hi")}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("unknown: %v", err)
	}
	if _, err := e.g.Chat(ctx, Call{Model: "small", Chat: chat(strings.Repeat("word ", 200))}); !errors.Is(err, ErrNoCandidate) || !strings.Contains(err.Error(), "context") {
		t.Fatalf("too long: %v", err)
	}
	if _, err := e.g.Chat(ctx, Call{Model: "small", Hints: Hints{MaxCostUSD: 1e-9}, Chat: chat("hi")}); !errors.Is(err, ErrNoCandidate) || !strings.Contains(err.Error(), "max") {
		t.Fatalf("max cost: %v", err)
	}
	if _, err := e.g.Embed(ctx, Call{Model: "small", Embed: EmbedRequest{Input: []string{"x"}}}); !errors.Is(err, ErrNoCandidate) {
		t.Fatalf("wrong kind: %v", err)
	}
	if _, err := e.g.Chat(ctx, Call{Chat: chat("hi")}); !errors.Is(err, ErrNoModel) {
		t.Fatalf("no default route: %v", err)
	}
}

// TestKeyNeverInErrors: an upstream that echoes the key it was given
// (as OpenAI's 401 does) has it scrubbed before the error goes anywhere.
func TestKeyNeverInErrors(t *testing.T) {
	s := llmtest.Start(t, llmtest.OpenAI)
	const key = "sk-live-secret-key-0123456789"
	p, err := NewProvider(catalog.LLMProvider{ID: "p", Kind: KindOpenAI, BaseURL: s.URL}, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Chat(context.Background(), ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hi"}}})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Status != 401 {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "[REDACTED]") {
		t.Fatalf("error shows the key: %v", err)
	}
}

// TestAllRateLimited: when every candidate answers 429 the call is
// rate-limited too, with the shortest Retry-After of the providers.
func TestAllRateLimited(t *testing.T) {
	e := newEnv(t)
	a := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{RateLimitRate: 1, RetryAfter: 3 * time.Second}))
	b := llmtest.Start(t, llmtest.Anthropic, llmtest.WithBehavior(llmtest.Behavior{RateLimitRate: 1, RetryAfter: 2 * time.Second}))
	e.provider("a", a)
	e.provider("b", b)
	e.model("ma", "a", "x", 0, 0)
	e.model("mb", "b", "y", 0, 0)
	e.route(catalog.LLMRoute{Name: "r", Policy: PolicyFixed, Candidates: []string{"ma", "mb"}})
	_, err := e.g.Chat(context.Background(), Call{Model: "r", Chat: chat("hi")})
	var ce *ChainError
	if !errors.As(err, &ce) || !ce.RateLimited || ce.RetryAfter != 2*time.Second || len(ce.Attempts) != 2 {
		t.Fatalf("err = %v (%+v)", err, ce)
	}
}
