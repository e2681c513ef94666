package process

import (
	"context"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/fleet"
)

// procSample is one reading of a process's cumulative CPU time.
type procSample struct {
	pid   int
	ticks uint64 // utime + stime
	at    time.Time
}

// Stats reads the instance's Node-RED process from /proc: VmRSS as
// MemoryBytes, MemoryMB as MemoryLimitBytes (a soft heap limit, see the
// package comment), and CPU time from /proc/<pid>/stat. CPUPercent is over
// the time since the previous Stats call for the instance, or since the
// process started on the first call. Network counters are always 0: /proc
// has no per-process network counters outside a network namespace. It
// returns an error when the instance is not running.
func (d *Driver) Stats(ctx context.Context, instanceID string) (fleet.Stats, error) {
	r, err := d.load(instanceID)
	if err != nil {
		return fleet.Stats{}, err
	}
	if !r.alive() {
		return fleet.Stats{}, fmt.Errorf("stats of instance %s: not running", instanceID)
	}
	d.rotateLog(d.logPath(instanceID))
	st, rss, err := readUsage(r.PID)
	if err != nil {
		return fleet.Stats{}, fmt.Errorf("stats of instance %s: %w", instanceID, err)
	}
	now := time.Now()
	cur := procSample{pid: r.PID, ticks: st.utime + st.stime, at: now}
	d.mu.Lock()
	prev, ok := d.samples[instanceID]
	d.samples[instanceID] = cur
	d.mu.Unlock()
	out := fleet.Stats{MemoryBytes: rss, MemoryLimitBytes: uint64(r.MemoryMB) << 20, At: now}
	if ok && prev.pid == cur.pid && cur.at.After(prev.at) && cur.ticks >= prev.ticks {
		out.CPUPercent = cpuPercent(cur.ticks-prev.ticks, cur.at.Sub(prev.at).Seconds())
	} else if started, err := startedAt(st.startTicks); err == nil {
		out.CPUPercent = cpuPercent(cur.ticks, now.Sub(started).Seconds())
	}
	return out, nil
}

// cpuPercent is ticks of CPU time over seconds of wall time, 100 = one
// core.
func cpuPercent(ticks uint64, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(ticks) / clockTicks / seconds * 100
}
