package process

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/fleet/sandbox"
)

const (
	// killWait bounds the wait for a process to die after SIGKILL.
	killWait = 10 * time.Second
	// reapWait bounds the wait for this driver's reaper to record the exit
	// code of a child that has already died.
	reapWait  = 2 * time.Second
	pollEvery = 25 * time.Millisecond
)

// passEnv are the hub's environment variables an instance inherits; the
// rest of the hub's environment (which may hold its secrets) is not
// passed. HOME and TMPDIR are the runtime's own; Spec.Env is added on top.
var passEnv = []string{"PATH", "TZ", "LANG", "LC_ALL"}

// Create writes the instance's user dir (settings.js listening on
// Host:Port (127.0.0.1 by default) with adminAuth, the credential secret) and its
// runtime.json; it starts nothing. When runtimes get their own uids it
// allocates the instance's uid and hands the user dir to it. It returns
// ErrExists when the instance has a runtime.json (of this hub or another
// on the same DataDir), and a *fleet.SpecError (ErrInvalidSpec) for an
// invalid spec; then nothing is created.
func (d *Driver) Create(ctx context.Context, spec fleet.Spec) (fleet.Runtime, error) {
	if err := spec.Validate(d.hostLimits()); err != nil {
		return fleet.Runtime{}, err
	}
	id := spec.InstanceID
	defer d.lock(id)()
	if _, err := os.Stat(d.recordPath(id)); err == nil {
		return fleet.Runtime{}, fmt.Errorf("create instance %s: %w", id, fleet.ErrExists)
	}
	_, statErr := os.Stat(d.instanceDir(id))
	leftover := statErr == nil
	fail := func(err error) (fleet.Runtime, error) {
		if !leftover {
			_ = os.RemoveAll(d.instanceDir(id))
			_ = os.RemoveAll(d.runBase(id))
		}
		return fleet.Runtime{}, fmt.Errorf("create instance %s: %w", id, err)
	}
	r := record{
		InstanceID: id, Name: spec.Name, HubID: d.cfg.HubID, Port: spec.Port, CPU: spec.CPU,
		MemoryMB: spec.MemoryMB, Env: spec.Env, SpecHash: fleet.SpecHash(spec), UserDir: d.userDir(id),
		CreatedAt: time.Now().UTC(),
	}
	if err := os.MkdirAll(d.instanceDir(id), 0o700); err != nil {
		return fail(err)
	}
	if d.switchUsers {
		// The uid is claimed by the saved record; hold allocMu until then.
		allocMu.Lock()
		defer allocMu.Unlock()
		uid, err := d.allocUID()
		if err != nil {
			return fail(err)
		}
		r.UID = uid
		// Removing the last instance tidied the run dir away.
		if err := os.MkdirAll(d.runDir, 0o711); err != nil {
			return fail(err)
		}
	}
	if err := os.MkdirAll(d.runBase(id), 0o700); err != nil {
		return fail(err)
	}
	if err := fleet.WriteUserDir(r.UserDir, spec, spec.ListenHost(), spec.Port); err != nil {
		return fail(err)
	}
	if err := d.prepareRunDirs(r, true); err != nil {
		return fail(err)
	}
	d.fileMu.Lock()
	err := d.save(r)
	d.fileMu.Unlock()
	if err != nil {
		return fail(err)
	}
	return d.runtime(r), nil
}

// Start starts the instance's Node-RED process; a running one is left
// alone. ErrNotFound when this hub has no such instance.
func (d *Driver) Start(ctx context.Context, instanceID string) error {
	defer d.lock(instanceID)()
	r, err := d.load(instanceID)
	if err != nil {
		return err
	}
	if r.alive() {
		return nil
	}
	if err := d.stop(ctx, r, d.cfg.StopTimeout); err != nil { // a previous run still on its way out
		return err
	}
	return d.start(r)
}

// start runs node red.js for r, confined (see the package comment), in a
// new process group, output appended to the instance's node-red.log (on
// the hub's side: the runtime gets only the open descriptor), and records
// the pid.
func (d *Driver) start(r record) error {
	id := r.InstanceID
	if err := d.adoptIsolation(&r); err != nil {
		return fmt.Errorf("start instance %s: %w", id, err)
	}
	if err := d.prepareRunDirs(r, false); err != nil { // a temp dir lost, or a record from before temp dirs
		return fmt.Errorf("start instance %s: %w", id, err)
	}
	d.rotateLog(d.logPath(id))
	logf, err := os.OpenFile(d.logPath(id), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("start instance %s: %w", id, err)
	}
	defer logf.Close() // the child has its own descriptor
	cmd := d.command(r)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, and no parent-death signal: the instance
	// outlives the hub and is not hit by signals meant for the hub's group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start instance %s: %w", id, err)
	}
	pid := cmd.Process.Pid
	st, _ := readStat(pid) // start time is fixed at fork, so this is ours even if it already died
	c := &child{pid: pid, done: make(chan struct{})}
	d.mu.Lock()
	d.children[id] = c
	d.mu.Unlock()
	go d.reap(id, cmd, c)
	err = d.update(id, func(r *record) {
		r.PID, r.PIDStart, r.StartedAt = pid, st.startTicks, time.Now().UTC()
		r.Starts++
	})
	if err != nil {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		return fmt.Errorf("start instance %s: record pid: %w", id, err)
	}
	d.log.Info("instance started", "instance", id, "pid", pid, "port", r.Port)
	return nil
}

// command is node [--max-old-space-size=…] red.js for r, in its user dir
// with its environment, through the launcher that confines it when there
// is any confinement to apply.
func (d *Driver) command(r record) *exec.Cmd {
	var args []string
	if r.MemoryMB > 0 {
		args = append(args, fmt.Sprintf("--max-old-space-size=%d", int(float64(r.MemoryMB)*heapShare)))
	}
	// Node-RED overwrites its command line with its process title; a title
	// naming the user dir keeps the process recognisable (record.alive).
	args = append(args, d.cfg.RedJS, "--userDir", r.UserDir, "--settings", filepath.Join(r.UserDir, fleet.SettingsFile),
		"--title", processTitle(r))
	cmd := exec.Command(d.cfg.Node, args...)
	if d.confined() {
		cmd = sandbox.Command(d.confinement(r), d.cfg.Node, args...)
	}
	cmd.Dir = r.UserDir
	cmd.Env = instanceEnv(r)
	return cmd
}

// processTitle is what ps shows for the instance: node-red:<user dir>.
func processTitle(r record) string { return "node-red:" + r.UserDir }

// instanceEnv is the few inherited variables, HOME set to the user dir
// and TMPDIR to the runtime's own temp dir, then the spec's variables.
func instanceEnv(r record) []string {
	env := make(map[string]string)
	for _, k := range passEnv {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	env["HOME"], env["TMPDIR"] = r.UserDir, tmpDir(r)
	for k, v := range r.Env {
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

// reap waits for a child this driver started, so it leaves no zombie, and
// records its exit code.
func (d *Driver) reap(id string, cmd *exec.Cmd, c *child) {
	_ = cmd.Wait()
	c.exitCode = exitCode(cmd.ProcessState)
	close(c.done)
	err := d.update(id, func(r *record) {
		if r.PID != c.pid {
			return // started again since, by another driver on this data dir
		}
		r.ExitedPID, r.ExitCode, r.ExitedAt = c.pid, c.exitCode, time.Now().UTC()
	})
	if err != nil && !errors.Is(err, fleet.ErrNotFound) {
		d.log.Warn("record instance exit", "instance", id, "pid", c.pid, "error", err)
	}
	d.log.Info("instance exited", "instance", id, "pid", c.pid, "exit_code", c.exitCode)
	d.mu.Lock()
	notify := d.onExit
	d.mu.Unlock()
	if notify != nil {
		notify(id)
	}
}

// NotifyExit implements fleet.ExitNotifier: fn is called with the id of
// every runtime this driver started once it has exited and its exit is
// recorded. A runtime adopted from a previous hub process is not this
// process's child; its exit is seen by polling (List) only.
func (d *Driver) NotifyExit(fn func(instanceID string)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.onExit = fn
}

// exitCode is the process's exit status, or 128+signal when a signal
// killed it (as a shell and Docker report it).
func exitCode(ps *os.ProcessState) int {
	if ps == nil {
		return -1
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ps.ExitCode()
}

// Stop sends SIGTERM to the instance's process group, waits up to timeout
// (the configured StopTimeout when timeout <= 0) and then sends SIGKILL.
// An instance that is not running is left alone.
func (d *Driver) Stop(ctx context.Context, instanceID string, timeout time.Duration) error {
	defer d.lock(instanceID)()
	r, err := d.load(instanceID)
	if err != nil {
		return err
	}
	return d.stop(ctx, r, timeout)
}

func (d *Driver) stop(ctx context.Context, r record, timeout time.Duration) error {
	if !r.alive() {
		// Not running, or its threads are still on the way out: wait for
		// them, so the port is free when Stop returns.
		if r.exiting() {
			return d.waitExit(ctx, r, killWait)
		}
		return nil
	}
	if timeout <= 0 {
		timeout = d.cfg.StopTimeout
	}
	target := r.PID
	if st, err := readStat(r.PID); err == nil && st.pgrp == r.PID {
		target = -r.PID // the whole group: exec nodes' children too
	}
	_ = syscall.Kill(target, syscall.SIGTERM)
	err := d.waitExit(ctx, r, timeout)
	if err != nil && ctx.Err() == nil {
		d.log.Warn("instance ignored SIGTERM; killing", "instance", r.InstanceID, "pid", r.PID, "timeout", timeout)
		_ = syscall.Kill(target, syscall.SIGKILL)
		err = d.waitExit(ctx, r, killWait)
	}
	if err != nil {
		return fmt.Errorf("stop instance %s: %w", r.InstanceID, err)
	}
	if target < 0 {
		_ = syscall.Kill(target, syscall.SIGKILL) // group members left behind by the leader
	}
	return nil
}

// waitExit waits until r's process has exited with all its threads (the
// last one closes its sockets, so its port is free then): via the reaper
// for a child of this driver, by polling /proc for an adopted one. The
// leader alone turning zombie is not enough: node's other threads may
// still hold the listening socket for a moment.
func (d *Driver) waitExit(ctx context.Context, r record, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if c := d.child(r.InstanceID); c != nil && c.pid == r.PID {
		select {
		case <-c.done:
			return nil
		case <-deadline.C:
			return fmt.Errorf("pid %d still running after %v", r.PID, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for r.alive() || r.exiting() {
		select {
		case <-tick.C:
		case <-deadline.C:
			return fmt.Errorf("pid %d still running after %v", r.PID, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (d *Driver) child(id string) *child {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.children[id]
}

// Restart stops the instance (with the configured StopTimeout) and starts
// it again.
func (d *Driver) Restart(ctx context.Context, instanceID string) error {
	defer d.lock(instanceID)()
	r, err := d.load(instanceID)
	if err != nil {
		return err
	}
	if err := d.stop(ctx, r, d.cfg.StopTimeout); err != nil {
		return err
	}
	return d.start(r)
}

// Remove stops the instance if it runs and deletes its directory (user
// dir, log, runtime.json). It returns nil when there is nothing to remove;
// another hub's instance on the same DataDir is left alone.
func (d *Driver) Remove(ctx context.Context, instanceID string) error {
	if !fleet.ValidInstanceID(instanceID) {
		return nil
	}
	defer d.lock(instanceID)()
	r, err := d.load(instanceID)
	switch {
	case errors.Is(err, fleet.ErrNotFound):
		if _, statErr := os.Stat(d.recordPath(instanceID)); statErr == nil {
			return nil // another hub's
		}
		// No record: at most a leftover of a failed Create.
	case err != nil:
		return err
	default:
		if err := d.stop(ctx, r, d.cfg.StopTimeout); err != nil {
			return fmt.Errorf("remove instance %s: %w", instanceID, err)
		}
	}
	d.mu.Lock()
	delete(d.children, instanceID)
	delete(d.samples, instanceID)
	d.mu.Unlock()
	if err := d.removeTree(instanceID); err != nil {
		return err
	}
	// After fileMu is released: tidyRunDir takes allocMu, which Create
	// holds while it takes fileMu (the other order deadlocked a Remove
	// with a reconcile recreating the instance).
	d.tidyRunDir()
	return nil
}

// removeTree removes the instance's run and state dirs under fileMu.
// Another Driver's reaper (a previous hub value in this process) may write
// runtime.json while the tree goes; it tries again then.
func (d *Driver) removeTree(instanceID string) error {
	d.fileMu.Lock()
	defer d.fileMu.Unlock()
	for attempt := 0; ; attempt++ {
		err := errors.Join(os.RemoveAll(d.runBase(instanceID)), os.RemoveAll(d.instanceDir(instanceID)))
		if err == nil {
			return nil
		}
		if attempt == 2 {
			return fmt.Errorf("remove instance %s: %w", instanceID, err)
		}
	}
}

// Inspect observes the instance. ErrNotFound when this hub has none.
func (d *Driver) Inspect(ctx context.Context, instanceID string) (fleet.Runtime, error) {
	r, err := d.load(instanceID)
	if err != nil {
		return fleet.Runtime{}, err
	}
	return d.runtime(r), nil
}

// runtime derives the instance's Runtime from its record and /proc.
func (d *Driver) runtime(r record) fleet.Runtime {
	rt := fleet.Runtime{
		InstanceID: r.InstanceID, Port: r.Port, Image: d.imageName(),
		StartedAt: r.StartedAt, Restarts: max(0, r.Starts-1), State: fleet.StateCreated,
	}
	if r.PID == 0 {
		return rt
	}
	rt.RuntimeID = strconv.Itoa(r.PID)
	d.rotateLog(d.logPath(r.InstanceID))
	if r.alive() {
		rt.State = fleet.StateRunning
		return rt
	}
	rt.State, rt.ExitCode = fleet.StateExited, d.exitCodeOf(r)
	return rt
}

// exitCodeOf is the exit code of r's last process: recorded by a reaper,
// or awaited from this driver's reaper, else -1 (an adopted process whose
// parent, a previous hub, was gone when it exited).
func (d *Driver) exitCodeOf(r record) int {
	if r.ExitedPID == r.PID {
		return r.ExitCode
	}
	if c := d.child(r.InstanceID); c != nil && c.pid == r.PID {
		select {
		case <-c.done:
			return c.exitCode
		case <-time.After(reapWait):
		}
	}
	return -1
}

// List returns the runtimes of every instance of this hub in DataDir,
// sorted by instance id. Unreadable records are logged and skipped, so one
// bad file does not hide the rest of the fleet.
func (d *Driver) List(ctx context.Context) ([]fleet.Runtime, error) {
	entries, err := os.ReadDir(filepath.Join(d.cfg.DataDir, "instances"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	var out []fleet.Runtime
	for _, e := range entries {
		if !e.IsDir() || !fleet.ValidInstanceID(e.Name()) {
			continue
		}
		r, err := d.load(e.Name())
		if errors.Is(err, fleet.ErrNotFound) {
			continue
		}
		if err != nil {
			d.log.Warn("skip unreadable instance record", "instance", e.Name(), "error", err)
			continue
		}
		out = append(out, d.runtime(r))
	}
	return out, nil
}
