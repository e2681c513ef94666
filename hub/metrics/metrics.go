// Package metrics owns the hub's Prometheus registry and the collectors
// that other hub packages update (controltower_*, nodered_instance_*,
// agent_*). It holds no state of its own beyond the metric values and does
// not serve HTTP routes: hub/api mounts Handler.
package metrics

import (
	"bufio"
	"math"
	"net/http"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/expfmt"
)

// Metrics is the hub's private registry (not the global default, so tests
// can run several hubs in one process) and the collectors on it.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests *prometheus.CounterVec   // controltower_http_requests_total{method,route,status}
	HTTPDuration *prometheus.HistogramVec // controltower_http_request_duration_seconds{method,route}
	ComponentUp  *prometheus.GaugeVec     // controltower_component_up{component}
	Store        *StoreMetrics            // controltower_store_* (store.go)
	RaftLeader   prometheus.Gauge         // controltower_raft_is_leader
	BuildInfo    *prometheus.GaugeVec     // controltower_build_info{version,region}

	// Instance series are labelled by RuntimeLabels: instance_id and name
	// (the logical instance), color (the deployment color row, "" for
	// the instance's own row) and replica.
	InstanceUp          *RuntimeVec            // nodered_instance_up
	InstanceCPU         *RuntimeVec            // nodered_instance_cpu_usage
	InstanceMemory      *RuntimeVec            // nodered_instance_memory_bytes
	InstanceNetRx       *RuntimeVec            // nodered_instance_network_receive_bytes
	InstanceNetTx       *RuntimeVec            // nodered_instance_network_transmit_bytes
	InstanceCrashLoop   *RuntimeVec            // nodered_instance_crash_looping
	InstanceRestarts    *RuntimeVec            // nodered_instance_restarts_total
	RaftHasLeader       prometheus.Gauge       // controltower_raft_has_leader
	AlertsFiring        *prometheus.GaugeVec   // controltower_alerts_firing{severity}
	AlertNotifications  *prometheus.CounterVec // controltower_alert_notifications_total{channel,result}
	AlertEvaluationTime prometheus.Histogram   // controltower_alert_evaluation_duration_seconds

	// WSFanout is the time from an event's publication to its frame being
	// written to one WebSocket client's socket, per client and event
	// (controltower_ws_fanout_seconds); WSFanoutMax the largest such time
	// since start (controltower_ws_fanout_max_seconds): the hub's side of
	// the fan-out latency, beside what a client measures after decoding.
	WSFanout    prometheus.Histogram
	WSFanoutMax *MaxGauge

	// Deploy holds the deployment metrics (deploy.go); Runtimes the
	// workflow and LLM metrics scraped from runtimes (runtime.go).
	Deploy   *DeployMetrics
	Runtimes *Runtimes
}

func instanceGauge(name, help string) *RuntimeVec { return newRuntimeVec(name, help, "gauge") }

func (m *Metrics) instanceVecs() []*RuntimeVec {
	return []*RuntimeVec{m.InstanceUp, m.InstanceCPU, m.InstanceMemory, m.InstanceNetRx, m.InstanceNetTx,
		m.InstanceCrashLoop, m.InstanceRestarts}
}

// ForgetAllocation drops the series of one replica of a row that this
// hub no longer runs (its allocation id, for the runtime metrics).
func (m *Metrics) ForgetAllocation(rowID, rowName string, replica int, allocID string) {
	l := RuntimeLabels(rowID, rowName, replica)
	for _, v := range m.instanceVecs() {
		v.Delete(l)
	}
	m.Runtimes.Forget(allocID)
}

// New registers the hub collectors, the Go runtime and process collectors.
func New(version, region string) *Metrics {
	r := prometheus.NewRegistry()
	m := &Metrics{
		Registry: r,
		HTTPRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controltower_http_requests_total",
			Help: "HTTP requests served by the hub API, by method, route pattern and status.",
		}, []string{"method", "route", "status"}),
		HTTPDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "controltower_http_request_duration_seconds",
			Help:    "Latency of HTTP requests served by the hub API.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route"}),
		ComponentUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controltower_component_up",
			Help: "1 when the hub component (raft, store, coord, broker) passed its last health check.",
		}, []string{"component"}),
		RaftLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "controltower_raft_is_leader",
			Help: "1 when this hub is the Raft leader.",
		}),
		BuildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controltower_build_info",
			Help: "Build and placement of this hub; always 1.",
		}, []string{"version", "region"}),
	}
	m.InstanceUp = instanceGauge("nodered_instance_up", "1 when the Node-RED instance answers its health check.")
	m.InstanceCPU = instanceGauge("nodered_instance_cpu_usage", "CPU use of the instance, percent of one core.")
	m.InstanceMemory = instanceGauge("nodered_instance_memory_bytes", "Memory use of the instance.")
	m.InstanceNetRx = instanceGauge("nodered_instance_network_receive_bytes", "Bytes the instance received.")
	m.InstanceNetTx = instanceGauge("nodered_instance_network_transmit_bytes", "Bytes the instance sent.")
	m.InstanceCrashLoop = instanceGauge("nodered_instance_crash_looping", "1 when the replica crashed too often and the hub stopped restarting it.")
	m.InstanceRestarts = newRuntimeVec("nodered_instance_restarts_total",
		"Restarts of the replica after a failure (an exit or failed health checks), by this hub.", "counter")
	m.RaftHasLeader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "controltower_raft_has_leader",
		Help: "1 when this hub knows a Raft leader (itself or another hub)."})
	m.AlertsFiring = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "controltower_alerts_firing",
		Help: "Hub-native alerts firing now, by severity (set on the Raft leader, which evaluates them)."}, []string{"severity"})
	m.AlertNotifications = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "controltower_alert_notifications_total",
		Help: "Alert notification attempts by channel type and result (sent, retry, failed)."}, []string{"channel", "result"})
	m.AlertEvaluationTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "controltower_alert_evaluation_duration_seconds",
		Help: "Time one evaluation of every hub-native alert rule took.", Buckets: []float64{.001, .005, .01, .05, .1, .5, 1, 5}})
	m.WSFanout = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "controltower_ws_fanout_seconds",
		Help:    "Time from an event's publication to its frame written to one WebSocket client's socket, per client and event.",
		Buckets: []float64{.001, .002, .005, .01, .02, .035, .05, .075, .1, .15, .2, .3, .5, .75, 1, 1.5, 2, 3, 5, 10}})
	m.WSFanoutMax = &MaxGauge{}
	r.MustRegister(m.WSFanout, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "controltower_ws_fanout_max_seconds",
		Help: "The largest controltower_ws_fanout_seconds observation since the hub started."}, m.WSFanoutMax.Value))
	m.Deploy = newDeployMetrics()
	m.Store = newStoreMetrics()
	m.Store.register(r)
	m.Runtimes = NewRuntimes()
	r.MustRegister(m.RaftHasLeader, m.AlertsFiring, m.AlertNotifications, m.AlertEvaluationTime)
	m.Deploy.register(r)
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.ComponentUp, m.RaftLeader, m.BuildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(version, region).Set(1)
	return m
}

// Handler serves the registry and the runtime series (Runtimes) in the
// Prometheus text format. It does not compress: with thousands of
// runtimes the exposition is tens of megabytes, which gzip would take
// longer to compress than a LAN takes to carry (Prometheus accepts an
// uncompressed answer to its gzip request).
func (m *Metrics) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mfs, err := m.Registry.Gather()
		if err != nil && len(mfs) == 0 {
			http.Error(w, "gather metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
		bw := bufio.NewWriterSize(w, 256<<10)
		for _, mf := range mfs {
			if _, err := expfmt.MetricFamilyToText(bw, mf); err != nil {
				return
			}
		}
		for _, v := range m.instanceVecs() {
			if _, err := v.WriteTo(bw); err != nil {
				return
			}
		}
		if _, err := m.Runtimes.WriteTo(bw); err != nil {
			return
		}
		_ = bw.Flush()
	})
}

// MaxGauge keeps the largest value it observed, without a lock.
type MaxGauge struct{ bits atomic.Uint64 }

// Observe raises the gauge to v if v is larger (values are >= 0).
func (g *MaxGauge) Observe(v float64) {
	nb := math.Float64bits(v)
	for {
		old := g.bits.Load()
		if math.Float64frombits(old) >= v || g.bits.CompareAndSwap(old, nb) {
			return
		}
	}
}

// Value is the largest value observed, 0 before any.
func (g *MaxGauge) Value() float64 { return math.Float64frombits(g.bits.Load()) }
