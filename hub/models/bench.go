package models

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Scorers compare an answer with the expected one.
const (
	ScoreExact     = "exact"     // equal, ignoring case, surrounding space and a final period
	ScoreContains  = "contains"  // the expected text appears in the answer, ignoring case
	ScoreRegex     = "regex"     // the expected text is a regular expression the answer matches
	ScoreEmbedding = "embedding" // cosine similarity of the two embeddings ≥ the threshold
)

// Scorers lists the scorers.
var Scorers = []string{ScoreExact, ScoreContains, ScoreRegex, ScoreEmbedding}

// Benchmark bounds.
const (
	MaxBenchQueries     = 1000
	MaxBenchModels      = 10
	MaxBenchConcurrency = 32
	DefaultConcurrency  = 4
	DefaultThreshold    = 0.8
)

// Query is one benchmark question with its expected answer.
type Query struct {
	Prompt   string `json:"prompt"`
	Expected string `json:"expected"`
}

// Dataset is a named list of queries.
type Dataset struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	Queries     []Query `json:"queries"`
}

//go:embed datasets/sample.json
var sampleJSON []byte

// SampleDataset returns the dataset that ships with the hub: 100 short
// questions with one right answer each.
func SampleDataset() Dataset {
	var d Dataset
	if err := json.Unmarshal(sampleJSON, &d); err != nil {
		panic("models: bad embedded sample dataset: " + err.Error())
	}
	return d
}

// BenchSpec is what a benchmark runs.
type BenchSpec struct {
	Dataset     Dataset
	Models      []string // model references
	Scorer      string
	Concurrency int
	MaxP95MS    int64 // the SLA for "best within SLA" (0: none given)
	// EmbeddingModel and Threshold serve the embedding scorer.
	EmbeddingModel string
	Threshold      float64
	StartedBy      string
}

// Applier writes catalog commands (hub/cluster.Node).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// MaxRunningBenchmarks bounds the benchmarks one hub runs at once.
const MaxRunningBenchmarks = 2

// ErrBusy is returned by StartBenchmark when MaxRunningBenchmarks run.
var ErrBusy = errors.New("too many benchmarks running on this hub; wait for one to finish")

// StartBenchmark records run id as running and runs it in the background
// (until the gateway stops). Errors: ErrBusy; the Applier's errors.
func (g *Gateway) StartBenchmark(ap Applier, id string, spec BenchSpec) error {
	g.mu.Lock()
	ctx := g.runCtx
	if ctx == nil || ctx.Err() != nil {
		g.mu.Unlock()
		return errors.New("the gateway is not running")
	}
	if g.benches >= MaxRunningBenchmarks {
		g.mu.Unlock()
		return ErrBusy
	}
	g.benches++
	g.bg.Add(1)
	g.mu.Unlock()
	started := make(chan error, 1)
	go func() {
		defer g.bg.Done()
		defer func() { g.mu.Lock(); g.benches--; g.mu.Unlock() }()
		if _, err := g.runBenchmark(ctx, ap, id, spec, started); err != nil {
			g.log.Warn("benchmark failed", "benchmark", id, "error", err)
		}
	}()
	return <-started
}

// RunBenchmark runs spec through the gateway (each query to each model by
// name, at most Concurrency at a time), records the run as row id in the
// catalog (running, then done or failed, with results and
// recommendations) and sets each model's quality to its accuracy. It
// blocks until the run ends.
func (g *Gateway) RunBenchmark(ctx context.Context, ap Applier, id string, spec BenchSpec) (catalog.Benchmark, error) {
	return g.runBenchmark(ctx, ap, id, spec, make(chan error, 1))
}

// runBenchmark is RunBenchmark; started gets the outcome of recording
// the run as running.
func (g *Gateway) runBenchmark(ctx context.Context, ap Applier, id string, spec BenchSpec, started chan<- error) (catalog.Benchmark, error) {
	row := catalog.Benchmark{ID: id, Dataset: spec.Dataset.Name, Models: spec.Models, Scorer: spec.Scorer,
		Concurrency: spec.Concurrency, MaxP95MS: spec.MaxP95MS, Status: "running", Hub: g.cfg.HubID,
		StartedBy: spec.StartedBy, StartedAt: g.now().UTC()}
	if _, err := ap.Apply(ctx, catalog.PutBenchmark(row, catalog.IfIndex(0))); err != nil {
		started <- err
		return row, fmt.Errorf("record benchmark %s: %w", id, err)
	}
	started <- nil
	results, err := g.bench(ctx, id, spec)
	row.FinishedAt = g.now().UTC()
	if err != nil {
		row.Status, row.Error = "failed", err.Error()
	} else {
		row.Status, row.Results = "done", results
		row.Recommendations = Recommend(results, spec.MaxP95MS)
	}
	// Record the outcome even when the caller has gone.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, aerr := ap.Apply(wctx, catalog.PutBenchmark(row)); aerr != nil {
		return row, fmt.Errorf("record benchmark %s: %w", id, aerr)
	}
	if err == nil {
		g.setQuality(wctx, ap, id, results)
	}
	return row, err
}

// setQuality writes each model's benchmark accuracy into the registry.
func (g *Gateway) setQuality(ctx context.Context, ap Applier, id string, results []catalog.BenchmarkResult) {
	for _, r := range results {
		for range 3 { // a concurrent change of the row: read again
			m, err := g.cat.Model(r.Model)
			if err != nil {
				break
			}
			m.Quality, m.QualityBenchmark, m.UpdatedAt = r.Accuracy, id, g.now().UTC()
			_, err = ap.Apply(ctx, catalog.PutModel(m, catalog.IfIndex(m.ModifyIndex)))
			if !errors.Is(err, catalog.ErrConflict) {
				if err != nil {
					g.log.Warn("benchmark quality not recorded", "model", r.Model, "error", err)
				}
				break
			}
		}
	}
}

// bench runs every query on every model.
func (g *Gateway) bench(ctx context.Context, id string, spec BenchSpec) ([]catalog.BenchmarkResult, error) {
	score, err := g.scorer(spec)
	if err != nil {
		return nil, err
	}
	conc := min(max(spec.Concurrency, 1), MaxBenchConcurrency)
	var out []catalog.BenchmarkResult
	for _, ref := range spec.Models {
		m, err := Resolve(g.cat, ref)
		if err != nil {
			return nil, err
		}
		r := catalog.BenchmarkResult{Model: m.ID, Queries: len(spec.Dataset.Queries)}
		lat := make([]float64, len(spec.Dataset.Queries))
		var mu sync.Mutex
		sem := make(chan struct{}, conc)
		var wg sync.WaitGroup
		for i, q := range spec.Dataset.Queries {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				t0 := time.Now()
				res, err := g.Chat(ctx, Call{Flow: "benchmark:" + id, Model: m.ID,
					Chat: ChatRequest{Messages: []Message{{Role: "user", Content: q.Prompt}}, MaxTokens: 256}})
				d := time.Since(t0)
				ok := err == nil && score(ctx, res.Response.Content, q.Expected)
				mu.Lock()
				defer mu.Unlock()
				lat[i] = ms(d)
				if err != nil {
					r.Errors++
					return
				}
				if ok {
					r.Correct++
				}
				r.TokensIn += res.Usage.InputTokens
				r.TokensOut += res.Usage.OutputTokens
				r.CostUSD += res.CostUSD
			})
		}
		wg.Wait()
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("benchmark stopped: %w", err)
		}
		slices.Sort(lat)
		r.P50MS, r.P95MS, r.P99MS = round2(Percentile(lat, 50)), round2(Percentile(lat, 95)), round2(Percentile(lat, 99))
		if r.Queries > 0 {
			r.Accuracy = round4(float64(r.Correct) / float64(r.Queries))
		}
		r.CostUSD = round8(r.CostUSD)
		out = append(out, r)
	}
	return out, nil
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
func round8(x float64) float64 { return math.Round(x*1e8) / 1e8 }

// scorer returns the spec's scoring function.
func (g *Gateway) scorer(spec BenchSpec) (func(ctx context.Context, answer, expected string) bool, error) {
	norm := func(s string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(s)), ".") }
	switch spec.Scorer {
	case ScoreExact:
		return func(_ context.Context, a, e string) bool { return norm(a) == norm(e) }, nil
	case "", ScoreContains:
		return func(_ context.Context, a, e string) bool {
			return strings.Contains(strings.ToLower(a), strings.ToLower(strings.TrimSpace(e)))
		}, nil
	case ScoreRegex:
		res := map[string]*regexp.Regexp{}
		for i, q := range spec.Dataset.Queries {
			re, err := regexp.Compile(q.Expected)
			if err != nil {
				return nil, fmt.Errorf("queries[%d].expected: not a regular expression: %w", i, err)
			}
			res[q.Expected] = re
		}
		return func(_ context.Context, a, e string) bool { return res[e].MatchString(a) }, nil
	case ScoreEmbedding:
		if spec.EmbeddingModel == "" {
			return nil, errors.New("embedding_model is required by the embedding scorer")
		}
		th := spec.Threshold
		if th <= 0 {
			th = DefaultThreshold
		}
		return func(ctx context.Context, a, e string) bool {
			res, err := g.Embed(ctx, Call{Flow: "benchmark", Model: spec.EmbeddingModel, Embed: EmbedRequest{Input: []string{a, e}}})
			return err == nil && len(res.Vectors) == 2 && Cosine(res.Vectors[0], res.Vectors[1]) >= th
		}, nil
	}
	return nil, fmt.Errorf("unknown scorer %q (want one of %s)", spec.Scorer, strings.Join(Scorers, ", "))
}

// Cosine returns the cosine similarity of two vectors (0 when either is
// zero or their lengths differ).
func Cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// Recommend computes a run's recommendations from its results: the most
// accurate model (ties: the cheaper), the cheapest model within five
// points of the best accuracy, and the most accurate model whose p95 is
// within the SLA (when one was given).
func Recommend(results []catalog.BenchmarkResult, maxP95MS int64) []catalog.Recommendation {
	if len(results) == 0 {
		return nil
	}
	byQuality := slices.Clone(results)
	slices.SortStableFunc(byQuality, func(a, b catalog.BenchmarkResult) int {
		return cmp.Or(cmp.Compare(b.Accuracy, a.Accuracy), cmp.Compare(a.CostUSD, b.CostUSD), cmp.Compare(a.P95MS, b.P95MS))
	})
	best := byQuality[0]
	out := []catalog.Recommendation{{Kind: "best_quality", Model: best.Model,
		Why: fmt.Sprintf("highest accuracy: %.0f%% at $%.6f, p95 %.0f ms", best.Accuracy*100, best.CostUSD, best.P95MS)}}
	var cheap *catalog.BenchmarkResult
	for i := range results {
		r := &results[i]
		if r.Accuracy+0.05 >= best.Accuracy && (cheap == nil || r.CostUSD < cheap.CostUSD) {
			cheap = r
		}
	}
	out = append(out, catalog.Recommendation{Kind: "best_cost", Model: cheap.Model,
		Why: fmt.Sprintf("cheapest within 5 points of the best accuracy: $%.6f for %.0f%%", cheap.CostUSD, cheap.Accuracy*100)})
	if maxP95MS > 0 {
		for _, r := range byQuality {
			if r.P95MS <= float64(maxP95MS) {
				out = append(out, catalog.Recommendation{Kind: "best_within_sla", Model: r.Model,
					Why: fmt.Sprintf("most accurate with p95 %.0f ms within %d ms: %.0f%%", r.P95MS, maxP95MS, r.Accuracy*100)})
				break
			}
		}
	}
	return out
}
