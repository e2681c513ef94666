package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"github.com/redforge/controltower/hub/catalog"
)

// Apply commits cmd through raft and returns its application result: the
// catalog's value, or its error (catalog.ErrNotFound, ErrConflict,
// ErrInvalid) unchanged. On a follower it returns a *NotLeaderError
// (errors.Is ErrNotLeader), or the Forwarder's answer when one is set.
// Other errors: ErrShutdown; ErrOutcomeUnknown when leadership was lost or
// ctx ended after raft took the command. Without a ctx deadline the wait is
// bounded by Config.ApplyTimeout.
func (n *Node) Apply(ctx context.Context, cmd catalog.Command) (any, error) {
	return n.apply(ctx, cmd, true)
}

// ApplyLocal is Apply without forwarding: a follower returns
// *NotLeaderError. The leader's end of a forwarded write uses it, so a
// write never bounces between hubs.
func (n *Node) ApplyLocal(ctx context.Context, cmd catalog.Command) (any, error) {
	return n.apply(ctx, cmd, false)
}

func (n *Node) apply(ctx context.Context, cmd catalog.Command, forward bool) (any, error) {
	r, release, err := n.acquire()
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	defer release()
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	if r.State() != raft.Leader {
		if !forward {
			return nil, fmt.Errorf("apply %s: %w", cmd.Type, n.notLeader(r))
		}
		return n.forward(ctx, r, cmd)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	f := r.Apply(data, n.timeout(ctx))
	if err := n.wait(ctx, f); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("apply %s: %w: %w", cmd.Type, ErrOutcomeUnknown, ctx.Err())
		}
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, n.raftErr(r, err))
	}
	res, ok := f.Response().(fsmResult)
	if !ok {
		return nil, fmt.Errorf("apply %s: unexpected FSM response %T", cmd.Type, f.Response())
	}
	return res.Value, res.Err
}

// forward hands cmd to the leader through the Forwarder, riding out an
// election for up to PingGrace; if this node becomes the leader meanwhile
// it applies cmd itself.
func (n *Node) forward(ctx context.Context, r *raft.Raft, cmd catalog.Command) (any, error) {
	if n.cfg.Forwarder == nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, n.notLeader(r))
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var v any
	err := n.retryForward(ctx, n.cfg.PingGrace, func(id, addr string) error {
		var err error
		v, err = n.cfg.Forwarder.Forward(ctx, id, addr, cmd)
		return err
	})
	if err != nil && errors.Is(err, ErrNotLeader) && n.IsLeader() {
		return n.apply(ctx, cmd, false)
	}
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	return v, nil
}

// ConsistentRead makes the next reads of the local catalog linearizable:
// it commits a raft barrier, so when it returns nil this node was the
// leader after the call began and its catalog holds every write committed
// before then. It costs a log write; plain reads of the catalog are stale
// by at most the replication lag. Errors: *NotLeaderError on a follower,
// ErrShutdown, or ctx's error.
func (n *Node) ConsistentRead(ctx context.Context) error {
	r, release, err := n.acquire()
	if err != nil {
		return fmt.Errorf("consistent read: %w", err)
	}
	defer release()
	if r.State() != raft.Leader {
		return n.followerRead(ctx, r)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if err := n.wait(ctx, r.Barrier(n.timeout(ctx))); err != nil {
		return fmt.Errorf("consistent read: %w", n.raftErr(r, err))
	}
	return nil
}

// ReadIndexLocal is the leader's end of a follower's consistent read: it
// commits a barrier (proving leadership now) and returns the catalog's
// applied index, which then holds every write committed before the call.
// Errors: as ConsistentRead on the leader; *NotLeaderError on a follower.
func (n *Node) ReadIndexLocal(ctx context.Context) (uint64, error) {
	r, release, err := n.acquire()
	if err != nil {
		return 0, fmt.Errorf("read index: %w", err)
	}
	defer release()
	if r.State() != raft.Leader {
		return 0, fmt.Errorf("read index: %w", n.notLeader(r))
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if err := n.wait(ctx, r.Barrier(n.timeout(ctx))); err != nil {
		return 0, fmt.Errorf("read index: %w", n.raftErr(r, err))
	}
	return n.state.Index(), nil
}

// followerRead asks the leader for a read index (when the Forwarder can)
// and waits until the local catalog has applied it: reads after it are
// linearizable. Without a ReadIndexer it is *NotLeaderError; when the
// leader cannot be reached, ErrLeaderUnreachable.
func (n *Node) followerRead(ctx context.Context, r *raft.Raft) error {
	ri, ok := n.cfg.Forwarder.(ReadIndexer)
	if !ok {
		return fmt.Errorf("consistent read: %w", n.notLeader(r))
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	var idx uint64
	err := n.retryForward(ctx, n.cfg.PingGrace, func(id, addr string) error {
		var err error
		idx, err = ri.ReadIndex(ctx, id, addr)
		return err
	})
	if err != nil && errors.Is(err, ErrNotLeader) && n.IsLeader() {
		return n.ConsistentRead(ctx)
	}
	if err != nil {
		if !errors.Is(err, ErrLeaderUnreachable) {
			err = fmt.Errorf("%w: %w", ErrLeaderUnreachable, err)
		}
		return fmt.Errorf("consistent read: %w", err)
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for n.state.Index() < idx {
		select {
		case <-ctx.Done():
			return fmt.Errorf("consistent read: catching up to index %d (at %d): %w: %w", idx, n.state.Index(), ErrLeaderUnreachable, ctx.Err())
		case <-tick.C:
		}
	}
	return nil
}

// withTimeout bounds ctx by Config.ApplyTimeout when it has no deadline.
func (n *Node) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, n.cfg.ApplyTimeout)
}

// timeout is how long raft may take to accept a command: what is left of
// ctx's deadline.
func (n *Node) timeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return n.cfg.ApplyTimeout
}

// wait waits for f, or for ctx to end (the future then completes unseen,
// still counted in ops so that Close lets it complete). The caller holds
// an acquire.
func (n *Node) wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	n.ops.Add(1)
	go func() {
		defer n.ops.Done()
		done <- f.Error()
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// raftErr maps raft's errors to this package's.
func (n *Node) raftErr(r *raft.Raft, err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return n.notLeader(r)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrOutcomeUnknown, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return ErrShutdown
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("raft did not take the command in time: %w", context.DeadlineExceeded)
	}
	return err
}

func (n *Node) notLeader(r *raft.Raft) error {
	addr, id := r.LeaderWithID()
	return &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)}
}
