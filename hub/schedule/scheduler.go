package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/regions"
)

// Defaults for Config.
const (
	// DefaultLostAfter is how long the leader goes without contact with a
	// hub before it calls the hub lost and places its replicas elsewhere:
	// long enough to ride out a GC pause or a brief network blip (the
	// peers are probed every 2 s, and a probe times out after 1 s), short
	// enough that a 1-replica instance is back within seconds.
	DefaultLostAfter = 10 * time.Second
	// DefaultInterval is how often the scheduler runs without a change.
	DefaultInterval = time.Second
)

// Catalog is what the scheduler reads.
type Catalog interface {
	Instances() []catalog.Instance
	Allocations() []catalog.Allocation
	Hubs() []catalog.Hub
	Moves() []catalog.Move
	WatchPlacement(ctx context.Context) <-chan struct{}
}

// Applier writes to the catalog through Raft.
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Auditor records audit entries.
type Auditor interface {
	Record(ctx context.Context, e audit.Entry) error
}

// Config tunes the scheduler.
type Config struct {
	Self      string // this hub's id
	LostAfter time.Duration
	Interval  time.Duration
	Topology  *regions.Topology
}

// Deps are the scheduler's collaborators.
type Deps struct {
	Catalog  Catalog
	Applier  Applier
	Audit    Auditor // may be nil
	Events   *events.Bus
	IsLeader func() bool
	// LastContact is when this hub last heard from hub id (a successful
	// probe of its API); ok is false when it never did.
	LastContact func(id string) (at time.Time, ok bool)
	// RegionRTT is the RTT from this hub to each region, for failover.
	RegionRTT func() map[string]time.Duration
	Logger    *slog.Logger
}

// Scheduler runs Compute on the leader and applies what it decides; it
// also marks hubs down when the leader loses contact with them for
// LostAfter, and up again.
type Scheduler struct {
	cfg       Config
	d         Deps
	log       *slog.Logger
	now       func() time.Time
	termStart time.Time // when this hub became leader (zero: not leading)
}

// New returns a scheduler; it does no I/O until Run.
func New(cfg Config, d Deps) *Scheduler {
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = DefaultLostAfter
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Events == nil {
		d.Events = events.NewBus()
	}
	return &Scheduler{cfg: cfg, d: d, log: d.Logger, now: time.Now}
}

// Run schedules until ctx ends, acting only while this hub leads.
func (s *Scheduler) Run(ctx context.Context) {
	for {
		wctx, cancel := context.WithCancel(ctx)
		changed := s.d.Catalog.WatchPlacement(wctx)
		if s.d.IsLeader() {
			if s.termStart.IsZero() {
				s.termStart = s.now()
			}
			if err := s.Once(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("schedule", "error", err)
			}
		} else {
			s.termStart = time.Time{}
		}
		t := time.NewTimer(s.nextWake())
		select {
		case <-ctx.Done():
		case <-changed:
		case <-t.C:
		}
		t.Stop()
		cancel()
		if ctx.Err() != nil {
			return
		}
	}
}

// Once updates hub states and applies one plan.
func (s *Scheduler) Once(ctx context.Context) error {
	if err := s.liveness(ctx); err != nil {
		return err
	}
	in := Input{Instances: s.d.Catalog.Instances(), Allocations: s.d.Catalog.Allocations(),
		Hubs: s.d.Catalog.Hubs(), Moves: s.d.Catalog.Moves(), Topology: s.cfg.Topology, Now: s.now().UTC()}
	if s.d.RegionRTT != nil {
		in.RegionRTT = s.d.RegionRTT()
	}
	out := Compute(in)
	if out.Empty() {
		return nil
	}
	return s.apply(ctx, out)
}

func (s *Scheduler) apply(ctx context.Context, out Output) error {
	if !out.Plan.Empty() {
		if _, err := s.d.Applier.Apply(ctx, catalog.ApplyPlan(out.Plan)); err != nil {
			if errors.Is(err, catalog.ErrNotFound) || errors.Is(err, catalog.ErrConflict) {
				return nil // the catalog moved on meanwhile: the next round plans again
			}
			return fmt.Errorf("apply plan: %w", err)
		}
	}
	for _, m := range out.PutMoves {
		if _, err := s.d.Applier.Apply(ctx, catalog.PutMove(m)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return fmt.Errorf("record move of %s: %w", m.Name, err)
		}
		s.log.Warn("regional failover: instance placed outside its region", "instance", m.Instance, "name", m.Name,
			"home", m.Home, "to", m.To, "reason", m.Reason)
		s.audit(ctx, "INSTANCE_FAILED_OVER", m.Instance, map[string]any{"name": m.Name, "home": m.Home, "to": m.To, "reason": m.Reason})
	}
	for _, id := range out.DeleteMoves {
		if _, err := s.d.Applier.Apply(ctx, catalog.DeleteMove(id)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
			return fmt.Errorf("delete move of %s: %w", id, err)
		}
		s.log.Info("regional failover: instance back home", "instance", id)
		s.audit(ctx, "INSTANCE_RETURNED_HOME", id, nil)
	}
	for _, n := range out.Notes {
		s.log.Info("placement", "instance", n.Instance, "name", n.Name, "replica", n.Replica, "from", n.From, "to", n.To, "reason", n.Reason)
		if n.From != "" && n.To != "" && n.From != n.To {
			s.audit(ctx, "INSTANCE_RESCHEDULED", n.Instance, map[string]any{"name": n.Name, "replica": n.Replica,
				"from_hub": n.From, "to_hub": n.To, "reason": n.Reason})
		}
		s.d.Events.Publish(events.New(events.InstancePlacement, n))
	}
	return nil
}

func (s *Scheduler) audit(ctx context.Context, action, id string, details map[string]any) {
	if s.d.Audit == nil {
		return
	}
	if err := s.d.Audit.Record(ctx, audit.Entry{Username: "scheduler", Action: action, ResourceType: "instance",
		ResourceID: id, Details: details}); err != nil {
		s.log.Warn("audit placement", "action", action, "instance", id, "error", err)
	}
}

// liveness marks hubs down after LostAfter without contact (counted from
// the start of this leader's term at the earliest, since a new leader has
// not probed anyone yet) and up again when contact resumes.
func (s *Scheduler) liveness(ctx context.Context) error {
	now := s.now()
	for _, h := range s.d.Catalog.Hubs() {
		if h.ID == s.cfg.Self {
			if h.State != catalog.HubUp {
				if err := s.setState(ctx, h, catalog.HubUp, "leader"); err != nil {
					return err
				}
			}
			continue
		}
		last, ok := s.lastContact(h.ID)
		silent := now.Sub(last)
		switch {
		case h.State == catalog.HubUp && silent >= s.cfg.LostAfter:
			if err := s.setState(ctx, h, catalog.HubDown, fmt.Sprintf("no contact for %s", silent.Round(time.Second))); err != nil {
				return err
			}
		case h.State == catalog.HubDown && ok && silent < s.cfg.LostAfter:
			if err := s.setState(ctx, h, catalog.HubUp, "contact resumed"); err != nil {
				return err
			}
		}
	}
	return nil
}

// lastContact is when this leader last heard from hub id, counted from the
// start of its term at the earliest; ok is false when it never did.
func (s *Scheduler) lastContact(id string) (last time.Time, ok bool) {
	if s.d.LastContact != nil {
		last, ok = s.d.LastContact(id)
	}
	if !ok || last.Before(s.termStart) {
		last = s.termStart
	}
	return last, ok
}

// nextWake is how long Run waits before its next round when nothing in the
// catalog changes: the interval, or less when a hub that is up would pass
// LostAfter sooner, so a lost hub is marked down (and its instances placed
// elsewhere) when its time is up rather than up to an interval later.
func (s *Scheduler) nextWake() time.Duration {
	wait := s.cfg.Interval
	if s.termStart.IsZero() {
		return wait
	}
	now := s.now()
	for _, h := range s.d.Catalog.Hubs() {
		if h.ID == s.cfg.Self || h.State != catalog.HubUp {
			continue
		}
		last, _ := s.lastContact(h.ID)
		if d := last.Add(s.cfg.LostAfter).Sub(now); d < wait {
			wait = max(d, 10*time.Millisecond)
		}
	}
	return wait
}

func (s *Scheduler) setState(ctx context.Context, h catalog.Hub, st catalog.HubState, reason string) error {
	if _, err := s.d.Applier.Apply(ctx, catalog.SetHubState(h.ID, st, s.now().UTC(), reason)); err != nil {
		return fmt.Errorf("set hub %s %s: %w", h.ID, st, err)
	}
	lvl := s.log.Info
	if st == catalog.HubDown {
		lvl = s.log.Warn
	}
	lvl("hub state", "hub", h.ID, "region", h.Region, "state", st, "reason", reason)
	s.audit(ctx, "HUB_"+map[catalog.HubState]string{catalog.HubUp: "UP", catalog.HubDown: "LOST"}[st], h.ID,
		map[string]any{"region": h.Region, "reason": reason})
	s.d.Events.Publish(events.New(events.HubStatus, map[string]any{"id": h.ID, "region": h.Region, "state": st, "reason": reason}))
	return nil
}
