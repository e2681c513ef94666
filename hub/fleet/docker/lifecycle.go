package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/redforge/controltower/hub/fleet"
)

// Create writes the instance's user dir (settings.js with adminAuth, the
// credential secret) and creates its container without starting it. It
// returns ErrExists when a container named for the instance exists, and a
// *fleet.SpecError (ErrInvalidSpec) for an invalid spec; then nothing is
// created.
func (d *Driver) Create(ctx context.Context, spec fleet.Spec) (fleet.Runtime, error) {
	if err := d.ready(); err != nil {
		return fleet.Runtime{}, err
	}
	if err := spec.Validate(d.limits); err != nil {
		return fleet.Runtime{}, err
	}
	id := spec.InstanceID
	defer d.lock(id)()
	if _, err := d.cli.ContainerInspect(ctx, ContainerName(id)); err == nil {
		return fleet.Runtime{}, fmt.Errorf("create instance %s: container %s: %w", id, ContainerName(id), fleet.ErrExists)
	} else if !cerrdefs.IsNotFound(err) {
		return fleet.Runtime{}, fmt.Errorf("create instance %s: %w", id, err)
	}
	_, statErr := os.Stat(d.instanceDir(id))
	leftover := statErr == nil
	if err := d.writeUserDir(spec); err != nil {
		if !leftover {
			_ = os.RemoveAll(d.instanceDir(id))
		}
		return fleet.Runtime{}, fmt.Errorf("create instance %s: %w", id, err)
	}
	cfg, hostCfg := d.containerConfig(spec)
	if _, err := d.cli.ContainerCreate(ctx, cfg, hostCfg, nil, nil, ContainerName(id)); err != nil {
		if !leftover {
			_ = os.RemoveAll(d.instanceDir(id))
		}
		switch {
		case cerrdefs.IsConflict(err):
			return fleet.Runtime{}, fmt.Errorf("create instance %s: %w: %v", id, fleet.ErrExists, err)
		case cerrdefs.IsNotFound(err):
			return fleet.Runtime{}, fmt.Errorf("create instance %s: image %q is not on the Docker host; pull or load it first: %w", id, cfg.Image, err)
		}
		return fleet.Runtime{}, fmt.Errorf("create instance %s: %w", id, err)
	}
	return d.inspect(ctx, id)
}

// writeUserDir writes settings for the address Node-RED listens on in the
// container's network and makes the dir usable by the container's user.
func (d *Driver) writeUserDir(spec fleet.Spec) error {
	host, port := spec.ListenHost(), spec.Port
	if d.cfg.Network == NetworkBridge {
		host, port = "0.0.0.0", ContainerPort
	}
	dir := d.userDir(spec.InstanceID)
	if err := fleet.WriteUserDir(dir, spec, host, port); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return nil // the container runs as the hub's user instead (containerUser)
	}
	for _, p := range []string{dir, filepath.Join(dir, fleet.SettingsFile), filepath.Join(dir, fleet.CredentialSecretFile)} {
		if err := os.Chown(p, ContainerUID, ContainerUID); err != nil {
			return fmt.Errorf("user dir: %w", err)
		}
	}
	// The node packages the hub copied in (fleet.Spec.NodesDir).
	for _, name := range []string{"node_modules", "package.json"} {
		err := filepath.WalkDir(filepath.Join(dir, name), func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(p, ContainerUID, ContainerUID)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("user dir: %w", err)
		}
	}
	return nil
}

// containerUser is the non-root user Node-RED runs as, whatever the
// image says: ContainerUID (which owns the user dir) when the hub runs as
// root; otherwise the hub's own uid:gid, so Node-RED can write the user dir
// the hub created.
func containerUser() string {
	if os.Geteuid() == 0 {
		return fmt.Sprintf("%d:%d", ContainerUID, ContainerUID)
	}
	return fmt.Sprintf("%d:%d", os.Geteuid(), os.Getegid())
}

// TmpfsOptions are the mount options of the container's /tmp, the one
// writable place besides /data on its read-only root filesystem.
const TmpfsOptions = "rw,nosuid,nodev,noexec,size=64m,mode=1777"

func (d *Driver) containerConfig(spec fleet.Spec) (*container.Config, *container.HostConfig) {
	image := spec.Image
	if image == "" {
		image = d.cfg.DefaultImage
	}
	labels := make(map[string]string, len(d.cfg.ExtraLabels)+5)
	for k, v := range d.cfg.ExtraLabels {
		labels[k] = v
	}
	labels[LabelInstance] = spec.InstanceID
	labels[LabelHub] = d.cfg.HubID
	labels[LabelManaged] = "true"
	labels[LabelPort] = strconv.Itoa(spec.Port)
	labels[LabelSpecHash] = fleet.SpecHash(spec)
	env := make([]string, 0, len(spec.Env)+1)
	if _, ok := spec.Env["HOME"]; !ok {
		env = append(env, "HOME=/data") // npm and Node-RED write under HOME; the root filesystem is read-only
	}
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	stopSecs := timeoutSeconds(d.cfg.StopTimeout)
	cfg := &container.Config{
		Image: image, Env: env, Labels: labels, User: containerUser(),
		StopSignal: "SIGTERM", StopTimeout: &stopSecs,
	}
	memory := int64(spec.MemoryMB) << 20
	// Flows are code: the container gets nothing of the hub's (only its own
	// user dir), no capabilities, no new privileges and a read-only root.
	hostCfg := &container.HostConfig{
		Binds:          []string{d.userDir(spec.InstanceID) + ":/data"},
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges:true"},
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": TmpfsOptions},
		NetworkMode:    container.NetworkMode(d.cfg.Network),
		RestartPolicy:  container.RestartPolicy{Name: container.RestartPolicyDisabled},
		LogConfig:      container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "2"}},
		Resources: container.Resources{
			NanoCPUs:   int64(math.Round(spec.CPU * 1e9)),
			Memory:     memory,
			MemorySwap: memory, // no swap beyond the memory limit (0 = unlimited for both)
		},
	}
	if d.cfg.Network == NetworkBridge {
		p := nat.Port(fmt.Sprintf("%d/tcp", ContainerPort))
		cfg.ExposedPorts = nat.PortSet{p: {}}
		hostCfg.PortBindings = nat.PortMap{p: {{HostIP: spec.ListenHost(), HostPort: strconv.Itoa(spec.Port)}}}
	}
	return cfg, hostCfg
}

// timeoutSeconds rounds a stop timeout up to whole seconds, as the Docker
// API takes them.
func timeoutSeconds(t time.Duration) int {
	return max(1, int(math.Ceil(t.Seconds())))
}

// Start starts the instance's container; a running one is left alone. It
// returns ErrNotFound when this hub has no container for the instance.
func (d *Driver) Start(ctx context.Context, instanceID string) error {
	if err := d.ready(); err != nil {
		return err
	}
	defer d.lock(instanceID)()
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return err
	}
	if c.State != nil && c.State.Running {
		return nil
	}
	if err := d.cli.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
		return fmt.Errorf("start instance %s: %w", instanceID, err)
	}
	if everStarted(c) {
		d.countRestart(instanceID)
	}
	return nil
}

// Stop stops the container: SIGTERM, then SIGKILL after timeout (the
// configured StopTimeout when timeout <= 0; Docker counts whole seconds).
// A container that is not running is left alone.
func (d *Driver) Stop(ctx context.Context, instanceID string, timeout time.Duration) error {
	if err := d.ready(); err != nil {
		return err
	}
	defer d.lock(instanceID)()
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return err
	}
	return d.stop(ctx, c, instanceID, timeout)
}

func (d *Driver) stop(ctx context.Context, c container.InspectResponse, instanceID string, timeout time.Duration) error {
	if c.State == nil || !c.State.Running {
		return nil
	}
	if timeout <= 0 {
		timeout = d.cfg.StopTimeout
	}
	secs := timeoutSeconds(timeout)
	err := d.cli.ContainerStop(ctx, c.ID, container.StopOptions{Timeout: &secs})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("stop instance %s: %w", instanceID, err)
	}
	return nil
}

// Restart stops the container (with the configured StopTimeout) and starts
// it again.
func (d *Driver) Restart(ctx context.Context, instanceID string) error {
	if err := d.ready(); err != nil {
		return err
	}
	defer d.lock(instanceID)()
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return err
	}
	secs := timeoutSeconds(d.cfg.StopTimeout)
	if err := d.cli.ContainerRestart(ctx, c.ID, container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("restart instance %s: %w", instanceID, err)
	}
	if everStarted(c) {
		d.countRestart(instanceID)
	}
	return nil
}

// Remove stops the container gracefully if it runs, removes it and deletes
// the instance's dir (user dir included). It returns nil when there is
// nothing to remove; another hub's container of the same name is left
// alone.
func (d *Driver) Remove(ctx context.Context, instanceID string) error {
	if err := d.ready(); err != nil {
		return err
	}
	if !fleet.ValidInstanceID(instanceID) {
		return nil
	}
	defer d.lock(instanceID)()
	c, err := d.find(ctx, instanceID)
	switch {
	case errors.Is(err, fleet.ErrNotFound):
	case err != nil:
		return err
	default:
		if err := d.stop(ctx, c, instanceID, d.cfg.StopTimeout); err != nil {
			return fmt.Errorf("remove instance %s: %w", instanceID, err)
		}
		err := d.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove instance %s: %w", instanceID, err)
		}
	}
	d.forgetSample(instanceID)
	if err := os.RemoveAll(d.instanceDir(instanceID)); err != nil {
		return fmt.Errorf("remove instance %s: user dir: %w", instanceID, err)
	}
	return nil
}

// everStarted reports whether the container has run before.
func everStarted(c container.InspectResponse) bool {
	return c.State != nil && parseTime(c.State.StartedAt).After(epoch)
}

// driverState is what the driver keeps beside the user dir.
type driverState struct {
	Restarts int `json:"restarts"`
}

func (d *Driver) statePath(id string) string { return filepath.Join(d.instanceDir(id), "runtime.json") }

func (d *Driver) loadState(id string) driverState {
	var s driverState
	if b, err := os.ReadFile(d.statePath(id)); err == nil {
		_ = json.Unmarshal(b, &s)
	}
	return s
}

// countRestart records one more start after the first; a failure to
// record only costs accuracy of Runtime.Restarts, so it is logged.
func (d *Driver) countRestart(id string) {
	s := d.loadState(id)
	s.Restarts++
	b, _ := json.Marshal(s)
	if err := fleet.WriteFileAtomic(d.statePath(id), b, 0o600); err != nil {
		d.log.Warn("record restart", "instance", id, "error", err)
	}
}
