package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/edge/syncer"
)

// statsTimeout bounds the outbox query of one scrape.
const statsTimeout = 5 * time.Second

// edgeCollector reads the outbox and broker counters at scrape time, so the
// metrics are exactly what the database and the hook hold, with no second
// set of counters to keep in step.
type edgeCollector struct {
	outbox *outbox.Outbox
	broker *broker.Broker
	now    func() time.Time

	depth, bytes, lastSeq, oldestAge *prometheus.Desc
	accepted, refused, buildInfo     *prometheus.Desc
	evicted, syncLag, lastSync       *prometheus.Desc
	syncFailures, synced, syncBytes  *prometheus.Desc
	syncer                           func() *syncer.Syncer
}

func newEdgeCollector(o *outbox.Outbox, b *broker.Broker, s func() *syncer.Syncer) *edgeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("redforge_edge_"+name, help, labels, nil)
	}
	return &edgeCollector{
		outbox:       o,
		broker:       b,
		now:          time.Now,
		depth:        d("outbox_depth", "Records in the outbox not yet acknowledged by the hub.", "stream"),
		bytes:        d("outbox_bytes", "Payload bytes of the records in the outbox.", "stream"),
		lastSeq:      d("outbox_last_seq", "Highest sequence number assigned in the stream.", "stream"),
		oldestAge:    d("outbox_oldest_age_seconds", "Age of the oldest record in the outbox; 0 when empty.", "stream"),
		accepted:     d("records_accepted_total", "Records stored in the outbox since start.", "stream"),
		refused:      d("records_refused_total", "Record publishes refused and not stored since start.", "reason"),
		buildInfo:    d("build_info", "Always 1; the version label names the build.", "version"),
		evicted:      d("outbox_evicted_total", "Records evicted (tombstoned) under the disk budget, ever.", "stream"),
		syncLag:      d("sync_lag_records", "Records assigned on the edge that the hub has not acked durable (last seq minus hub watermark).", "stream"),
		lastSync:     d("sync_last_success_timestamp_seconds", "Unix time of the last batch the hub acked; 0 if none since start.", "stream"),
		synced:       d("sync_records_total", "Records the hub acked durable since start.", "stream"),
		syncBytes:    d("sync_bytes_total", "Compressed batch bytes sent to the hub since start.", "stream"),
		syncFailures: d("sync_failures_total", "Sync attempts that failed or were refused since start.", "reason"),
		syncer:       s,
	}
}

// Describe implements prometheus.Collector.
func (c *edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.bytes, c.lastSeq, c.oldestAge, c.accepted, c.refused, c.buildInfo,
		c.evicted, c.syncLag, c.lastSync, c.synced, c.syncBytes, c.syncFailures} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *edgeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.buildInfo, prometheus.GaugeValue, 1, version)
	counts := c.broker.Counts()
	for stream, n := range counts.Accepted {
		ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(n), stream)
	}
	for reason, n := range counts.Refused {
		ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(n), reason)
	}
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	stats, err := c.outbox.Stats(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.depth, err)
		return
	}
	now := c.now()
	var ss syncer.Stats
	if c.syncer != nil {
		if s := c.syncer(); s != nil {
			ss = s.Stats()
		}
	}
	for reason, n := range ss.Failures {
		ch <- prometheus.MustNewConstMetric(c.syncFailures, prometheus.CounterValue, float64(n), reason)
	}
	for stream, st := range stats {
		ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.Evicted), stream)
		if sst, ok := ss.Streams[stream]; ok {
			last := 0.0
			if !sst.LastSync.IsZero() { // lag is known once the hub has acked since start
				last = float64(sst.LastSync.UnixNano()) / 1e9
				ch <- prometheus.MustNewConstMetric(c.syncLag, prometheus.GaugeValue, float64(max(0, st.LastSeq-sst.HubWatermark)), stream)
			}
			ch <- prometheus.MustNewConstMetric(c.lastSync, prometheus.GaugeValue, last, stream)
			ch <- prometheus.MustNewConstMetric(c.synced, prometheus.CounterValue, float64(sst.RecordsSynced), stream)
			ch <- prometheus.MustNewConstMetric(c.syncBytes, prometheus.CounterValue, float64(sst.BytesSent), stream)
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(st.Depth), stream)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(st.Bytes), stream)
		ch <- prometheus.MustNewConstMetric(c.lastSeq, prometheus.GaugeValue, float64(st.LastSeq), stream)
		age := 0.0
		if !st.OldestArrived.IsZero() {
			age = max(0, now.Sub(st.OldestArrived).Seconds())
		}
		ch <- prometheus.MustNewConstMetric(c.oldestAge, prometheus.GaugeValue, age, stream)
	}
}
