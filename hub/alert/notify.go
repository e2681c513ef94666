package alert

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
)

// maxConcurrentSends bounds the notifications in flight at once.
const maxConcurrentSends = 16

func (e *Engine) wakeDelivery() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// deliveryLoop sends the due deliveries of every alert while this hub
// leads: each in its own goroutine (at most maxConcurrentSends), so a
// channel that hangs or fails delays nothing but its own retries, never
// an evaluation nor another channel. It wakes when alerts change, when
// the next retry is due, or when the evaluator asks.
func (e *Engine) deliveryLoop(ctx context.Context) {
	sem := make(chan struct{}, maxConcurrentSends)
	for ctx.Err() == nil {
		wctx, cancel := context.WithCancel(ctx)
		_, alerts, changed := e.d.Catalog.WatchAlerts(wctx)
		next := e.cfg.EvalInterval
		if e.d.IsLeader() {
			next = e.dispatch(ctx, alerts, sem)
		}
		timer := time.NewTimer(next)
		select {
		case <-ctx.Done():
		case <-changed:
		case <-e.wake:
		case <-timer.C:
		}
		timer.Stop()
		cancel()
	}
}

// dispatch starts every due delivery not already in flight and returns
// how long until the next one is due.
func (e *Engine) dispatch(ctx context.Context, alerts []catalog.Alert, sem chan struct{}) time.Duration {
	now := e.now()
	next := e.cfg.EvalInterval
	for _, a := range alerts {
		for i, d := range a.Deliveries {
			if d.Status != "pending" && d.Status != "retrying" {
				continue
			}
			if wait := d.NextAt.Sub(now); wait > 0 {
				next = min(next, wait)
				continue
			}
			id := a.ID + "/" + strconv.Itoa(i)
			e.mu.Lock()
			busy := e.inflight[id]
			if !busy {
				e.inflight[id] = true
			}
			e.mu.Unlock()
			if busy {
				continue
			}
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				e.deliver(ctx, a, i, d)
				e.mu.Lock()
				delete(e.inflight, id)
				e.mu.Unlock()
				e.wakeDelivery()
			}()
		}
	}
	return max(next, 10*time.Millisecond)
}

// deliver makes one attempt at delivery i of a and records the outcome.
func (e *Engine) deliver(ctx context.Context, a catalog.Alert, i int, d catalog.AlertDelivery) {
	sctx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
	err := e.send(sctx, a, d)
	cancel()
	if ctx.Err() != nil {
		return // shutting down: the next leader sends it
	}
	d.Attempts++
	d.At = e.now().UTC()
	result := "sent"
	switch {
	case err == nil:
		d.Status, d.LastError, d.NextAt = "sent", "", time.Time{}
	case d.Attempts >= e.cfg.MaxAttempts:
		d.Status, d.LastError, d.NextAt = "failed", safeError(err), time.Time{}
		result = "failed"
	default:
		backoff := e.cfg.RetryBase << (d.Attempts - 1)
		if backoff > e.cfg.RetryMax || backoff <= 0 {
			backoff = e.cfg.RetryMax
		}
		d.Status, d.LastError, d.NextAt = "retrying", safeError(err), d.At.Add(backoff)
		result = "retry"
	}
	if e.d.Metrics != nil {
		e.d.Metrics.AlertNotifications.WithLabelValues(d.Channel.Type, result).Inc()
	}
	if err != nil {
		e.log.Warn("alert notification failed", "alert", a.ID, "rule", a.RuleName, "channel", d.Channel.Type,
			"target", shownURL(e.d.Sealer, d.Channel.URL), "attempt", d.Attempts, "status", d.Status, "error", safeError(err))
	}
	if _, err := e.d.Applier.Apply(ctx, catalog.SetAlertDelivery(a.ID, i, d)); err != nil {
		e.log.Warn("record alert delivery", "alert", a.ID, "error", err)
		return
	}
	e.d.Events.Publish(events.New(EventDelivery, map[string]any{"alert_id": a.ID, "index": i, "event": d.Event,
		"channel": d.Channel.Type, "status": d.Status, "attempts": d.Attempts, "last_error": d.LastError}))
}

// safeError is err's message without the URL a *url.Error carries (a
// webhook URL may hold a token).
func safeError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Sprintf("%s %s: %v", ue.Op, Redact(ue.URL), ue.Err)
	}
	return err.Error()
}
