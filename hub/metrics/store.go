package metrics

import "github.com/prometheus/client_golang/prometheus"

// StoreMetrics are the data store's failover and replica series.
type StoreMetrics struct {
	// Outages counts write outages of the store (a failover of the
	// PostgreSQL primary, every server down) that ended.
	Outages prometheus.Counter // controltower_store_write_outages_total
	// OutageSeconds is how long the ended outages lasted.
	OutageSeconds prometheus.Histogram // controltower_store_write_outage_seconds
	// InOutage is 1 while writes fail and are being retried.
	InOutage prometheus.Gauge // controltower_store_write_outage
	// ReplicaLag is each read replica's replay lag.
	ReplicaLag *prometheus.GaugeVec // controltower_store_replica_lag_seconds{replica}
}

func newStoreMetrics() *StoreMetrics {
	return &StoreMetrics{
		Outages: prometheus.NewCounter(prometheus.CounterOpts{Name: "controltower_store_write_outages_total",
			Help: "Write outages of the data store that ended (a failover of the primary, every server down)."}),
		OutageSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "controltower_store_write_outage_seconds",
			Help:    "Length of the data store's write outages, from the first failed write or ping to the first success.",
			Buckets: []float64{0.5, 1, 2, 5, 10, 20, 30, 60, 120}}),
		InOutage: prometheus.NewGauge(prometheus.GaugeOpts{Name: "controltower_store_write_outage",
			Help: "1 while the data store's writes fail and are being retried (a failover in progress)."}),
		ReplicaLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "controltower_store_replica_lag_seconds",
			Help: "Replay lag of each read replica of the data store (0 when it has replayed all it received)."}, []string{"replica"}),
	}
}

func (s *StoreMetrics) register(r *prometheus.Registry) {
	r.MustRegister(s.Outages, s.OutageSeconds, s.InOutage, s.ReplicaLag)
}
