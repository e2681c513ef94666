// Package process is the fleet driver that runs each Node-RED instance as a
// child process (node red.js) on the hub's machine, for machines without
// Docker: edge appliances, laptops. It owns the per-instance directory
// (user dir, settings.js, node-red.log, runtime.json), process groups,
// reaping, adoption of processes a previous hub started, how each runtime
// is confined, and resource figures from /proc. It is Linux-only (/proc).
// It does not decide when instances run or restart: the hub's reconciler
// and monitor do.
//
// Runtimes never run with the hub's powers. Flows are code (an exec node
// runs any command), so each runtime is confined before it becomes
// Node-RED, by the launcher in hub/fleet/sandbox:
//
//   - Hub running as root: each instance gets its own uid and gid from
//     [UIDBase, UIDBase+UIDCount), recorded in runtime.json so a restarted
//     hub reuses it, with no supplementary groups. Its user dir and temp dir
//     (<RunDir>/<id>/userdir and tmp) are 0700 and its own; <RunDir> and
//     <RunDir>/<id> are root's and only traversable (0711). The data dir is
//     made 0700, so a runtime reaches none of the hub's files (hub.db, raft,
//     runtime.json, logs) nor another instance's user dir.
//   - Landlock, when the kernel has it (with or without the uid switch):
//     the runtime may read and execute only the system trees (/usr, /lib,
//     /etc, /proc…), node's directory and Node-RED's node_modules, and write
//     only its user dir, its temp dir and /dev/null-like devices; it cannot
//     signal or ptrace processes outside its domain. This alone confines a
//     runtime when the hub is not root (a developer's make run), where every
//     runtime has the hub's uid. Without Landlock, Open warns once.
//   - Always: no_new_privs (setuid binaries gain nothing), umask 077, a
//     clean environment (passEnv) with HOME and TMPDIR its own.
//
// The network is not confined: runtimes listen on their port and reach
// the hub's MQTT broker, Redis and outside APIs.
//
// Instances outlive the hub: each runs in its own process group with no
// parent-death signal, its output goes straight to a file, and its state is
// kept on disk in <DataDir>/instances/<id>/runtime.json, so a new hub (a
// new Driver on the same DataDir and HubID) finds, inspects, stops and
// removes it. A pid is only taken as the instance's when the process is
// alive, its start time matches the one recorded and its command line
// names the instance's user dir: pids get reused.
//
// Limits: MemoryMB becomes node's --max-old-space-size (75% of it), a soft
// limit on the JavaScript heap, not a hard cgroup limit; CPU is checked
// against the host's cores but not enforced; per-process network counters
// do not exist in /proc without a network namespace, so Stats reports 0.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"github.com/redforge/controltower/hub/fleet"
)

// Defaults and fixed names.
const (
	DefaultStopTimeout = 10 * time.Second
	LogFile            = "node-red.log"
	DefaultLogMaxBytes = 10 << 20 // rotate node-red.log at 10 MB, keeping one old file (.1)
	runtimeFile        = "runtime.json"
	// heapShare is the part of MemoryMB given to --max-old-space-size; the
	// rest is left for buffers, code and native memory.
	heapShare = 0.75
)

// Defaults of the runtimes' isolation.
const (
	// DefaultRunRoot holds, when runtimes get their own uids, one RunDir
	// per data dir (named by a hash of its path): a place those uids can
	// reach while the data dir stays 0700.
	DefaultRunRoot = "/var/lib/redforge-runtimes"
	// DefaultUIDBase and DefaultUIDCount are the runtimes' uids (and gids):
	// 1900000000-1900099999, clear of regular users (1000-60000), systemd's
	// dynamic users (61184-65519) and Debian's default subordinate ids
	// (100000-600100000).
	DefaultUIDBase  = 1_900_000_000
	DefaultUIDCount = 100_000
)

// Config configures a Driver. DataDir, Node, RedJS and HubID are required.
type Config struct {
	DataDir     string        // hub-side per-instance dirs (runtime.json, node-red.log) live in <DataDir>/instances/<id>
	Node        string        // the node binary
	RedJS       string        // path to node-red/red.js
	HubID       string        // runtimes of other hubs on the same DataDir are not this driver's
	StopTimeout time.Duration // grace before SIGKILL when Stop gets no timeout; DefaultStopTimeout when zero
	LogMaxBytes int64         // node-red.log is rotated (one old file kept) past this size; DefaultLogMaxBytes when zero
	Log         *slog.Logger  // nil: discard

	// RunDir holds the runtimes' own dirs, <RunDir>/<id>/userdir and tmp.
	// Empty: <DataDir>/instances when runtimes keep the hub's uid, else
	// DefaultRunRoot/<hash of DataDir>. With uid switching every parent of
	// RunDir must be traversable by others (o+x).
	RunDir string
	// UIDBase and UIDCount bound the uids given to runtimes when the hub
	// runs as root; DefaultUIDBase and DefaultUIDCount when zero. Hubs that
	// share a host should get disjoint ranges (uids of running processes
	// and of /etc/passwd are skipped either way).
	UIDBase, UIDCount int
	// SameUser keeps runtimes on the hub's uid even when the hub is root,
	// confined by Landlock alone: the path a hub that cannot switch users
	// takes. Tests use it to exercise that path as root; a root hub's
	// runtimes would keep root's capabilities (CAP_SYS_PTRACE reads other
	// processes' environments past Landlock), so it is not for production.
	SameUser bool
}

// Driver runs instances as child processes. It is safe for concurrent use.
// New does no I/O; Open checks the config and prepares the dirs.
type Driver struct {
	cfg Config
	log *slog.Logger

	switchUsers bool     // each runtime gets its own uid (the hub is root and SameUser is off)
	runDir      string   // absolute Config.RunDir or its default
	landlockABI int      // the kernel's Landlock ABI, 0 = none; set by Open
	readOnly    []string // trees a Landlock-confined runtime may read; set by Open

	locks sync.Map // instance id → *sync.Mutex: one operation per instance at a time

	mu       sync.Mutex
	onExit   func(instanceID string) // NotifyExit's callback, or nil
	children map[string]*child       // processes this Driver started and reaps, by instance id
	samples  map[string]procSample   // last CPU reading per instance, for CPUPercent

	fileMu   sync.Mutex // read-modify-write of runtime.json files
	rotateMu sync.Mutex // one log rotation at a time

	limitsOnce sync.Once
	limits     fleet.Limits
	imageOnce  sync.Once
	image      string
}

// child is a process started by this Driver; done closes once it is reaped.
type child struct {
	pid      int
	done     chan struct{}
	exitCode int
}

var _ fleet.Driver = (*Driver)(nil)

// New returns a driver for cfg, filling defaults. It does no I/O.
func New(cfg Config) *Driver {
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	if cfg.LogMaxBytes <= 0 {
		cfg.LogMaxBytes = DefaultLogMaxBytes
	}
	if cfg.UIDBase <= 0 {
		cfg.UIDBase = DefaultUIDBase
	}
	if cfg.UIDCount <= 0 {
		cfg.UIDCount = DefaultUIDCount
	}
	if cfg.DataDir != "" {
		if abs, err := filepath.Abs(cfg.DataDir); err == nil {
			cfg.DataDir = abs
		}
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Driver{
		cfg: cfg, log: log.With("driver", "process"),
		children: make(map[string]*child), samples: make(map[string]procSample),
		switchUsers: os.Geteuid() == 0 && !cfg.SameUser,
	}
	d.runDir = d.defaultRunDir()
	return d
}

// Open checks the config: every required field set, node and red.js
// present, the data dir creatable. It returns every problem at once.
func (d *Driver) Open(ctx context.Context) error {
	var errs []error
	for _, f := range []struct{ name, val string }{
		{"data_dir", d.cfg.DataDir}, {"node", d.cfg.Node}, {"red_js", d.cfg.RedJS}, {"hub_id", d.cfg.HubID},
	} {
		if f.val == "" {
			errs = append(errs, fmt.Errorf("process driver: %s must be set", f.name))
		}
	}
	if d.cfg.Node != "" {
		if _, err := os.Stat(d.cfg.Node); err != nil {
			errs = append(errs, fmt.Errorf("process driver: node binary: %w", err))
		}
	}
	if d.cfg.RedJS != "" {
		if _, err := os.Stat(d.cfg.RedJS); err != nil {
			errs = append(errs, fmt.Errorf("process driver: red.js (install Node-RED with npm and point red_js at node_modules/node-red/red.js): %w", err))
		}
	}
	if d.cfg.DataDir != "" {
		if err := os.MkdirAll(filepath.Join(d.cfg.DataDir, "instances"), 0o700); err != nil {
			errs = append(errs, fmt.Errorf("process driver: data dir: %w", err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return d.openIsolation()
}

// Close stops nothing: instances keep running, as containers do when a
// hub exits. It removes the run dir under DefaultRunRoot when no instance
// is left in it (as Remove of the last instance does).
func (d *Driver) Close() error {
	d.tidyRunDir()
	return nil
}

// tidyRunDir removes the default run dir if it is empty. Under allocMu, so
// a Create of this process (which makes it again) is not under way.
func (d *Driver) tidyRunDir() {
	if d.switchUsers && d.cfg.RunDir == "" {
		allocMu.Lock()
		defer allocMu.Unlock()
		_ = os.Remove(d.runDir) // fails, as it should, while instances have dirs there
	}
}

// Name returns "process".
func (d *Driver) Name() string { return "process" }

// instanceDir is the hub's side of an instance (runtime.json, logs),
// <DataDir>/instances/<id>; runBase is the runtime's, <RunDir>/<id>, with
// its user dir and temp dir. They are the same dir when runtimes keep the
// hub's uid.
func (d *Driver) instanceDir(id string) string {
	return filepath.Join(d.cfg.DataDir, "instances", id)
}
func (d *Driver) runBase(id string) string { return filepath.Join(d.runDir, id) }
func (d *Driver) userDir(id string) string { return filepath.Join(d.runBase(id), "userdir") }
func (d *Driver) logPath(id string) string { return filepath.Join(d.instanceDir(id), LogFile) }

// tmpDir is the runtime's own TMPDIR, beside its user dir.
func tmpDir(r record) string { return filepath.Join(filepath.Dir(r.UserDir), "tmp") }

// UserDir is the Node-RED user dir the instance has or would get.
func (d *Driver) UserDir(instanceID string) string { return d.userDir(instanceID) }

// lock serializes operations on one instance.
func (d *Driver) lock(id string) func() {
	m, _ := d.locks.LoadOrStore(id, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// hostLimits are the machine's cores and memory (from /proc/meminfo).
func (d *Driver) hostLimits() fleet.Limits {
	d.limitsOnce.Do(func() {
		d.limits = fleet.Limits{CPUs: float64(runtime.NumCPU()), MemoryMB: memTotalMB()}
	})
	return d.limits
}

// imageName is "node-red@<version>" from the package.json beside red.js,
// or the red.js path.
func (d *Driver) imageName() string {
	d.imageOnce.Do(func() {
		d.image = d.cfg.RedJS
		b, err := os.ReadFile(filepath.Join(filepath.Dir(d.cfg.RedJS), "package.json"))
		if err != nil {
			return
		}
		var pkg struct{ Name, Version string }
		if json.Unmarshal(b, &pkg) == nil && pkg.Version != "" {
			d.image = pkg.Name + "@" + pkg.Version
		}
	})
	return d.image
}

// record is runtime.json: what a hub needs to start, find and adopt the
// instance's process. It holds the environment, so it is 0600.
type record struct {
	InstanceID string            `json:"instance_id"`
	Name       string            `json:"name,omitempty"`
	HubID      string            `json:"hub_id"`
	Port       int               `json:"port"`
	CPU        float64           `json:"cpu,omitempty"`
	MemoryMB   int               `json:"memory_mb,omitempty"`
	Env        map[string]string `json:"env,omitempty"`
	SpecHash   string            `json:"spec_hash"`
	UserDir    string            `json:"user_dir"`
	UID        int               `json:"uid,omitempty"` // the runtime's uid and gid; 0 = the hub's
	CreatedAt  time.Time         `json:"created_at"`

	PID       int       `json:"pid,omitempty"`        // of the last start; 0 = never started
	PIDStart  uint64    `json:"pid_start,omitempty"`  // its start time in clock ticks after boot (/proc/<pid>/stat field 22)
	StartedAt time.Time `json:"started_at,omitzero"`  // of the last start
	Starts    int       `json:"starts"`               // how many times it was started
	ExitCode  int       `json:"exit_code"`            // of the last start's process, when ExitedPID == PID
	ExitedPID int       `json:"exited_pid,omitempty"` // the pid whose exit ExitCode records
	ExitedAt  time.Time `json:"exited_at,omitzero"`   // when the reaper saw it exit
}

func (d *Driver) recordPath(id string) string { return filepath.Join(d.instanceDir(id), runtimeFile) }

// load reads the instance's record; ErrNotFound when there is none or it
// belongs to another hub.
func (d *Driver) load(id string) (record, error) {
	var r record
	if !fleet.ValidInstanceID(id) {
		return r, fmt.Errorf("instance %q: %w", id, fleet.ErrNotFound)
	}
	b, err := os.ReadFile(d.recordPath(id))
	if errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("instance %s: %w", id, fleet.ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("instance %s: %w", id, err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("instance %s: %s: %w", id, d.recordPath(id), err)
	}
	if r.HubID != d.cfg.HubID || r.InstanceID != id {
		return r, fmt.Errorf("instance %s: managed by hub %q: %w", id, r.HubID, fleet.ErrNotFound)
	}
	return r, nil
}

func (d *Driver) save(r record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return fleet.WriteFileAtomic(d.recordPath(r.InstanceID), b, 0o600)
}

// update applies fn to the stored record under fileMu and an flock on
// the instance's directory: a driver of a previous hub process that still
// reaps its child (in tests, two drivers on one data dir) must not write
// back a record read before this driver's start.
func (d *Driver) update(id string, fn func(*record)) error {
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	if fleet.ValidInstanceID(id) {
		if dir, err := os.Open(d.instanceDir(id)); err == nil {
			defer dir.Close()
			_ = syscall.Flock(int(dir.Fd()), syscall.LOCK_EX) // released when dir closes
		}
	}
	r, err := d.load(id)
	if err != nil {
		return err
	}
	fn(&r)
	return d.save(r)
}

// alive reports whether the record's process runs: the pid exists and is
// not a zombie, started at the recorded time and has the user dir on its
// command line.
func (r record) alive() bool {
	if r.PID <= 0 {
		return false
	}
	p, err := procfs.NewProc(r.PID)
	if err != nil {
		return false
	}
	st, err := statOf(p)
	if err != nil || st.state == 'Z' || st.state == 'X' {
		return false
	}
	if r.PIDStart != 0 && st.startTicks != r.PIDStart {
		return false
	}
	cmd, err := p.CmdLine()
	return err == nil && strings.Contains(strings.Join(cmd, "\x00"), r.UserDir) // the argv, or the title Node sets over it (processTitle)
}

// exiting reports whether the record's process is a zombie leader some of
// whose threads have not exited yet (they may still hold its port).
func (r record) exiting() bool {
	if r.PID <= 0 || r.PIDStart == 0 {
		return false
	}
	st, err := readStat(r.PID)
	return err == nil && st.startTicks == r.PIDStart && threadsLive(r.PID)
}
