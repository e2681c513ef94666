package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/store"
)

// Opener opens the sealed API keys of the catalog (hub/secrets.Sealer).
type Opener interface {
	Open(context, sealed string) (string, error)
}

// KeyContext is the sealing context of a provider's API key: a sealed key
// opens only as the key of the provider it was sealed for.
func KeyContext(providerID string) string { return "llm-provider/" + providerID + "/api-key" }

// Config tunes a Gateway.
type Config struct {
	// HubID names this hub in decisions and published figures.
	HubID  string
	Logger *slog.Logger
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Deps are the gateway's collaborators.
type Deps struct {
	Catalog   Catalog
	Secrets   Opener
	KV        KV        // budgets' spend and published figures; nil: budgets are not enforced
	Decisions Decisions // the AI-decision log; nil: not recorded
	Meter     Meter     // nil: not counted
	HTTP      *http.Client
}

// Gateway routes LLM calls to providers. It is safe for concurrent use.
type Gateway struct {
	cfg   Config
	cat   Catalog
	open  Opener
	hc    *http.Client
	log   *slog.Logger
	now   func() time.Time
	stats *Stats
	spend *Spend
	rec   *recorder
	meter Meter
	kv    KV

	mu        sync.Mutex
	providers map[string]cachedProvider
	runCtx    context.Context // set by Run; benchmarks run under it
	benches   int             // benchmarks running on this hub
	bg        sync.WaitGroup
}

type cachedProvider struct {
	index uint64
	p     Provider
}

// New returns a gateway. It does no I/O; Run starts its background work.
func New(cfg Config, deps Deps) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if deps.HTTP == nil {
		deps.HTTP = NewHTTPClient()
	}
	if deps.Meter == nil {
		deps.Meter = noMeter{}
	}
	g := &Gateway{cfg: cfg, cat: deps.Catalog, open: deps.Secrets, hc: deps.HTTP, log: cfg.Logger, now: cfg.Now,
		stats: NewStats(cfg.Now), meter: deps.Meter, kv: deps.KV, providers: map[string]cachedProvider{}}
	if deps.KV != nil {
		g.spend = NewSpend(deps.KV, cfg.Now)
	}
	g.rec = newRecorder(deps.Decisions, g.spend, cfg.Logger)
	return g
}

// Stats returns the gateway's live figures.
func (g *Gateway) Stats() *Stats { return g.stats }

// Spend returns the daily spend tracker (nil without coordination).
func (g *Gateway) Spend() *Spend { return g.spend }

// Run writes decisions and publishes this hub's figures until ctx ends,
// then flushes what is queued.
func (g *Gateway) Run(ctx context.Context) {
	g.mu.Lock()
	g.runCtx = ctx
	g.mu.Unlock()
	defer g.bg.Wait()
	var wg sync.WaitGroup
	wg.Go(func() { g.publish(ctx) })
	g.rec.run(ctx)
	wg.Wait()
}

// provider returns the client of a provider row, built again when the row
// changed.
func (g *Gateway) provider(id string) (Provider, error) {
	row, err := g.cat.LLMProvider(id)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", id, err)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if c, ok := g.providers[id]; ok && c.index == row.ModifyIndex {
		return c.p, nil
	}
	key := ""
	if row.APIKey != "" {
		if g.open == nil {
			return nil, fmt.Errorf("provider %s: no key to open its API key", id)
		}
		if key, err = g.open.Open(KeyContext(id), row.APIKey); err != nil {
			return nil, fmt.Errorf("provider %s: open its API key: %w", id, err)
		}
	}
	p, err := NewProvider(row, key, g.hc)
	if err != nil {
		return nil, err
	}
	g.providers[id] = cachedProvider{index: row.ModifyIndex, p: p}
	return p, nil
}

// Call is one request to the gateway.
type Call struct {
	Instance string // the calling instance (from its token); empty for users
	Flow     string // the calling flow, when the runtime says
	Model    string // a model id, a bare model name or a route name; empty: DefaultRoute
	Hints    Hints
	Chat     ChatRequest // Model is set per attempt
	Embed    EmbedRequest
}

// Attempt is one provider call of a routed call.
type Attempt struct {
	Model      string        `json:"model"`
	Error      string        `json:"error,omitempty"`
	Status     int           `json:"status,omitempty"`
	LatencyMS  float64       `json:"latency_ms"`
	retryAfter time.Duration // the provider's Retry-After, if it sent one
}

// Result is a routed call's outcome.
type Result struct {
	Model    catalog.Model
	Plan     Plan
	Response ChatResponse
	Vectors  [][]float32
	Usage    Usage
	CostUSD  float64
	Latency  time.Duration
	// Attempts are the failed attempts before the one that answered.
	Attempts []Attempt
	Budget   string // the budget that downgraded the call, if any
}

// ChainError is returned when every attempt failed.
type ChainError struct {
	Attempts []Attempt
	Deadline bool // the overall deadline ended the chain
	// RetryAfter is the shortest Retry-After when every attempt was
	// rate-limited; 0 otherwise.
	RetryAfter  time.Duration
	RateLimited bool
}

func (e *ChainError) Error() string {
	parts := make([]string, len(e.Attempts))
	for i, a := range e.Attempts {
		parts[i] = a.Model + ": " + a.Error
	}
	what := "every candidate failed"
	if e.Deadline {
		what = "the deadline passed"
	}
	return what + " (" + strings.Join(parts, "; ") + ")"
}

// BudgetError is returned when a spent budget refuses a call; it wraps
// ErrBudget.
type BudgetError struct {
	ID           string
	Spent, Limit float64
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("budget %s: $%.4f of $%.4f spent today", e.ID, e.Spent, e.Limit)
}

func (e *BudgetError) Unwrap() error { return ErrBudget }

// prepare plans a call and applies its budgets.
func (g *Gateway) prepare(ctx context.Context, c *Call, kind string, promptTokens, maxTokens int64) (Plan, string, error) {
	p, err := g.plan(c.Model, kind, c.Instance, c.Hints, promptTokens, maxTokens)
	if err != nil {
		return p, "", err
	}
	if g.spend == nil {
		return p, "", nil
	}
	v, err := g.checkBudgets(ctx, p.Budgets)
	if err != nil || v == nil {
		return p, "", err
	}
	if v.action != BudgetDowngrade {
		return p, "", &BudgetError{ID: v.id, Spent: v.spent, Limit: v.limit}
	}
	var to catalog.Model
	if v.downgrade != "" {
		m, err := Resolve(g.cat, v.downgrade)
		if err != nil {
			return p, "", fmt.Errorf("budget %s downgrades to %s: %w", v.id, v.downgrade, err)
		}
		to = m
	} else {
		to = p.Attempts[0]
		for _, m := range p.Attempts[1:] {
			if estimate(m, promptTokens, maxTokens) < estimate(to, promptTokens, maxTokens) {
				to = m
			}
		}
	}
	p.Attempts = []catalog.Model{to}
	p.Why = fmt.Sprintf("budget %s spent ($%.4f of $%.4f today): downgraded to %s", v.id, v.spent, v.limit, to.ID)
	return p, v.id, nil
}

// Chat serves a chat completion: plan, then each attempt in turn within
// its timeout and the overall deadline, until one answers. Only the
// answer returned is billed and logged as the call's cost.
func (g *Gateway) Chat(ctx context.Context, c Call) (Result, error) {
	start := g.now()
	prompt := EstimatePrompt(c.Chat.Messages)
	plan, budget, err := g.prepare(ctx, &c, ModelChat, prompt, c.Chat.maxTokens())
	if err != nil {
		return Result{Plan: plan}, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Deadline)
	defer cancel()
	res := Result{Plan: plan, Budget: budget}
	for _, m := range plan.Attempts {
		if ctx.Err() != nil {
			break
		}
		resp, lat, err := g.chatOnce(ctx, plan, m, c.Chat)
		if err != nil {
			res.Attempts = append(res.Attempts, g.failed(m, lat, err))
			continue
		}
		res.Model, res.Response, res.Usage = m, resp, resp.Usage
		res.CostUSD, res.Latency = Price(m, resp.Usage), g.now().Sub(start)
		g.finish(ctx, c, &res, false, "")
		return res, nil
	}
	return res, g.chainFailed(ctx, c, &res, start)
}

func (g *Gateway) chatOnce(ctx context.Context, plan Plan, m catalog.Model, req ChatRequest) (ChatResponse, time.Duration, error) {
	p, err := g.provider(m.Provider)
	if err != nil {
		return ChatResponse{}, 0, err
	}
	actx, cancel := context.WithTimeout(ctx, plan.AttemptTimeout)
	defer cancel()
	req.Model = upstream(m)
	t0 := g.now()
	resp, err := p.Chat(actx, req)
	lat := g.now().Sub(t0)
	g.stats.Observe(m.ID, lat, err == nil, timedOut(actx, err))
	return resp, lat, err
}

func upstream(m catalog.Model) string {
	if m.Upstream != "" {
		return m.Upstream
	}
	return m.Name
}

func timedOut(actx context.Context, err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || actx.Err() != nil)
}

// failed describes a failed attempt and counts it.
func (g *Gateway) failed(m catalog.Model, lat time.Duration, err error) Attempt {
	g.meter.Failure(m.ID)
	a := Attempt{Model: m.ID, Error: err.Error(), LatencyMS: ms(lat)}
	var pe *ProviderError
	if errors.As(err, &pe) {
		a.Status, a.retryAfter = pe.Status, pe.RetryAfter
	}
	g.log.Info("llm attempt failed", "model", m.ID, "error", a.Error, "latency_ms", a.LatencyMS)
	return a
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// chainFailed logs a call no candidate answered and returns its error.
func (g *Gateway) chainFailed(ctx context.Context, c Call, res *Result, start time.Time) error {
	res.Latency = g.now().Sub(start)
	ce := &ChainError{Attempts: res.Attempts, Deadline: ctx.Err() != nil, RateLimited: len(res.Attempts) > 0}
	for _, a := range res.Attempts {
		ce.RateLimited = ce.RateLimited && a.Status == http.StatusTooManyRequests
		if a.retryAfter > 0 && (ce.RetryAfter == 0 || a.retryAfter < ce.RetryAfter) {
			ce.RetryAfter = a.retryAfter
		}
	}
	if !ce.RateLimited {
		ce.RetryAfter = 0
	}
	if len(res.Attempts) == 0 {
		ce.Deadline = true
	}
	g.finish(ctx, c, res, c.Embed.Input != nil, ce.Error())
	return ce
}

// finish counts and logs a routed call (answered or not).
func (g *Gateway) finish(ctx context.Context, c Call, res *Result, embedding bool, failure string) {
	model := res.Model.ID
	if model == "" {
		model = "none"
	} else {
		g.meter.Call(model, res.Usage, res.CostUSD)
	}
	meta := DecisionMeta{Gateway: true, Hub: g.cfg.HubID, Requested: res.Plan.Requested, Route: res.Plan.Route,
		Policy: res.Plan.Policy, Why: res.Plan.Why, Priority: c.Hints.Priority, Skipped: res.Plan.Skipped,
		Fallbacks: res.Attempts, Budget: res.Budget, InputTokens: res.Usage.InputTokens,
		OutputTokens: res.Usage.OutputTokens, CostUSD: res.CostUSD, Embedding: embedding, Error: failure}
	flow := c.Flow
	if flow == "" {
		flow = "unknown"
	}
	d := store.AIDecision{Time: g.now(), InstanceID: clipUTF8(c.Instance, 256), FlowName: clipUTF8(flow, 256), Model: model,
		TokensUsed: res.Usage.InputTokens + res.Usage.OutputTokens, LatencyMS: res.Latency.Milliseconds()}
	if !embedding {
		d.Prompt = promptText(c.Chat.Messages)
		d.Response = clipUTF8(res.Response.Content, maxLoggedResponse)
	}
	var spend []string
	if res.CostUSD > 0 {
		spend = res.Plan.Budgets
	}
	p := pending{d: d, cost: res.CostUSD, spend: spend}
	p.d.Metadata = metaJSON(meta)
	g.rec.add(context.WithoutCancel(ctx), p)
}

// StreamEmit receives a streamed call's pieces: model is the model that
// answers (the same for every piece).
type StreamEmit func(model catalog.Model, c Chunk) error

// Stream serves a streamed chat completion. Until the first piece
// arrives an attempt may fail over to the next candidate (the attempt
// timeout bounds the wait for it); once a piece was emitted the call is
// committed to that model and a failure ends the stream.
func (g *Gateway) Stream(ctx context.Context, c Call, emit StreamEmit) (Result, error) {
	start := g.now()
	prompt := EstimatePrompt(c.Chat.Messages)
	plan, budget, err := g.prepare(ctx, &c, ModelChat, prompt, c.Chat.maxTokens())
	if err != nil {
		return Result{Plan: plan}, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Deadline)
	defer cancel()
	res := Result{Plan: plan, Budget: budget}
	for _, m := range plan.Attempts {
		if ctx.Err() != nil {
			break
		}
		committed, lat, err := g.streamOnce(ctx, plan, m, c.Chat, emit, &res)
		if committed {
			res.Model, res.Latency = m, g.now().Sub(start)
			res.CostUSD = Price(m, res.Usage)
			failure := ""
			if err != nil {
				failure = err.Error()
			}
			g.finish(ctx, c, &res, false, failure)
			return res, err
		}
		res.Attempts = append(res.Attempts, g.failed(m, lat, err))
	}
	return res, g.chainFailed(ctx, c, &res, start)
}

// streamOnce runs one streamed attempt; committed reports whether any
// piece reached the client.
func (g *Gateway) streamOnce(ctx context.Context, plan Plan, m catalog.Model, req ChatRequest, emit StreamEmit, res *Result) (committed bool, lat time.Duration, err error) {
	p, err := g.provider(m.Provider)
	if err != nil {
		return false, 0, err
	}
	req.Model = upstream(m)
	t0 := g.now()
	// The attempt timeout bounds the wait for the first piece only.
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	first := time.AfterFunc(plan.AttemptTimeout, cancel)
	defer first.Stop()
	s, err := p.Stream(actx, req)
	if err != nil {
		lat = g.now().Sub(t0)
		g.stats.Observe(m.ID, lat, false, actx.Err() != nil)
		return false, lat, err
	}
	defer s.Close()
	var answer strings.Builder
	for {
		ch, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			lat = g.now().Sub(t0)
			g.stats.Observe(m.ID, lat, false, actx.Err() != nil)
			if !committed && actx.Err() != nil && ctx.Err() == nil {
				err = &ProviderError{Provider: m.Provider, Message: fmt.Sprintf("no first token within %s", plan.AttemptTimeout), cause: context.DeadlineExceeded}
			}
			return committed, lat, err
		}
		if !committed {
			if !first.Stop() {
				continue // the timer fired: actx is ending, Recv will fail
			}
			committed = true
			g.stats.Observe(m.ID, g.now().Sub(t0), true, false)
		}
		if ch.Usage != nil {
			res.Usage = *ch.Usage
		}
		if answer.Len()+len(ch.Content) > MaxAnswerBytes {
			return true, g.now().Sub(t0), fmt.Errorf("%w: answer passed %d bytes", ErrTooLarge, MaxAnswerBytes)
		}
		answer.WriteString(ch.Content)
		res.Response.Content = answer.String()
		if ch.FinishReason != "" {
			res.Response.FinishReason = ch.FinishReason
		}
		if err := emit(m, ch); err != nil {
			return true, g.now().Sub(t0), err
		}
	}
	lat = g.now().Sub(t0)
	if !committed {
		g.stats.Observe(m.ID, lat, true, false)
		committed = true // an empty answer is still an answer
		if err := emit(m, Chunk{FinishReason: "stop"}); err != nil {
			return true, lat, err
		}
	}
	if res.Usage.OutputTokens == 0 && answer.Len() > 0 {
		res.Usage.OutputTokens = EstimateTokens(answer.String()) // a server that sent no usage
	}
	res.Response.Usage = res.Usage
	return true, lat, nil
}

// Embed serves an embeddings call through the same routing.
func (g *Gateway) Embed(ctx context.Context, c Call) (Result, error) {
	start := g.now()
	var prompt int64
	for _, s := range c.Embed.Input {
		prompt += EstimateTokens(s)
	}
	plan, budget, err := g.prepare(ctx, &c, ModelEmbedding, prompt, 0)
	if err != nil {
		return Result{Plan: plan}, err
	}
	ctx, cancel := context.WithTimeout(ctx, plan.Deadline)
	defer cancel()
	res := Result{Plan: plan, Budget: budget}
	for _, m := range plan.Attempts {
		if ctx.Err() != nil {
			break
		}
		p, err := g.provider(m.Provider)
		if err != nil {
			res.Attempts = append(res.Attempts, g.failed(m, 0, err))
			continue
		}
		actx, acancel := context.WithTimeout(ctx, plan.AttemptTimeout)
		t0 := g.now()
		req := c.Embed
		req.Model = upstream(m)
		out, err := p.Embed(actx, req)
		lat := g.now().Sub(t0)
		g.stats.Observe(m.ID, lat, err == nil, timedOut(actx, err))
		acancel()
		if err != nil {
			res.Attempts = append(res.Attempts, g.failed(m, lat, err))
			continue
		}
		if out.Usage.InputTokens == 0 {
			out.Usage.InputTokens = prompt
		}
		res.Model, res.Vectors, res.Usage = m, out.Vectors, out.Usage
		res.CostUSD, res.Latency = Price(m, out.Usage), g.now().Sub(start)
		g.finish(ctx, c, &res, true, "")
		return res, nil
	}
	return res, g.chainFailed(ctx, c, &res, start)
}
