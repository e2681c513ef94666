// Package fleet owns the lifecycle of the Node-RED runtimes of this hub:
// the Driver interface that runs one runtime (implemented by
// hub/fleet/docker and hub/fleet/process), the settings.js every runtime
// gets, the reconciler that runs exactly the allocations the scheduler
// placed on this hub (create, adopt after a restart, deploy the row's
// flows, stop and remove what is no longer placed here), the health
// monitor and the metrics collector. Every hub runs one. It does not own
// desired state or placement (hub/catalog, hub/schedule) nor the Node-RED
// Admin API wire format (nodered). Invariants are in DESIGN.md.
//
// Invariant of every Driver: a runtime never runs with the hub's powers,
// because flows are code. It runs as a non-root user that owns nothing of
// the hub's, reaches none of the hub's files nor another instance's user
// dir, and gains no privileges: the process driver gives each runtime its
// own uid (hub as root) and confines it with Landlock (with or without
// that), through hub/fleet/sandbox; the docker driver drops every
// capability, sets no-new-privileges, mounts only the user dir and makes
// the root read-only. The network is not confined. Proven by TestIsolation
// in each driver's package and TestRuntimeIsolation in hub.
package fleet

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"time"
)

// Spec is what a driver needs to run one instance.
type Spec struct {
	InstanceID, Name string
	Image            string            // docker image; default from driver config
	Port             int               // TCP port where the runtime's HTTP (editor, admin API, http-in nodes) answers
	Host             string            // address the runtime listens on (127.0.0.1 when empty): the hub's advertised address when other hubs must reach it
	CPU              float64           // cores; 0 = unlimited
	MemoryMB         int               // 0 = unlimited
	Env              map[string]string // environment variables of the Node-RED process
	AdminUser        string            // adminAuth user the hub uses (always set)
	AdminPassword    string            // plaintext, given by the hub; the driver writes only its bcrypt hash into settings
	ExtraSettings    map[string]any    // merged into settings.js module.exports (e.g. contextStorage later); JSON-encodable
	// Nodes are the node packages ("name@version") the runtime gets, and
	// NodesDir the node_modules tree (hub/nodes) that Create copies into
	// the user dir before the runtime starts.
	Nodes    []string
	NodesDir string
}

// State is the observed state of a runtime.
type State string

// States a driver reports.
const (
	StateCreated State = "created" // prepared, never started
	StateRunning State = "running"
	StateExited  State = "exited" // stopped, crashed or killed; ExitCode says how
	StateDead    State = "dead"   // the runtime failed to stop or be removed (docker "dead", "removing")
	StateUnknown State = "unknown"
)

// Runtime is what a driver observes of one instance.
type Runtime struct {
	InstanceID string
	RuntimeID  string // container id or pid
	Port       int
	State      State
	StartedAt  time.Time // zero if never started
	ExitCode   int       // of the last exit; -1 when the driver could not learn it
	Restarts   int       // starts after the first one (Start after a stop, Restart)
	Image      string    // docker image; for the process driver, the red.js path
}

// ListenHost is the address the runtime listens on: Host, or 127.0.0.1.
func (s Spec) ListenHost() string {
	if s.Host == "" {
		return "127.0.0.1"
	}
	return s.Host
}

// Stats is one resource sample of a running instance.
type Stats struct {
	CPUPercent       float64 // 100 = one core fully busy; up to 100 × cores
	MemoryBytes      uint64
	MemoryLimitBytes uint64 // 0 = no limit known
	NetRxBytes       uint64
	NetTxBytes       uint64
	At               time.Time
}

// Driver runs Node-RED instances on one kind of runtime. Implementations
// are safe for concurrent use; operations on one instance are serialized.
type Driver interface {
	// Name is "docker" or "process".
	Name() string
	// Create prepares the user dir and settings and creates the runtime
	// without starting it. It returns ErrExists if the instance already
	// has one and an error wrapping ErrInvalidSpec (a *SpecError) when the
	// spec is invalid; nothing is created then.
	Create(ctx context.Context, spec Spec) (Runtime, error)
	// Start starts a created or exited instance; starting a running one is
	// a no-op. ErrNotFound if there is none.
	Start(ctx context.Context, instanceID string) error
	// Stop sends SIGTERM and kills after timeout (the driver's default when
	// timeout <= 0). Stopping a stopped instance is a no-op. ErrNotFound if
	// there is none.
	Stop(ctx context.Context, instanceID string, timeout time.Duration) error
	// Restart stops (with the driver's default timeout) and starts.
	Restart(ctx context.Context, instanceID string) error
	// Remove stops the instance if needed and removes its runtime and user
	// dir; afterwards no port is left bound. It returns nil if there is
	// nothing to remove.
	Remove(ctx context.Context, instanceID string) error
	// Inspect observes one instance. ErrNotFound if this driver (this hub)
	// manages none with that id.
	Inspect(ctx context.Context, instanceID string) (Runtime, error)
	// List returns every runtime this hub's driver manages, running or
	// not, so that a restarted hub can adopt them.
	List(ctx context.Context) ([]Runtime, error)
	// Stats samples resource use. CPUPercent is averaged over the time
	// since the previous Stats call for the instance (since its start on
	// the first call). ErrNotFound if there is none; an error if it is not
	// running.
	Stats(ctx context.Context, instanceID string) (Stats, error)
	// Logs returns the last tail lines (all when tail <= 0) of the
	// instance's output as plain text; with follow it keeps streaming until
	// the reader is closed, ctx ends or the instance stops.
	Logs(ctx context.Context, instanceID string, tail int, follow bool) (io.ReadCloser, error)
}

// Sentinel errors of drivers, matched with errors.Is.
var (
	ErrNotFound    = errors.New("fleet: instance not found")
	ErrExists      = errors.New("fleet: instance already exists")
	ErrInvalidSpec = errors.New("fleet: invalid instance spec")
	// ErrNotReady is what Deps.Decorate returns while something the
	// runtime needs is being prepared (its node packages installing): the
	// allocation stays "creating" and the manager asks again shortly.
	ErrNotReady = errors.New("fleet: not ready yet")
)

// SpecError says which field of a Spec is invalid and why. It unwraps to
// ErrInvalidSpec. Field is the API's snake_case name of the field
// ("memory_mb", "cpu", "env.FOO", "extra_settings.uiPort").
type SpecError struct {
	Field   string
	Message string
}

func (e *SpecError) Error() string {
	return fmt.Sprintf("invalid instance spec: %s: %s", e.Field, e.Message)
}

// Unwrap makes errors.Is(err, ErrInvalidSpec) hold.
func (e *SpecError) Unwrap() error { return ErrInvalidSpec }

func invalid(field, format string, args ...any) error {
	return &SpecError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Resource bounds every driver enforces.
const (
	MinMemoryMB = 128
)

// Limits are what the host offers; zero fields are not checked.
type Limits struct {
	CPUs     float64 // cores the host has
	MemoryMB int     // memory the host has
}

var (
	instanceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)
	envNamePattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Validate checks the spec against the host's limits and returns the first
// problem as a *SpecError. Drivers call it before creating anything; they
// never rely on their runtime (e.g. the Docker API) to validate.
func (s Spec) Validate(host Limits) error {
	switch {
	case !instanceIDPattern.MatchString(s.InstanceID):
		return invalid("instance_id", "%q must be 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit", s.InstanceID)
	case s.Port < 1 || s.Port > 65535:
		return invalid("port", "%d is not a TCP port (1-65535)", s.Port)
	case s.CPU < 0:
		return invalid("cpu", "%g must not be negative (0 = unlimited)", s.CPU)
	case host.CPUs > 0 && s.CPU > host.CPUs:
		return invalid("cpu", "%g cores is more than the host has (%g)", s.CPU, host.CPUs)
	case s.MemoryMB < 0 || (s.MemoryMB > 0 && s.MemoryMB < MinMemoryMB):
		return invalid("memory_mb", "%d MB: give 0 (unlimited) or at least %d MB", s.MemoryMB, MinMemoryMB)
	case host.MemoryMB > 0 && s.MemoryMB > host.MemoryMB:
		return invalid("memory_mb", "%d MB is more than the host has (%d MB)", s.MemoryMB, host.MemoryMB)
	case s.AdminUser == "":
		return invalid("admin_user", "must be set")
	case s.AdminPassword == "":
		return invalid("admin_password", "must be set")
	case len(s.AdminPassword) > 72:
		return invalid("admin_password", "must be at most 72 bytes (bcrypt)")
	}
	for _, k := range sortedKeys(s.Env) {
		if !envNamePattern.MatchString(k) {
			return invalid("env."+k, "%q is not an environment variable name (letters, digits, '_', not starting with a digit)", k)
		}
	}
	return validateExtraSettings(s.ExtraSettings)
}

// ValidInstanceID reports whether id can name an instance: drivers use it
// in container names and paths, so it is 1-63 letters, digits, '_', '.'
// or '-', starting with a letter or digit. Operations given any other id
// find nothing (ErrNotFound; Remove returns nil).
func ValidInstanceID(id string) bool { return instanceIDPattern.MatchString(id) }

// SpecHash is a stable digest of everything in the spec except the admin
// password, so a reconciler can tell whether a runtime was made from the
// current spec. Drivers record it with the runtime.
func SpecHash(s Spec) string {
	s.AdminPassword = ""
	b, err := json.Marshal(s) // map keys are sorted by encoding/json
	if err != nil {
		b = fmt.Appendf(nil, "%#v", s)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
