package backup

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// ParseSchedule parses a cron schedule: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @daily, in UTC.
// Empty is no schedule (nil).
func ParseSchedule(spec string) (cron.Schedule, error) {
	if spec == "" {
		return nil, nil
	}
	s, err := cron.ParseStandard("CRON_TZ=UTC " + spec)
	if err != nil {
		return nil, fmt.Errorf("%q is not a cron schedule such as \"0 2 * * *\" or @daily: %v", spec, err)
	}
	return s, nil
}

// Scheduler makes backups (and prunes after each) and verifies the newest
// on their cron schedules, acting only while IsLeader: once per cluster.
type Scheduler struct {
	Backup, Verify cron.Schedule // either may be nil
	Service        *Service
	IsLeader       func() bool
	Now            func() time.Time

	lastBackup, lastVerify time.Time
}

// Tick runs what is due at now: a backup (then a prune) when a backup time
// passed since the last tick, likewise a verification of the newest
// archive. Several times missed (a leader change, a long backup) give one
// run. It returns the first error; a tick that is not the leader's does
// nothing but advance.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) error {
	if s.lastBackup.IsZero() {
		s.lastBackup, s.lastVerify = now, now
		return nil
	}
	dueBackup := s.Backup != nil && !now.Before(s.Backup.Next(s.lastBackup))
	dueVerify := s.Verify != nil && !now.Before(s.Verify.Next(s.lastVerify))
	if dueBackup {
		s.lastBackup = now
	}
	if dueVerify {
		s.lastVerify = now
	}
	if !s.IsLeader() {
		return nil
	}
	if dueBackup {
		if _, err := s.Service.Create(ctx); err != nil {
			return err
		}
		if _, drop, err := s.Service.Prune(ctx, false); err != nil {
			return fmt.Errorf("prune: %w", err)
		} else if len(drop) > 0 {
			s.Service.cfg.Logger.Info("backups pruned", "deleted", len(drop))
		}
	}
	if dueVerify {
		objs, err := s.Service.List(ctx)
		if err != nil || len(objs) == 0 {
			return err
		}
		if _, err := s.Service.Verify(ctx, objs[0].Name); err != nil {
			return err
		}
	}
	return nil
}

// Run ticks until ctx ends, waking at the next scheduled time (at most a
// minute apart, so a clock change or a new leadership is noticed).
func (s *Scheduler) Run(ctx context.Context) {
	if s.Now == nil {
		s.Now = time.Now
	}
	for {
		now := s.Now()
		if err := s.Tick(ctx, now); err != nil && ctx.Err() == nil {
			s.Service.cfg.Logger.Warn("scheduled backup", "error", err)
		}
		wake := now.Add(time.Minute)
		for _, sc := range []cron.Schedule{s.Backup, s.Verify} {
			if sc != nil {
				if n := sc.Next(now); n.Before(wake) {
					wake = n
				}
			}
		}
		t := time.NewTimer(max(time.Until(wake), 10*time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
