package alert

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/secrets"
)

// Service is what the API calls: rule changes (validated, written through
// Raft) and reads of rules, active alerts and history, with channel URLs
// redacted (RedactRule).
type Service struct {
	Catalog Catalog
	Applier Applier
	// Sealer seals channel URLs before they are written, so the catalog
	// (and the Raft log, snapshots and backups) never holds them in clear.
	Sealer Sealer
	// Engine, when set, evaluates at once after a rule change.
	Engine *Engine
	Now    func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Rules returns every rule, redacted.
func (s *Service) Rules() []catalog.AlertRule {
	rs := s.Catalog.AlertRules()
	for i := range rs {
		rs[i] = s.redact(rs[i])
	}
	return rs
}

// redact opens a rule's sealed channel URLs and redacts them for showing.
func (s *Service) redact(r catalog.AlertRule) catalog.AlertRule {
	return RedactRule(s.Sealer, r)
}

// seal seals the channel URLs of r that are not sealed yet.
func (s *Service) seal(r *catalog.AlertRule) error {
	if s.Sealer == nil {
		return nil
	}
	r.Channels = slices.Clone(r.Channels)
	for i, ch := range r.Channels {
		if ch.URL == "" || secrets.IsSealed(ch.URL) {
			continue
		}
		v, err := s.Sealer.Seal(urlContext, ch.URL)
		if err != nil {
			return fmt.Errorf("seal the channel URL: %w", err)
		}
		r.Channels[i].URL = v
	}
	return nil
}

// Rule returns one rule, redacted, or catalog.ErrNotFound.
func (s *Service) Rule(id string) (catalog.AlertRule, error) {
	r, err := s.Catalog.AlertRule(id)
	return s.redact(r), err
}

// CreateRule validates in and stores a new rule. Errors: *FieldError;
// catalog.ErrConflict when the name is taken.
func (s *Service) CreateRule(ctx context.Context, by string, in RuleInput) (catalog.AlertRule, error) {
	now := s.now()
	r := catalog.AlertRule{ID: uuid.NewString(), CreatedBy: by, CreatedAt: now, UpdatedAt: now}
	if err := in.Apply(&r, true); err != nil {
		return catalog.AlertRule{}, err
	}
	return s.put(ctx, r, catalog.IfIndex(0))
}

// UpdateRule applies in to rule id. Errors: *FieldError;
// catalog.ErrNotFound; catalog.ErrConflict (name taken, or the rule
// changed meanwhile).
func (s *Service) UpdateRule(ctx context.Context, id string, in RuleInput) (catalog.AlertRule, error) {
	r, err := s.Catalog.AlertRule(id)
	if err != nil {
		return r, err
	}
	if err := in.Apply(&r, false); err != nil {
		return catalog.AlertRule{}, err
	}
	r.UpdatedAt = s.now()
	return s.put(ctx, r, catalog.IfIndex(r.ModifyIndex))
}

func (s *Service) put(ctx context.Context, r catalog.AlertRule, opt catalog.PutOption) (catalog.AlertRule, error) {
	if err := s.seal(&r); err != nil {
		return catalog.AlertRule{}, err
	}
	out, err := s.Applier.Apply(ctx, catalog.PutAlertRule(r, opt))
	if err != nil {
		if errors.Is(err, catalog.ErrConflict) {
			if other, e2 := s.byName(r.Name); e2 == nil && other.ID != r.ID {
				return catalog.AlertRule{}, &FieldError{Field: "name", Message: fmt.Sprintf("a rule named %q exists", r.Name)}
			}
		}
		return catalog.AlertRule{}, err
	}
	stored, _ := out.(catalog.AlertRule)
	if s.Engine != nil {
		s.Engine.Kick()
	}
	return s.redact(stored), nil
}

func (s *Service) byName(name string) (catalog.AlertRule, error) {
	for _, r := range s.Catalog.AlertRules() {
		if strings.EqualFold(r.Name, name) {
			return r, nil
		}
	}
	return catalog.AlertRule{}, catalog.ErrNotFound
}

// DeleteRule deletes rule id (its firing alerts resolve at the next
// evaluation). Errors: catalog.ErrNotFound.
func (s *Service) DeleteRule(ctx context.Context, id string) error {
	if _, err := s.Applier.Apply(ctx, catalog.DeleteAlertRule(id)); err != nil {
		return err
	}
	if s.Engine != nil {
		s.Engine.Kick()
	}
	return nil
}

// Active returns the alerts firing now, newest first, redacted.
func (s *Service) Active() []catalog.Alert {
	var out []catalog.Alert
	for _, a := range s.Catalog.Alerts() {
		if a.State == StateFiring {
			out = append(out, RedactAlert(s.Sealer, a))
		}
	}
	return out
}

// History returns up to limit alerts, firing and resolved, newest first,
// of one rule when ruleID is set, redacted.
func (s *Service) History(limit int, ruleID string) []catalog.Alert {
	out := []catalog.Alert{}
	for _, a := range s.Catalog.Alerts() {
		if ruleID != "" && a.RuleID != ruleID {
			continue
		}
		if len(out) == limit {
			break
		}
		out = append(out, RedactAlert(s.Sealer, a))
	}
	return out
}
