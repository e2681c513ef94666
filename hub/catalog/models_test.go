package catalog

import (
	"testing"
	"time"
)

// TestModelCurrentIsExclusive: putting a version as current clears the
// others of its name, not those of other names; a rollback is one put.
func TestModelCurrentIsExclusive(t *testing.T) {
	a := newApplier(t)
	a.must(PutLLMProvider(LLMProvider{ID: "p", Kind: "ollama", CreatedAt: t0}))
	put := func(id, name, version string, current bool, previous string) {
		a.must(PutModel(Model{ID: id, Name: name, Version: version, Provider: "p", Current: current, Previous: previous, CreatedAt: t0}))
	}
	put("m:v1", "m", "v1", true, "")
	put("other:v1", "other", "v1", true, "")
	put("m:v2", "m", "v2", true, "m:v1")
	current := func() []string {
		var ids []string
		for _, m := range a.s.Models() {
			if m.Current {
				ids = append(ids, m.ID)
			}
		}
		return ids
	}
	if got := current(); len(got) != 2 || got[0] != "m:v2" || got[1] != "other:v1" {
		t.Fatalf("current versions = %v, want [m:v2 other:v1]", got)
	}
	v2, _ := a.s.Model("m:v2")
	put("m:v1", "m", "v1", true, v2.ID) // rollback
	if got := current(); len(got) != 2 || got[0] != "m:v1" {
		t.Fatalf("after rollback current = %v, want m:v1 and other:v1", got)
	}
	if vs := a.s.ModelVersions("m"); len(vs) != 2 {
		t.Fatalf("versions of m = %d, want 2 side by side", len(vs))
	}
}

// TestModelReferences: a model needs its provider, its id is
// name:version, and a provider in use cannot be deleted.
func TestModelReferences(t *testing.T) {
	a := newApplier(t)
	a.fails(PutModel(Model{ID: "m:v1", Name: "m", Version: "v1", Provider: "nope"}), ErrNotFound)
	a.must(PutLLMProvider(LLMProvider{ID: "p", Kind: "openai"}))
	a.fails(PutModel(Model{ID: "m-v1", Name: "m", Version: "v1", Provider: "p"}), ErrInvalid)
	a.must(PutModel(Model{ID: "m:v1", Name: "m", Version: "v1", Provider: "p"}))
	a.fails(DeleteLLMProvider("p"), ErrConflict)
	a.must(DeleteModel("m:v1"))
	a.must(DeleteLLMProvider("p"))
	a.fails(PutLLMBudget(LLMBudget{ID: "someone", DailyUSD: 1, UpdatedAt: t0.Add(time.Hour)}), ErrInvalid)
	before := a.s.ModelsIndex()
	a.must(PutLLMRoute(LLMRoute{Name: "r", Policy: "fixed", Candidates: []string{"m"}}))
	if a.s.ModelsIndex() <= before {
		t.Fatalf("ModelsIndex did not advance on a route put")
	}
}
