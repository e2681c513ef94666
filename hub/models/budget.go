package models

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/coord"
)

// Budget actions.
const (
	BudgetDowngrade = "downgrade"
	BudgetRefuse    = "refuse"
)

// KV is what spend tracking needs of hub/coord: every hub of a region
// sees the same counters.
type KV interface {
	Get(ctx context.Context, key string) ([]byte, error)
	SetNX(ctx context.Context, key string, val []byte, ttl time.Duration) (bool, error)
	CompareAndSwap(ctx context.Context, key string, old, new []byte, ttl time.Duration) (bool, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// spendTTL keeps a day's counter a day past its end.
const spendTTL = 48 * time.Hour

// spendFresh is how long a read of a shared counter is reused.
const spendFresh = 500 * time.Millisecond

// Spend keeps each budget id's spend of the day (UTC) in coord, in
// micro-dollars, added with compare-and-swap so hubs never lose an
// addition. Reads are cached for spendFresh and include this hub's
// additions at once.
type Spend struct {
	kv  KV
	now func() time.Time

	mu    sync.Mutex
	cache map[string]spendRead
}

type spendRead struct {
	micros int64
	at     time.Time
}

// NewSpend returns a tracker over kv.
func NewSpend(kv KV, now func() time.Time) *Spend {
	if now == nil {
		now = time.Now
	}
	return &Spend{kv: kv, now: now, cache: map[string]spendRead{}}
}

func (s *Spend) key(id string) string {
	return "llm:spend:" + s.now().UTC().Format("2006-01-02") + ":" + id
}

// Today returns id's spend today in US dollars.
func (s *Spend) Today(ctx context.Context, id string) (float64, error) {
	k := s.key(id)
	s.mu.Lock()
	r, ok := s.cache[k]
	s.mu.Unlock()
	if ok && s.now().Sub(r.at) < spendFresh {
		return float64(r.micros) / 1e6, nil
	}
	v, err := s.read(ctx, k)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.cache[k] = spendRead{micros: v, at: s.now()}
	s.mu.Unlock()
	return float64(v) / 1e6, nil
}

func (s *Spend) read(ctx context.Context, k string) (int64, error) {
	b, err := s.kv.Get(ctx, k)
	if errors.Is(err, coord.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read spend %s: %w", k, err)
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("spend %s holds %q: %w", k, b, err)
	}
	return v, nil
}

// Add adds usd to id's spend today.
func (s *Spend) Add(ctx context.Context, id string, usd float64) error {
	micros := int64(usd*1e6 + 0.5)
	if micros <= 0 {
		return nil
	}
	k := s.key(id)
	for range 100 {
		old, err := s.kv.Get(ctx, k)
		if errors.Is(err, coord.ErrNotFound) {
			ok, err := s.kv.SetNX(ctx, k, []byte(strconv.FormatInt(micros, 10)), spendTTL)
			if err != nil {
				return fmt.Errorf("add spend %s: %w", k, err)
			}
			if ok {
				s.remember(k, micros)
				return nil
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("add spend %s: %w", k, err)
		}
		v, err := strconv.ParseInt(string(old), 10, 64)
		if err != nil {
			v = 0 // a corrupt counter restarts rather than blocks every call
		}
		nv := []byte(strconv.FormatInt(v+micros, 10))
		ok, err := s.kv.CompareAndSwap(ctx, k, old, nv, spendTTL)
		if err != nil {
			return fmt.Errorf("add spend %s: %w", k, err)
		}
		if ok {
			s.remember(k, v+micros)
			return nil
		}
	}
	return fmt.Errorf("add spend %s: too much contention", k)
}

func (s *Spend) remember(k string, micros int64) {
	s.mu.Lock()
	s.cache[k] = spendRead{micros: micros, at: s.now()}
	s.mu.Unlock()
}

// budgetVerdict is what the budgets of a call say.
type budgetVerdict struct {
	id        string
	action    string
	downgrade string
	spent     float64
	limit     float64
}

// checkBudgets returns the first budget of ids that is spent, if any.
func (g *Gateway) checkBudgets(ctx context.Context, ids []string) (*budgetVerdict, error) {
	for _, id := range ids {
		b, err := g.cat.LLMBudget(id)
		if err != nil || b.DailyUSD <= 0 {
			continue
		}
		spent, err := g.spend.Today(ctx, id)
		if err != nil {
			// Coordination down: do not stop every call, but say so.
			g.log.Warn("llm budget unreadable; call allowed", "budget", id, "error", err)
			continue
		}
		if spent >= b.DailyUSD {
			return &budgetVerdict{id: id, action: b.Action, downgrade: b.DowngradeTo, spent: spent, limit: b.DailyUSD}, nil
		}
	}
	return nil, nil
}
