package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Defaults for a single hub. See DESIGN.md for why.
const (
	DefaultBindAddr           = "127.0.0.1:7000"
	DefaultHeartbeatTimeout   = 1000 * time.Millisecond
	DefaultElectionTimeout    = 1000 * time.Millisecond
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultCommitTimeout      = 50 * time.Millisecond
	DefaultSnapshotThreshold  = 8192
	DefaultSnapshotInterval   = 2 * time.Minute
	DefaultTrailingLogs       = 10240
	DefaultSnapshotRetain     = 2
	DefaultApplyTimeout       = 10 * time.Second
	DefaultTransportTimeout   = 10 * time.Second
	DefaultMaxPool            = 3
	// DefaultMaxVoters is how many voters JoinHub admits (spread over
	// regions); later hubs join as nonvoters.
	DefaultMaxVoters = 5
	// DefaultDeadServerTimeout is how long the leader tolerates a server
	// it cannot reach before removing it from the configuration.
	DefaultDeadServerTimeout = time.Hour
	// DefaultMaxAppendEntries is how many commands the leader writes to
	// its log in one batch (one fsync). raft's own default is 64; raft
	// allows up to 1024.
	DefaultMaxAppendEntries = 512
	// DefaultPingGraceFactor times the election timeout is how long Ping
	// tolerates having no leader before it reports ErrNoLeader.
	DefaultPingGraceFactor = 3
)

// Config configures a Node. Zero durations and counts take their defaults.
type Config struct {
	// DataDir holds the node's state under DataDir/raft: raft.db (log and
	// stable store), snapshots/ and node-id. Required.
	DataDir string
	// NodeID is the node's Raft server ID. Empty: the ID stored in the data
	// directory, or a new random one on first start. A data directory keeps
	// its ID: a different non-empty NodeID is refused.
	NodeID string
	// BindAddr is the TCP address the Raft transport listens on.
	BindAddr string
	// AdvertiseAddr is the address other nodes dial; empty means the
	// listener's address, which must then be a specific IP (not 0.0.0.0).
	AdvertiseAddr string
	// Bootstrap makes a node with no existing state start a one-node
	// cluster with itself as the voter. Without it the node waits to be
	// added by a leader (Join).
	Bootstrap bool

	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries since the last snapshot
	// make the next snapshot check take one; SnapshotInterval is how often
	// that check runs. TrailingLogs is how many entries a snapshot leaves
	// in the log, so a slow follower can catch up without a snapshot.
	SnapshotThreshold uint64
	SnapshotInterval  time.Duration
	TrailingLogs      uint64
	// MaxAppendEntries is the most commands the leader writes to its log
	// in one batch, one fsync, and sends a follower in one AppendEntries
	// (1..1024).
	MaxAppendEntries int
	// StockThroughput runs raft and its bolt log store with their own
	// throughput settings, as the hub did before they were tuned:
	// MaxAppendEntries 64 and the bolt freelist
	// written at every commit. For benchmarks that hold the tuning against
	// it; DESIGN.md says why the tuning is as safe.
	StockThroughput bool
	// ApplyTimeout bounds Apply, ConsistentRead, Join and Remove when the
	// context has no deadline.
	ApplyTimeout time.Duration
	// PingGrace is how long Ping tolerates having no leader; zero means
	// DefaultPingGraceFactor times ElectionTimeout.
	PingGrace time.Duration

	// MaxVoters caps the voters JoinHub admits; Regions is how many regions
	// the topology has (0: count the regions of known hubs). See ChooseVoter.
	MaxVoters int
	Regions   int
	// DeadServerTimeout is how long the leader keeps a server it has had
	// no contact with before removing it (negative: never).
	DeadServerTimeout time.Duration

	// Logger receives the node's logs and raft's, raft's INFO as DEBUG.
	// Nil means slog.Default().
	Logger *slog.Logger
	// Forwarder, when set, is handed writes that reach a follower.
	Forwarder Forwarder
	// TLS, when set, puts the Raft transport on mutual TLS (tls.go).
	TLS *TransportTLS
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{}.withDefaults()
}

func (c Config) withDefaults() Config {
	setDefault(&c.BindAddr, DefaultBindAddr)
	setDefault(&c.HeartbeatTimeout, DefaultHeartbeatTimeout)
	setDefault(&c.ElectionTimeout, DefaultElectionTimeout)
	setDefault(&c.LeaderLeaseTimeout, DefaultLeaderLeaseTimeout)
	setDefault(&c.CommitTimeout, DefaultCommitTimeout)
	setDefault(&c.SnapshotThreshold, DefaultSnapshotThreshold)
	setDefault(&c.SnapshotInterval, DefaultSnapshotInterval)
	setDefault(&c.TrailingLogs, DefaultTrailingLogs)
	setDefault(&c.ApplyTimeout, DefaultApplyTimeout)
	if c.StockThroughput {
		setDefault(&c.MaxAppendEntries, 64)
	}
	setDefault(&c.MaxAppendEntries, DefaultMaxAppendEntries)
	setDefault(&c.PingGrace, DefaultPingGraceFactor*c.ElectionTimeout)
	setDefault(&c.MaxVoters, DefaultMaxVoters)
	setDefault(&c.DeadServerTimeout, DefaultDeadServerTimeout)
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}

// Validate returns every problem with the config at once, each naming its
// field, or nil.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("cluster config: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.DataDir == "" {
		bad("DataDir", "required")
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		bad("BindAddr", "%v (want host:port, e.g. %s)", err, DefaultBindAddr)
	}
	if c.AdvertiseAddr != "" {
		if err := checkAdvertisable(c.AdvertiseAddr); err != nil {
			bad("AdvertiseAddr", "%v", err)
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
		min   time.Duration
	}{
		{"HeartbeatTimeout", c.HeartbeatTimeout, 5 * time.Millisecond},
		{"ElectionTimeout", c.ElectionTimeout, 5 * time.Millisecond},
		{"LeaderLeaseTimeout", c.LeaderLeaseTimeout, 5 * time.Millisecond},
		{"CommitTimeout", c.CommitTimeout, time.Millisecond},
		{"SnapshotInterval", c.SnapshotInterval, 5 * time.Millisecond},
	} {
		if d.v < d.min {
			bad(d.field, "%s is below the minimum %s", d.v, d.min)
		}
	}
	if c.MaxAppendEntries < 1 || c.MaxAppendEntries > 1024 {
		bad("MaxAppendEntries", "%d is not within 1..1024", c.MaxAppendEntries)
	}
	if c.MaxVoters < 1 {
		bad("MaxVoters", "%d must be at least 1", c.MaxVoters)
	}
	if c.DeadServerTimeout > 0 && c.DeadServerTimeout < 2*c.ElectionTimeout {
		bad("DeadServerTimeout", "%s is below twice ElectionTimeout (%s): servers would be removed during normal elections", c.DeadServerTimeout, 2*c.ElectionTimeout)
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		bad("LeaderLeaseTimeout", "%s must not exceed HeartbeatTimeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	}
	if c.ElectionTimeout < c.HeartbeatTimeout {
		bad("ElectionTimeout", "%s must be at least HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	}
	return errors.Join(errs...)
}

// checkAdvertisable checks that addr is a host:port another node can dial.
func checkAdvertisable(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if port == "" || port == "0" {
		return fmt.Errorf("%q has no port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return fmt.Errorf("%q is not an address other nodes can dial; set a specific IP or host name", addr)
	}
	return nil
}
