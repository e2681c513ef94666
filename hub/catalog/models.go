package catalog

import (
	"fmt"
	"strings"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// The model marketplace's tables (hub/models): LLM providers, the model
// registry, named LLM routes, daily cost budgets and benchmark runs. The
// catalog checks keys and references; hub/api validates the rest.

// LLMProvider is one upstream LLM API the gateway calls: an Ollama
// server, an OpenAI or OpenAI-compatible server, or Anthropic's API.
type LLMProvider struct {
	ID      string `json:"id"`
	Kind    string `json:"kind"` // ollama, openai, anthropic
	BaseURL string `json:"base_url"`
	// APIKey is sealed by the hub (hub/secrets, bound to the provider id)
	// before it is applied: the Raft log, snapshots and backups hold only
	// ciphertext, and the API never returns it.
	APIKey    string    `json:"api_key,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Indexes
}

func (p *LLMProvider) primaryKey() string { return p.ID }

func (p *LLMProvider) clone() *LLMProvider { c := *p; return &c }

// Model is one version of a model in the registry. Versions of one name
// live side by side; the one marked Current is what the bare name means.
type Model struct {
	ID       string `json:"id"` // name:version
	Name     string `json:"name"`
	Version  string `json:"version"`
	Provider string `json:"provider"` // provider id; must exist
	Upstream string `json:"upstream"` // the provider's name for the model
	Kind     string `json:"kind"`     // chat or embedding
	// ContextLength bounds prompt plus answer, in tokens (0: unknown).
	ContextLength int `json:"context_length,omitempty"`
	// Prices in US dollars per million tokens.
	InputPrice  float64 `json:"input_price"`
	OutputPrice float64 `json:"output_price"`
	Status      string  `json:"status"` // active, disabled, deprecated
	// Current marks the version a bare name resolves to; at most one
	// version of a name is current (PutModel clears the others).
	Current bool `json:"current,omitempty"`
	// Previous is the id of the version that was current before this one
	// became current: the target of a rollback.
	Previous string `json:"previous,omitempty"`
	// Quality is the accuracy of the model's last benchmark (0 to 1), and
	// QualityBenchmark that benchmark's id.
	Quality          float64   `json:"quality,omitempty"`
	QualityBenchmark string    `json:"quality_benchmark,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	Indexes
}

func (m *Model) primaryKey() string { return m.ID }

func (m *Model) clone() *Model { c := *m; return &c }

// LLMRoute is a named route: an ordered list of candidate models and the
// policy that picks among them.
type LLMRoute struct {
	Name   string `json:"name"`
	Policy string `json:"policy"` // cheapest_sla, fixed, sla
	// Candidates are model references (name:version pins a version, a bare
	// name follows the current version), in preference order.
	Candidates []string `json:"candidates"`
	// MaxP95MS is the SLA latency bound (p95 over WindowMS, milliseconds);
	// MinQuality the lowest benchmark quality accepted.
	MaxP95MS   int64   `json:"max_p95_ms,omitempty"`
	MinQuality float64 `json:"min_quality,omitempty"`
	WindowMS   int64   `json:"window_ms,omitempty"`
	// AttemptTimeoutMS bounds one attempt (the first token when
	// streaming); DeadlineMS the whole call with its fallbacks.
	AttemptTimeoutMS int64     `json:"attempt_timeout_ms,omitempty"`
	DeadlineMS       int64     `json:"deadline_ms,omitempty"`
	CreatedAt        time.Time `json:"created_at"`
	UpdatedAt        time.Time `json:"updated_at"`
	Indexes
}

func (r *LLMRoute) primaryKey() string { return r.Name }

func (r *LLMRoute) clone() *LLMRoute {
	c := *r
	c.Candidates = append([]string(nil), r.Candidates...)
	return &c
}

// LLMBudget is a daily cost budget of an instance ("instance:<id>") or a
// route ("route:<name>"). Once a day's spend reaches DailyUSD, calls are
// downgraded to DowngradeTo (or the cheapest candidate) or refused.
type LLMBudget struct {
	ID          string    `json:"id"`
	DailyUSD    float64   `json:"daily_usd"`
	Action      string    `json:"action"` // downgrade or refuse
	DowngradeTo string    `json:"downgrade_to,omitempty"`
	UpdatedAt   time.Time `json:"updated_at"`
	Indexes
}

func (b *LLMBudget) primaryKey() string { return b.ID }

func (b *LLMBudget) clone() *LLMBudget { c := *b; return &c }

// BenchmarkResult is one model's figures in a benchmark run.
type BenchmarkResult struct {
	Model     string  `json:"model"`
	Queries   int     `json:"queries"`
	Correct   int     `json:"correct"`
	Errors    int     `json:"errors"`
	Accuracy  float64 `json:"accuracy"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	P99MS     float64 `json:"p99_ms"`
	TokensIn  int64   `json:"tokens_in"`
	TokensOut int64   `json:"tokens_out"`
	CostUSD   float64 `json:"cost_usd"`
}

// Recommendation is a computed verdict of a benchmark run.
type Recommendation struct {
	Kind  string `json:"kind"` // best_quality, best_cost, best_within_sla
	Model string `json:"model"`
	Why   string `json:"why"`
}

// Benchmark is one benchmark run and, once done, its results.
type Benchmark struct {
	ID              string            `json:"id"`
	Dataset         string            `json:"dataset"`
	Models          []string          `json:"models"`
	Scorer          string            `json:"scorer"`
	Concurrency     int               `json:"concurrency"`
	MaxP95MS        int64             `json:"max_p95_ms,omitempty"`
	Status          string            `json:"status"` // running, done, failed
	Error           string            `json:"error,omitempty"`
	Hub             string            `json:"hub,omitempty"`
	StartedBy       string            `json:"started_by,omitempty"`
	StartedAt       time.Time         `json:"started_at"`
	FinishedAt      time.Time         `json:"finished_at,omitzero"`
	Results         []BenchmarkResult `json:"results,omitempty"`
	Recommendations []Recommendation  `json:"recommendations,omitempty"`
	Indexes
}

func (b *Benchmark) primaryKey() string { return b.ID }

func (b *Benchmark) clone() *Benchmark {
	c := *b
	c.Models = append([]string(nil), b.Models...)
	c.Results = append([]BenchmarkResult(nil), b.Results...)
	c.Recommendations = append([]Recommendation(nil), b.Recommendations...)
	return &c
}

func llmProvidersTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableLLMProviders, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("ID")}}
}

func modelsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableModels, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("ID"),
		"name":     refIndex("name", "Name"),
		"provider": refIndex("provider", "Provider"),
	}}
}

func llmRoutesTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableLLMRoutes, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("Name")}}
}

func llmBudgetsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableLLMBudgets, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("ID")}}
}

func benchmarksTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableBenchmarks, Indexes: map[string]*memdb.IndexSchema{"id": idIndex("ID")}}
}

func checkLLMProvider(_ *write, p *LLMProvider) error {
	if p.ID == "" || p.Kind == "" {
		return fmt.Errorf("llm provider: id and kind are required: %w", ErrInvalid)
	}
	return nil
}

func checkModel(w *write, m *Model) error {
	if m.ID == "" || m.Name == "" || m.Version == "" || m.Provider == "" {
		return fmt.Errorf("model: id, name, version and provider are required: %w", ErrInvalid)
	}
	if m.ID != m.Name+":"+m.Version {
		return fmt.Errorf("model %q: id must be name:version (%s:%s): %w", m.ID, m.Name, m.Version, ErrInvalid)
	}
	return w.exists(tableLLMProviders, m.Provider)
}

func checkLLMRoute(_ *write, r *LLMRoute) error {
	if r.Name == "" || r.Policy == "" {
		return fmt.Errorf("llm route: name and policy are required: %w", ErrInvalid)
	}
	return nil
}

func checkLLMBudget(_ *write, b *LLMBudget) error {
	if !strings.HasPrefix(b.ID, "instance:") && !strings.HasPrefix(b.ID, "route:") {
		return fmt.Errorf("llm budget %q: id must be instance:<id> or route:<name>: %w", b.ID, ErrInvalid)
	}
	return nil
}

func checkBenchmark(_ *write, b *Benchmark) error {
	if b.ID == "" {
		return fmt.Errorf("benchmark: id is required: %w", ErrInvalid)
	}
	return nil
}

// PutLLMProvider returns the command that creates or replaces an LLM
// provider. Errors: ErrInvalid without an id or kind; ErrConflict when an
// IfIndex check fails.
func PutLLMProvider(p LLMProvider, opts ...PutOption) Command {
	return newPut(CmdPutLLMProvider, p, opts)
}

func applyPutLLMProvider(w *write, b putBody[LLMProvider]) (any, error) {
	return putRow(w, tableLLMProviders, &b.Row, b.IfIndex, checkLLMProvider)
}

// DeleteLLMProvider returns the command that deletes a provider. Errors:
// ErrNotFound; ErrConflict while a model of the registry uses it.
func DeleteLLMProvider(id string) Command { return newCommand(CmdDeleteLLMProvider, keyBody{Key: id}) }

func applyDeleteLLMProvider(w *write, b keyBody) (any, error) {
	p := first[LLMProvider](w.tx, nil, tableLLMProviders, "id", b.Key)
	if p == nil {
		return nil, fmt.Errorf("delete llm provider %q: %w", b.Key, ErrNotFound)
	}
	if m := first[Model](w.tx, nil, tableModels, "provider", b.Key); m != nil {
		return nil, fmt.Errorf("delete llm provider %q: model %s uses it: %w", b.Key, m.ID, ErrConflict)
	}
	w.remove(tableLLMProviders, p)
	return nil, nil
}

// PutModel returns the command that creates or replaces a model version.
// A version put with Current set becomes the current one of its name and
// every other version of that name stops being current. Errors:
// ErrInvalid (id not name:version, keys missing); ErrNotFound for a
// missing provider; ErrConflict when an IfIndex check fails.
func PutModel(m Model, opts ...PutOption) Command { return newPut(CmdPutModel, m, opts) }

func applyPutModel(w *write, b putBody[Model]) (any, error) {
	m := &b.Row
	res, err := putRow(w, tableModels, m, b.IfIndex, checkModel)
	if err != nil || !m.Current {
		return res, err
	}
	for _, other := range list[Model](w.tx, nil, tableModels, "name", m.Name) {
		if other.ID != m.ID && other.Current {
			old := first[Model](w.tx, nil, tableModels, "id", other.ID)
			other.Current = false
			if _, err := insert(w, tableModels, &other, old); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// DeleteModel returns the command that deletes a model version. Errors:
// ErrNotFound.
func DeleteModel(id string) Command { return newCommand(CmdDeleteModel, keyBody{Key: id}) }

func applyDeleteModel(w *write, b keyBody) (any, error) {
	return nil, deleteRow[Model](w, tableModels, b.Key)
}

// PutLLMRoute returns the command that creates or replaces a named LLM
// route. Errors: ErrInvalid; ErrConflict when an IfIndex check fails.
func PutLLMRoute(r LLMRoute, opts ...PutOption) Command { return newPut(CmdPutLLMRoute, r, opts) }

func applyPutLLMRoute(w *write, b putBody[LLMRoute]) (any, error) {
	return putRow(w, tableLLMRoutes, &b.Row, b.IfIndex, checkLLMRoute)
}

// DeleteLLMRoute returns the command that deletes a route. Errors:
// ErrNotFound.
func DeleteLLMRoute(name string) Command { return newCommand(CmdDeleteLLMRoute, keyBody{Key: name}) }

func applyDeleteLLMRoute(w *write, b keyBody) (any, error) {
	return nil, deleteRow[LLMRoute](w, tableLLMRoutes, b.Key)
}

// PutLLMBudget returns the command that sets a daily budget. Errors:
// ErrInvalid for an id that is not instance:<id> or route:<name>.
func PutLLMBudget(b LLMBudget) Command { return newPut(CmdPutLLMBudget, b, nil) }

func applyPutLLMBudget(w *write, b putBody[LLMBudget]) (any, error) {
	return putRow(w, tableLLMBudgets, &b.Row, b.IfIndex, checkLLMBudget)
}

// DeleteLLMBudget returns the command that removes a budget. Errors:
// ErrNotFound.
func DeleteLLMBudget(id string) Command { return newCommand(CmdDeleteLLMBudget, keyBody{Key: id}) }

func applyDeleteLLMBudget(w *write, b keyBody) (any, error) {
	return nil, deleteRow[LLMBudget](w, tableLLMBudgets, b.Key)
}

// PutBenchmark returns the command that records a benchmark run (started,
// then finished with its results). Errors: ErrInvalid without an id;
// ErrConflict when an IfIndex check fails.
func PutBenchmark(b Benchmark, opts ...PutOption) Command { return newPut(CmdPutBenchmark, b, opts) }

func applyPutBenchmark(w *write, b putBody[Benchmark]) (any, error) {
	return putRow(w, tableBenchmarks, &b.Row, b.IfIndex, checkBenchmark)
}

// DeleteBenchmark returns the command that deletes a benchmark run.
// Errors: ErrNotFound.
func DeleteBenchmark(id string) Command { return newCommand(CmdDeleteBenchmark, keyBody{Key: id}) }

func applyDeleteBenchmark(w *write, b keyBody) (any, error) {
	return nil, deleteRow[Benchmark](w, tableBenchmarks, b.Key)
}

// putRow checks an IfIndex option and the row, then stores it.
func putRow[T any, P row[T]](w *write, table string, r P, ifIndex *uint64, check func(*write, P) error) (any, error) {
	old := first[T, P](w.tx, nil, table, "id", r.primaryKey())
	if err := checkIfIndex(old, ifIndex); err != nil {
		return nil, fmt.Errorf("put %s %q: %w", singular(table), r.primaryKey(), err)
	}
	if err := check(w, r); err != nil {
		return nil, fmt.Errorf("put %s: %w", singular(table), err)
	}
	return insert(w, table, r, old)
}

// deleteRow deletes the row keyed key, or returns ErrNotFound.
func deleteRow[T any, P row[T]](w *write, table, key string) error {
	r := first[T, P](w.tx, nil, table, "id", key)
	if r == nil {
		return fmt.Errorf("delete %s %q: %w", singular(table), key, ErrNotFound)
	}
	w.remove(table, r)
	return nil
}

// LLMProviders returns every provider, by id (API keys still sealed).
func (s *State) LLMProviders() []LLMProvider {
	return list[LLMProvider](s.read(nil), nil, tableLLMProviders, "id")
}

// LLMProvider returns one provider, or ErrNotFound.
func (s *State) LLMProvider(id string) (LLMProvider, error) {
	return get[LLMProvider](s.read(nil), nil, tableLLMProviders, id)
}

// Models returns every model version, by id.
func (s *State) Models() []Model { return list[Model](s.read(nil), nil, tableModels, "id") }

// Model returns one model version, or ErrNotFound.
func (s *State) Model(id string) (Model, error) { return get[Model](s.read(nil), nil, tableModels, id) }

// ModelVersions returns the versions of a model name, by id.
func (s *State) ModelVersions(name string) []Model {
	return list[Model](s.read(nil), nil, tableModels, "name", name)
}

// LLMRoutes returns every route, by name.
func (s *State) LLMRoutes() []LLMRoute { return list[LLMRoute](s.read(nil), nil, tableLLMRoutes, "id") }

// LLMRoute returns one route, or ErrNotFound.
func (s *State) LLMRoute(name string) (LLMRoute, error) {
	return get[LLMRoute](s.read(nil), nil, tableLLMRoutes, name)
}

// LLMBudgets returns every budget, by id.
func (s *State) LLMBudgets() []LLMBudget {
	return list[LLMBudget](s.read(nil), nil, tableLLMBudgets, "id")
}

// LLMBudget returns one budget, or ErrNotFound.
func (s *State) LLMBudget(id string) (LLMBudget, error) {
	return get[LLMBudget](s.read(nil), nil, tableLLMBudgets, id)
}

// Benchmarks returns every benchmark run, by id.
func (s *State) Benchmarks() []Benchmark {
	return list[Benchmark](s.read(nil), nil, tableBenchmarks, "id")
}

// Benchmark returns one benchmark run, or ErrNotFound.
func (s *State) Benchmark(id string) (Benchmark, error) {
	return get[Benchmark](s.read(nil), nil, tableBenchmarks, id)
}

// ModelsIndex returns the Raft index of the last change to the
// providers, models, routes or budgets: a cheap check whether routing
// state cached from them is stale (any difference means stale).
func (s *State) ModelsIndex() uint64 {
	tx := s.read(nil)
	var last uint64
	for _, t := range []string{tableLLMProviders, tableModels, tableLLMRoutes, tableLLMBudgets} {
		last = max(last, indexOf(tx, t))
	}
	return last
}
