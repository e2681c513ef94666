package deploy

import (
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Observer is told what deployments do, for metrics (hub/metrics'
// DeployMetrics implements it). Calls come from the orchestrator's
// goroutines on the leader and must not block.
type Observer interface {
	// PhaseDone reports that d spent took in phase (which it has left,
	// or finished in).
	PhaseDone(d catalog.Deployment, phase catalog.DeploymentPhase, took time.Duration)
	// Finish reports that d reached a final status.
	Finish(d catalog.Deployment)
	// MessagesHeld and MessagesReplayed count input messages held during
	// a drain and replayed after it.
	MessagesHeld(n int)
	MessagesReplayed(n int)
}

type noObserver struct{}

func (noObserver) PhaseDone(catalog.Deployment, catalog.DeploymentPhase, time.Duration) {}
func (noObserver) Finish(catalog.Deployment)                                            {}
func (noObserver) MessagesHeld(int)                                                     {}
func (noObserver) MessagesReplayed(int)                                                 {}

// final reports whether s is a deployment's last status.
func final(s catalog.DeploymentStatus) bool {
	return s == catalog.DeploymentSucceeded || s == catalog.DeploymentFailed || s == catalog.DeploymentRolledBack
}

// observe reports a change of d from (phase, status) to its current phase
// and status: the time spent in the phase it left (from the first history
// record of that phase) and, on a final status, the deployment.
func (o *Orchestrator) observe(prev catalog.Deployment, d catalog.Deployment) {
	left := prev.Phase != "" && (d.Phase != prev.Phase || (final(d.Status) && !final(prev.Status)))
	if left {
		for _, h := range prev.History {
			if h.Phase == prev.Phase {
				o.obs.PhaseDone(d, prev.Phase, d.UpdatedAt.Sub(h.At))
				break
			}
		}
	}
	if final(d.Status) && !final(prev.Status) {
		o.obs.Finish(d)
	}
}
