package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// reaper removes servers the leader has not reached for
// Config.DeadServerTimeout (dead-server cleanup). It learns of failures
// from raft's heartbeat observations, which only the leader emits, with the
// follower's last contact time.
type reaper struct {
	n        *Node
	mu       sync.Mutex
	failing  map[string]time.Time // server ID -> last contact
	stop     chan struct{}
	done     chan struct{}
	observer *raft.Observer
}

func (n *Node) startReaper(r *raft.Raft) *reaper {
	rp := &reaper{n: n, failing: map[string]time.Time{}, stop: make(chan struct{}), done: make(chan struct{})}
	ch := make(chan raft.Observation, 64)
	rp.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		switch o.Data.(type) {
		case raft.FailedHeartbeatObservation, raft.ResumedHeartbeatObservation:
			return true
		}
		return false
	})
	r.RegisterObserver(rp.observer)
	timeout := n.cfg.DeadServerTimeout
	every := min(max(timeout/4, 10*time.Millisecond), time.Second)
	go func() {
		defer close(rp.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case o := <-ch:
				rp.observe(o)
			case <-tick.C:
				if timeout > 0 {
					rp.sweep(r, timeout)
				}
			case <-rp.stop:
				return
			}
		}
	}()
	return rp
}

func (rp *reaper) observe(o raft.Observation) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	switch d := o.Data.(type) {
	case raft.FailedHeartbeatObservation:
		if _, ok := rp.failing[string(d.PeerID)]; !ok {
			lc := d.LastContact
			if lc.IsZero() {
				lc = time.Now()
			}
			rp.failing[string(d.PeerID)] = lc
		}
	case raft.ResumedHeartbeatObservation:
		delete(rp.failing, string(d.PeerID))
	}
}

// sweep removes, on the leader, every server silent for timeout.
func (rp *reaper) sweep(r *raft.Raft, timeout time.Duration) {
	rp.mu.Lock()
	if r.State() != raft.Leader {
		clear(rp.failing) // a new leader re-learns from its own replication
		rp.mu.Unlock()
		return
	}
	var dead []string
	for id, lc := range rp.failing {
		if time.Since(lc) >= timeout {
			dead = append(dead, id)
		}
	}
	rp.mu.Unlock()
	for _, id := range dead {
		ctx, cancel := context.WithTimeout(context.Background(), rp.n.cfg.ApplyTimeout)
		err := rp.n.RemoveHub(ctx, id)
		cancel()
		if err != nil {
			rp.n.logger().Warn("remove dead server", logKeyServer, id, "error", err)
			continue
		}
		rp.n.logger().Warn("removed dead server", logKeyServer, id, "silent_for", timeout)
		rp.mu.Lock()
		delete(rp.failing, id)
		rp.mu.Unlock()
	}
}

func (rp *reaper) close(r *raft.Raft) {
	close(rp.stop)
	<-rp.done
	r.DeregisterObserver(rp.observer)
}
