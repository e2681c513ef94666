package main

import (
	"context"
	"errors"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// systemd integration (packaging/systemd/redforge-edge.service, Type=notify
// with WatchdogSec): once Run has every component serving, the edge sends
// READY=1 to $NOTIFY_SOCKET; when systemd set $WATCHDOG_USEC it then sends
// WATCHDOG=1 every WATCHDOG_USEC/2 for as long as the broker and the
// outbox pass their health checks, so a hung edge is restarted. Without
// NOTIFY_SOCKET (not under systemd) none of this happens.

// startNotify sends READY=1 and starts the watchdog loop, stopped by Close.
func (m *Main) startNotify() error {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err != nil {
		return err
	}
	if !sent {
		return nil
	}
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	m.stopNotify = func() { cancel(); <-done }
	go func() {
		defer close(done)
		m.watchdog(ctx, interval/2)
	}()
	m.Logger.Info("systemd watchdog on", "interval", interval)
	return nil
}

// watchdog pings systemd every period while the edge is healthy; a
// failing check skips the ping (and is logged), so systemd restarts an
// edge that stays unhealthy for WatchdogSec.
func (m *Main) watchdog(ctx context.Context, period time.Duration) {
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		hctx, cancel := context.WithTimeout(ctx, min(period, healthTimeout))
		err := errors.Join(m.Broker.Health(), m.Outbox.Health(hctx))
		cancel()
		if err != nil {
			m.Logger.Warn("watchdog: unhealthy, not notifying systemd", logKeyError, err)
			continue
		}
		if _, err := daemon.SdNotify(false, daemon.SdNotifyWatchdog); err != nil {
			m.Logger.Warn("watchdog: notify systemd", logKeyError, err)
		}
	}
}
