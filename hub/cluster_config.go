package hub

import (
	"flag"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/regions"
)

// ClusterConfig is the multi-hub part of Config: how this hub joins a Raft
// group of regional hubs and how that group is tuned. The zero value is a
// one-node hub.
type ClusterConfig struct {
	// Join is the API URL of any hub of an existing cluster; empty
	// bootstraps a new one-node cluster.
	Join string `json:"join"`
	// Advertise is this hub's API base URL as other hubs reach it (leader
	// forwarding); empty: derived from --listen.
	Advertise string `json:"advertise"`
	// RaftAdvertise is the Raft address other hubs dial; empty: --raft-listen.
	RaftAdvertise string `json:"raft_advertise"`
	// ClusterSecret authenticates hub-to-hub calls (join, forwarded writes,
	// consistent reads). REDFORGE_CLUSTER_SECRET, its _FILE or
	// cluster-secret in --secrets-dir; never a flag, never logged;
	// required with --join.
	ClusterSecret string `json:"-"`
	// Raft timeouts; zero takes hub/cluster's defaults (see regions/DESIGN.md).
	RaftHeartbeatTimeout time.Duration `json:"raft_heartbeat_timeout"`
	RaftElectionTimeout  time.Duration `json:"raft_election_timeout"`
	RaftLeaseTimeout     time.Duration `json:"raft_lease_timeout"`
	// RaftMaxVoters caps the voters (spread over regions); later hubs join
	// as nonvoters.
	RaftMaxVoters int `json:"raft_max_voters"`
	// RaftStockThroughput runs Raft with its library's own throughput
	// settings instead of the hub's tuned ones (hub/cluster/DESIGN.md);
	// for benchmarks that hold the tuning against it.
	RaftStockThroughput bool `json:"raft_stock_throughput,omitempty"`
	// DeadServerTimeout is how long the leader keeps an unreachable hub in
	// the cluster before removing it; negative never removes.
	DeadServerTimeout time.Duration `json:"dead_server_timeout"`
	// JoinTimeout bounds a first join and the catch-up with the leader
	// after it; zero takes DefaultJoinTimeout.
	JoinTimeout time.Duration `json:"join_timeout"`
	// Topology is the region layout (package regions); optional.
	Topology *regions.Topology `json:"topology,omitempty"`
	// RuntimeHost is the host (name or IP) at which the other hubs reach
	// the Node-RED runtimes this hub runs; they listen on it. Empty: the
	// host of --advertise, else 127.0.0.1 (a one-hub setup).
	RuntimeHost string `json:"runtime_host"`
	// HubLostTimeout is how long the leader goes without reaching a hub
	// before it places the hub's replicas elsewhere (default 10s).
	HubLostTimeout time.Duration `json:"hub_lost_timeout"`
}

// clusterFlags registers the cluster flags on fs; apply copies the set
// ones (and REDFORGE_* env) into cfg after the config file was read.
func clusterFlags(fs *flag.FlagSet) func(cfg *Config, set map[string]bool, getenv func(string) string) error {
	strs := map[string]*string{
		"join":           fs.String("join", "", "API URL of a hub of the cluster to join, e.g. http://hub-eu:3000 (needs REDFORGE_CLUSTER_SECRET) (env REDFORGE_JOIN)"),
		"advertise":      fs.String("advertise", "", "this hub's API URL as other hubs reach it (default: from --listen) (env REDFORGE_ADVERTISE)"),
		"raft-advertise": fs.String("raft-advertise", "", "Raft address other hubs dial (default: --raft-listen) (env REDFORGE_RAFT_ADVERTISE)"),
		"runtime-host":   fs.String("runtime-host", "", "host at which other hubs reach this hub's Node-RED runtimes (default: the host of --advertise, else 127.0.0.1) (env REDFORGE_RUNTIME_HOST)"),
	}
	durs := map[string]*time.Duration{
		"raft-heartbeat-timeout": fs.Duration("raft-heartbeat-timeout", 0, "Raft heartbeat timeout (default 1s; see regions/DESIGN.md)"),
		"raft-election-timeout":  fs.Duration("raft-election-timeout", 0, "Raft election timeout (default 1s)"),
		"raft-lease-timeout":     fs.Duration("raft-lease-timeout", 0, "Raft leader lease timeout (default 500ms)"),
		"dead-server-timeout":    fs.Duration("dead-server-timeout", 0, "remove a hub the leader has not reached for this long (default 1h; negative: never)"),
		"hub-lost-timeout":       fs.Duration("hub-lost-timeout", 0, "place a hub's replicas elsewhere after the leader has not reached it for this long (default 10s)"),
		"join-timeout":           fs.Duration("join-timeout", 0, "bound on a first --join and the catch-up after it; a hub that fails to start after joining leaves again (default 5m)"),
	}
	voters := fs.Int("raft-max-voters", 0, "most Raft voters, spread over regions (default 5)")
	stock := fs.Bool("raft-stock-throughput", false, "run Raft with its library's own throughput settings, not the hub's tuned ones (for benchmarks; see hub/cluster/DESIGN.md)")
	return func(cfg *Config, set map[string]bool, getenv func(string) string) error {
		c := &cfg.ClusterConfig
		for name, ptr := range map[string]*string{"join": &c.Join, "advertise": &c.Advertise, "raft-advertise": &c.RaftAdvertise, "runtime-host": &c.RuntimeHost} {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				*ptr = v
			}
			if set[name] {
				*ptr = *strs[name]
			}
		}
		dptr := map[string]*time.Duration{"raft-heartbeat-timeout": &c.RaftHeartbeatTimeout, "raft-election-timeout": &c.RaftElectionTimeout,
			"raft-lease-timeout": &c.RaftLeaseTimeout, "dead-server-timeout": &c.DeadServerTimeout, "hub-lost-timeout": &c.HubLostTimeout,
			"join-timeout": &c.JoinTimeout}
		for name, ptr := range dptr {
			if v := getenv(EnvName(name)); v != "" && !set[name] {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%s: %q is not a duration such as 1s", EnvName(name), v)
				}
				*ptr = d
			}
			if set[name] {
				*ptr = *durs[name]
			}
		}
		if v := getenv("REDFORGE_RAFT_MAX_VOTERS"); v != "" && !set["raft-max-voters"] {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("REDFORGE_RAFT_MAX_VOTERS: %q is not a number", v)
			}
			c.RaftMaxVoters = n
		}
		if set["raft-max-voters"] {
			c.RaftMaxVoters = *voters
		}
		if set["raft-stock-throughput"] {
			c.RaftStockThroughput = *stock
		}
		c.ClusterSecret = getenv("REDFORGE_CLUSTER_SECRET")
		return nil
	}
}

// validateCluster returns the cluster settings' problems, by field.
func (c Config) validateCluster() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	if c.Join != "" {
		if u, err := url.Parse(c.Join); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("join", "%q is not a hub URL such as http://hub-eu:3000", c.Join)
		}
		if c.ClusterSecret == "" {
			errs = append(errs, fmt.Errorf("REDFORGE_CLUSTER_SECRET: required with --join (set the same secret on every hub)"))
		}
		if c.Advertise == "" {
			if _, port, err := net.SplitHostPort(c.Listen); err == nil && (port == "0" || port == "") {
				bad("advertise", "required with --join when --listen has no fixed port")
			}
		}
	}
	if c.ClusterSecret != "" && len(c.ClusterSecret) < cluster.MinSecretLen {
		errs = append(errs, fmt.Errorf("REDFORGE_CLUSTER_SECRET: must be at least %d characters", cluster.MinSecretLen))
	}
	if c.Advertise != "" {
		if u, err := url.Parse(c.Advertise); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("advertise", "%q is not a URL such as http://10.0.0.1:3000", c.Advertise)
		}
	}
	if c.JoinTimeout < 0 {
		bad("join-timeout", "must not be negative")
	}
	if c.RaftMaxVoters < 0 {
		bad("raft-max-voters", "must not be negative")
	}
	if c.HubLostTimeout < 0 {
		bad("hub-lost-timeout", "must not be negative")
	}
	if h := c.RuntimeHost; h != "" && (strings.ContainsAny(h, "/:@ ") && net.ParseIP(h) == nil) {
		bad("runtime-host", "%q is not a host name or IP address", h)
	}
	if c.Topology != nil {
		if err := c.Topology.Validate(); err != nil {
			bad("topology", "%v", err)
		} else if _, ok := c.Topology.Region(c.Region); !ok {
			bad("region", "%q is not a region of the topology", c.Region)
		}
	}
	return errs
}

// runtimeHost is the host other hubs reach this hub's runtimes at.
func (h *Hub) runtimeHost() string {
	if h.Config.RuntimeHost != "" {
		return h.Config.RuntimeHost
	}
	if u, err := url.Parse(h.Config.Advertise); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return "127.0.0.1"
}

// DefaultJoinTimeout bounds a first join and its catch-up.
const DefaultJoinTimeout = 5 * time.Minute

func (c ClusterConfig) joinTimeout() time.Duration {
	if c.JoinTimeout > 0 {
		return c.JoinTimeout
	}
	return DefaultJoinTimeout
}

// advertiseURL is the API URL other hubs use for this hub.
func (h *Hub) advertiseURL() string {
	if h.Config.Advertise != "" {
		return h.Config.Advertise
	}
	if u := h.URL(); u != "" {
		return u
	}
	host, port, _ := net.SplitHostPort(h.Config.Listen)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return h.scheme() + "://" + net.JoinHostPort(host, port)
}
