// Package deploy is the hub's blue-green deployment orchestrator. It owns
// the phases DRAIN → DEPLOY → VERIFY → RESUME → AUDIT → CLEANUP of a
// deployment (persisted in the catalog's Deployment row, so a new Raft
// leader resumes one in flight), the smoke tests, automatic and manual
// rollback, the MQTT input relay that holds a logical instance's input in
// hub/coord while it drains, and the "live color" of each logical
// instance that the /i/{name}/ proxy (hub/proxy) follows. It does not run
// runtimes (hub/fleet does, from catalog rows this package writes) nor
// serve HTTP (hub/api). See DESIGN.md.
package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Defaults for a deployment's tunables.
const (
	DefaultDrainTimeout   = 5 * time.Minute
	DefaultRollbackWindow = 10 * time.Minute
	DefaultHealthyTimeout = 2 * time.Minute
	DefaultSmokeTimeout   = 10 * time.Second
	// MaxDrainTimeout and MaxRollbackWindow bound what a request may ask.
	MaxDrainTimeout   = time.Hour
	MaxRollbackWindow = 7 * 24 * time.Hour
)

// Topic names on the hub bus. {instance} is a catalog row's name (the
// logical instance's own row, or a color row "name.xxxxxxxx").
const (
	// InputPrefix + {logical name} + "/..." is the stable input address of
	// a logical instance; the relay forwards it to {live}/in/....
	InputPrefix = "redforge/in/"
	// OutputPrefix + {logical name} is where the example flows reply.
	OutputPrefix = "redforge/out/"
)

// ControlTopic is where the hub sends {"mode":...} to one runtime.
func ControlTopic(instance string) string { return instance + "/control" }

// AckTopic is where a runtime acknowledges a control message.
func AckTopic(instance string) string { return instance + "/control/ack" }

// InTopic is the topic a runtime subscribes to for its relayed input.
func InTopic(instance string) string { return instance + "/in" }

// SmokeHTTP is a sample request sent straight to green during VERIFY.
type SmokeHTTP struct {
	Method         string `json:"method,omitempty"` // GET when empty
	Path           string `json:"path"`             // e.g. /hello
	Body           string `json:"body,omitempty"`
	ExpectStatus   int    `json:"expect_status,omitempty"`   // 200 when 0
	ExpectContains string `json:"expect_contains,omitempty"` // substring of the reply body
}

// SmokeOptions choose the optional smoke tests.
type SmokeOptions struct {
	HTTP *SmokeHTTP `json:"http,omitempty"`
	// MQTT asks green for a control ack ({"mode":"ping"}) over the hub
	// bus; on by default, off with false.
	MQTT *bool `json:"mqtt,omitempty"`
}

// Request starts a deployment.
type Request struct {
	Instance       string          // logical instance id or name
	Flows          json.RawMessage // validated by the caller with nodered.ValidateFlows
	DrainTimeout   time.Duration   // DefaultDrainTimeout when 0
	RollbackWindow time.Duration   // DefaultRollbackWindow when 0; negative = remove blue at once
	Smoke          SmokeOptions
	UserID         string
	Username       string
	// Nodes, when set, is green's node set (a node install or removal, a
	// snapshot); otherwise green runs blue's.
	Nodes *[]catalog.NodePackage
	// Credentials, when set, are green's sealed flow credentials (a
	// snapshot's); otherwise green gets blue's.
	Credentials *string
	// Settings, when set, are green's settings (a snapshot's); the logical
	// instance keeps them once the deployment succeeds.
	Settings *Settings
	// Kind says what the deployment changes (KindFlows when empty) and
	// Note sums it up for the audit log.
	Kind, Note string
}

// Kinds of deployment.
const (
	KindFlows    = "flows"
	KindNodes    = "nodes"
	KindSnapshot = "snapshot"
)

// Settings are the instance settings a deployment may set on green: its
// image, resources and environment.
type Settings struct {
	Image     string            `json:"image,omitempty"`
	Resources catalog.Resources `json:"resources"`
	Env       map[string]string `json:"env,omitempty"`
}

// Spec is what a deployment needs beyond its catalog row; it is kept in
// the catalog setting SpecKey(id) so that any leader can resume it.
type Spec struct {
	Flows          json.RawMessage `json:"flows"`
	DrainTimeout   time.Duration   `json:"drain_timeout"`
	RollbackWindow time.Duration   `json:"rollback_window"`
	Smoke          SmokeOptions    `json:"smoke"`
	BlueID         string          `json:"blue_id"`
	GreenID        string          `json:"green_id"`
	GreenName      string          `json:"green_name"`
	GreenRev       string          `json:"green_rev,omitempty"`
	UserID         string          `json:"user_id,omitempty"`
	Replayed       int             `json:"replayed,omitempty"`
	Checkpoints    int             `json:"checkpoints_replayed,omitempty"` // workflow checkpoints replayed to green in DEPLOY
	DrainResult    string          `json:"drain_result,omitempty"`
	// Credentials, when set, are green's sealed node credentials (a
	// snapshot's); otherwise green gets blue's.
	Credentials *string `json:"credentials,omitempty"`
	// Nodes, Settings, Kind and Note: see Request.
	Nodes    *[]catalog.NodePackage `json:"nodes,omitempty"`
	Settings *Settings              `json:"settings,omitempty"`
	Kind     string                 `json:"kind,omitempty"`
	Note     string                 `json:"note,omitempty"`
}

// SpecKey is the catalog setting that holds a deployment's Spec.
func SpecKey(deploymentID string) string { return "deploy/spec/" + deploymentID }

// FlowsVersion names a flows document: the first 12 hex digits of its
// SHA-256.
func FlowsVersion(flows []byte) string {
	s := sha256.Sum256(flows)
	return hex.EncodeToString(s[:6])
}

// SmokeResult is one smoke test's outcome, recorded in Deployment.Smoke.
type SmokeResult struct {
	Name     string `json:"name"`
	OK       bool   `json:"ok"`
	Message  string `json:"message,omitempty"`
	Duration string `json:"duration"`
}
