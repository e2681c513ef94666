// Package metrics owns the hub's Prometheus registry and the collectors
// that other hub packages update (controltower_*, nodered_instance_*,
// agent_*). It holds no state of its own beyond the metric values and does
// not serve HTTP routes: hub/api mounts Handler.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is the hub's private registry (not the global default, so tests
// can run several hubs in one process) and the collectors on it.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests *prometheus.CounterVec   // controltower_http_requests_total{method,route,status}
	HTTPDuration *prometheus.HistogramVec // controltower_http_request_duration_seconds{method,route}
	ComponentUp  *prometheus.GaugeVec     // controltower_component_up{component}
	RaftLeader   prometheus.Gauge         // controltower_raft_is_leader
	BuildInfo    *prometheus.GaugeVec     // controltower_build_info{version,region}

	InstanceUp     *prometheus.GaugeVec // nodered_instance_up{instance,name,replica}
	InstanceCPU    *prometheus.GaugeVec // nodered_instance_cpu_usage{instance,name,replica}
	InstanceMemory *prometheus.GaugeVec // nodered_instance_memory_bytes{instance,name,replica}
	InstanceNetRx  *prometheus.GaugeVec // nodered_instance_network_receive_bytes{instance,name,replica}
	InstanceNetTx  *prometheus.GaugeVec // nodered_instance_network_transmit_bytes{instance,name,replica}
}

func instanceGauge(name, help string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, []string{"instance", "name", "replica"})
}

// ForgetInstance drops every series of a deleted instance.
func (m *Metrics) ForgetInstance(id string) {
	for _, g := range []*prometheus.GaugeVec{m.InstanceUp, m.InstanceCPU, m.InstanceMemory, m.InstanceNetRx, m.InstanceNetTx} {
		g.DeletePartialMatch(prometheus.Labels{"instance": id})
	}
}

// ForgetAllocation drops the series of one replica this hub no longer
// runs: every replica series of the row on this hub, rebuilt by the next
// samples of those it still runs.
func (m *Metrics) ForgetAllocation(rowID, _ string) { m.ForgetInstance(rowID) }

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
	r.MustRegister(m.InstanceUp, m.InstanceCPU, m.InstanceMemory, m.InstanceNetRx, m.InstanceNetTx)
	r.MustRegister(m.HTTPRequests, m.HTTPDuration, m.ComponentUp, m.RaftLeader, m.BuildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.BuildInfo.WithLabelValues(version, region).Set(1)
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}
