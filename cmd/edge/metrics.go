package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
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
}

func newEdgeCollector(o *outbox.Outbox, b *broker.Broker) *edgeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("redforge_edge_"+name, help, labels, nil)
	}
	return &edgeCollector{
		outbox:    o,
		broker:    b,
		now:       time.Now,
		depth:     d("outbox_depth", "Records in the outbox not yet acknowledged by the hub.", "stream"),
		bytes:     d("outbox_bytes", "Payload bytes of the records in the outbox.", "stream"),
		lastSeq:   d("outbox_last_seq", "Highest sequence number assigned in the stream.", "stream"),
		oldestAge: d("outbox_oldest_age_seconds", "Age of the oldest record in the outbox; 0 when empty.", "stream"),
		accepted:  d("records_accepted_total", "Records stored in the outbox since start.", "stream"),
		refused:   d("records_refused_total", "Record publishes refused and not stored since start.", "reason"),
		buildInfo: d("build_info", "Always 1; the version label names the build.", "version"),
	}
}

// Describe implements prometheus.Collector.
func (c *edgeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.depth, c.bytes, c.lastSeq, c.oldestAge, c.accepted, c.refused, c.buildInfo} {
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
	for stream, st := range stats {
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
