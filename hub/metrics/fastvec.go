package metrics

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// RuntimeVec is a gauge or counter family labelled by RuntimeLabels (the
// nodered_instance_* series). It stands in for a prometheus.GaugeVec
// because a hub runs thousands of runtimes: its series are written
// straight in the text format at scrape time (WriteTo), without the
// per-series objects a registry's Gather builds. Safe for concurrent use.
type RuntimeVec struct {
	name, help, typ string

	mu     sync.RWMutex
	series map[string]*RuntimeValue // by rendered labels
}

// RuntimeValue is one series of a RuntimeVec.
type RuntimeValue struct {
	labels string // rendered: instance_id="…",name="…",…
	bits   atomic.Uint64
}

func newRuntimeVec(name, help, typ string) *RuntimeVec {
	return &RuntimeVec{name: name, help: help, typ: typ, series: map[string]*RuntimeValue{}}
}

// renderRuntimeLabels writes RuntimeLabels in the text format, leaving an
// empty color out (the same series to Prometheus).
func renderRuntimeLabels(l prometheus.Labels) string {
	var b []byte
	for _, k := range runtimeLabelNames {
		v := l[k]
		if v == "" && k == "color" {
			continue
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = appendLabel(b, k, v)
	}
	return string(b)
}

// With returns the series with labels l (RuntimeLabels), creating it.
func (v *RuntimeVec) With(l prometheus.Labels) *RuntimeValue {
	key := renderRuntimeLabels(l)
	v.mu.RLock()
	s := v.series[key]
	v.mu.RUnlock()
	if s != nil {
		return s
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if s = v.series[key]; s == nil {
		s = &RuntimeValue{labels: key}
		v.series[key] = s
	}
	return s
}

// Delete drops the series with labels l and reports whether it existed.
func (v *RuntimeVec) Delete(l prometheus.Labels) bool {
	key := renderRuntimeLabels(l)
	v.mu.Lock()
	defer v.mu.Unlock()
	_, ok := v.series[key]
	delete(v.series, key)
	return ok
}

// Set sets the value.
func (s *RuntimeValue) Set(f float64) { s.bits.Store(math.Float64bits(f)) }

// Add adds d to the value.
func (s *RuntimeValue) Add(d float64) {
	for {
		old := s.bits.Load()
		if s.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Inc adds 1.
func (s *RuntimeValue) Inc() { s.Add(1) }

// Value is the current value.
func (s *RuntimeValue) Value() float64 { return math.Float64frombits(s.bits.Load()) }

// WriteTo writes the family (nothing when it has no series) in the text
// format, series in label order.
func (v *RuntimeVec) WriteTo(w io.Writer) (int64, error) {
	v.mu.RLock()
	keys := slices.Sorted(maps.Keys(v.series))
	vals := make([]float64, len(keys))
	for i, k := range keys {
		vals[i] = v.series[k].Value()
	}
	v.mu.RUnlock()
	if len(keys) == 0 {
		return 0, nil
	}
	b := fmt.Appendf(nil, "# HELP %s %s\n# TYPE %s %s\n", v.name, v.help, v.name, v.typ)
	for i, k := range keys {
		b = append(b, v.name...)
		b = append(b, '{')
		b = append(b, k...)
		b = append(b, '}', ' ')
		b = appendFloat(b, vals[i])
		b = append(b, '\n')
	}
	n, err := w.Write(b)
	return int64(n), err
}
