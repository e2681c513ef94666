package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

// forwardTo is an in-process Forwarder: it applies on the given node.
type forwardTo struct {
	node  func() *Node
	calls []string
}

func (f *forwardTo) Forward(ctx context.Context, leaderID, leaderAddr string, cmd catalog.Command) (any, error) {
	f.calls = append(f.calls, leaderID+"@"+leaderAddr)
	return f.node().Apply(ctx, cmd)
}

func hasInstance(s *catalog.State, id string) func() error {
	return func() error {
		_, err := s.Instance(id)
		return err
	}
}

// TestThreeNodes runs three nodes in one process over loopback TCP: join,
// replication, follower refusal, forwarding, leader failover, removal of
// the dead leader, and loss of quorum.
func TestThreeNodes(t *testing.T) {
	cfg1 := testConfig(t, "n1", t.TempDir())
	cfg1.Bootstrap = true
	n1, s1 := openNode(t, cfg1)
	n2, s2 := openNode(t, testConfig(t, "n2", t.TempDir()))
	cfg3 := testConfig(t, "n3", t.TempDir())
	fwd := &forwardTo{node: func() *Node { return n1 }}
	cfg3.Forwarder = fwd
	n3, s3 := openNode(t, cfg3)
	nodes := map[string]*Node{"n1": n1, "n2": n2, "n3": n3}
	states := map[string]*catalog.State{"n1": s1, "n2": s2, "n3": s3}

	if n2.IsLeader() || n3.IsLeader() {
		t.Fatal("an unjoined node claims leadership")
	}
	ctx := ctxT(t)
	if err := n1.Join(ctx, "n2", n2.Addr(), true); err != nil {
		t.Fatalf("join n2: %v", err)
	}
	if err := n1.Join(ctx, "n3", n3.Addr(), false); err != nil {
		t.Fatalf("join n3 as nonvoter: %v", err)
	}
	if err := n1.Join(ctx, "n3", n3.Addr(), true); err != nil {
		t.Fatalf("promote n3: %v", err)
	}
	if err := n1.Join(ctx, "n3", n3.Addr(), true); err != nil {
		t.Fatalf("join n3 again: %v", err)
	}
	servers, err := n1.Servers()
	if err != nil || len(servers) != 3 {
		t.Fatalf("Servers() = %+v, %v", servers, err)
	}
	for _, s := range servers {
		if !s.Voter || s.Leader != (s.ID == "n1") || s.Addr != nodes[s.ID].Addr() {
			t.Fatalf("server %+v", s)
		}
	}

	// A write on the leader reaches every follower.
	mustApply(t, n1, catalog.UpsertInstance(instance(1)))
	for id, s := range states {
		testenv.WaitFor(t, 10*time.Second, "i-1 on "+id, hasInstance(s, "i-1"))
	}

	// A follower refuses writes and consistent reads, naming the leader.
	var nl *NotLeaderError
	_, err = n2.Apply(ctx, catalog.UpsertInstance(instance(2)))
	if !errors.Is(err, ErrNotLeader) || !errors.As(err, &nl) || nl.LeaderID != "n1" || nl.LeaderAddr != n1.Addr() {
		t.Fatalf("Apply on a follower: %v, want ErrNotLeader naming n1 at %s", err, n1.Addr())
	}
	if id, addr := n2.Leader(); id != "n1" || addr != n1.Addr() {
		t.Fatalf("n2.Leader() = %s, %s", id, addr)
	}
	if err := n2.ConsistentRead(ctx); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("ConsistentRead on a follower: %v", err)
	}
	if err := n2.Join(ctx, "x", "127.0.0.1:1", true); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Join on a follower: %v", err)
	}
	if err := n1.ConsistentRead(ctx); err != nil {
		t.Fatalf("ConsistentRead on the leader: %v", err)
	}

	// A follower with a Forwarder hands the write to the leader.
	if _, err := n3.Apply(ctx, catalog.UpsertInstance(instance(3))); err != nil {
		t.Fatalf("forwarded apply: %v", err)
	}
	if len(fwd.calls) != 1 || fwd.calls[0] != "n1@"+n1.Addr() {
		t.Fatalf("forwarder calls = %v", fwd.calls)
	}
	testenv.WaitFor(t, 10*time.Second, "i-3 on n3", hasInstance(s3, "i-3"))

	// Kill the leader: a new one is elected and accepts writes.
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	var leader, follower *Node
	var followerState *catalog.State
	testenv.WaitFor(t, 15*time.Second, "a new leader", func() error {
		switch {
		case n2.IsLeader():
			leader, follower, followerState = n2, n3, s3
		case n3.IsLeader():
			leader, follower, followerState = n3, n2, s2
		default:
			return fmt.Errorf("n2 is %s, n3 is %s", n2.State(), n3.State())
		}
		return nil
	})
	mustApply(t, leader, catalog.UpsertInstance(instance(4)))
	testenv.WaitFor(t, 10*time.Second, "i-4 on the follower", hasInstance(followerState, "i-4"))
	testenv.WaitFor(t, 10*time.Second, "the follower to learn the new leader", func() error {
		if id, _ := follower.Leader(); id != leader.ID() {
			return fmt.Errorf("follower's leader is %q", id)
		}
		return nil
	})
	for _, n := range []*Node{leader, follower} {
		if err := n.Ping(ctx); err != nil {
			t.Fatalf("Ping on %s: %v", n.ID(), err)
		}
	}

	// Remove the dead leader from the configuration; removing twice is fine.
	if err := leader.Remove(ctx, "n1"); err != nil {
		t.Fatalf("remove n1: %v", err)
	}
	if err := leader.Remove(ctx, "n1"); err != nil {
		t.Fatalf("remove n1 again: %v", err)
	}
	if servers, _ := leader.Servers(); len(servers) != 2 {
		t.Fatalf("Servers() after remove = %+v", servers)
	}

	// Lose quorum: the remaining node has no leader and Ping says so.
	if err := follower.Close(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 15*time.Second, "the last node to report no leader", func() error {
		err := leader.Ping(ctx)
		if !errors.Is(err, ErrNoLeader) {
			return fmt.Errorf("Ping = %v", err)
		}
		return nil
	})
	if _, err := leader.Apply(ctx, catalog.PutSetting("k", 1)); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("Apply without quorum: %v, want ErrNotLeader", err)
	}
}

// TestRemovedFollower: a removed follower leaves the configuration and,
// never told of its removal (raft stops replicating to it first), reports
// no leader once the grace has passed.
func TestRemovedFollower(t *testing.T) {
	cfg1 := testConfig(t, "n1", t.TempDir())
	cfg1.Bootstrap = true
	n1, _ := openNode(t, cfg1)
	cfg2 := testConfig(t, "n2", t.TempDir())
	cfg2.PingGrace = 500 * time.Millisecond
	n2, s2 := openNode(t, cfg2)
	ctx := ctxT(t)
	if err := n1.Join(ctx, "n2", n2.Addr(), false); err != nil {
		t.Fatal(err)
	}
	mustApply(t, n1, catalog.UpsertInstance(instance(1)))
	testenv.WaitFor(t, 10*time.Second, "i-1 on the nonvoter", hasInstance(s2, "i-1"))
	if err := n2.Ping(ctx); err != nil {
		t.Fatalf("Ping on the nonvoter: %v", err)
	}
	if err := n1.Remove(ctx, "n2"); err != nil {
		t.Fatal(err)
	}
	if servers, _ := n1.Servers(); len(servers) != 1 || servers[0].ID != "n1" {
		t.Fatalf("Servers() after remove = %+v", servers)
	}
	testenv.WaitFor(t, 10*time.Second, "the removed node to report no leader", func() error {
		if err := n2.Ping(ctx); !errors.Is(err, ErrNoLeader) {
			return fmt.Errorf("Ping = %v, state %s", err, n2.State())
		}
		return nil
	})
}
