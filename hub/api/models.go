package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/models"
	"github.com/redforge/controltower/hub/store"
)

// Models is the model marketplace (hub/models.Gateway).
type Models interface {
	Chat(ctx context.Context, c models.Call) (models.Result, error)
	Stream(ctx context.Context, c models.Call, emit models.StreamEmit) (models.Result, error)
	Embed(ctx context.Context, c models.Call) (models.Result, error)
	ClusterFigures(ctx context.Context) []models.HubFigures
	StartBenchmark(ap models.Applier, id string, spec models.BenchSpec) error
	Spend() *models.Spend
}

// ModelCatalog is what the registry routes read of the catalog.
type ModelCatalog interface {
	LLMProviders() []catalog.LLMProvider
	LLMProvider(id string) (catalog.LLMProvider, error)
	Models() []catalog.Model
	Model(id string) (catalog.Model, error)
	ModelVersions(name string) []catalog.Model
	LLMRoutes() []catalog.LLMRoute
	LLMRoute(name string) (catalog.LLMRoute, error)
	LLMBudgets() []catalog.LLMBudget
	LLMBudget(id string) (catalog.LLMBudget, error)
	Benchmarks() []catalog.Benchmark
	Benchmark(id string) (catalog.Benchmark, error)
}

// Sealer seals provider API keys for the catalog (hub/secrets).
type Sealer interface {
	Seal(context, plaintext string) (string, error)
}

// Audit actions of the model marketplace.
const (
	actionModelProviderSet     = "MODEL_PROVIDER_SET"
	actionModelProviderDeleted = "MODEL_PROVIDER_DELETED"
	actionModelCreated         = "MODEL_CREATED"
	actionModelUpdated         = "MODEL_UPDATED"
	actionModelDeleted         = "MODEL_DELETED"
	actionModelRolledBack      = "MODEL_ROLLED_BACK"
	actionLLMRouteSet          = "LLM_ROUTE_SET"
	actionLLMRouteDeleted      = "LLM_ROUTE_DELETED"
	actionLLMBudgetSet         = "LLM_BUDGET_SET"
	actionLLMBudgetDeleted     = "LLM_BUDGET_DELETED"
	actionBenchmarkStarted     = "BENCHMARK_STARTED"
)

// Registry limits.
const (
	MaxAPIKeyBytes  = 4096
	MaxCandidates   = 20
	MaxModelBodyLen = 64 << 10
	MaxBenchBody    = 4 << 20
	MaxUsageRows    = store.MaxLimit
)

var (
	providerID   = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)
	modelName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	modelVersion = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)
	// reservedModelNames are path segments under /api/models.
	reservedModelNames = []string{"providers", "benchmarks", "budgets", "usage"}
)

// mapModels maps hub/models errors on the registry routes.
func mapModels(err error) *Error {
	switch {
	case errors.Is(err, models.ErrBusy):
		return &Error{Status: http.StatusTooManyRequests, Code: "busy", Message: err.Error()}
	case errors.Is(err, models.ErrNoModel):
		return &Error{Status: http.StatusNotFound, Code: "model_not_found", Message: err.Error(), Field: "model"}
	}
	return nil
}

func (s *Server) modelRoutes() {
	if s.cfg.Models == nil || s.cfg.Catalog == nil {
		return
	}
	read, create := Perm(auth.ResourceModels, auth.ActionRead), Perm(auth.ResourceModels, auth.ActionCreate)
	update, del := Perm(auth.ResourceModels, auth.ActionUpdate), Perm(auth.ResourceModels, auth.ActionDelete)
	s.handle(http.MethodGet, "/api/models", read, s.listModels)
	s.handle(http.MethodPost, "/api/models", create, s.catchUp, s.createModel)
	s.handle(http.MethodGet, "/api/models/:id", read, s.getModel)
	s.handle(http.MethodPatch, "/api/models/:id", update, s.catchUp, s.patchModel)
	s.handle(http.MethodDelete, "/api/models/:id", del, s.catchUp, s.deleteModel)
	s.handle(http.MethodPost, "/api/models/:id/rollback", update, s.catchUp, s.rollbackModel)
	s.handle(http.MethodGet, "/api/models/providers", read, s.listProviders)
	s.handle(http.MethodPut, "/api/models/providers/:id", update, s.catchUp, s.putProvider)
	s.handle(http.MethodDelete, "/api/models/providers/:id", del, s.catchUp, s.deleteProvider)
	s.handle(http.MethodGet, "/api/models/budgets", read, s.listBudgets)
	s.handle(http.MethodPut, "/api/models/budgets/:id", update, s.catchUp, s.putBudget)
	s.handle(http.MethodDelete, "/api/models/budgets/:id", del, s.catchUp, s.deleteBudget)
	s.handle(http.MethodGet, "/api/models/usage", read, s.modelUsage)
	s.handle(http.MethodGet, "/api/models/benchmarks", read, s.listBenchmarks)
	s.handle(http.MethodPost, "/api/models/benchmarks", create, s.catchUp, s.startBenchmark)
	s.handle(http.MethodGet, "/api/models/benchmarks/:id", read, s.getBenchmark)
	s.handle(http.MethodGet, "/api/routes/llm", read, s.listLLMRoutes)
	s.handle(http.MethodGet, "/api/routes/llm/:name", read, s.getLLMRoute)
	s.handle(http.MethodPut, "/api/routes/llm/:name", update, s.catchUp, s.putLLMRoute)
	s.handle(http.MethodDelete, "/api/routes/llm/:name", del, s.catchUp, s.deleteLLMRoute)
	s.gatewayRoutes()
}

// catchUp makes this hub's catalog hold everything committed before a
// registry write is checked (a consistent read through the leader), so a
// write through one hub that refers to a row just written through another
// (a model's provider, a route's candidates) is checked against it.
// Registry writes are rare; the barrier costs one round trip to the leader.
func (s *Server) catchUp(c *gin.Context) {
	if s.cfg.Cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(c.Request.Context(), ConsistentReadTimeout)
	defer cancel()
	if err := s.cfg.Cluster.ConsistentRead(ctx); err != nil {
		abort(c, err)
	}
}

// --- providers ---

// providerView is a provider as the API shows it: never its key.
type providerView struct {
	ID        string    `json:"id"`
	Kind      string    `json:"kind"`
	BaseURL   string    `json:"base_url"`
	HasAPIKey bool      `json:"has_api_key"`
	Models    int       `json:"models"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (s *Server) providerView(p catalog.LLMProvider) providerView {
	n := 0
	for _, m := range s.cfg.Catalog.Models() {
		if m.Provider == p.ID {
			n++
		}
	}
	return providerView{ID: p.ID, Kind: p.Kind, BaseURL: p.BaseURL, HasAPIKey: p.APIKey != "", Models: n, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

func (s *Server) listProviders(c *gin.Context) {
	out := []providerView{}
	for _, p := range s.cfg.Catalog.LLMProviders() {
		out = append(out, s.providerView(p))
	}
	c.JSON(http.StatusOK, gin.H{"providers": out, "count": len(out)})
}

// providerRequest is the body of PUT /api/models/providers/:id. api_key
// is write-only: absent keeps the stored key, "" removes it.
type providerRequest struct {
	Kind    string  `json:"kind"`
	BaseURL string  `json:"base_url"`
	APIKey  *string `json:"api_key"`
}

func (s *Server) putProvider(c *gin.Context) {
	id := c.Param("id")
	if !providerID.MatchString(id) {
		abort(c, Invalid("id", "a provider id is 1-63 lowercase letters, digits, '.', '_' or '-'"))
		return
	}
	var req providerRequest
	if !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	if e := checkProvider(req); e != nil {
		abort(c, e)
		return
	}
	now := time.Now().UTC()
	row := catalog.LLMProvider{ID: id, Kind: req.Kind, BaseURL: strings.TrimRight(req.BaseURL, "/"), CreatedAt: now, UpdatedAt: now}
	old, err := s.cfg.Catalog.LLMProvider(id)
	if err == nil {
		row.CreatedAt, row.APIKey = old.CreatedAt, old.APIKey
	}
	if req.APIKey != nil {
		row.APIKey = ""
		if *req.APIKey != "" {
			if s.cfg.Sealer == nil {
				abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "this hub has no sealing key for secrets"})
				return
			}
			if row.APIKey, err = s.cfg.Sealer.Seal(models.KeyContext(id), *req.APIKey); err != nil {
				abort(c, err)
				return
			}
		}
	}
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutLLMProvider(row))
	if err != nil {
		abort(c, err)
		return
	}
	stored := res.(catalog.LLMProvider)
	s.audit(c, actionModelProviderSet, "llm_provider", id, gin.H{"kind": row.Kind, "base_url": row.BaseURL,
		"api_key_set": row.APIKey != "", "api_key_changed": req.APIKey != nil})
	c.JSON(http.StatusOK, s.providerView(stored))
}

func checkProvider(req providerRequest) *Error {
	if !slices.Contains(models.ProviderKinds, req.Kind) {
		return Invalid("kind", "kind must be one of "+strings.Join(models.ProviderKinds, ", "))
	}
	u, err := url.Parse(req.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return Invalid("base_url", "base_url must be an http or https URL without credentials, query or fragment, e.g. http://127.0.0.1:11434 or https://api.openai.com/v1")
	}
	if req.APIKey != nil && (len(*req.APIKey) > MaxAPIKeyBytes || strings.ContainsAny(*req.APIKey, "\r\n\x00")) {
		return Invalid("api_key", fmt.Sprintf("api_key must be at most %d bytes on one line", MaxAPIKeyBytes))
	}
	return nil
}

func (s *Server) deleteProvider(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.DeleteLLMProvider(id)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionModelProviderDeleted, "llm_provider", id, nil)
	c.Status(http.StatusNoContent)
}

// --- models ---

// modelView is a registry entry with this cluster's live figures.
type modelView struct {
	catalog.Model
	ProviderKind string                    `json:"provider_kind"`
	Figures      models.Figures            `json:"figures"` // this hub, over the last five minutes
	ByHub        map[string]models.Figures `json:"by_hub"`  // every hub that published figures
	Versions     []string                  `json:"versions,omitempty"`
}

func (s *Server) modelViews(ctx context.Context, ms []catalog.Model) []modelView {
	figs := s.cfg.Models.ClusterFigures(ctx)
	out := make([]modelView, 0, len(ms))
	for _, m := range ms {
		v := modelView{Model: m, ByHub: map[string]models.Figures{}}
		if p, err := s.cfg.Catalog.LLMProvider(m.Provider); err == nil {
			v.ProviderKind = p.Kind
		}
		for i, hf := range figs {
			if f, ok := hf.Models[m.ID]; ok {
				v.ByHub[hf.Hub] = f
				if i == 0 {
					v.Figures = f
				}
			}
		}
		out = append(out, v)
	}
	return out
}

func (s *Server) listModels(c *gin.Context) {
	out := s.modelViews(c.Request.Context(), s.cfg.Catalog.Models())
	c.JSON(http.StatusOK, gin.H{"models": out, "count": len(out)})
}

// getModel serves a version (name:version) or a name (its current
// version, with every version listed).
func (s *Server) getModel(c *gin.Context) {
	m, err := models.Resolve(s.cfg.Catalog, c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	v := s.modelViews(c.Request.Context(), []catalog.Model{m})[0]
	for _, o := range s.cfg.Catalog.ModelVersions(m.Name) {
		v.Versions = append(v.Versions, o.ID)
	}
	c.JSON(http.StatusOK, v)
}

// modelRequest is the body of POST /api/models and PATCH /api/models/:id.
type modelRequest struct {
	Name          *string  `json:"name"`
	Version       *string  `json:"version"`
	Provider      *string  `json:"provider"`
	Upstream      *string  `json:"upstream"`
	Kind          *string  `json:"kind"`
	ContextLength *int     `json:"context_length"`
	InputPrice    *float64 `json:"input_price"`
	OutputPrice   *float64 `json:"output_price"`
	Status        *string  `json:"status"`
	Current       *bool    `json:"current"`
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// apply copies the request's fields onto m and checks the result.
func (s *Server) applyModel(m *catalog.Model, req modelRequest) *Error {
	set(&m.Provider, req.Provider)
	set(&m.Upstream, req.Upstream)
	set(&m.Kind, req.Kind)
	set(&m.ContextLength, req.ContextLength)
	set(&m.InputPrice, req.InputPrice)
	set(&m.OutputPrice, req.OutputPrice)
	set(&m.Status, req.Status)
	switch {
	case !modelName.MatchString(m.Name) || slices.Contains(reservedModelNames, strings.ToLower(m.Name)):
		return Invalid("name", "name must be 1-63 letters, digits, '.', '_' or '-', and not "+strings.Join(reservedModelNames, ", "))
	case !modelVersion.MatchString(m.Version):
		return Invalid("version", "version must be 1-32 letters, digits, '.', '_' or '-', e.g. v1")
	case m.Upstream == "" || len(m.Upstream) > 256 || strings.ContainsAny(m.Upstream, "\r\n\x00"):
		return Invalid("upstream", "upstream (the provider's name for the model, e.g. llama3.2:3b) is required, at most 256 bytes")
	case m.Kind != models.ModelChat && m.Kind != models.ModelEmbedding:
		return Invalid("kind", "kind must be chat or embedding")
	case m.ContextLength < 0 || m.ContextLength > 10_000_000:
		return Invalid("context_length", "context_length must be between 0 (unknown) and 10000000 tokens")
	case !price(m.InputPrice):
		return Invalid("input_price", "input_price (US dollars per million tokens) must be between 0 and 100000")
	case !price(m.OutputPrice):
		return Invalid("output_price", "output_price (US dollars per million tokens) must be between 0 and 100000")
	case !slices.Contains([]string{models.StatusActive, models.StatusDisabled, models.StatusDeprecated}, m.Status):
		return Invalid("status", "status must be active, disabled or deprecated")
	}
	if _, err := s.cfg.Catalog.LLMProvider(m.Provider); err != nil {
		return Invalid("provider", "provider "+m.Provider+" is not registered (PUT /api/models/providers/:id)")
	}
	return nil
}

func price(p float64) bool { return !math.IsNaN(p) && p >= 0 && p <= 100000 }

func (s *Server) createModel(c *gin.Context) {
	var req modelRequest
	if !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	m := catalog.Model{Kind: models.ModelChat, Status: models.StatusActive}
	set(&m.Name, req.Name)
	set(&m.Version, req.Version)
	if e := s.applyModel(&m, req); e != nil {
		abort(c, e)
		return
	}
	m.ID = m.Name + ":" + m.Version
	versions := s.cfg.Catalog.ModelVersions(m.Name)
	// The first version of a name is its current one unless told not.
	m.Current = len(versions) == 0
	set(&m.Current, req.Current)
	if m.Current {
		m.Previous = currentOf(versions)
	}
	m.CreatedAt = time.Now().UTC()
	m.UpdatedAt = m.CreatedAt
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutModel(m, catalog.IfIndex(0)))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionModelCreated, "model", m.ID, gin.H{"provider": m.Provider, "upstream": m.Upstream, "current": m.Current})
	c.JSON(http.StatusCreated, res)
}

func currentOf(versions []catalog.Model) string {
	for _, v := range versions {
		if v.Current {
			return v.ID
		}
	}
	return ""
}

func (s *Server) patchModel(c *gin.Context) {
	old, err := s.cfg.Catalog.Model(c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	var req modelRequest
	if !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	if req.Name != nil && *req.Name != old.Name || req.Version != nil && *req.Version != old.Version {
		abort(c, Invalid("name", "a version's name and version cannot change; create a new version"))
		return
	}
	m := old
	if e := s.applyModel(&m, req); e != nil {
		abort(c, e)
		return
	}
	if req.Current != nil && *req.Current && !old.Current {
		m.Current, m.Previous = true, currentOf(s.cfg.Catalog.ModelVersions(m.Name))
	} else if req.Current != nil && !*req.Current {
		m.Current = false
	}
	m.UpdatedAt = time.Now().UTC()
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutModel(m, catalog.IfIndex(old.ModifyIndex)))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionModelUpdated, "model", m.ID, gin.H{"status": m.Status, "current": m.Current})
	c.JSON(http.StatusOK, res)
}

func (s *Server) deleteModel(c *gin.Context) {
	id := c.Param("id")
	for _, r := range s.cfg.Catalog.LLMRoutes() {
		if slices.Contains(r.Candidates, id) {
			abort(c, &Error{Status: http.StatusConflict, Code: "conflict", Message: "route " + r.Name + " names " + id + "; change the route first"})
			return
		}
	}
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.DeleteModel(id)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionModelDeleted, "model", id, nil)
	c.Status(http.StatusNoContent)
}

// rollbackModel makes the version that was current before the current
// one of a name current again (or the version named by "to"), in one
// call. The rolled-back version becomes its Previous, so a second
// rollback undoes the first.
func (s *Server) rollbackModel(c *gin.Context) {
	var req struct {
		To string `json:"to"`
	}
	if c.Request.ContentLength > 0 && !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	name, _, _ := strings.Cut(c.Param("id"), ":")
	versions := s.cfg.Catalog.ModelVersions(name)
	cur := currentOf(versions)
	if cur == "" {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "model " + name + " has no current version"})
		return
	}
	curRow, _ := s.cfg.Catalog.Model(cur)
	target := curRow.Previous
	if req.To != "" {
		target = req.To
		if !strings.Contains(target, ":") {
			target = name + ":" + target
		}
	}
	to, err := s.cfg.Catalog.Model(target)
	if target == "" || err != nil || to.Name != name {
		abort(c, Invalid("to", "no version to roll back to: name one with {\"to\":\"v1\"}"))
		return
	}
	to.Current, to.Previous, to.UpdatedAt = true, cur, time.Now().UTC()
	if to.Status == models.StatusDisabled {
		to.Status = models.StatusActive
	}
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutModel(to, catalog.IfIndex(to.ModifyIndex)))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionModelRolledBack, "model", name, gin.H{"from": cur, "to": to.ID})
	c.JSON(http.StatusOK, gin.H{"model": res, "from": cur, "to": to.ID})
}

// --- routes ---

func (s *Server) listLLMRoutes(c *gin.Context) {
	rs := s.cfg.Catalog.LLMRoutes()
	c.JSON(http.StatusOK, gin.H{"routes": rs, "count": len(rs), "policies": models.Policies})
}

func (s *Server) getLLMRoute(c *gin.Context) {
	r, err := s.cfg.Catalog.LLMRoute(c.Param("name"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, r)
}

type routeRequest struct {
	Policy           string   `json:"policy"`
	Candidates       []string `json:"candidates"`
	MaxP95MS         int64    `json:"max_p95_ms"`
	MinQuality       float64  `json:"min_quality"`
	WindowMS         int64    `json:"window_ms"`
	AttemptTimeoutMS int64    `json:"attempt_timeout_ms"`
	DeadlineMS       int64    `json:"deadline_ms"`
}

func (s *Server) checkRoute(req routeRequest) *Error {
	switch {
	case !slices.Contains(models.Policies, req.Policy):
		return Invalid("policy", "policy must be one of "+strings.Join(models.Policies, ", "))
	case len(req.Candidates) == 0 || len(req.Candidates) > MaxCandidates:
		return Invalid("candidates", fmt.Sprintf("candidates must list 1 to %d models", MaxCandidates))
	case req.MaxP95MS < 0 || req.MaxP95MS > 600_000:
		return Invalid("max_p95_ms", "max_p95_ms must be between 0 (none) and 600000")
	case req.Policy == models.PolicySLA && req.MaxP95MS == 0:
		return Invalid("max_p95_ms", "the sla policy needs max_p95_ms")
	case math.IsNaN(req.MinQuality) || req.MinQuality < 0 || req.MinQuality > 1:
		return Invalid("min_quality", "min_quality must be between 0 and 1")
	case req.WindowMS != 0 && (req.WindowMS < 100 || req.WindowMS > 86_400_000):
		return Invalid("window_ms", "window_ms must be 0 (default 60000) or between 100 and 86400000")
	case req.AttemptTimeoutMS != 0 && (req.AttemptTimeoutMS < 10 || req.AttemptTimeoutMS > 600_000):
		return Invalid("attempt_timeout_ms", "attempt_timeout_ms must be 0 (default 30000) or between 10 and 600000")
	case req.DeadlineMS != 0 && (req.DeadlineMS < 10 || req.DeadlineMS > 3_600_000):
		return Invalid("deadline_ms", "deadline_ms must be 0 (default 60000) or between 10 and 3600000")
	}
	for i, ref := range req.Candidates {
		if _, err := models.Resolve(s.cfg.Catalog, ref); err != nil {
			return Invalid(fmt.Sprintf("candidates[%d]", i), err.Error())
		}
	}
	return nil
}

// putLLMRoute creates or replaces a named route.
func (s *Server) putLLMRoute(c *gin.Context) {
	name := c.Param("name")
	if !modelName.MatchString(name) {
		abort(c, Invalid("name", "a route name is 1-63 letters, digits, '.', '_' or '-'"))
		return
	}
	if len(s.cfg.Catalog.ModelVersions(name)) > 0 {
		abort(c, Invalid("name", "a model is named "+name+"; a route may not shadow it"))
		return
	}
	var req routeRequest
	if !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	if e := s.checkRoute(req); e != nil {
		abort(c, e)
		return
	}
	now := time.Now().UTC()
	r := catalog.LLMRoute{Name: name, Policy: req.Policy, Candidates: req.Candidates, MaxP95MS: req.MaxP95MS,
		MinQuality: req.MinQuality, WindowMS: req.WindowMS, AttemptTimeoutMS: req.AttemptTimeoutMS, DeadlineMS: req.DeadlineMS,
		CreatedAt: now, UpdatedAt: now}
	if old, err := s.cfg.Catalog.LLMRoute(name); err == nil {
		r.CreatedAt = old.CreatedAt
	}
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutLLMRoute(r))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionLLMRouteSet, "llm_route", name, gin.H{"policy": r.Policy, "candidates": r.Candidates})
	c.JSON(http.StatusOK, res)
}

func (s *Server) deleteLLMRoute(c *gin.Context) {
	name := c.Param("name")
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.DeleteLLMRoute(name)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionLLMRouteDeleted, "llm_route", name, nil)
	c.Status(http.StatusNoContent)
}

// --- budgets ---

type budgetView struct {
	catalog.LLMBudget
	SpentTodayUSD float64 `json:"spent_today_usd"`
}

func (s *Server) listBudgets(c *gin.Context) {
	out := []budgetView{}
	for _, b := range s.cfg.Catalog.LLMBudgets() {
		v := budgetView{LLMBudget: b}
		if sp := s.cfg.Models.Spend(); sp != nil {
			v.SpentTodayUSD, _ = sp.Today(c.Request.Context(), b.ID)
		}
		out = append(out, v)
	}
	c.JSON(http.StatusOK, gin.H{"budgets": out, "count": len(out)})
}

func (s *Server) putBudget(c *gin.Context) {
	id := c.Param("id")
	kind, target, _ := strings.Cut(id, ":")
	switch {
	case kind == "instance" && s.cfg.Catalog != nil:
		if inst, err := s.resolveInstance(target); err == nil {
			id = "instance:" + inst.ID // budgets follow the instance id, names may be reused
		} else {
			abort(c, Invalid("id", "no instance "+target+"; a budget id is instance:<id or name> or route:<name>"))
			return
		}
	case kind == "route":
		if _, err := s.cfg.Catalog.LLMRoute(target); err != nil {
			abort(c, Invalid("id", "no route "+target+"; a budget id is instance:<id or name> or route:<name>"))
			return
		}
	default:
		abort(c, Invalid("id", "a budget id is instance:<id or name> or route:<name>"))
		return
	}
	var req struct {
		DailyUSD    float64 `json:"daily_usd"`
		Action      string  `json:"action"`
		DowngradeTo string  `json:"downgrade_to"`
	}
	if !bindJSON(c, &req, MaxModelBodyLen) {
		return
	}
	switch {
	case math.IsNaN(req.DailyUSD) || req.DailyUSD <= 0 || req.DailyUSD > 1e6:
		abort(c, Invalid("daily_usd", "daily_usd must be above 0 and at most 1000000"))
		return
	case req.Action != models.BudgetDowngrade && req.Action != models.BudgetRefuse:
		abort(c, Invalid("action", "action must be downgrade or refuse"))
		return
	case req.DowngradeTo != "":
		if _, err := models.Resolve(s.cfg.Catalog, req.DowngradeTo); err != nil {
			abort(c, Invalid("downgrade_to", err.Error()))
			return
		}
	}
	b := catalog.LLMBudget{ID: id, DailyUSD: req.DailyUSD, Action: req.Action, DowngradeTo: req.DowngradeTo, UpdatedAt: time.Now().UTC()}
	res, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.PutLLMBudget(b))
	if err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionLLMBudgetSet, "llm_budget", id, gin.H{"daily_usd": b.DailyUSD, "action": b.Action})
	c.JSON(http.StatusOK, res)
}

// resolveInstance finds an instance by id or name.
func (s *Server) resolveInstance(ref string) (catalog.Instance, error) {
	if inst, err := s.cfg.Catalog.Instance(ref); err == nil {
		return inst, nil
	}
	return s.cfg.Catalog.InstanceByName(ref)
}

func (s *Server) deleteBudget(c *gin.Context) {
	id := c.Param("id")
	if _, err := s.cfg.Cluster.Apply(c.Request.Context(), catalog.DeleteLLMBudget(id)); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionLLMBudgetDeleted, "llm_budget", id, nil)
	c.Status(http.StatusNoContent)
}

// --- usage: cost per workflow by model ---

// usageRow is one (instance, flow, model) of the gateway's decisions.
type usageRow struct {
	InstanceID   string  `json:"instance_id"`
	Flow         string  `json:"flow"`
	Model        string  `json:"model"`
	Calls        int     `json:"calls"`
	Failed       int     `json:"failed"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
	Fallbacks    int     `json:"fallbacks"`
}

// modelUsage sums the gateway's decisions since ?since (a duration, default
// 24h) by instance, flow and model, from the AI-decision log.
func (s *Server) modelUsage(c *gin.Context) {
	if s.cfg.Audit == nil {
		abort(c, &Error{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "no decision log on this hub"})
		return
	}
	since := 24 * time.Hour
	if v := c.Query("since"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > 90*24*time.Hour {
			abort(c, Invalid("since", "since must be a duration such as 1h or 24h, at most 2160h"))
			return
		}
		since = d
	}
	ds, err := s.cfg.Audit.AIDecisions(c.Request.Context(), store.AIDecisionFilter{Start: time.Now().Add(-since), Limit: MaxUsageRows})
	if err != nil {
		abort(c, err)
		return
	}
	rows := map[[3]string]*usageRow{}
	var total float64
	for _, d := range ds {
		var m models.DecisionMeta
		if json.Unmarshal(d.Metadata, &m) != nil || !m.Gateway {
			continue
		}
		k := [3]string{d.InstanceID, d.FlowName, d.Model}
		r := rows[k]
		if r == nil {
			r = &usageRow{InstanceID: d.InstanceID, Flow: d.FlowName, Model: d.Model}
			rows[k] = r
		}
		r.Calls++
		if m.Error != "" {
			r.Failed++
		}
		r.InputTokens += m.InputTokens
		r.OutputTokens += m.OutputTokens
		r.CostUSD += m.CostUSD
		r.Fallbacks += len(m.Fallbacks)
		total += m.CostUSD
	}
	out := make([]usageRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b usageRow) int {
		return cmpOr(strings.Compare(a.InstanceID, b.InstanceID), strings.Compare(a.Flow, b.Flow), strings.Compare(a.Model, b.Model))
	})
	c.JSON(http.StatusOK, gin.H{"usage": out, "count": len(out), "total_cost_usd": total, "since": since.String(),
		"truncated": len(ds) == MaxUsageRows})
}

func cmpOr(xs ...int) int {
	for _, x := range xs {
		if x != 0 {
			return x
		}
	}
	return 0
}

// --- benchmarks ---

type benchRequest struct {
	Dataset        string         `json:"dataset"` // "sample", or a name for the inline queries
	Queries        []models.Query `json:"queries"`
	Models         []string       `json:"models"`
	Scorer         string         `json:"scorer"`
	Concurrency    int            `json:"concurrency"`
	MaxP95MS       int64          `json:"max_p95_ms"`
	EmbeddingModel string         `json:"embedding_model"`
	Threshold      float64        `json:"threshold"`
}

func (s *Server) benchSpec(req benchRequest) (models.BenchSpec, *Error) {
	spec := models.BenchSpec{Models: req.Models, Scorer: req.Scorer, Concurrency: req.Concurrency, MaxP95MS: req.MaxP95MS,
		EmbeddingModel: req.EmbeddingModel, Threshold: req.Threshold}
	if spec.Scorer == "" {
		spec.Scorer = models.ScoreContains
	}
	if spec.Concurrency == 0 {
		spec.Concurrency = models.DefaultConcurrency
	}
	switch {
	case len(req.Queries) == 0 && (req.Dataset == "" || req.Dataset == "sample"):
		spec.Dataset = models.SampleDataset()
	case len(req.Queries) == 0:
		return spec, Invalid("dataset", "dataset must be \"sample\", or give the queries inline")
	case len(req.Queries) > models.MaxBenchQueries:
		return spec, Invalid("queries", fmt.Sprintf("at most %d queries", models.MaxBenchQueries))
	default:
		name := req.Dataset
		if name == "" {
			name = "inline"
		}
		spec.Dataset = models.Dataset{Name: name, Queries: req.Queries}
	}
	for i, q := range spec.Dataset.Queries {
		if strings.TrimSpace(q.Prompt) == "" || len(q.Prompt) > 32<<10 || len(q.Expected) > 4<<10 {
			return spec, Invalid(fmt.Sprintf("queries[%d]", i), "each query needs a prompt (at most 32 KiB) and an expected answer (at most 4 KiB)")
		}
	}
	if len(spec.Models) == 0 || len(spec.Models) > models.MaxBenchModels {
		return spec, Invalid("models", fmt.Sprintf("models must list 1 to %d models", models.MaxBenchModels))
	}
	for i, ref := range spec.Models {
		m, err := models.Resolve(s.cfg.Catalog, ref)
		if err != nil || m.Kind == models.ModelEmbedding {
			return spec, Invalid(fmt.Sprintf("models[%d]", i), "models["+fmt.Sprint(i)+"]: "+ref+" is not a chat model of the registry")
		}
		spec.Models[i] = m.ID
	}
	switch {
	case !slices.Contains(models.Scorers, spec.Scorer):
		return spec, Invalid("scorer", "scorer must be one of "+strings.Join(models.Scorers, ", "))
	case spec.Concurrency < 1 || spec.Concurrency > models.MaxBenchConcurrency:
		return spec, Invalid("concurrency", fmt.Sprintf("concurrency must be between 1 and %d", models.MaxBenchConcurrency))
	case spec.MaxP95MS < 0:
		return spec, Invalid("max_p95_ms", "max_p95_ms must not be negative")
	case math.IsNaN(spec.Threshold) || spec.Threshold < 0 || spec.Threshold > 1:
		return spec, Invalid("threshold", "threshold must be between 0 and 1")
	case spec.Scorer == models.ScoreEmbedding:
		m, err := models.Resolve(s.cfg.Catalog, spec.EmbeddingModel)
		if err != nil || m.Kind != models.ModelEmbedding {
			return spec, Invalid("embedding_model", "the embedding scorer needs embedding_model, an embedding model of the registry")
		}
	}
	return spec, nil
}

func (s *Server) startBenchmark(c *gin.Context) {
	var req benchRequest
	if !bindJSON(c, &req, MaxBenchBody) {
		return
	}
	spec, e := s.benchSpec(req)
	if e != nil {
		abort(c, e)
		return
	}
	spec.StartedBy = principal(c).Username
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "bench-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
	if err := s.cfg.Models.StartBenchmark(s.cfg.Cluster, id, spec); err != nil {
		abort(c, err)
		return
	}
	s.audit(c, actionBenchmarkStarted, "benchmark", id, gin.H{"dataset": spec.Dataset.Name, "models": spec.Models, "scorer": spec.Scorer})
	row, err := s.cfg.Catalog.Benchmark(id)
	if err != nil {
		row = catalog.Benchmark{ID: id, Status: "running"}
	}
	c.JSON(http.StatusAccepted, row)
}

func (s *Server) listBenchmarks(c *gin.Context) {
	bs := s.cfg.Catalog.Benchmarks()
	slices.SortFunc(bs, func(a, b catalog.Benchmark) int { return b.StartedAt.Compare(a.StartedAt) })
	c.JSON(http.StatusOK, gin.H{"benchmarks": bs, "count": len(bs)})
}

func (s *Server) getBenchmark(c *gin.Context) {
	b, err := s.cfg.Catalog.Benchmark(c.Param("id"))
	if err != nil {
		abort(c, err)
		return
	}
	c.JSON(http.StatusOK, b)
}
