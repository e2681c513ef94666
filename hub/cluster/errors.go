package cluster

import (
	"errors"
	"fmt"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrNotLeader reports a write or consistent read sent to a node that
	// is not the leader. The error is a *NotLeaderError naming the leader
	// when one is known.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrNoLeader reports that the cluster has had no leader for longer than
	// the ping grace.
	ErrNoLeader = errors.New("no raft leader")
	// ErrShutdown reports a node that is not open or whose raft has shut
	// down (closed, or a leader that removed itself).
	ErrShutdown = errors.New("raft is shut down")
	// ErrOutcomeUnknown reports a write whose fate is unknown: leadership
	// was lost, or the context ended, after raft took the command. It may
	// or may not be applied; read before retrying a non-idempotent command.
	ErrOutcomeUnknown = errors.New("outcome unknown")
	// ErrLeaderUnreachable reports a follower that cannot reach the leader
	// to forward a write or confirm a consistent read (it is cut off, or
	// the leader's API does not answer). A write that fails with it was not
	// applied; stale reads still work.
	ErrLeaderUnreachable = errors.New("the raft leader cannot be reached from this hub")
	// ErrUnauthorized reports a cluster call with a missing or wrong
	// cluster secret.
	ErrUnauthorized = errors.New("wrong or missing cluster secret")
	// ErrCertRefused reports a hub-to-hub TLS handshake that failed on a
	// certificate: the other hub's is not from this hub's cluster CA (or
	// does not name its address), or it refused this hub's.
	ErrCertRefused = errors.New("hub certificate refused (is it from the cluster CA, and does it name the address?)")
)

// NotLeaderError is returned by a follower. LeaderID and LeaderAddr are
// empty when no leader is known (an election is under way).
type NotLeaderError struct {
	LeaderID   string
	LeaderAddr string
}

func (e *NotLeaderError) Error() string {
	if e.LeaderAddr == "" {
		return ErrNotLeader.Error() + " (no leader known; retry after the election)"
	}
	return fmt.Sprintf("%s (leader is %s at %s)", ErrNotLeader, e.LeaderID, e.LeaderAddr)
}

// Unwrap makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Unwrap() error { return ErrNotLeader }
