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
	r, err := n.running()
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	data, err := cmd.Encode()
	if err != nil {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, err)
	}
	if r.State() != raft.Leader {
		return n.forward(ctx, r, cmd)
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	f := r.Apply(data, n.timeout(ctx))
	if err := wait(ctx, f); err != nil {
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

func (n *Node) forward(ctx context.Context, r *raft.Raft, cmd catalog.Command) (any, error) {
	addr, id := r.LeaderWithID()
	if n.cfg.Forwarder == nil || addr == "" {
		return nil, fmt.Errorf("apply %s: %w", cmd.Type, &NotLeaderError{LeaderID: string(id), LeaderAddr: string(addr)})
	}
	return n.cfg.Forwarder.Forward(ctx, string(id), string(addr), cmd)
}

// ConsistentRead makes the next reads of the local catalog linearizable:
// it commits a raft barrier, so when it returns nil this node was the
// leader after the call began and its catalog holds every write committed
// before then. It costs a log write; plain reads of the catalog are stale
// by at most the replication lag. Errors: *NotLeaderError on a follower,
// ErrShutdown, or ctx's error.
func (n *Node) ConsistentRead(ctx context.Context) error {
	r, err := n.running()
	if err != nil {
		return fmt.Errorf("consistent read: %w", err)
	}
	if r.State() != raft.Leader {
		return fmt.Errorf("consistent read: %w", n.notLeader(r))
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if err := wait(ctx, r.Barrier(n.timeout(ctx))); err != nil {
		return fmt.Errorf("consistent read: %w", n.raftErr(r, err))
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

// wait waits for f, or for ctx to end (the future then completes unseen).
func wait(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
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
