package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// MetricSample is one value of a named metric from a source (an instance
// id or an edge id) at a time.
type MetricSample struct {
	Time   time.Time       `json:"time"`
	Source string          `json:"source"`
	Name   string          `json:"name"`
	Labels json.RawMessage `json:"labels,omitempty"`
	Value  float64         `json:"value"`
}

// Validate checks m: Time, Source and Name are required, Value finite
// (NaN and ±Inf are refused: not every backend stores them), text UTF-8
// without NUL, Labels valid JSON or empty.
func (m *MetricSample) Validate() error {
	if err := checkTime("time", m.Time); err != nil {
		return err
	}
	if err := checkRequired("source", m.Source); err != nil {
		return err
	}
	if err := checkRequired("name", m.Name); err != nil {
		return err
	}
	if err := checkFinite("value", m.Value); err != nil {
		return err
	}
	return checkJSON("labels", m.Labels)
}

// ValidateMetricSamples validates every element of ms, naming the index of
// the first bad one ("samples[2].value").
func ValidateMetricSamples(ms []MetricSample) error {
	for i := range ms {
		if err := ms[i].Validate(); err != nil {
			return prefixed(fmt.Sprintf("samples[%d]", i), err)
		}
	}
	return nil
}

// MetricQuery selects metric samples. Empty strings and zero times do not
// filter; Start is inclusive and End exclusive.
type MetricQuery struct {
	Source     string
	Name       string
	Start, End time.Time
	Limit      int // 0: DefaultLimit
}

// Validate checks q: limit in 0..MaxLimit, End not before Start.
func (q MetricQuery) Validate() error {
	if _, err := ResolveLimit(q.Limit); err != nil {
		return err
	}
	return checkRange(q.Start, q.End)
}

// ValidatePrune checks the cut-off of PruneMetricSamples.
func ValidatePrune(before time.Time) error {
	return checkTime("before", before)
}
