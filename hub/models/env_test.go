package models

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/coord/memory"
	"github.com/redforge/controltower/hub/secrets"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/sqlite"
	"github.com/redforge/controltower/internal/llmtest"
)

// env is a gateway over a real catalog, sealer, in-memory coordination
// and a SQLite-backed AI-decision log.
type env struct {
	t     *testing.T
	cat   *catalog.State
	seal  *secrets.Sealer
	kv    *memory.Coord
	audit *audit.Logger
	g     *Gateway

	mu  sync.Mutex
	idx uint64
}

func newEnv(t *testing.T) *env {
	t.Helper()
	seal, err := secrets.FromKeyFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	db := sqlite.New(filepath.Join(t.TempDir(), "hub.db"))
	if err := db.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	kv := memory.New()
	t.Cleanup(func() { _ = kv.Close() })
	e := &env{t: t, cat: catalog.NewState(), seal: seal, kv: kv, audit: audit.New(db, audit.Config{})}
	e.g = New(Config{HubID: "hub-test"}, Deps{Catalog: e.cat, Secrets: seal, KV: kv, Decisions: e.audit})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

func (e *env) apply(cmd catalog.Command) {
	e.t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.idx++
	if _, err := e.cat.Apply(e.idx, cmd); err != nil {
		e.t.Fatalf("apply %s: %v", cmd.Type, err)
	}
}

// provider registers s as provider id, its key sealed.
func (e *env) provider(id string, s *llmtest.Server) {
	e.t.Helper()
	row := catalog.LLMProvider{ID: id, Kind: string(s.Kind), BaseURL: s.URL}
	if s.APIKey != "" {
		sealed, err := e.seal.Seal(KeyContext(id), s.APIKey)
		if err != nil {
			e.t.Fatal(err)
		}
		row.APIKey = sealed
	}
	e.apply(catalog.PutLLMProvider(row))
}

// model registers name:v1 on provider, upstream, with prices per million
// tokens.
func (e *env) model(name, provider, upstream string, in, out float64) catalog.Model {
	m := catalog.Model{ID: name + ":v1", Name: name, Version: "v1", Provider: provider, Upstream: upstream,
		Kind: ModelChat, InputPrice: in, OutputPrice: out, Status: StatusActive, Current: true}
	e.apply(catalog.PutModel(m))
	return m
}

func (e *env) route(r catalog.LLMRoute) { e.apply(catalog.PutLLMRoute(r)) }

func chat(prompt string) ChatRequest {
	return ChatRequest{Messages: []Message{{Role: "user", Content: prompt}}, MaxTokens: 50}
}

// decisions waits until n decisions are logged and returns them, newest
// first, with their metadata decoded.
func (e *env) decisions(n int) ([]store.AIDecision, []DecisionMeta) {
	e.t.Helper()
	var ds []store.AIDecision
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		ds, err = e.audit.AIDecisions(context.Background(), store.AIDecisionFilter{Limit: 1000})
		if err != nil {
			e.t.Fatal(err)
		}
		if len(ds) >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the log with a deadline
	}
	if len(ds) != n {
		e.t.Fatalf("%d decisions logged, want %d", len(ds), n)
	}
	metas := make([]DecisionMeta, len(ds))
	for i, d := range ds {
		if err := json.Unmarshal(d.Metadata, &metas[i]); err != nil {
			e.t.Fatalf("decision metadata %s: %v", d.Metadata, err)
		}
	}
	return ds, metas
}
