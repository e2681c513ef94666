package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// notifySystemd tells systemd (packaging/systemd/redforge-hub.service,
// Type=notify) that the hub serves, and when the unit sets WatchdogSec it
// sends WATCHDOG=1 every WATCHDOG_USEC/2 for as long as the hub's API
// answers GET /api/health with any status (a 503 for a failed backend is
// still a live hub: restarting it would not bring PostgreSQL back). It
// returns a function that stops the loop and sends STOPPING=1. Without
// NOTIFY_SOCKET it does nothing.
func notifySystemd(apiURL string, log *slog.Logger) (stop func()) {
	sent, err := daemon.SdNotify(false, daemon.SdNotifyReady)
	if err != nil {
		log.Warn("notify systemd", "error", err)
	}
	if !sent {
		return func() {}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	interval, err := daemon.SdWatchdogEnabled(false)
	if err != nil || interval <= 0 {
		close(done)
	} else {
		go func() {
			defer close(done)
			client := &http.Client{Timeout: interval / 2}
			t := time.NewTicker(interval / 2)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				if resp, err := client.Get(apiURL + "/api/health"); err != nil {
					log.Warn("watchdog: the API does not answer, not notifying systemd", "error", err)
					continue
				} else {
					resp.Body.Close()
				}
				_, _ = daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}()
	}
	return func() {
		cancel()
		<-done
		_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	}
}
