package metrics

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redforge/controltower/hub/catalog"
)

// RecentDeployments is how many finished deployments keep a
// controltower_deployment_finished_timestamp_seconds series (the
// Deployment dashboard's table); older ones are dropped, which bounds the
// series to this many.
const RecentDeployments = 20

// DeployMetrics are the deployment orchestrator's metrics. hub/deploy
// reports to it (it implements deploy.Observer); only the Raft leader
// drives deployments, so only its /metrics has non-zero values, and a sum
// over every hub is the cluster's figure.
type DeployMetrics struct {
	Duration *prometheus.HistogramVec // controltower_deployment_duration_seconds{strategy,outcome}
	Success  *prometheus.CounterVec   // controltower_deployment_success_total{strategy}
	Failure  *prometheus.CounterVec   // controltower_deployment_failure_total{strategy,outcome}
	Phase    *prometheus.HistogramVec // controltower_deployment_phase_duration_seconds{strategy,phase}
	Held     prometheus.Counter       // controltower_deployment_held_messages_total
	Replayed prometheus.Counter       // controltower_deployment_replayed_messages_total
	Finished *prometheus.GaugeVec     // controltower_deployment_finished_timestamp_seconds{deployment,instance_id,strategy,outcome}

	mu     sync.Mutex
	recent []prometheus.Labels // Finished series, oldest first
}

func newDeployMetrics() *DeployMetrics {
	return &DeployMetrics{
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "controltower_deployment_duration_seconds",
			Help:    "Duration of finished deployments from start to their outcome, by strategy and outcome (succeeded, failed, rolled_back).",
			Buckets: []float64{5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600},
		}, []string{"strategy", "outcome"}),
		Success: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controltower_deployment_success_total",
			Help: "Deployments that succeeded, by strategy.",
		}, []string{"strategy"}),
		Failure: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "controltower_deployment_failure_total",
			Help: "Deployments that failed or were rolled back, by strategy and outcome.",
		}, []string{"strategy", "outcome"}),
		Phase: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "controltower_deployment_phase_duration_seconds",
			Help:    "Duration of each deployment phase (DRAIN, DEPLOY, VERIFY, RESUME, AUDIT, CLEANUP).",
			Buckets: []float64{.1, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"strategy", "phase"}),
		Held: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "controltower_deployment_held_messages_total",
			Help: "Input messages held while an instance drained for a deployment.",
		}),
		Replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "controltower_deployment_replayed_messages_total",
			Help: "Held input messages replayed to the live color after a deployment or rollback.",
		}),
		Finished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "controltower_deployment_finished_timestamp_seconds",
			Help: "Unix time the deployment finished, for the last " + strconv.Itoa(RecentDeployments) + " deployments this hub drove.",
		}, []string{"deployment", "instance_id", "strategy", "outcome"}),
	}
}

func (d *DeployMetrics) register(r *prometheus.Registry) {
	r.MustRegister(d.Duration, d.Success, d.Failure, d.Phase, d.Held, d.Replayed, d.Finished)
	for _, s := range []string{"blue-green"} { // the series exist from the start (rate() needs a 0 first)
		d.Success.WithLabelValues(s)
		for _, o := range []catalog.DeploymentStatus{catalog.DeploymentFailed, catalog.DeploymentRolledBack} {
			d.Failure.WithLabelValues(s, string(o))
		}
	}
}

func strategyOf(d catalog.Deployment) string {
	if d.Strategy == "" {
		return "blue-green"
	}
	return d.Strategy
}

// PhaseDone records how long a deployment spent in phase.
func (d *DeployMetrics) PhaseDone(dep catalog.Deployment, phase catalog.DeploymentPhase, took time.Duration) {
	d.Phase.WithLabelValues(strategyOf(dep), string(phase)).Observe(took.Seconds())
}

// Finish records a deployment that reached a final status.
func (d *DeployMetrics) Finish(dep catalog.Deployment) {
	strategy, outcome := strategyOf(dep), string(dep.Status)
	end := dep.FinishedAt
	if end.IsZero() {
		end = dep.UpdatedAt
	}
	d.Duration.WithLabelValues(strategy, outcome).Observe(end.Sub(dep.StartedAt).Seconds())
	if dep.Status == catalog.DeploymentSucceeded {
		d.Success.WithLabelValues(strategy).Inc()
	} else {
		d.Failure.WithLabelValues(strategy, outcome).Inc()
	}
	l := prometheus.Labels{"deployment": dep.ID, "instance_id": dep.InstanceID, "strategy": strategy, "outcome": outcome}
	d.Finished.With(l).Set(float64(end.UnixMilli()) / 1000)
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recent = append(d.recent, l)
	for len(d.recent) > RecentDeployments {
		d.Finished.Delete(d.recent[0])
		d.recent = d.recent[1:]
	}
}

// MessagesHeld counts n input messages held during a drain.
func (d *DeployMetrics) MessagesHeld(n int) { d.Held.Add(float64(n)) }

// MessagesReplayed counts n held messages replayed.
func (d *DeployMetrics) MessagesReplayed(n int) { d.Replayed.Add(float64(n)) }
