package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/redforge/controltower/hub/fleet"
)

// cpuSample is one reading of a container's cumulative CPU use.
type cpuSample struct {
	containerID string
	total       uint64 // container CPU time, ns
	system      uint64 // host CPU time, ns (all cores)
	onlineCPUs  uint32
	at          time.Time
}

// Stats samples the container with the one-shot stats API (no 1 s
// priming wait). The one-shot answer has no "previous" sample, so
// CPUPercent compares it with the sample of the previous Stats call for
// the instance; on the first call it is the average since the container
// started. Memory is usage minus page cache, as `docker stats` shows it.
// Network counters are 0 with host networking (Docker has no per-container
// counters there). It returns an error when the container is not running.
func (d *Driver) Stats(ctx context.Context, instanceID string) (fleet.Stats, error) {
	if err := d.ready(); err != nil {
		return fleet.Stats{}, err
	}
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return fleet.Stats{}, err
	}
	if c.State == nil || !c.State.Running {
		return fleet.Stats{}, fmt.Errorf("stats of instance %s: not running", instanceID)
	}
	resp, err := d.cli.ContainerStatsOneShot(ctx, c.ID)
	if err != nil {
		return fleet.Stats{}, fmt.Errorf("stats of instance %s: %w", instanceID, err)
	}
	defer resp.Body.Close()
	var s container.StatsResponse
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return fleet.Stats{}, fmt.Errorf("stats of instance %s: decode: %w", instanceID, err)
	}
	if s.Read.IsZero() || s.Read.Before(epoch) {
		s.Read = time.Now()
	}
	out := fleet.Stats{
		MemoryBytes: memoryUsage(s.MemoryStats),
		At:          s.Read,
		CPUPercent:  d.cpuPercent(instanceID, c, s),
	}
	if c.HostConfig != nil && c.HostConfig.Memory > 0 {
		out.MemoryLimitBytes = uint64(c.HostConfig.Memory)
	}
	for _, n := range s.Networks {
		out.NetRxBytes += n.RxBytes
		out.NetTxBytes += n.TxBytes
	}
	return out, nil
}

// memoryUsage is the usage minus inactive page cache (cgroup v2
// "inactive_file", v1 "total_inactive_file"), like the docker CLI.
func memoryUsage(m container.MemoryStats) uint64 {
	for _, k := range []string{"inactive_file", "total_inactive_file"} {
		if v, ok := m.Stats[k]; ok && v < m.Usage {
			return m.Usage - v
		}
	}
	return m.Usage
}

// cpuPercent uses Docker's formula, (Δcontainer / Δsystem) × cores × 100,
// against Docker's own previous sample when it gives one, else against the
// previous call's sample, else averages since the container started.
func (d *Driver) cpuPercent(instanceID string, c container.InspectResponse, s container.StatsResponse) float64 {
	cur := cpuSample{
		containerID: c.ID, total: s.CPUStats.CPUUsage.TotalUsage, system: s.CPUStats.SystemUsage,
		onlineCPUs: s.CPUStats.OnlineCPUs, at: s.Read,
	}
	if cur.onlineCPUs == 0 {
		cur.onlineCPUs = uint32(max(1, len(s.CPUStats.CPUUsage.PercpuUsage)))
	}
	d.mu.Lock()
	prev, ok := d.samples[instanceID]
	d.samples[instanceID] = cur
	d.mu.Unlock()
	switch {
	case s.PreCPUStats.SystemUsage > 0:
		prev, ok = cpuSample{containerID: c.ID, total: s.PreCPUStats.CPUUsage.TotalUsage, system: s.PreCPUStats.SystemUsage}, true
	case ok && (prev.containerID != c.ID || prev.total > cur.total):
		ok = false // another container, or restarted: counters began again
	}
	if ok && cur.system > prev.system {
		return float64(cur.total-prev.total) / float64(cur.system-prev.system) * float64(cur.onlineCPUs) * 100
	}
	started := parseTime(c.State.StartedAt)
	if elapsed := cur.at.Sub(started); started.After(epoch) && elapsed > 0 {
		return float64(cur.total) / float64(elapsed.Nanoseconds()) * 100
	}
	return 0
}

func (d *Driver) forgetSample(instanceID string) {
	d.mu.Lock()
	delete(d.samples, instanceID)
	d.mu.Unlock()
}

// Logs returns the container's stdout and stderr, demultiplexed into plain
// text: the last tail lines (all when tail <= 0), then, with follow, new
// lines until the reader is closed, ctx ends or the container stops.
func (d *Driver) Logs(ctx context.Context, instanceID string, tail int, follow bool) (io.ReadCloser, error) {
	if err := d.ready(); err != nil {
		return nil, err
	}
	c, err := d.find(ctx, instanceID)
	if err != nil {
		return nil, err
	}
	opts := container.LogsOptions{ShowStdout: true, ShowStderr: true, Follow: follow, Tail: "all"}
	if tail > 0 {
		opts.Tail = strconv.Itoa(tail)
	}
	ctx, cancel := context.WithCancel(ctx)
	rc, err := d.cli.ContainerLogs(ctx, c.ID, opts)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of instance %s: %w", instanceID, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		rc.Close()
		pw.CloseWithError(err)
	}()
	return &logReader{PipeReader: pr, cancel: cancel}, nil
}

// logReader ends the log stream when closed.
type logReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}
