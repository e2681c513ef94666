package catalog

import (
	"fmt"
	"slices"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// GreenLogs are the last lines of each replica's log that a failed green
// left with its deployment (hub/deploy), read just before the rollback
// removed its runtime. They replace the settings kept under
// "deploy/greenlogs/" and are deleted with their deployment or with the
// deployment's instance.
type GreenLogs struct {
	DeploymentID string `json:"deployment_id"`
	// InstanceID is the deployment's (logical) instance, not the green
	// row, which the rollback deletes.
	InstanceID string       `json:"instance_id"`
	Green      string       `json:"green"` // the green row's name
	At         time.Time    `json:"at"`
	Replicas   []ReplicaLog `json:"replicas"`
	Indexes
}

// ReplicaLog is the end of one green replica's log.
type ReplicaLog struct {
	Replica int    `json:"replica"`
	Hub     string `json:"hub"`
	// Lines are the last lines of the log, oldest first.
	Lines []string `json:"lines"`
	// Error says why the log could not be read, when it could not.
	Error string `json:"error,omitempty"`
}

func (g *GreenLogs) primaryKey() string { return g.DeploymentID }

func (g *GreenLogs) clone() *GreenLogs {
	c := *g
	c.Replicas = slices.Clone(g.Replicas)
	for i := range c.Replicas {
		c.Replicas[i].Lines = slices.Clone(g.Replicas[i].Lines)
	}
	return &c
}

func greenLogsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableGreenLogs, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("DeploymentID"),
		"instance": refIndex("instance", "InstanceID"),
	}}
}

// checkGreenLogs: the deployment exists and is the named instance's. A
// missing deployment is ErrNotFound before any other check, so that an
// older hub's setting whose deployment is gone is dropped (legacy.go).
func checkGreenLogs(w *write, g *GreenLogs) error {
	if g.DeploymentID == "" {
		return fmt.Errorf("green logs: deployment_id is required: %w", ErrInvalid)
	}
	d := first[Deployment](w.tx, nil, tableDeployments, "id", g.DeploymentID)
	switch {
	case d == nil:
		return fmt.Errorf("green logs: deployment %q: %w", g.DeploymentID, ErrNotFound)
	case g.InstanceID == "" || g.Green == "":
		return fmt.Errorf("green logs of %q: instance_id and green are required: %w", g.DeploymentID, ErrInvalid)
	case d.InstanceID != g.InstanceID:
		return fmt.Errorf("green logs of %q: instance_id %q is not the deployment's (%q): %w", g.DeploymentID, g.InstanceID, d.InstanceID, ErrInvalid)
	}
	return nil
}

// PutGreenLogs returns the command that keeps a failed green's logs with
// its deployment. Errors: ErrInvalid; ErrNotFound for a missing
// deployment; ErrConflict when an IfIndex check fails. The result is the
// stored GreenLogs.
func PutGreenLogs(g GreenLogs, opts ...PutOption) Command {
	return newPut(CmdPutGreenLogs, g, opts)
}

func applyPutGreenLogs(w *write, b putBody[GreenLogs]) (any, error) {
	g := &b.Row
	old := first[GreenLogs](w.tx, nil, tableGreenLogs, "id", g.DeploymentID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put green logs of %q: %w", g.DeploymentID, err)
	}
	if err := checkGreenLogs(w, g); err != nil {
		return nil, fmt.Errorf("put green logs: %w", err)
	}
	return insert(w, tableGreenLogs, g, old)
}

// DeleteGreenLogs returns the command that deletes the logs kept with a
// deployment. Errors: ErrNotFound.
func DeleteGreenLogs(deploymentID string) Command {
	return newCommand(CmdDeleteGreenLogs, keyBody{Key: deploymentID})
}

func applyDeleteGreenLogs(w *write, b keyBody) (any, error) {
	g := first[GreenLogs](w.tx, nil, tableGreenLogs, "id", b.Key)
	if g == nil {
		return nil, fmt.Errorf("delete green logs of %q: %w", b.Key, ErrNotFound)
	}
	w.remove(tableGreenLogs, g)
	return nil, nil
}

// GreenLogs returns the logs a failed green left with a deployment, or
// ErrNotFound when it left none.
func (s *State) GreenLogs(deploymentID string) (GreenLogs, error) {
	return get[GreenLogs](s.read(nil), nil, tableGreenLogs, deploymentID)
}

// deleteDeploymentGreenLogs deletes the logs of a deleted deployment.
func deleteDeploymentGreenLogs(w *write, deploymentID string) {
	if g := first[GreenLogs](w.tx, nil, tableGreenLogs, "id", deploymentID); g != nil {
		w.remove(tableGreenLogs, g)
	}
}

// deleteInstanceGreenLogs deletes the logs kept with a deleted
// instance's deployments.
func deleteInstanceGreenLogs(w *write, instanceID string) {
	for _, g := range list[GreenLogs](w.tx, nil, tableGreenLogs, "instance", instanceID) {
		w.remove(tableGreenLogs, &g)
	}
}
