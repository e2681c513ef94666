package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"github.com/redforge/controltower/hub/catalog"
	"go.etcd.io/bbolt"
)

// Forwarder sends a write that reached a follower to the leader and returns
// the leader's result. The HTTP implementation arrives with multi-region
// hubs; without one, followers return *NotLeaderError.
type Forwarder interface {
	Forward(ctx context.Context, leaderID, leaderAddr string, cmd catalog.Command) (any, error)
}

// Node is one hub's Raft node, applying the replicated log to a
// catalog.State. Build it with New, start it with Open, stop it with Close.
// Its methods are safe for concurrent use.
type Node struct {
	cfg   Config
	state *catalog.State

	mu        sync.RWMutex // guards the fields below
	log       *slog.Logger
	id        string
	raft      *raft.Raft
	transport *raft.NetworkTransport
	store     *raftboltdb.BoltStore
	observer  *raft.Observer
	stopObs   chan struct{}
	obsDone   chan struct{}
	openedAt  time.Time
	reaper    *reaper
	existing  bool // raft had state when opened
	closing   bool // Close has begun: no new raft futures

	// ops counts raft calls in progress and the futures they wait on
	// (acquire, wait); Close lets them end before it shuts raft down,
	// because raft answers nothing still queued or committed-but-unapplied
	// when it shuts down.
	ops sync.WaitGroup

	noLeaderSince atomic.Int64 // unix nanoseconds; 0 while a leader is known
}

// New returns a node that will apply the log to state, which must be empty
// (catalog.NewState()). It does no I/O; zero Config fields take defaults.
func New(cfg Config, state *catalog.State) *Node {
	cfg = cfg.withDefaults()
	return &Node{cfg: cfg, state: state, log: cfg.Logger.With(logKeyComponent, "cluster")}
}

// Open opens the stores under DataDir/raft, starts raft and, when
// Bootstrap is set and there is no existing state, bootstraps a one-node
// cluster. A node with existing state, or bootstrapping, then waits until a
// leader is known (and, when it is the leader, until its catalog holds every
// committed write); a fresh node without Bootstrap returns at once and waits
// to be added with Join. Errors: an invalid Config, a data directory in use
// or owned by another node ID, a bind failure, or ctx ending before a leader
// is known. A failed Open leaves nothing running.
func (n *Node) Open(ctx context.Context) error {
	wait, err := n.start()
	if err != nil {
		return err
	}
	if !wait {
		n.logger().Info("raft started; waiting to be added to a cluster", logKeyAddr, n.Addr())
		return nil
	}
	if err := n.waitForLeader(ctx); err != nil {
		return errors.Join(err, n.Close())
	}
	return nil
}

// start opens everything and starts raft; wait reports whether Open should
// wait for a leader.
func (n *Node) start() (wait bool, err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.raft != nil {
		return false, errors.New("cluster: node is already open")
	}
	if err := n.cfg.Validate(); err != nil {
		return false, err
	}
	if n.state.Index() != 0 {
		return false, errors.New("cluster: Open needs an empty catalog.State: raft rebuilds it from the snapshot and the log")
	}
	dir := filepath.Join(n.cfg.DataDir, "raft")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("cluster: create data directory: %w", err)
	}
	id, err := loadNodeID(dir, n.cfg.NodeID)
	if err != nil {
		return false, err
	}
	var undo []func() error
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	log := n.cfg.Logger.With(logKeyComponent, "cluster", logKeyNode, id)
	hl := newHCLog(n.cfg.Logger.With(logKeyNode, id))

	dbPath := filepath.Join(dir, "raft.db")
	store, err := raftboltdb.New(raftboltdb.Options{Path: dbPath, BoltOptions: n.boltOptions()})
	if err != nil {
		return false, fmt.Errorf("cluster: open %s: %w (is another hub using this data directory?)", dbPath, err)
	}
	undo = append(undo, store.Close)
	logs, err := raft.NewLogCache(512, store)
	if err != nil {
		return false, fmt.Errorf("cluster: log cache: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dir, DefaultSnapshotRetain, hl.Named("snapshots"))
	if err != nil {
		return false, fmt.Errorf("cluster: open snapshot store: %w", err)
	}
	transport, err := n.newTransport(hl)
	if err != nil {
		return false, err
	}
	undo = append(undo, transport.Close)
	existing, err := raft.HasExistingState(logs, store, snaps)
	if err != nil {
		return false, fmt.Errorf("cluster: read raft state: %w", err)
	}
	r, err := raft.NewRaft(n.raftConfig(id, hl), &fsm{state: n.state}, logs, store, snaps, transport)
	if err != nil {
		return false, fmt.Errorf("cluster: start raft: %w", err)
	}
	undo = append(undo, func() error { return r.Shutdown().Error() })
	if !existing && n.cfg.Bootstrap {
		boot := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: transport.LocalAddr()}}}
		if err := r.BootstrapCluster(boot).Error(); err != nil {
			return false, fmt.Errorf("cluster: bootstrap: %w", err)
		}
		log.Info("bootstrapped a one-node raft cluster", logKeyAddr, transport.LocalAddr())
	}
	n.log, n.id, n.raft, n.transport, n.store = log, id, r, transport, store
	n.openedAt, n.existing = time.Now(), existing
	n.noLeaderSince.Store(time.Now().UnixNano())
	n.startObserver(r)
	n.reaper = n.startReaper(r)
	return existing || n.cfg.Bootstrap, nil
}

func (n *Node) newTransport(hl *hclogAdapter) (*raft.NetworkTransport, error) {
	var advertise net.Addr
	if n.cfg.AdvertiseAddr != "" {
		a, err := net.ResolveTCPAddr("tcp", n.cfg.AdvertiseAddr)
		if err != nil {
			return nil, fmt.Errorf("cluster: AdvertiseAddr %q: %w", n.cfg.AdvertiseAddr, err)
		}
		advertise = a
	}
	if n.cfg.TLS != nil {
		return newTLSTransport(n.cfg.BindAddr, advertise, n.cfg.TLS, hl)
	}
	t, err := raft.NewTCPTransportWithLogger(n.cfg.BindAddr, advertise, DefaultMaxPool, DefaultTransportTimeout, hl.Named("transport"))
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w (set AdvertiseAddr when binding to all interfaces)", n.cfg.BindAddr, err)
	}
	return t, nil
}

// boltOptions are raft.db's bbolt options. Unless StockThroughput, the
// freelist is not written at every commit (bbolt rebuilds it by scanning
// the pages when it opens the file) and is kept in a hash map: a commit
// then writes only the changed pages and the meta page, still synced
// (NoSync stays false), so an acknowledged log entry survives a crash.
func (n *Node) boltOptions() *bbolt.Options {
	o := &bbolt.Options{Timeout: time.Second}
	if !n.cfg.StockThroughput {
		o.NoFreelistSync = true
		o.FreelistType = bbolt.FreelistMapType
	}
	return o
}

func (n *Node) raftConfig(id string, hl *hclogAdapter) *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(id)
	rc.HeartbeatTimeout = n.cfg.HeartbeatTimeout
	rc.ElectionTimeout = n.cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = n.cfg.LeaderLeaseTimeout
	rc.CommitTimeout = n.cfg.CommitTimeout
	rc.SnapshotThreshold = n.cfg.SnapshotThreshold
	rc.SnapshotInterval = n.cfg.SnapshotInterval
	rc.TrailingLogs = n.cfg.TrailingLogs
	rc.MaxAppendEntries = n.cfg.MaxAppendEntries
	// BatchApplyCh stays off: raft (v1.7.3) never answers a future still
	// in the buffered channel when it shuts down, so its Apply would wait
	// forever (TestCloseAnswersEveryApply); it gained nothing measurable.
	rc.BatchApplyCh = false
	rc.Logger = hl.Named("raft")
	return rc
}

// loadNodeID returns the node ID stored in dir, storing want (or a new
// random ID) on first start. A stored ID that differs from a non-empty want
// is an error: raft's log and peers know the node by it.
func loadNodeID(dir, want string) (string, error) {
	path := filepath.Join(dir, "node-id")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		have := strings.TrimSpace(string(b))
		if want != "" && want != have {
			return "", fmt.Errorf("cluster: data directory %s belongs to node %q, not %q: use that NodeID or a fresh data directory", dir, have, want)
		}
		return have, nil
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("cluster: read node ID: %w", err)
	}
	if want == "" {
		want = uuid.NewString()
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(want+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cluster: write node ID: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("cluster: write node ID: %w", err)
	}
	return want, nil
}

// waitForLeader polls until a leader is known. On the leader it then
// issues a barrier, so the catalog holds every committed write.
func (n *Node) waitForLeader(ctx context.Context) error {
	r, release, err := n.acquire()
	if err != nil {
		return err
	}
	defer release()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if addr, _ := r.LeaderWithID(); addr != "" {
			break
		}
		if r.State() == raft.Shutdown {
			return fmt.Errorf("cluster: open: %w", ErrShutdown)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: open: no raft leader yet (%s): %w; a node with peers needs a quorum of them up", r.State(), ctx.Err())
		case <-tick.C:
		}
	}
	if r.State() != raft.Leader {
		return nil
	}
	ctx, cancel := n.withTimeout(ctx)
	defer cancel()
	if err := n.wait(ctx, r.Barrier(n.timeout(ctx))); err != nil {
		return fmt.Errorf("cluster: open: catch up with the log: %w", n.raftErr(r, err))
	}
	return nil
}

// startObserver tracks and logs leader changes.
func (n *Node) startObserver(r *raft.Raft) {
	ch := make(chan raft.Observation, 16)
	n.observer = raft.NewObserver(ch, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	n.stopObs, n.obsDone = make(chan struct{}), make(chan struct{})
	r.RegisterObserver(n.observer)
	go func(log *slog.Logger, stop, done chan struct{}) {
		defer close(done)
		for {
			select {
			case o := <-ch:
				n.leaderChanged(log, o.Data.(raft.LeaderObservation))
			case <-stop:
				return
			}
		}
	}(n.log, n.stopObs, n.obsDone)
}

func (n *Node) leaderChanged(log *slog.Logger, lo raft.LeaderObservation) {
	if lo.LeaderAddr == "" {
		n.noLeaderSince.CompareAndSwap(0, time.Now().UnixNano())
		log.Info("raft has no leader")
		return
	}
	n.noLeaderSince.Store(0)
	log.Info("raft leader elected", logKeyLeaderID, string(lo.LeaderID), logKeyLeaderAddr, string(lo.LeaderAddr))
}

// Close shuts raft down and closes the transport and stores. It does not
// take a snapshot (the log is durable). Closing a closed node does nothing.
func (n *Node) Close() error {
	n.mu.Lock()
	rp, r := n.reaper, n.raft
	n.reaper = nil
	n.mu.Unlock()
	if rp != nil {
		rp.close(r) // outside n.mu: its sweep may be in RemoveHub, which reads it
	}
	n.mu.Lock()
	n.closing = true
	n.mu.Unlock()
	n.drainOps()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closing = false // a closed node may be opened again
	if n.raft == nil {
		return nil
	}
	var errs []error
	if err := n.raft.Shutdown().Error(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: shut down raft: %w", err))
	}
	n.raft.DeregisterObserver(n.observer)
	close(n.stopObs)
	<-n.obsDone
	if err := n.transport.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: close transport: %w", err))
	}
	if err := n.store.Close(); err != nil {
		errs = append(errs, fmt.Errorf("cluster: close raft.db: %w", err))
	}
	n.raft, n.transport, n.store, n.observer = nil, nil, nil, nil
	return errors.Join(errs...)
}

// drainOps waits, up to ApplyTimeout, for the raft calls in progress
// and their futures: every one is bounded by its context or by raft's own
// timeouts, so the bound is only a backstop.
func (n *Node) drainOps() {
	done := make(chan struct{})
	go func() { n.ops.Wait(); close(done) }()
	t := time.NewTimer(n.cfg.ApplyTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		n.logger().Warn("closing with raft calls still in progress", "waited", n.cfg.ApplyTimeout)
	}
}

// acquire returns the raft instance for a call that makes a future and
// counts it in ops; the caller calls release when it returns (wait counts
// the future itself until it completes). ErrShutdown when not open or
// closing.
func (n *Node) acquire() (r *raft.Raft, release func(), err error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.raft == nil || n.closing {
		return nil, nil, ErrShutdown
	}
	n.ops.Add(1)
	return n.raft, n.ops.Done, nil
}

// running returns the raft instance, or ErrShutdown when not open.
func (n *Node) running() (*raft.Raft, error) {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.raft == nil {
		return nil, ErrShutdown
	}
	return n.raft, nil
}

func (n *Node) logger() *slog.Logger {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.log
}

// HadState reports whether raft had state (log, snapshot) when the node
// was opened: a hub that has been a member before need not join again.
func (n *Node) HadState() bool {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.existing
}

// ID returns the node's Raft server ID (known after Open).
func (n *Node) ID() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	return n.id
}

// Addr returns the address other nodes reach this one at (the advertise
// address), or "" when not open.
func (n *Node) Addr() string {
	n.mu.RLock()
	defer n.mu.RUnlock()
	if n.transport == nil {
		return ""
	}
	return string(n.transport.LocalAddr())
}
