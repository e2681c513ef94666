// Package instances is the one owner of instance rows: create, update
// (compare-and-set, retried), delete (with the instance's colors and its
// hub-managed token), scale, the logical/colour name rules and the live
// row lookup, and each row's runtime credentials (random per row, sealed
// in the catalog). The API, the demo, the scheduler's callers and the
// deployment orchestrator all go through it. It does not place replicas
// (hub/schedule) nor run them (hub/fleet).
package instances

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/secrets"
)

// Catalog is what the service reads.
type Catalog interface {
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	Instances() []catalog.Instance
	InstanceCredentials(id string) (catalog.Credentials, error)
}

// Applier writes to the catalog through Raft.
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Tokens registers and removes the hub-managed instance token.
type Tokens interface {
	EnsureInstanceToken(ctx context.Context, instanceID, token string) error
}

// Errors.
var (
	// ErrInvalid wraps catalog.ErrInvalid: a bad value, named by Field.
	ErrInvalid = catalog.ErrInvalid
)

// FieldError names the request field a refusal is about.
type FieldError struct {
	Field, Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, catalog.ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return catalog.ErrInvalid }

// Service owns instance rows.
type Service struct {
	cat    Catalog
	raft   Applier
	seal   *secrets.Sealer
	tokens Tokens
	now    func() time.Time
	rows   rowLocks // Update's per-row queue on this hub
}

// New returns the service.
func New(cat Catalog, raft Applier, seal *secrets.Sealer, tokens Tokens) *Service {
	return &Service{cat: cat, raft: raft, seal: seal, tokens: tokens, now: time.Now, rows: rowLocks{m: map[string]*rowLock{}}}
}

// IsColor reports whether a catalog row is a color row made by a
// deployment (its name is "{logical}.{8 hex}"), not a logical instance.
func IsColor(inst catalog.Instance) bool { return strings.Contains(inst.Name, ".") }

// LogicalName is the logical instance name of a row name.
func LogicalName(rowName string) string {
	name, _, _ := strings.Cut(rowName, ".")
	return name
}

// Lookup returns the row with id ref, or else named ref.
func (s *Service) Lookup(ref string) (catalog.Instance, error) {
	inst, err := s.cat.Instance(ref)
	if errors.Is(err, catalog.ErrNotFound) {
		inst, err = s.cat.InstanceByName(ref)
	}
	return inst, err
}

// Logical returns the logical instance a row serves: itself, or the one a
// color row was cloned from.
func (s *Service) Logical(row catalog.Instance) (catalog.Instance, error) {
	if !IsColor(row) {
		return row, nil
	}
	l, err := s.cat.InstanceByName(LogicalName(row.Name))
	if err != nil {
		return l, fmt.Errorf("logical instance of %s: %w", row.Name, err)
	}
	return l, nil
}

// Live returns the row serving the logical instance named (or with id)
// ref: its own row, or the color row a deployment switched to. A color
// row's name is not a logical name: ErrNotFound.
func (s *Service) Live(ref string) (catalog.Instance, error) {
	inst, err := s.Lookup(ref)
	if err != nil {
		return inst, err
	}
	if IsColor(inst) {
		return catalog.Instance{}, fmt.Errorf("instance named %q: %w", ref, catalog.ErrNotFound)
	}
	if inst.Live == "" {
		return inst, nil
	}
	live, err := s.cat.Instance(inst.Live)
	if err != nil {
		return inst, nil // the pointer outlived its row: the logical row
	}
	return live, nil
}

// Create stores a new instance (IfIndex(0)); the scheduler places it.
// Errors: *FieldError for replicas out of range; catalog.ErrConflict when
// the name is taken.
func (s *Service) Create(ctx context.Context, inst catalog.Instance) (catalog.Instance, error) {
	if err := checkReplicas(inst.Replicas); err != nil {
		return inst, err
	}
	if err := s.sealSecretEnv(&inst, nil); err != nil {
		return inst, err
	}
	res, err := s.raft.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(0)))
	if err != nil {
		return inst, err
	}
	if stored, ok := res.(catalog.Instance); ok {
		inst = stored
	}
	return inst, nil
}

func checkReplicas(n int) error {
	if n < 1 || n > catalog.MaxReplicas {
		return &FieldError{Field: "replicas", Message: fmt.Sprintf("replicas must be between 1 and %d", catalog.MaxReplicas)}
	}
	return nil
}

// updateBudget bounds how long Update keeps retrying a lost
// compare-and-set when ctx has no earlier deadline.
const updateBudget = 10 * time.Second

// Update reads the row, applies change and writes it back with
// compare-and-set, retrying when another write got in between (the fleet
// reports status changes on the same row, other hubs update it too).
// Updates of one row on this hub queue behind each other rather than
// race; a lost compare-and-set is retried after a short random backoff
// until ctx's deadline or updateBudget, so only a row that keeps changing
// for that long answers catalog.ErrConflict. change may return an error
// to abort (returned as is). Errors: catalog.ErrNotFound, ctx's.
func (s *Service) Update(ctx context.Context, id string, change func(*catalog.Instance) error) (catalog.Instance, error) {
	unlock, err := s.rows.lock(ctx, id)
	if err != nil {
		return catalog.Instance{}, err
	}
	defer unlock()
	deadline := s.now().Add(updateBudget)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	for try := 0; ; try++ {
		inst, err := s.cat.Instance(id)
		if err != nil {
			return inst, err
		}
		old := maps.Clone(inst.SecretEnv)
		if err := change(&inst); err != nil {
			return inst, err
		}
		if err := checkReplicas(inst.ReplicaCount()); err != nil {
			return inst, err
		}
		if err := s.sealSecretEnv(&inst, old); err != nil {
			return inst, err
		}
		inst.UpdatedAt = s.now().UTC()
		res, err := s.raft.Apply(ctx, catalog.UpsertInstance(inst, catalog.IfIndex(inst.ModifyIndex)))
		if errors.Is(err, catalog.ErrConflict) && s.now().Before(deadline) {
			if _, gerr := s.cat.Instance(id); gerr == nil {
				if werr := backoff(ctx, try); werr != nil {
					return inst, werr
				}
				continue
			}
		}
		if err != nil {
			return inst, err
		}
		if stored, ok := res.(catalog.Instance); ok {
			inst = stored
		}
		return inst, nil
	}
}

// backoff waits a random time growing with try, from about 1 ms up to
// 50 ms, so that writers that lost a compare-and-set do not retry in
// lockstep (and a follower's catalog catches up with the write that won).
func backoff(ctx context.Context, try int) error {
	ceil := min(time.Millisecond<<min(try, 6), 50*time.Millisecond)
	t := time.NewTimer(ceil/2 + rand.N(ceil/2+1))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// rowLocks queues the updates of each row on this hub.
type rowLocks struct {
	mu sync.Mutex
	m  map[string]*rowLock
}

type rowLock struct {
	sem  chan struct{} // holds a token while the row is locked
	refs int           // holders and waiters
}

// lock waits for id's lock, or for ctx to end; unlock releases it.
func (l *rowLocks) lock(ctx context.Context, id string) (unlock func(), err error) {
	l.mu.Lock()
	rl := l.m[id]
	if rl == nil {
		rl = &rowLock{sem: make(chan struct{}, 1)}
		l.m[id] = rl
	}
	rl.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if rl.refs--; rl.refs == 0 {
			delete(l.m, id)
		}
		l.mu.Unlock()
	}
	select {
	case rl.sem <- struct{}{}:
		return func() { <-rl.sem; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// Scale sets the replica count of a logical instance (1-MaxReplicas) and
// of its live color row, so a deployment's green serves with as many.
func (s *Service) Scale(ctx context.Context, id string, n int) (catalog.Instance, error) {
	if err := checkReplicas(n); err != nil {
		return catalog.Instance{}, err
	}
	inst, err := s.Update(ctx, id, func(i *catalog.Instance) error {
		if IsColor(*i) {
			return &FieldError{Field: "id", Message: fmt.Sprintf("%s is a deployment color; scale %s", i.Name, LogicalName(i.Name))}
		}
		i.Replicas = n
		return nil
	})
	if err != nil {
		return inst, err
	}
	return inst, s.ScaleLive(ctx, inst)
}

// ScaleLive gives the live color row of logical, a row this request has
// just written (its Raft result, not a possibly stale read), the
// logical row's replica count; without a live color it writes nothing.
// PATCH {"replicas": n} sets the logical row's count in its own update and
// then calls this: one Raft round trip fewer than Scale, which would write
// the logical row again.
func (s *Service) ScaleLive(ctx context.Context, logical catalog.Instance) error {
	if logical.Live == "" || logical.Live == logical.ID {
		return nil
	}
	n := logical.Replicas
	_, err := s.Update(ctx, logical.Live, func(i *catalog.Instance) error { i.Replicas = n; return nil })
	return err
}

// Delete deletes a logical instance with its color rows (and with them
// their allocations, flows, credentials and scoped tokens, including the
// hub-managed instance token). Errors: catalog.ErrNotFound.
func (s *Service) Delete(ctx context.Context, id string) error {
	inst, err := s.cat.Instance(id)
	if err != nil {
		return err
	}
	for _, row := range s.cat.Instances() {
		if IsColor(row) && LogicalName(row.Name) == inst.Name {
			if _, err := s.raft.Apply(ctx, catalog.DeleteInstance(row.ID)); err != nil && !errors.Is(err, catalog.ErrNotFound) {
				return fmt.Errorf("delete color %s: %w", row.Name, err)
			}
		}
	}
	_, err = s.raft.Apply(ctx, catalog.DeleteInstance(id))
	return err
}

// secretEnvContext binds a sealed secret env value to its instance and
// variable.
func secretEnvContext(instanceID, key string) string { return "secret_env/" + instanceID + "/" + key }

// sealSecretEnv seals every secret env value of inst that is not the
// sealed value stored before (old): what a caller set is plaintext, what
// it left alone stays as stored. The Raft log never sees a secret value.
func (s *Service) sealSecretEnv(inst *catalog.Instance, old map[string]string) error {
	for k, v := range inst.SecretEnv {
		if prev, ok := old[k]; ok && prev == v {
			continue
		}
		sealed, err := s.seal.Seal(secretEnvContext(inst.ID, k), v)
		if err != nil {
			return fmt.Errorf("seal secret env %s: %w", k, err)
		}
		inst.SecretEnv[k] = sealed
	}
	return nil
}

// OpenSecretEnv returns the secret env of the logical instance id in
// clear (a color row carries its logical instance's sealed values).
func (s *Service) OpenSecretEnv(id string, sealed map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(sealed))
	for k, v := range sealed {
		pt, err := s.seal.Open(secretEnvContext(id, k), v)
		if err != nil {
			return nil, fmt.Errorf("secret env %s: %w", k, err)
		}
		out[k] = pt
	}
	return out, nil
}

// Credential contexts: what a sealed value is bound to.
func sealContext(rowID, what string) string { return "credentials/" + rowID + "/" + what }

// RuntimeCredentials returns a row's credentials in clear, creating them
// (random, sealed, through Raft) on first use. Every hub of a cluster can
// open them (the sealing key comes from the cluster secret). A color row
// gets its own admin and bus passwords and its logical instance's token.
func (s *Service) RuntimeCredentials(ctx context.Context, row catalog.Instance) (fleet.Creds, error) {
	c, err := s.cat.InstanceCredentials(row.ID)
	if errors.Is(err, catalog.ErrNotFound) {
		c, err = s.createCredentials(ctx, row)
	}
	if err != nil {
		return fleet.Creds{}, err
	}
	out, err := s.open(row.ID, c)
	if err != nil {
		return out, err
	}
	if IsColor(row) {
		l, err := s.Logical(row)
		if err != nil {
			return out, err
		}
		lc, err := s.RuntimeCredentials(ctx, l)
		if err != nil {
			return out, err
		}
		out.Token = lc.Token
		return out, nil
	}
	if s.tokens != nil {
		if err := s.tokens.EnsureInstanceToken(ctx, row.ID, out.Token); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (s *Service) open(rowID string, c catalog.Credentials) (fleet.Creds, error) {
	var out fleet.Creds
	var err error
	if out.AdminPassword, err = s.seal.Open(sealContext(rowID, "admin"), c.AdminPassword); err != nil {
		return out, fmt.Errorf("credentials of %s: %w", rowID, err)
	}
	if out.MQTTPassword, err = s.seal.Open(sealContext(rowID, "mqtt"), c.MQTTPassword); err != nil {
		return out, fmt.Errorf("credentials of %s: %w", rowID, err)
	}
	if c.Token != "" {
		if out.Token, err = s.seal.Open(sealContext(rowID, "token"), c.Token); err != nil {
			return out, fmt.Errorf("credentials of %s: %w", rowID, err)
		}
	}
	return out, nil
}

func (s *Service) createCredentials(ctx context.Context, row catalog.Instance) (catalog.Credentials, error) {
	c := catalog.Credentials{InstanceID: row.ID}
	var err error
	if c.AdminPassword, err = s.seal.Seal(sealContext(row.ID, "admin"), secrets.Random(24)); err != nil {
		return c, err
	}
	if c.MQTTPassword, err = s.seal.Seal(sealContext(row.ID, "mqtt"), secrets.Random(24)); err != nil {
		return c, err
	}
	if !IsColor(row) {
		if c.Token, err = s.seal.Seal(sealContext(row.ID, "token"), auth.APITokenPrefix+secrets.Random(32)); err != nil {
			return c, err
		}
	}
	_, err = s.raft.Apply(ctx, catalog.PutCredentials(c, catalog.IfIndex(0)))
	if errors.Is(err, catalog.ErrConflict) {
		return s.awaitCredentials(ctx, row.ID) // another hub made them first
	}
	if err != nil {
		return c, fmt.Errorf("create credentials of %s: %w", row.Name, err)
	}
	return c, nil
}

// awaitCredentials reads a row's credentials that another hub committed
// and this hub's catalog may not have applied yet.
func (s *Service) awaitCredentials(ctx context.Context, rowID string) (catalog.Credentials, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 500*time.Millisecond) {
		c, err := s.cat.InstanceCredentials(rowID)
		if err == nil || !errors.Is(err, catalog.ErrNotFound) {
			return c, err
		}
		select {
		case <-ctx.Done():
			return c, fmt.Errorf("credentials of %s, made by another hub, not applied here yet: %w", rowID, ctx.Err())
		case <-time.After(wait):
		}
	}
}

// CheckMQTT reports whether password is the hub-bus password of row
// (the MQTT username). Rows without credentials yet are refused.
func (s *Service) CheckMQTT(rowID string, password []byte) bool {
	c, err := s.cat.InstanceCredentials(rowID)
	if err != nil {
		return false
	}
	want, err := s.seal.Open(sealContext(rowID, "mqtt"), c.MQTTPassword)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(want), password)
}
