package models

import (
	"slices"
	"sync"
	"time"
)

// MaxSamples bounds the samples kept per model: the window a figure is
// computed over is at most this many calls long.
const MaxSamples = 4096

// Figures are a model's measured figures over a window of live traffic
// on one hub. Latencies are in milliseconds; zero calls means no data.
type Figures struct {
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	ErrorRate float64 `json:"error_rate"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
	P99MS     float64 `json:"p99_ms"`
	WindowMS  int64   `json:"window_ms"`
}

type sample struct {
	at      time.Time
	latency time.Duration
	ok      bool
}

// series is a ring of a model's last MaxSamples samples.
type series struct {
	ring []sample
	next int
	full bool
}

func (s *series) add(x sample) {
	if len(s.ring) < MaxSamples && !s.full {
		s.ring = append(s.ring, x)
		if len(s.ring) == MaxSamples {
			s.full = true
		}
		return
	}
	s.ring[s.next] = x
	s.next = (s.next + 1) % MaxSamples
}

// Stats keeps live latency and error samples per model. It is safe for
// concurrent use.
type Stats struct {
	mu     sync.Mutex
	models map[string]*series
	now    func() time.Time
}

// NewStats returns empty stats; now is the clock (nil: time.Now).
func NewStats(now func() time.Time) *Stats {
	if now == nil {
		now = time.Now
	}
	return &Stats{models: map[string]*series{}, now: now}
}

// Observe records one call of model: its latency and whether it answered.
// A failed call that timed out is also a latency sample (it was slow); a
// call refused quickly is only an error.
func (s *Stats) Observe(model string, latency time.Duration, ok, timedOut bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	se := s.models[model]
	if se == nil {
		se = &series{}
		s.models[model] = se
	}
	x := sample{at: s.now(), latency: latency, ok: ok}
	if !ok && !timedOut {
		x.latency = -1 // an error, not a latency sample
	}
	se.add(x)
}

// Figures returns model's figures over the last window.
func (s *Stats) Figures(model string, window time.Duration) Figures {
	s.mu.Lock()
	se := s.models[model]
	var lat []float64
	f := Figures{WindowMS: window.Milliseconds()}
	if se != nil {
		since := s.now().Add(-window)
		lat = make([]float64, 0, len(se.ring))
		for _, x := range se.ring {
			if x.at.Before(since) {
				continue
			}
			f.Calls++
			if !x.ok {
				f.Errors++
			}
			if x.latency >= 0 {
				lat = append(lat, float64(x.latency.Microseconds())/1000)
			}
		}
	}
	s.mu.Unlock()
	if f.Calls > 0 {
		f.ErrorRate = float64(f.Errors) / float64(f.Calls)
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		f.P50MS, f.P95MS, f.P99MS = Percentile(lat, 50), Percentile(lat, 95), Percentile(lat, 99)
	}
	return f
}

// Models lists the models with samples.
func (s *Stats) Models() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.models))
	for m := range s.models {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Percentile returns the p-th percentile (nearest rank) of sorted values;
// 0 for none.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
