package fleet

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/nodered"
)

// scrapeUsage reads the workflow and LLM metrics a runtime serves at
// metrics.RuntimePath (the RedForge runtime package) into the hub's
// metrics; a runtime without the package (404) reports nothing. It goes
// through a cached admin client, so it logs in once per token lifetime,
// not once per scrape.
func (m *Manager) scrapeUsage(ctx context.Context, w catalog.Work, labels prometheus.Labels) {
	c, err := m.usageClient(ctx, w)
	if err != nil {
		m.log.Debug("runtime metrics client", "allocation", w.Alloc.ID, "error", err)
		return
	}
	body, err := c.Get(ctx, metrics.RuntimePath, metrics.MaxRuntimeBody)
	if errors.Is(err, nodered.ErrNoRoute) {
		return
	}
	if err != nil {
		m.log.Debug("scrape runtime metrics", "allocation", w.Alloc.ID, "error", err)
		return
	}
	u, err := metrics.ParseUsage(bytes.NewReader(body))
	if err != nil {
		m.log.Warn("runtime metrics refused", "allocation", w.Alloc.ID, "instance", w.Row.Name, "error", err)
		return
	}
	m.metrics.Runtimes.Observe(w.Alloc.ID, labels, u, m.now())
}

// usageClient is an admin client for the local runtime of w, kept while
// its address holds.
func (m *Manager) usageClient(ctx context.Context, w catalog.Work) (*nodered.Client, error) {
	t := m.track(w.Alloc.ID)
	m.mu.Lock()
	addr := joinHost(m.cfg.BindHost, t.port)
	cc := m.usageClients[w.Alloc.ID]
	m.mu.Unlock()
	if cc != nil && cc.addr == addr {
		return cc.c, nil
	}
	creds, err := m.creds.RuntimeCredentials(ctx, w.Row)
	if err != nil {
		return nil, err
	}
	c, err := m.newLocalClient(w, creds)
	if err != nil {
		return nil, err
	}
	c.Timeout = 5 * time.Second
	m.mu.Lock()
	m.usageClients[w.Alloc.ID] = &cachedClient{addr: addr, c: c}
	m.mu.Unlock()
	return c, nil
}

// ExitNotifier is implemented by drivers that learn of a runtime's exit as
// it happens (the process driver reaps its children; the docker driver
// follows the daemon's events). The manager then checks that runtime at
// once instead of at its next health check, so a runtime killed behind
// the hub's back is seen failed (and its alert fires) within moments, not
// a MonitorInterval later.
type ExitNotifier interface {
	// NotifyExit makes the driver call fn with the instance id of every
	// runtime that exits from now on. fn must not block.
	NotifyExit(fn func(instanceID string))
}

// exited schedules an immediate check of the runtime of an allocation.
func (m *Manager) exited(allocID string) {
	m.mu.Lock()
	if t := m.tracked[allocID]; t != nil {
		t.nextCheck = time.Time{}
	}
	m.mu.Unlock()
	m.Kick()
}
