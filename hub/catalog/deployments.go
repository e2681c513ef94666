package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// DeploymentPhase is a step of a blue-green deployment, in order.
type DeploymentPhase string

// Deployment phases.
const (
	PhaseDrain   DeploymentPhase = "DRAIN"
	PhaseDeploy  DeploymentPhase = "DEPLOY"
	PhaseVerify  DeploymentPhase = "VERIFY"
	PhaseResume  DeploymentPhase = "RESUME"
	PhaseAudit   DeploymentPhase = "AUDIT"
	PhaseCleanup DeploymentPhase = "CLEANUP"
)

// DeploymentStatus is the outcome so far of a deployment.
type DeploymentStatus string

// Deployment statuses.
const (
	DeploymentPending    DeploymentStatus = "pending"
	DeploymentRunning    DeploymentStatus = "running"
	DeploymentSucceeded  DeploymentStatus = "succeeded"
	DeploymentFailed     DeploymentStatus = "failed"
	DeploymentRolledBack DeploymentStatus = "rolled_back"
)

// PhaseRecord is one entry of a deployment's phase history.
type PhaseRecord struct {
	Phase   DeploymentPhase  `json:"phase"`
	Status  DeploymentStatus `json:"status"`
	At      time.Time        `json:"at"`
	Message string           `json:"message,omitempty"`
}

// Deployment is one roll-out of new flows to an instance. hub/deploy keeps
// it current so that a new leader can resume a deployment in flight.
type Deployment struct {
	ID               string           `json:"id"`
	InstanceID       string           `json:"instance_id"` // must exist; cannot change
	Strategy         string           `json:"strategy,omitempty"`
	Phase            DeploymentPhase  `json:"phase,omitempty"`
	Status           DeploymentStatus `json:"status,omitempty"`
	Progress         int              `json:"progress"` // percent
	FromFlowsVersion string           `json:"from_flows_version,omitempty"`
	ToFlowsVersion   string           `json:"to_flows_version,omitempty"`
	StartedBy        string           `json:"started_by,omitempty"`
	StartedAt        time.Time        `json:"started_at"`
	UpdatedAt        time.Time        `json:"updated_at"`
	FinishedAt       time.Time        `json:"finished_at,omitzero"`
	History          []PhaseRecord    `json:"history,omitempty"`
	Smoke            json.RawMessage  `json:"smoke,omitempty"` // smoke-test results, as hub/deploy writes them
	Error            string           `json:"error,omitempty"`
	Indexes
}

func (d *Deployment) primaryKey() string { return d.ID }

func (d *Deployment) clone() *Deployment {
	c := *d
	c.History = slices.Clone(d.History)
	c.Smoke = bytes.Clone(d.Smoke)
	return &c
}

func deploymentsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableDeployments, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("ID"),
		"instance": refIndex("instance", "InstanceID"),
	}}
}

func checkDeployment(w *write, d *Deployment) error {
	if d.ID == "" || d.InstanceID == "" {
		return fmt.Errorf("deployment: id and instance_id are required: %w", ErrInvalid)
	}
	return w.exists(tableInstances, d.InstanceID)
}

// PutDeployment returns the command that creates or replaces a deployment.
// Errors: ErrInvalid without an ID or instance ID, or when the instance ID
// of a stored deployment would change; ErrNotFound when the instance does
// not exist; ErrConflict when an IfIndex check fails. The result is the
// stored Deployment.
func PutDeployment(d Deployment, opts ...PutOption) Command {
	return newPut(CmdPutDeployment, d, opts)
}

func applyPutDeployment(w *write, b putBody[Deployment]) (any, error) {
	d := &b.Row
	old := first[Deployment](w.tx, nil, tableDeployments, "id", d.ID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put deployment %q: %w", d.ID, err)
	}
	if err := checkDeployment(w, d); err != nil {
		return nil, fmt.Errorf("put deployment %q: %w", d.ID, err)
	}
	if old != nil && old.InstanceID != d.InstanceID {
		return nil, fmt.Errorf("put deployment %q: instance_id cannot change from %q to %q: %w", d.ID, old.InstanceID, d.InstanceID, ErrInvalid)
	}
	return insert(w, tableDeployments, d, old)
}

// DeleteDeployment returns the command that deletes a deployment.
// Errors: ErrNotFound.
func DeleteDeployment(id string) Command {
	return newCommand(CmdDeleteDeployment, keyBody{Key: id})
}

func applyDeleteDeployment(w *write, b keyBody) (any, error) {
	d := first[Deployment](w.tx, nil, tableDeployments, "id", b.Key)
	if d == nil {
		return nil, fmt.Errorf("delete deployment %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableDeployments, d)
	deleteDeploymentSpec(w, b.Key)
	deleteDeploymentGreenLogs(w, b.Key)
	return nil, nil
}

// Deployment returns the deployment with the given ID, or ErrNotFound.
func (s *State) Deployment(id string) (Deployment, error) {
	return get[Deployment](s.read(nil), nil, tableDeployments, id)
}

// Deployments returns the deployments of an instance, or every deployment
// when instanceID is empty, ordered by ID.
func (s *State) Deployments(instanceID string) []Deployment {
	ds, _ := s.readDeployments(nil, instanceID)
	return ds
}

func (s *State) readDeployments(ws memdb.WatchSet, instanceID string) ([]Deployment, uint64) {
	tx := s.read(ws)
	index := indexOf(tx, tableDeployments)
	if instanceID == "" {
		return list[Deployment](tx, ws, tableDeployments, "id"), index
	}
	return list[Deployment](tx, ws, tableDeployments, "instance", instanceID), index
}

// WatchDeployments is Deployments plus the deployments table index at the
// time of the read and a channel closed when the result may have changed.
// The channel is not closed when ctx ends.
func (s *State) WatchDeployments(ctx context.Context, instanceID string) ([]Deployment, uint64, <-chan struct{}) {
	ws := memdb.NewWatchSet()
	ds, index := s.readDeployments(ws, instanceID)
	return ds, index, watch(ctx, ws)
}

// WatchDeployment returns the deployment with the given ID and a channel
// closed when it may have changed (or been created, after ErrNotFound).
func (s *State) WatchDeployment(ctx context.Context, id string) (Deployment, <-chan struct{}, error) {
	ws := memdb.NewWatchSet()
	d, err := get[Deployment](s.read(ws), ws, tableDeployments, id)
	return d, watch(ctx, ws), err
}
