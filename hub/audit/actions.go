package audit

import "regexp"

// Actions recorded in the audit log. Record accepts any name matching
// ^[A-Z][A-Z0-9_]{0,63}$, so a new capability can add its own; these are
// the ones the hub writes today.
const (
	InstanceCreated      = "INSTANCE_CREATED"
	InstanceUpdated      = "INSTANCE_UPDATED"
	InstanceStarted      = "INSTANCE_STARTED"
	InstanceStopped      = "INSTANCE_STOPPED"
	InstanceRestarted    = "INSTANCE_RESTARTED"
	InstanceDestroyed    = "INSTANCE_DESTROYED"
	FlowsDeployed        = "FLOWS_DEPLOYED"
	DeploymentStarted    = "DEPLOYMENT_STARTED"
	DeploymentCompleted  = "DEPLOYMENT_COMPLETED"
	DeploymentRolledBack = "DEPLOYMENT_ROLLED_BACK"
	UserCreated          = "USER_CREATED"
	UserUpdated          = "USER_UPDATED"
	UserDeleted          = "USER_DELETED"
	RoleAssigned         = "ROLE_ASSIGNED"
	PasswordChanged      = "PASSWORD_CHANGED"
	ConfigUpdated        = "CONFIG_UPDATED"
	LoginSucceeded       = "LOGIN_SUCCEEDED"
	LoginFailed          = "LOGIN_FAILED"
	Logout               = "LOGOUT"
	TokenCreated         = "TOKEN_CREATED"
	TokenRevoked         = "TOKEN_REVOKED"
	SigningKeyRotated    = "SIGNING_KEY_ROTATED"
	EdgeTokenCreated     = "EDGE_TOKEN_CREATED"
	EdgeEnrolled         = "EDGE_ENROLLED"
	EdgeConfigUpdated    = "EDGE_CONFIG_UPDATED"
	// Node packages and snapshots of instances (hub/api nodes.go,
	// snapshots.go).
	NodesInstalled     = "NODES_INSTALLED"
	NodesRemoved       = "NODES_REMOVED"
	NodesUploaded      = "NODES_UPLOADED"
	NodePolicyChanged  = "NODE_POLICY_CHANGED"
	SnapshotCreated    = "SNAPSHOT_CREATED"
	SnapshotDeleted    = "SNAPSHOT_DELETED"
	SnapshotRolledBack = "SNAPSHOT_ROLLED_BACK"
)

// Actions lists every action constant, for documentation and UI filters.
var Actions = []string{
	InstanceCreated, InstanceUpdated, InstanceStarted, InstanceStopped, InstanceRestarted,
	InstanceDestroyed, FlowsDeployed, DeploymentStarted, DeploymentCompleted, DeploymentRolledBack,
	UserCreated, UserUpdated, UserDeleted, RoleAssigned, PasswordChanged, ConfigUpdated,
	LoginSucceeded, LoginFailed, Logout, TokenCreated, TokenRevoked, EdgeTokenCreated, EdgeEnrolled,
	EdgeConfigUpdated, SigningKeyRotated, NodesInstalled, NodesRemoved, NodesUploaded, NodePolicyChanged, SnapshotCreated,
	SnapshotDeleted, SnapshotRolledBack,
}

var actionRE = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// ValidAction reports whether a is a well-formed action name.
func ValidAction(a string) bool { return actionRE.MatchString(a) }
