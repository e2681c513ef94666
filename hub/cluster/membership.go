package cluster

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
)

// Server is a member of the raft configuration.
type Server struct {
	ID     string `json:"id"`
	Addr   string `json:"addr"`
	Voter  bool   `json:"voter"`
	Leader bool   `json:"leader"`
}

// Servers returns the latest raft configuration. Errors: ErrShutdown.
func (n *Node) Servers() ([]Server, error) {
	r, err := n.running()
	if err != nil {
		return nil, fmt.Errorf("servers: %w", err)
	}
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("servers: %w", n.raftErr(r, err))
	}
	_, leader := r.LeaderWithID()
	var out []Server
	for _, s := range f.Configuration().Servers {
		out = append(out, Server{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter, Leader: s.ID == leader})
	}
	return out, nil
}

// Join adds the node id at addr to the cluster, as a voter or a nonvoter;
// it must run on the leader. Joining a member again with the same address
// and suffrage does nothing; a different suffrage promotes or demotes it;
// an entry with the same ID or the same address but not both (a node that
// came back on a new address) is removed first. The new node must be
// running (Open without Bootstrap) for a voter join to commit. Errors:
// *NotLeaderError on a follower, ErrShutdown, ErrOutcomeUnknown, ctx's.
func (n *Node) Join(ctx context.Context, id, addr string, voter bool) error {
	r, release, err := n.leader()
	if err != nil {
		return fmt.Errorf("join %s: %w", id, err)
	}
	defer release()
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("join %s: %w", id, n.raftErr(r, err))
	}
	for _, s := range f.Configuration().Servers {
		sameID, sameAddr := string(s.ID) == id, string(s.Address) == addr
		switch {
		case sameID && sameAddr && (s.Suffrage == raft.Voter) == voter:
			return nil
		case sameID && sameAddr && !voter:
			return n.membership(ctx, r, "demote", id, r.DemoteVoter(s.ID, 0, n.timeout(ctx)))
		case sameID && sameAddr: // a nonvoter to promote: AddVoter does it
		case sameID || sameAddr:
			if s.ID == raft.ServerID(n.ID()) {
				return fmt.Errorf("join %s at %s: conflicts with this leader (%s at %s)", id, addr, s.ID, s.Address)
			}
			if err := n.membership(ctx, r, "remove stale", string(s.ID), r.RemoveServer(s.ID, 0, n.timeout(ctx))); err != nil {
				return err
			}
		}
	}
	if voter {
		return n.membership(ctx, r, "add voter", id, r.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.timeout(ctx)))
	}
	return n.membership(ctx, r, "add nonvoter", id, r.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, n.timeout(ctx)))
}

// Remove removes the node id from the cluster; it must run on the leader.
// Removing a node that is not a member does nothing. A leader that removes
// itself shuts its raft down; a removed follower is not told (raft stops
// replicating to it first), so its Ping reports ErrNoLeader after the
// grace: stop that hub. Errors: *NotLeaderError on a follower, ErrShutdown,
// ErrOutcomeUnknown, ctx's.
func (n *Node) Remove(ctx context.Context, id string) error {
	r, release, err := n.leader()
	if err != nil {
		return fmt.Errorf("remove %s: %w", id, err)
	}
	defer release()
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	f := r.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("remove %s: %w", id, n.raftErr(r, err))
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return n.membership(ctx, r, "remove", id, r.RemoveServer(s.ID, 0, n.timeout(ctx)))
		}
	}
	return nil
}

// leader acquires raft (see acquire) when this node is the leader.
func (n *Node) leader() (*raft.Raft, func(), error) {
	r, release, err := n.acquire()
	if err != nil {
		return nil, nil, err
	}
	if r.State() != raft.Leader {
		release()
		return nil, nil, n.notLeader(r)
	}
	return r, release, nil
}

// membership waits for a configuration change and logs it.
func (n *Node) membership(ctx context.Context, r *raft.Raft, what, id string, f raft.Future) error {
	if err := n.wait(ctx, f); err != nil {
		return fmt.Errorf("%s %s: %w", what, id, n.raftErr(r, err))
	}
	n.logger().Info("raft configuration changed", logKeyChange, what, logKeyServer, id)
	return nil
}
