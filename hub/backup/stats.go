package backup

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the backup metrics: last success time, duration and size,
// failures; the same for verification.
type Stats struct {
	mu   sync.Mutex
	last Status

	lastSuccess, lastDuration, lastSize prometheus.Gauge
	failures                            prometheus.Counter
	verifySuccess                       prometheus.Gauge
	verifyFailures                      prometheus.Counter
}

// Status is the last backup's and verification's outcome, as GET
// /api/backups reports it.
type Status struct {
	LastSuccess     time.Time `json:"last_success,omitzero"`
	LastName        string    `json:"last_name,omitempty"`
	LastSeconds     float64   `json:"last_duration_seconds,omitempty"`
	LastBytes       int64     `json:"last_size_bytes,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	LastErrorAt     time.Time `json:"last_error_at,omitzero"`
	Failures        int64     `json:"failures"`
	LastVerified    time.Time `json:"last_verified,omitzero"`
	LastVerifyError string    `json:"last_verify_error,omitempty"`
	VerifyFailures  int64     `json:"verify_failures"`
	pendingSize     int64
}

func newStats() *Stats {
	g := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	}
	c := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	return &Stats{
		lastSuccess:    g("controltower_backup_last_success_timestamp_seconds", "Unix time of the last successful backup made by this hub."),
		lastDuration:   g("controltower_backup_last_duration_seconds", "How long the last successful backup took."),
		lastSize:       g("controltower_backup_last_size_bytes", "Size of the last successful backup archive."),
		failures:       c("controltower_backup_failures_total", "Backups that failed."),
		verifySuccess:  g("controltower_backup_verify_last_success_timestamp_seconds", "Unix time of the last successful backup verification (checksums plus a scratch restore)."),
		verifyFailures: c("controltower_backup_verify_failures_total", "Backup verifications that failed."),
	}
}

// Collectors returns the metrics to register.
func (s *Stats) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.lastSuccess, s.lastDuration, s.lastSize, s.failures, s.verifySuccess, s.verifyFailures}
}

func (s *Stats) setSize(n int64) {
	s.mu.Lock()
	s.last.pendingSize = n
	s.mu.Unlock()
}

func (s *Stats) lastBytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last.LastBytes
}

func (s *Stats) record(start, end time.Time, m *Manifest, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.last.LastError, s.last.LastErrorAt = err.Error(), end
		s.last.Failures++
		s.failures.Inc()
		return
	}
	s.last.LastSuccess, s.last.LastName, s.last.LastSeconds = end, m.ID, end.Sub(start).Seconds()
	s.last.LastBytes = s.last.pendingSize
	s.lastSuccess.Set(float64(end.UnixNano()) / 1e9)
	s.lastDuration.Set(s.last.LastSeconds)
	s.lastSize.Set(float64(s.last.LastBytes))
}

func (s *Stats) recordVerify(_, end time.Time, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.last.LastVerifyError = err.Error()
		s.last.VerifyFailures++
		s.verifyFailures.Inc()
		return
	}
	s.last.LastVerified, s.last.LastVerifyError = end, ""
	s.verifySuccess.Set(float64(end.UnixNano()) / 1e9)
}

// Status returns the last outcomes.
func (s *Stats) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// Stats returns the service's metrics and status.
func (s *Service) Stats() *Stats { return s.stats }

// Seed sets the last-success metric from the newest archive at the
// destination, so that every hub reports the cluster's newest backup (the
// leader makes them; a new leader starts from what is there).
func (s *Service) Seed(ctx context.Context) error {
	objs, err := s.cfg.Dest.List(ctx)
	if err != nil || len(objs) == 0 {
		return err
	}
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	if objs[0].Time.After(s.stats.last.LastSuccess) {
		s.stats.lastSuccess.Set(float64(objs[0].Time.UnixNano()) / 1e9)
	}
	return nil
}
