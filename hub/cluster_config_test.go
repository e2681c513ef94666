package hub_test

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/regions"
)

func TestClusterConfig(t *testing.T) {
	env := map[string]string{"REDFORGE_CLUSTER_SECRET": "0123456789abcdef-secret", "REDFORGE_RAFT_ELECTION_TIMEOUT": "2s", "REDFORGE_JOIN": "http://env-hub:3000"}
	cfg, err := hub.ParseConfig([]string{"--join", "http://hub-eu:3000", "--advertise", "http://10.0.0.1:3000", "--raft-heartbeat-timeout", "700ms",
		"--raft-max-voters", "3", "--dead-server-timeout", "10m", "--raft-listen", "0.0.0.0:7000", "--raft-advertise", "10.0.0.1:7000"},
		func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.ClusterConfig
	if c.Join != "http://hub-eu:3000" || c.Advertise != "http://10.0.0.1:3000" || c.RaftHeartbeatTimeout != 700*time.Millisecond ||
		c.RaftElectionTimeout != 2*time.Second || c.RaftMaxVoters != 3 || c.DeadServerTimeout != 10*time.Minute || c.ClusterSecret == "" {
		t.Fatalf("parsed %+v", c)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	if c.RaftStockThroughput {
		t.Fatal("RaftStockThroughput is on without --raft-stock-throughput")
	}
	if cfg, err = hub.ParseConfig([]string{"--raft-stock-throughput"}, func(string) string { return "" }, io.Discard); err != nil || !cfg.RaftStockThroughput {
		t.Fatalf("--raft-stock-throughput: RaftStockThroughput %v, %v", cfg.RaftStockThroughput, err)
	}

	bad := hub.DefaultConfig()
	bad.Join, bad.Listen, bad.RaftListen = "ftp://x", "127.0.0.1:0", "0.0.0.0:7000"
	bad.Topology = &regions.Topology{Regions: []regions.Region{{Name: "us"}}, Hubs: []regions.Hub{{ID: "a", Region: "mars", API: "http://a"}}}
	err = bad.Validate()
	for _, want := range []string{"--join: \"ftp://x\" is not a hub URL", "REDFORGE_CLUSTER_SECRET: required with --join",
		"--advertise: required with --join", "--raft-listen", "or set --raft-advertise", "--topology:", `unknown region "mars"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate lacks %q: %v", want, err)
		}
	}
	short := hub.DefaultConfig()
	short.ClusterSecret = "short"
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "at least 16") {
		t.Errorf("short secret: %v", err)
	}
	if strings.Contains(func() string { e := short.Validate(); return e.Error() }(), "short") {
		t.Error("the secret's value appears in the error")
	}
}
