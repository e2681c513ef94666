// Package docker is the fleet driver that runs each Node-RED instance as
// one Docker container, through the Docker Engine API
// (github.com/docker/docker/client). It owns container naming and labels,
// the per-instance user dir bind mount, resource limits, how a container is
// confined, and the mapping of Docker's view (inspect, stats, logs) to fleet
// types. It does not decide when instances run or restart: the hub's
// reconciler and monitor do, so containers get restart policy "no".
//
// Runtimes never run with the hub's powers: Node-RED runs as a non-root
// user (ContainerUID, or the hub's own uid when the hub is not root) whatever
// the image says, with all capabilities dropped, no-new-privileges, a
// read-only root filesystem with a tmpfs /tmp, and no mount but its own
// user dir at /data. With host networking it shares the host's network
// namespace (it listens on 127.0.0.1:Port and can reach loopback services).
package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/docker/docker/client"

	"github.com/redforge/controltower/hub/fleet"
)

// Defaults for Config.
const (
	DefaultImage       = "nodered/node-red:4.1"
	DefaultNetwork     = NetworkBridge
	DefaultStopTimeout = 10 * time.Second
	// ContainerPort is where Node-RED listens inside a bridge-networked
	// container.
	ContainerPort = 1880
	// ContainerUID is the user Node-RED runs as in the container (the
	// Node-RED images' own user); the user dir is chowned to it when the
	// hub runs as root.
	ContainerUID = 1000
)

// Network modes.
const (
	NetworkBridge = "bridge" // port published on 127.0.0.1:Port → 1880 in the container
	NetworkHost   = "host"   // Node-RED listens on 127.0.0.1:Port in the host's network namespace (Linux)
)

// Labels on every container the driver creates.
const (
	LabelInstance = "redforge.instance"
	LabelHub      = "redforge.hub"
	LabelManaged  = "redforge.managed"
	LabelPort     = "redforge.port"
	LabelSpecHash = "redforge.spec-hash"
	namePrefix    = "redforge-"
)

// Config configures a Driver. HubID and DataDir are required.
type Config struct {
	Host         string            // DOCKER_HOST (unix:///…, tcp://…); empty: the environment's DOCKER_HOST or the default socket
	HubID        string            // owner label value: one hub, or every hub of a cluster (they adopt each other's containers after a failover); other owners on the dockerd are left alone
	DataDir      string            // dir for per-instance user dirs (<DataDir>/instances/<id>/userdir), bind-mounted: a path on the Docker host
	DefaultImage string            // image when Spec.Image is empty; DefaultImage when empty
	Network      string            // NetworkBridge (default) or NetworkHost
	StopTimeout  time.Duration     // grace before SIGKILL when Stop gets no timeout; DefaultStopTimeout when zero
	ExtraLabels  map[string]string // added to every container (tests add testenv.TestLabel)
	Log          *slog.Logger      // nil: discard
}

// Driver runs instances as Docker containers. New does no I/O; call Open
// before use and Close after.
type Driver struct {
	cfg     Config
	log     *slog.Logger
	cli     *client.Client
	limits  fleet.Limits
	dataDir string // absolute

	locks sync.Map // instance id → *sync.Mutex

	mu         sync.Mutex
	samples    map[string]cpuSample // last CPU sample per instance, for CPUPercent
	stopEvents context.CancelFunc   // ends NotifyExit's event stream
}

var _ fleet.Driver = (*Driver)(nil)

// New returns a driver for cfg, filling defaults. It does no I/O.
func New(cfg Config) *Driver {
	if cfg.DefaultImage == "" {
		cfg.DefaultImage = DefaultImage
	}
	if cfg.Network == "" {
		cfg.Network = DefaultNetwork
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = DefaultStopTimeout
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Driver{cfg: cfg, log: log.With("driver", "docker"), samples: make(map[string]cpuSample)}
}

// Open checks the config, connects to the Docker daemon with API version
// negotiation and pings it. It fails with an error naming the daemon's
// address when it does not answer.
func (d *Driver) Open(ctx context.Context) error {
	if err := d.validateConfig(); err != nil {
		return err
	}
	abs, err := filepath.Abs(d.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("docker driver: data dir: %w", err)
	}
	d.dataDir = abs
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if d.cfg.Host != "" {
		opts = append(opts, client.WithHost(d.cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return fmt.Errorf("docker driver: client for %s: %w", d.host(), err)
	}
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		return fmt.Errorf("docker driver: the Docker daemon at %s does not answer (%v); start dockerd or set the docker host / DOCKER_HOST to a socket that answers", d.host(), err)
	}
	cli.NegotiateAPIVersion(ctx)
	info, err := cli.Info(ctx)
	if err != nil {
		cli.Close()
		return fmt.Errorf("docker driver: info from the Docker daemon at %s: %w", d.host(), err)
	}
	d.cli = cli
	d.limits = fleet.Limits{CPUs: float64(info.NCPU), MemoryMB: int(info.MemTotal >> 20)}
	return os.MkdirAll(filepath.Join(d.dataDir, "instances"), 0o700)
}

func (d *Driver) validateConfig() error {
	var errs []error
	if d.cfg.HubID == "" {
		errs = append(errs, errors.New("docker driver: hub_id must be set"))
	}
	if d.cfg.DataDir == "" {
		errs = append(errs, errors.New("docker driver: data_dir must be set"))
	}
	if d.cfg.Network != NetworkBridge && d.cfg.Network != NetworkHost {
		errs = append(errs, fmt.Errorf("docker driver: network %q must be %q or %q", d.cfg.Network, NetworkBridge, NetworkHost))
	}
	return errors.Join(errs...)
}

func (d *Driver) host() string {
	if d.cfg.Host != "" {
		return d.cfg.Host
	}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return h
	}
	return client.DefaultDockerHost
}

// Close closes the connection to the daemon. Containers keep running.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.stopEvents != nil {
		d.stopEvents()
	}
	d.mu.Unlock()
	if d.cli == nil {
		return nil
	}
	return d.cli.Close()
}

// Name returns "docker".
func (d *Driver) Name() string { return "docker" }

// Client is the driver's Docker client (nil before Open), for tests and
// tools that need to look at containers directly.
func (d *Driver) Client() *client.Client { return d.cli }

// ContainerName is the name of an instance's container.
func ContainerName(instanceID string) string { return namePrefix + instanceID }

// instanceDir is <DataDir>/instances/<id>; userDir is its userdir.
func (d *Driver) instanceDir(id string) string { return filepath.Join(d.dataDir, "instances", id) }
func (d *Driver) userDir(id string) string     { return filepath.Join(d.instanceDir(id), "userdir") }

// lock serializes operations on one instance.
func (d *Driver) lock(id string) func() {
	m, _ := d.locks.LoadOrStore(id, new(sync.Mutex))
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

func (d *Driver) ready() error {
	if d.cli == nil {
		return errors.New("docker driver: not open (call Open first)")
	}
	return nil
}
