package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
)

// monitorOne checks a running (or failed) instance when its check is due:
// health through the admin API, restarts with exponential backoff after
// FailureThreshold consecutive failures or an exit, and crash-loop
// detection (CrashLoopCount crashes within CrashLoopWindow stop restarts
// until an operator starts the instance again).
func (m *Manager) monitorOne(ctx context.Context, w catalog.Work, rt Runtime) {
	t := m.track(w.Alloc.ID)
	now := m.now()
	m.mu.Lock()
	status := t.status
	if status == "" {
		status = w.Alloc.Observed.Status
	}
	checkDue := t.nextCheck.IsZero() || !now.Before(t.nextCheck)
	restartDue := !t.restartAt.IsZero() && !now.Before(t.restartAt)
	metricsDue := !now.Before(t.nextMetrics)
	startedAt := t.startedAt
	m.mu.Unlock()
	adopted := startedAt.IsZero()
	if adopted {
		// Another hub (a leader that died) or a previous run started it,
		// so this manager never recorded the start, and the status it
		// recorded may be anything up to starting (creating, say). The
		// runtime's own start time still gives a runtime that is coming
		// up its start grace; without it, an instance adopted mid-start
		// was marked unhealthy and left so for a whole MonitorInterval
		// (30 s: a deployment's DEPLOY waited for it), or restarted.
		startedAt = rt.StartedAt
	}

	switch {
	case status == StatusCrashLooping:
		return
	case restartDue:
		m.restartAfterFailure(ctx, w, rt)
		return
	case status == StatusFailed:
		return // waiting for restartAt
	}
	if rt.State == StateRunning && metricsDue {
		m.collect(ctx, w)
	}
	if !checkDue {
		return
	}
	if rt.State != StateRunning {
		m.fail(ctx, w, rt, fmt.Sprintf("runtime %s (exit code %d)", rt.State, rt.ExitCode))
		return
	}
	err := m.health(ctx, w)
	m.mu.Lock()
	if err == nil {
		t.failures = 0
		t.nextCheck = now.Add(m.cfg.MonitorInterval)
		m.mu.Unlock()
		if m.flowsBehind(w) {
			if m.syncFlows(ctx, w, rt) != nil {
				m.mu.Lock()
				t.nextCheck = now.Add(m.cfg.StartingPoll * 10)
				m.mu.Unlock()
			}
			return
		}
		m.setStatus(ctx, w, StatusRunning, "", rt)
		return
	}
	starting := (status == StatusStarting || adopted) && now.Sub(startedAt) < m.cfg.StartTimeout
	if starting {
		t.nextCheck = now.Add(m.cfg.StartingPoll)
		m.mu.Unlock()
		return
	}
	t.failures++
	failures := t.failures
	t.nextCheck = now.Add(m.cfg.MonitorInterval)
	m.mu.Unlock()
	if failures >= m.cfg.FailureThreshold {
		m.fail(ctx, w, rt, fmt.Sprintf("%d consecutive health checks failed: %v", failures, err))
		return
	}
	m.setStatus(ctx, w, StatusUnhealthy, fmt.Sprintf("health check failed (%d of %d): %v", failures, m.cfg.FailureThreshold, err), rt)
}

func (m *Manager) health(ctx context.Context, w catalog.Work) error {
	creds, err := m.creds.RuntimeCredentials(ctx, w.Row)
	if err != nil {
		return err
	}
	c, err := m.localClient(w, creds)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return c.Health(hctx)
}

// fail records a crash and schedules a restart with backoff, or declares
// the instance crash-looping.
func (m *Manager) fail(ctx context.Context, w catalog.Work, rt Runtime, why string) {
	t := m.track(w.Alloc.ID)
	now := m.now()
	m.mu.Lock()
	t.crashes = append(t.crashes, now)
	cut := 0
	for cut < len(t.crashes) && now.Sub(t.crashes[cut]) > m.cfg.CrashLoopWindow {
		cut++
	}
	t.crashes = t.crashes[cut:]
	crashes := len(t.crashes)
	looping := crashes >= m.cfg.CrashLoopCount
	if t.backoff == 0 {
		t.backoff = m.cfg.BackoffBase
	} else if t.backoff *= 2; t.backoff > m.cfg.BackoffMax {
		t.backoff = m.cfg.BackoffMax
	}
	backoff := t.backoff
	t.failures = 0
	if looping {
		t.restartAt = time.Time{}
	} else {
		t.restartAt = now.Add(backoff)
	}
	m.mu.Unlock()
	if looping {
		m.setStatus(ctx, w, StatusCrashLooping, fmt.Sprintf("%d crashes within %s; restarts stopped until an operator starts it (last: %s)", crashes, m.cfg.CrashLoopWindow, why), rt)
		return
	}
	m.setStatus(ctx, w, StatusFailed, fmt.Sprintf("%s; restarting in %s", why, backoff.Round(time.Millisecond)), rt)
}

func (m *Manager) restartAfterFailure(ctx context.Context, w catalog.Work, rt Runtime) {
	var err error
	if rt.State == StateRunning {
		err = m.driver.Restart(ctx, w.Alloc.ID)
	} else {
		err = m.driver.Start(ctx, w.Alloc.ID)
	}
	if err != nil {
		m.fail(ctx, w, rt, "restart: "+err.Error())
		return
	}
	if m.metrics != nil {
		m.metrics.InstanceRestarts.With(metrics.RuntimeLabels(w.Row.ID, w.Row.Name, w.Alloc.Replica)).Inc()
	}
	if fresh, err := m.driver.Inspect(ctx, w.Alloc.ID); err == nil {
		rt = fresh
	}
	t := m.track(w.Alloc.ID)
	now := m.now()
	m.mu.Lock()
	t.restartAt, t.startedAt, t.nextCheck = time.Time{}, now, now.Add(m.cfg.StartingPoll)
	m.mu.Unlock()
	m.setStatus(ctx, w, StatusStarting, "restarted after failure", rt)
}

// MetricsEvent is the data of an instance.metrics event.
type MetricsEvent struct {
	InstanceID  string    `json:"instance_id"`
	Replica     int       `json:"replica"`
	Allocation  string    `json:"allocation"`
	CPUPercent  float64   `json:"cpu_percent"`
	MemoryBytes uint64    `json:"memory_bytes"`
	MemoryLimit uint64    `json:"memory_limit_bytes,omitempty"`
	NetRxBytes  uint64    `json:"net_rx_bytes"`
	NetTxBytes  uint64    `json:"net_tx_bytes"`
	At          time.Time `json:"at"`
}

// collect samples CPU, memory and network into Prometheus, the store and
// the event bus.
func (m *Manager) collect(ctx context.Context, w catalog.Work) {
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	t.nextMetrics = m.now().Add(m.cfg.MetricsInterval)
	m.mu.Unlock()
	st, err := m.driver.Stats(ctx, w.Alloc.ID)
	if err != nil {
		m.log.Debug("instance stats", "allocation", w.Alloc.ID, "error", err)
		return
	}
	inst := w.Row
	if st.At.IsZero() {
		st.At = m.now()
	}
	if m.metrics != nil {
		l := metrics.RuntimeLabels(inst.ID, inst.Name, w.Alloc.Replica)
		m.metrics.InstanceCPU.With(l).Set(st.CPUPercent)
		m.metrics.InstanceMemory.With(l).Set(float64(st.MemoryBytes))
		m.metrics.InstanceNetRx.With(l).Set(float64(st.NetRxBytes))
		m.metrics.InstanceNetTx.With(l).Set(float64(st.NetTxBytes))
		m.scrapeUsage(ctx, w, l)
	}
	m.bus.Publish(events.New(events.InstanceMetrics, MetricsEvent{InstanceID: inst.ID, Replica: w.Alloc.Replica, Allocation: w.Alloc.ID, CPUPercent: st.CPUPercent,
		MemoryBytes: st.MemoryBytes, MemoryLimit: st.MemoryLimitBytes, NetRxBytes: st.NetRxBytes, NetTxBytes: st.NetTxBytes, At: st.At}))
	if m.samples == nil {
		return
	}
	at := st.At.UTC()
	samples := []store.MetricSample{
		{Time: at, Source: inst.ID, Name: "cpu_percent", Value: st.CPUPercent},
		{Time: at, Source: inst.ID, Name: "memory_bytes", Value: float64(st.MemoryBytes)},
		{Time: at, Source: inst.ID, Name: "net_rx_bytes", Value: float64(st.NetRxBytes)},
		{Time: at, Source: inst.ID, Name: "net_tx_bytes", Value: float64(st.NetTxBytes)},
	}
	if err := m.samples.AppendMetricSamples(ctx, samples); err != nil {
		m.log.Warn("store instance metrics", "allocation", w.Alloc.ID, "error", err)
	}
}
