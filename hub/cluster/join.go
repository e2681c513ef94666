package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ChooseVoter decides whether joiner joins as a voter: while there are
// fewer than maxVoters voters (not counting joiner), a hub whose region
// holds fewer than its fair share — ceil(maxVoters / regions) — of the
// voters becomes one, so voters spread over regions and losing a whole
// region leaves a quorum. regions is the topology's region count; when 0,
// the regions of known hubs (and joiner's) are counted. Everyone else
// joins as a nonvoter.
func ChooseVoter(servers []Server, hubs map[string]HubInfo, joiner HubInfo, maxVoters, regions int) bool {
	voters, inRegion := 0, 0
	seen := map[string]bool{joiner.Region: true}
	for _, h := range hubs {
		seen[h.Region] = true
	}
	for _, s := range servers {
		if !s.Voter || s.ID == joiner.ID {
			continue
		}
		voters++
		if hubs[s.ID].Region == joiner.Region {
			inRegion++
		}
	}
	if voters >= maxVoters {
		return false
	}
	regions = max(regions, len(seen), 1)
	share := (maxVoters + regions - 1) / regions
	return inRegion < share
}

// JoinHub adds hub h to the cluster (voter or nonvoter by ChooseVoter) and
// records it in the directory. On a follower it is forwarded to the leader
// when the Forwarder can (MembershipForwarder). It reports whether h joined
// as a voter. Rejoining with the same address is idempotent.
func (n *Node) JoinHub(ctx context.Context, h HubInfo) (voter bool, err error) {
	if h.ID == "" || h.Raft == "" || h.API == "" {
		return false, fmt.Errorf("join: id, raft and api are required")
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if n.State() != "Leader" {
		mf, ok := n.cfg.Forwarder.(MembershipForwarder)
		if !ok {
			r, err := n.running()
			if err != nil {
				return false, err
			}
			return false, fmt.Errorf("join %s: %w", h.ID, n.notLeader(r))
		}
		var res JoinResult
		err := n.retryForward(ctx, n.cfg.PingGrace, func(id, _ string) error {
			var err error
			res, err = mf.ForwardJoin(ctx, id, h)
			return err
		})
		if err == nil || !errors.Is(err, ErrNotLeader) || n.State() != "Leader" {
			return res.Voter, err
		}
	}
	servers, err := n.Servers()
	if err != nil {
		return false, err
	}
	voter = ChooseVoter(servers, n.Hubs(), h, n.cfg.MaxVoters, n.cfg.Regions)
	for _, s := range servers { // an existing voter stays one
		if s.ID == h.ID && s.Addr == h.Raft && s.Voter {
			voter = true
		}
	}
	if err := n.Join(ctx, h.ID, h.Raft, voter); err != nil {
		return false, err
	}
	if _, err := n.ApplyLocal(ctx, PutHub(h)); err != nil {
		return voter, fmt.Errorf("join %s: record in directory: %w", h.ID, err)
	}
	n.logger().Info("hub joined", logKeyServer, h.ID, "region", h.Region, "voter", voter)
	return voter, nil
}

// RemoveHub removes hub id from the cluster and the directory; on a
// follower it is forwarded to the leader. Removing an unknown hub does
// nothing.
func (n *Node) RemoveHub(ctx context.Context, id string) error {
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if n.State() != "Leader" {
		if mf, ok := n.cfg.Forwarder.(MembershipForwarder); ok {
			return n.retryForward(ctx, n.cfg.PingGrace, func(leader, _ string) error {
				return mf.ForwardRemove(ctx, leader, id)
			})
		}
	}
	if err := n.Remove(ctx, id); err != nil {
		return err
	}
	if _, err := n.ApplyLocal(ctx, DeleteHub(id)); err != nil && !isNotFound(err) {
		return fmt.Errorf("remove %s: drop from directory: %w", id, err)
	}
	return nil
}

// RegisterSelf records this hub in the directory (through the leader), so
// others can forward to it when it leads. It retries until ctx ends.
func (n *Node) RegisterSelf(ctx context.Context, h HubInfo) error {
	for {
		_, err := n.Apply(ctx, PutHub(h))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("register hub %s: %w", h.ID, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// JoinVia asks the hub at base (any member: a follower forwards to the
// leader) to add h, retrying refused or unanswered attempts every 500 ms
// until ctx ends. A wrong secret or a refused certificate fails at once. It reports whether h
// joined as a voter.
func JoinVia(ctx context.Context, c *http.Client, base, secret string, h HubInfo) (bool, error) {
	body, _ := json.Marshal(h)
	for {
		var res JoinResult
		err := PostCluster(ctx, c, base, secret, PathJoin, "application/json", body, &res)
		if err == nil {
			_, err = res.Result.Decode()
		}
		if err == nil || errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrCertRefused) {
			return res.Voter, err
		}
		select {
		case <-ctx.Done():
			return false, fmt.Errorf("join cluster via %s: %w (last error: %v)", base, ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
