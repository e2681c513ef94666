package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"

	memdb "github.com/hashicorp/go-memdb"
)

// DeploymentSpec is what a deployment needs beyond its catalog row (hub/deploy's
// Spec: the flows, the blue and green rows, the progress of its phases),
// kept so that any leader can resume the deployment. The catalog stores
// the spec opaquely. It replaces the settings kept under "deploy/spec/".
// The spec is written before its deployment row, so it refers to the
// deployment's instance; it is deleted with its deployment or instance.
type DeploymentSpec struct {
	DeploymentID string          `json:"deployment_id"`
	InstanceID   string          `json:"instance_id"` // the logical instance deployed to
	Spec         json.RawMessage `json:"spec"`
	Indexes
}

func (d *DeploymentSpec) primaryKey() string { return d.DeploymentID }

func (d *DeploymentSpec) clone() *DeploymentSpec {
	c := *d
	c.Spec = bytes.Clone(d.Spec)
	return &c
}

func deploymentSpecsTable() *memdb.TableSchema {
	return &memdb.TableSchema{Name: tableDeploymentSpecs, Indexes: map[string]*memdb.IndexSchema{
		"id":       idIndex("DeploymentID"),
		"instance": refIndex("instance", "InstanceID"),
	}}
}

func checkDeploymentSpec(w *write, d *DeploymentSpec) error {
	switch {
	case d.DeploymentID == "" || d.InstanceID == "":
		return fmt.Errorf("deployment spec: deployment_id and instance_id are required: %w", ErrInvalid)
	case len(d.Spec) == 0 || d.Spec[0] != '{' || !json.Valid(d.Spec):
		return fmt.Errorf("deployment spec of %q: spec must be a JSON object: %w", d.DeploymentID, ErrInvalid)
	}
	return w.exists(tableInstances, d.InstanceID)
}

// PutDeploymentSpec returns the command that stores a deployment's spec.
// Errors: ErrInvalid; ErrNotFound for a missing instance; ErrConflict when
// an IfIndex check fails. The result is the stored DeploymentSpec.
func PutDeploymentSpec(d DeploymentSpec, opts ...PutOption) Command {
	return newPut(CmdPutDeploymentSpec, d, opts)
}

func applyPutDeploymentSpec(w *write, b putBody[DeploymentSpec]) (any, error) {
	d := &b.Row
	old := first[DeploymentSpec](w.tx, nil, tableDeploymentSpecs, "id", d.DeploymentID)
	if err := checkIfIndex(old, b.IfIndex); err != nil {
		return nil, fmt.Errorf("put deployment spec %q: %w", d.DeploymentID, err)
	}
	if err := checkDeploymentSpec(w, d); err != nil {
		return nil, fmt.Errorf("put deployment spec: %w", err)
	}
	return insert(w, tableDeploymentSpecs, d, old)
}

// DeploymentSpec returns the spec of a deployment, or ErrNotFound.
func (s *State) DeploymentSpec(deploymentID string) (DeploymentSpec, error) {
	return get[DeploymentSpec](s.read(nil), nil, tableDeploymentSpecs, deploymentID)
}

// deleteDeploymentSpec deletes the spec of a deleted deployment.
func deleteDeploymentSpec(w *write, deploymentID string) {
	if d := first[DeploymentSpec](w.tx, nil, tableDeploymentSpecs, "id", deploymentID); d != nil {
		w.remove(tableDeploymentSpecs, d)
	}
}

// deleteInstanceSpecs deletes the specs of a deleted instance's
// deployments, those whose deployment row was never written included.
func deleteInstanceSpecs(w *write, instanceID string) {
	for _, d := range list[DeploymentSpec](w.tx, nil, tableDeploymentSpecs, "instance", instanceID) {
		w.remove(tableDeploymentSpecs, &d)
	}
}
