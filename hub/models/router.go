package models

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Route policies.
const (
	// PolicyCheapestSLA picks the cheapest candidate whose live p95 is
	// within the bound and whose quality is high enough; slower ones
	// follow as fallbacks.
	PolicyCheapestSLA = "cheapest_sla"
	// PolicyFixed tries the candidates in order.
	PolicyFixed = "fixed"
	// PolicySLA tries the candidates in order, skipping (to the end of
	// the chain) any whose p95 over the window is over the bound, until
	// it recovers.
	PolicySLA = "sla"
	// policyDirect is a request that named a model rather than a route.
	policyDirect = "direct"
)

// Policies lists the route policies.
var Policies = []string{PolicyCheapestSLA, PolicyFixed, PolicySLA}

// Priorities a request may give (x-redforge-priority).
const (
	PriorityCritical = "critical"
	PriorityNormal   = "normal"
	PriorityBatch    = "batch"
)

// DefaultRoute is the route a request without a model uses.
const DefaultRoute = "default"

// Defaults of a route that sets no bounds of its own.
const (
	DefaultAttemptTimeout = 30 * time.Second
	DefaultDeadline       = 60 * time.Second
	DefaultWindow         = time.Minute
)

// Errors of planning a call; hub/api maps them to HTTP statuses.
var (
	// ErrNoModel: the request names no known model or route.
	ErrNoModel = errors.New("no such model or route")
	// ErrBudget: a daily budget whose action is refuse is spent.
	ErrBudget = errors.New("daily LLM budget exceeded")
	// ErrNoCandidate: every candidate was ruled out (wrong kind, disabled,
	// over the max cost, prompt too long).
	ErrNoCandidate = errors.New("no candidate model can take this request")
)

// Catalog is what the gateway reads of the control plane.
type Catalog interface {
	LLMProvider(id string) (catalog.LLMProvider, error)
	Model(id string) (catalog.Model, error)
	ModelVersions(name string) []catalog.Model
	LLMRoute(name string) (catalog.LLMRoute, error)
	LLMBudget(id string) (catalog.LLMBudget, error)
}

// Hints are a request's routing hints.
type Hints struct {
	Priority   string        // critical, normal (default), batch
	MaxCostUSD float64       // 0: no bound
	MaxLatency time.Duration // 0: the route's bound
}

// Plan is how a call will be served: the ordered attempts and why.
type Plan struct {
	Requested      string
	Route          string // empty for a direct model call
	Policy         string
	Attempts       []catalog.Model
	Why            string
	Skipped        []string // candidates ruled out, with the reason
	AttemptTimeout time.Duration
	Deadline       time.Duration
	Window         time.Duration
	Budgets        []string // budget ids that apply (instance:…, route:…)
}

// Resolve returns the model a reference names: an id (name:version), or
// a bare name meaning its current version (or its only active one).
// Errors: ErrNoModel.
func Resolve(cat Catalog, ref string) (catalog.Model, error) {
	if strings.Contains(ref, ":") {
		m, err := cat.Model(ref)
		if err != nil {
			return catalog.Model{}, fmt.Errorf("model %q: %w", ref, ErrNoModel)
		}
		return m, nil
	}
	versions := cat.ModelVersions(ref)
	var active []catalog.Model
	for _, m := range versions {
		if m.Current {
			return m, nil
		}
		if m.Status == StatusActive {
			active = append(active, m)
		}
	}
	if len(active) == 1 {
		return active[0], nil
	}
	if len(versions) == 0 {
		return catalog.Model{}, fmt.Errorf("model %q: %w", ref, ErrNoModel)
	}
	return catalog.Model{}, fmt.Errorf("model %q has %d versions and none is current; name one (%s): %w", ref, len(versions), versions[0].ID, ErrNoModel)
}

// Model statuses.
const (
	StatusActive     = "active"
	StatusDisabled   = "disabled"
	StatusDeprecated = "deprecated"
)

// plan decides the attempts of a call for a model or route reference.
func (g *Gateway) plan(ref, kind, instance string, h Hints, promptTokens, maxTokens int64) (Plan, error) {
	if ref == "" {
		ref = DefaultRoute
	}
	p := Plan{Requested: ref, AttemptTimeout: DefaultAttemptTimeout, Deadline: DefaultDeadline, Window: DefaultWindow}
	if instance != "" {
		p.Budgets = append(p.Budgets, "instance:"+instance)
	}
	route, err := g.cat.LLMRoute(ref)
	var cands []catalog.Model
	bound := time.Duration(0)
	minQuality := 0.0
	if err == nil {
		p.Route, p.Policy = route.Name, route.Policy
		p.Budgets = append(p.Budgets, "route:"+route.Name)
		setMS(&p.AttemptTimeout, route.AttemptTimeoutMS)
		setMS(&p.Deadline, route.DeadlineMS)
		setMS(&p.Window, route.WindowMS)
		bound, minQuality = time.Duration(route.MaxP95MS)*time.Millisecond, route.MinQuality
		for _, c := range route.Candidates {
			m, err := Resolve(g.cat, c)
			if err != nil {
				p.Skipped = append(p.Skipped, c+": not in the registry")
				continue
			}
			cands = append(cands, m)
		}
	} else {
		m, err := Resolve(g.cat, ref)
		if err != nil {
			return p, err
		}
		p.Policy = policyDirect
		cands = []catalog.Model{m}
	}
	if h.MaxLatency > 0 && (bound == 0 || h.MaxLatency < bound) {
		bound = h.MaxLatency
	}
	cands = g.eligible(&p, cands, kind, h, promptTokens, maxTokens)
	if len(cands) == 0 {
		return p, fmt.Errorf("%s: %s: %w", ref, strings.Join(p.Skipped, "; "), ErrNoCandidate)
	}
	g.order(&p, cands, h, bound, minQuality, promptTokens, maxTokens)
	return p, nil
}

func setMS(d *time.Duration, ms int64) {
	if ms > 0 {
		*d = time.Duration(ms) * time.Millisecond
	}
}

// eligible drops candidates that cannot take the request at all.
func (g *Gateway) eligible(p *Plan, cands []catalog.Model, kind string, h Hints, promptTokens, maxTokens int64) []catalog.Model {
	var out []catalog.Model
	for _, m := range cands {
		why := ""
		switch {
		case slices.ContainsFunc(out, func(o catalog.Model) bool { return o.ID == m.ID }):
			continue
		case m.Status == StatusDisabled:
			why = "disabled"
		case kindOf(m) != kind:
			why = "a " + kindOf(m) + " model"
		case m.ContextLength > 0 && promptTokens+maxTokens > int64(m.ContextLength):
			why = fmt.Sprintf("prompt of ~%d tokens plus %d for the answer exceeds its context of %d", promptTokens, maxTokens, m.ContextLength)
		case h.MaxCostUSD > 0 && estimate(m, promptTokens, maxTokens) > h.MaxCostUSD:
			why = fmt.Sprintf("estimated cost $%.6f over the max of $%.6f", estimate(m, promptTokens, maxTokens), h.MaxCostUSD)
		}
		if why != "" {
			p.Skipped = append(p.Skipped, m.ID+": "+why)
			continue
		}
		out = append(out, m)
	}
	return out
}

func kindOf(m catalog.Model) string {
	if m.Kind == "" {
		return ModelChat
	}
	return m.Kind
}

// estimate is a call's cost if the answer uses its whole token bound.
func estimate(m catalog.Model, promptTokens, maxTokens int64) float64 {
	return Price(m, Usage{InputTokens: promptTokens, OutputTokens: maxTokens})
}

// order sets p.Attempts and p.Why by the policy.
func (g *Gateway) order(p *Plan, cands []catalog.Model, h Hints, bound time.Duration, minQuality float64, promptTokens, maxTokens int64) {
	p95 := func(m catalog.Model) (float64, bool) {
		f := g.stats.Figures(m.ID, p.Window)
		if f.P95MS > 0 {
			return f.P95MS, true
		}
		return 0, false
	}
	overSLA := func(m catalog.Model) bool {
		v, ok := p95(m)
		return bound > 0 && ok && v > float64(bound.Milliseconds())
	}
	switch p.Policy {
	case policyDirect:
		p.Attempts, p.Why = cands, "requested by name"
	case PolicyFixed:
		p.Attempts, p.Why = cands, "fixed order"
	case PolicySLA:
		var ok, slow []catalog.Model
		for _, m := range cands {
			if overSLA(m) {
				v, _ := p95(m)
				slow = append(slow, m)
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: p95 %.0f ms over the %d ms bound (last resort until it recovers)", m.ID, v, bound.Milliseconds()))
			} else {
				ok = append(ok, m)
			}
		}
		p.Attempts, p.Why = append(ok, slow...), "first candidate within the latency bound"
	default: // cheapest_sla
		g.cheapest(p, cands, h, bound, minQuality, promptTokens, maxTokens, p95, overSLA)
	}
}

func (g *Gateway) cheapest(p *Plan, cands []catalog.Model, h Hints, bound time.Duration, minQuality float64, promptTokens, maxTokens int64,
	p95 func(catalog.Model) (float64, bool), overSLA func(catalog.Model) bool) {
	var good, poor []catalog.Model
	for _, m := range cands {
		if minQuality > 0 && m.Quality < minQuality {
			poor = append(poor, m)
			p.Skipped = append(p.Skipped, fmt.Sprintf("%s: quality %.2f under %.2f (last resort)", m.ID, m.Quality, minQuality))
			continue
		}
		good = append(good, m)
	}
	cost := func(m catalog.Model) float64 { return estimate(m, promptTokens, maxTokens) }
	byCost := func(a, b catalog.Model) int { return cmp.Compare(cost(a), cost(b)) }
	switch h.Priority {
	case PriorityCritical:
		// Fastest first: measured p95, then models without figures in
		// route order.
		slices.SortStableFunc(good, func(a, b catalog.Model) int {
			va, oka := p95(a)
			vb, okb := p95(b)
			switch {
			case oka && okb:
				return cmp.Compare(va, vb)
			case oka:
				return -1
			case okb:
				return 1
			}
			return 0
		})
		p.Attempts, p.Why = append(good, poor...), "critical: fastest measured p95"
	case PriorityBatch:
		slices.SortStableFunc(good, byCost)
		p.Attempts, p.Why = append(good, poor...), "batch: cheapest, latency ignored"
	default:
		var within, slow []catalog.Model
		for _, m := range good {
			if overSLA(m) {
				v, _ := p95(m)
				slow = append(slow, m)
				p.Skipped = append(p.Skipped, fmt.Sprintf("%s: p95 %.0f ms over the %d ms bound (fallback)", m.ID, v, bound.Milliseconds()))
			} else {
				within = append(within, m)
			}
		}
		slices.SortStableFunc(within, byCost)
		slices.SortStableFunc(slow, func(a, b catalog.Model) int {
			va, _ := p95(a)
			vb, _ := p95(b)
			return cmp.Compare(va, vb)
		})
		p.Attempts = append(append(within, slow...), poor...)
		p.Why = "cheapest within the SLA"
		if len(within) == 0 {
			p.Why = "no candidate within the SLA: fastest first"
		}
	}
}
