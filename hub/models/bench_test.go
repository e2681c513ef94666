package models

import (
	"context"
	"testing"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/llmtest"
)

// envApplier applies commands to the env's catalog like hub/cluster.
type envApplier struct{ e *env }

func (a envApplier) Apply(_ context.Context, cmd catalog.Command) (any, error) {
	a.e.mu.Lock()
	defer a.e.mu.Unlock()
	a.e.idx++
	return a.e.cat.Apply(a.e.idx, cmd)
}

func answerKey(d Dataset) map[string]string {
	key := map[string]string{}
	for _, q := range d.Queries {
		key[q.Prompt] = q.Expected
	}
	return key
}

// TestBenchmarkAccuracies: the sample dataset through servers told to
// answer right 90 % and 50 % of the time gives exactly those accuracies,
// with latency percentiles, cost, computed recommendations and the
// models' quality set in the registry; the embedding scorer agrees.
func TestBenchmarkAccuracies(t *testing.T) {
	e := newEnv(t)
	data := SampleDataset()
	if len(data.Queries) != 100 {
		t.Fatalf("sample dataset has %d queries, want 100", len(data.Queries))
	}
	good := llmtest.Start(t, llmtest.Ollama, llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.1}))
	poor := llmtest.Start(t, llmtest.OpenAI, llmtest.WithBehavior(llmtest.Behavior{WrongRate: 0.5}))
	good.SetAnswers(answerKey(data))
	poor.SetAnswers(answerKey(data))
	e.provider("local", good)
	e.provider("cloud", poor)
	e.model("good", "local", "llama3.2", 0, 0)
	e.model("poor", "cloud", "gpt-4o-mini", 0.15, 0.6)
	emb := catalog.Model{ID: "embed:v1", Name: "embed", Version: "v1", Provider: "local", Upstream: "nomic-embed-text", Kind: ModelEmbedding, Status: StatusActive}
	e.apply(catalog.PutModel(emb))

	for _, scorer := range []string{ScoreContains, ScoreExact, ScoreEmbedding} {
		t.Run(scorer, func(t *testing.T) {
			row, err := e.g.RunBenchmark(context.Background(), envApplier{e}, "b-"+scorer, BenchSpec{Dataset: data, Models: []string{"good", "poor"},
				Scorer: scorer, Concurrency: 8, MaxP95MS: 1000, EmbeddingModel: "embed", StartedBy: "admin"})
			if err != nil {
				t.Fatal(err)
			}
			if row.Status != "done" || len(row.Results) != 2 {
				t.Fatalf("run = %+v", row)
			}
			want := map[string]float64{"good:v1": 0.9, "poor:v1": 0.5}
			for _, r := range row.Results {
				if r.Accuracy != want[r.Model] || r.Queries != 100 || r.Errors != 0 || r.P50MS <= 0 || r.P99MS < r.P95MS || r.P95MS < r.P50MS {
					t.Fatalf("%s: %+v, want accuracy %v", r.Model, r, want[r.Model])
				}
			}
			if row.Results[0].CostUSD != 0 || row.Results[1].CostUSD <= 0 {
				t.Fatalf("costs: %+v", row.Results)
			}
			kinds := map[string]string{}
			for _, rec := range row.Recommendations {
				kinds[rec.Kind] = rec.Model
			}
			if kinds["best_quality"] != "good:v1" || kinds["best_cost"] != "good:v1" || kinds["best_within_sla"] != "good:v1" {
				t.Fatalf("recommendations %+v", row.Recommendations)
			}
			stored, err := e.cat.Benchmark("b-" + scorer)
			if err != nil || stored.Status != "done" || len(stored.Results) != 2 {
				t.Fatalf("stored run %+v, %v", stored, err)
			}
			if m, _ := e.cat.Model("poor:v1"); m.Quality != 0.5 || m.QualityBenchmark != "b-"+scorer {
				t.Fatalf("registry quality of poor:v1 = %v from %s", m.Quality, m.QualityBenchmark)
			}
		})
	}
}

// TestRecommend: recommendations follow the figures, not the order.
func TestRecommend(t *testing.T) {
	rs := []catalog.BenchmarkResult{
		{Model: "big", Accuracy: 0.95, CostUSD: 1, P95MS: 900},
		{Model: "mid", Accuracy: 0.92, CostUSD: 0.1, P95MS: 300},
		{Model: "small", Accuracy: 0.6, CostUSD: 0.01, P95MS: 50},
	}
	got := map[string]string{}
	for _, r := range Recommend(rs, 500) {
		got[r.Kind] = r.Model
	}
	if got["best_quality"] != "big" || got["best_cost"] != "mid" || got["best_within_sla"] != "mid" {
		t.Fatalf("recommendations %v", got)
	}
}

// TestScorers: exact, contains and regex scoring.
func TestScorers(t *testing.T) {
	g := New(Config{}, Deps{})
	for _, c := range []struct {
		scorer, answer, expected string
		want                     bool
	}{
		{ScoreExact, " Paris. ", "paris", true},
		{ScoreExact, "It is Paris", "Paris", false},
		{ScoreContains, "It is Paris", "paris", true},
		{ScoreRegex, "the answer is 42", `\b42\b`, true},
		{ScoreRegex, "the answer is 420", `\b42\b`, false},
	} {
		f, err := g.scorer(BenchSpec{Scorer: c.scorer, Dataset: Dataset{Queries: []Query{{Expected: c.expected}}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := f(context.Background(), c.answer, c.expected); got != c.want {
			t.Errorf("%s(%q, %q) = %v", c.scorer, c.answer, c.expected, got)
		}
	}
	if _, err := g.scorer(BenchSpec{Scorer: ScoreRegex, Dataset: Dataset{Queries: []Query{{Expected: "("}}}}); err == nil {
		t.Fatal("a bad regex was accepted")
	}
}
