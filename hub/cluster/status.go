package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// RaftState is a node's Raft state. Its values are raft's names, as the
// API shows them ("state" of GET /api/cluster).
type RaftState string

// Raft states.
const (
	Leader    RaftState = "Leader"
	Follower  RaftState = "Follower"
	Candidate RaftState = "Candidate"
	// Shutdown is also the state of a node that is not open.
	Shutdown RaftState = "Shutdown"
)

// State returns the node's Raft state (Shutdown when not open). To ask
// whether the node leads, use IsLeader.
func (n *Node) State() RaftState {
	r, err := n.running()
	if err != nil {
		return Shutdown
	}
	return RaftState(r.State().String())
}

// Snapshot makes Raft take a snapshot of the catalog now (and compact its
// log). Errors: not open; raft's (e.g. nothing new to snapshot).
func (n *Node) Snapshot() error {
	r, err := n.running()
	if err != nil {
		return err
	}
	return r.Snapshot().Error()
}

// IsLeader reports whether this node is the Raft leader now.
func (n *Node) IsLeader() bool {
	r, err := n.running()
	return err == nil && r.State() == raft.Leader
}

// Leader returns the current leader's ID and address, empty when none is
// known or the node is not open.
func (n *Node) Leader() (id, addr string) {
	r, err := n.running()
	if err != nil {
		return "", ""
	}
	a, i := r.LeaderWithID()
	return string(i), string(a)
}

// Stats returns raft's statistics (state, term, indexes, last contact,
// peers…) plus node_id and addr. A node that is not open reports only
// state=Shutdown.
func (n *Node) Stats() map[string]string {
	r, err := n.running()
	if err != nil {
		return map[string]string{"state": raft.Shutdown.String()}
	}
	st := r.Stats()
	st["node_id"], st["addr"] = n.ID(), n.Addr()
	return st
}

// Ping is the health check: nil while the node runs and a leader is known,
// or has been unknown for no longer than Config.PingGrace (an election is a
// normal event). Errors: ErrShutdown when the node is not open or raft has
// shut down; ErrNoLeader, saying for how long, when there has been no
// leader for longer than the grace (no quorum, or this node was removed).
func (n *Node) Ping(context.Context) error {
	r, err := n.running()
	if err != nil || r.State() == raft.Shutdown {
		return fmt.Errorf("ping: %w", ErrShutdown)
	}
	if addr, _ := r.LeaderWithID(); addr != "" {
		n.noLeaderSince.Store(0)
		return nil
	}
	now := time.Now()
	if n.noLeaderSince.CompareAndSwap(0, now.UnixNano()) {
		return nil
	}
	if d := now.Sub(time.Unix(0, n.noLeaderSince.Load())); d > n.cfg.PingGrace {
		return fmt.Errorf("ping: %w for %s (grace %s, state %s)", ErrNoLeader, d.Round(time.Millisecond), n.cfg.PingGrace, r.State())
	}
	return nil
}

// Staleness is how far behind the leader this node's catalog may be: 0
// on the leader, else the time since the leader last contacted this node
// (since Open when it never has). A node that is not open reports -1.
func (n *Node) Staleness() time.Duration {
	r, err := n.running()
	if err != nil {
		return -1
	}
	if r.State() == raft.Leader {
		return 0
	}
	lc := r.LastContact()
	if lc.IsZero() {
		n.mu.RLock()
		lc = n.openedAt
		n.mu.RUnlock()
	}
	return time.Since(lc)
}
