package cluster

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/internal/testenv"
)

const testSecret = "test-cluster-secret-0123456789"

// httpNode is a node serving the cluster Handler over real HTTP, with an
// HTTPForwarder that finds the leader's API in the directory.
type httpNode struct {
	*Node
	state *catalog.State
	srv   *httptest.Server
	info  HubInfo
}

func openHTTPNode(t *testing.T, id, region string, bootstrap bool, tweak func(*Config)) *httpNode {
	t.Helper()
	cfg := testConfig(t, id, t.TempDir())
	cfg.Bootstrap = bootstrap
	// Elections are fast here (300 ms timeouts) but may take seconds on a
	// loaded machine; a follower rides one out for PingGrace, which the
	// default (3 election timeouts) would make under a second.
	cfg.PingGrace = 10 * time.Second
	fwd := &HTTPForwarder{Secret: testSecret, Client: &http.Client{Timeout: 5 * time.Second}}
	cfg.Forwarder = fwd
	if tweak != nil {
		tweak(&cfg)
	}
	hn := &httpNode{}
	hn.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Handler(hn.Node, testSecret).ServeHTTP(w, r)
	}))
	t.Cleanup(hn.srv.Close)
	hn.Node, hn.state = openNode(t, cfg)
	fwd.Lookup = hn.HubAPI
	hn.info = HubInfo{ID: id, Region: region, API: hn.srv.URL, Raft: hn.Addr()}
	return hn
}

// TestHTTPForwarding: hubs join through any member, followers forward
// writes (typed results and catalog errors intact) and confirm consistent
// reads through the leader, a wrong secret is refused, and after the leader
// dies writes through a follower succeed and the dead hub is removed.
func TestHTTPForwarding(t *testing.T) {
	dead := func(c *Config) { c.DeadServerTimeout = 2 * time.Second }
	n1 := openHTTPNode(t, "n1", "us", true, dead)
	ctx := ctxT(t)
	if err := n1.RegisterSelf(ctx, n1.info); err != nil {
		t.Fatal(err)
	}
	n2 := openHTTPNode(t, "n2", "eu", false, dead)
	n3 := openHTTPNode(t, "n3", "apac", false, dead)
	if _, err := JoinVia(ctx, http.DefaultClient, n1.srv.URL, "wrong-secret-wrong-secret", n2.info); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("join with a wrong secret: %v, want ErrUnauthorized", err)
	}
	if voter, err := JoinVia(ctx, http.DefaultClient, n1.srv.URL, testSecret, n2.info); err != nil || !voter {
		t.Fatalf("join n2 via the leader: voter=%v err=%v", voter, err)
	}
	// n3 joins through a follower, which forwards the join to the leader.
	testenv.WaitFor(t, 10*time.Second, "n2 knows the leader", func() error { return n2.Ping(ctx) })
	if voter, err := JoinVia(ctx, http.DefaultClient, n2.srv.URL, testSecret, n3.info); err != nil || !voter {
		t.Fatalf("join n3 via a follower: voter=%v err=%v", voter, err)
	}
	testenv.WaitFor(t, 10*time.Second, "directory on n3", func() error {
		if len(n3.Hubs()) != 3 {
			return errors.New("directory incomplete")
		}
		return nil
	})

	// A write on a follower is forwarded; its typed result comes back.
	v, err := n3.Apply(ctx, catalog.UpsertInstance(instance(1), catalog.IfIndex(0)))
	if err != nil {
		t.Fatalf("forwarded write: %v", err)
	}
	if got, ok := v.(catalog.Instance); !ok || got.Name != "flow-1" || got.ModifyIndex == 0 {
		t.Fatalf("forwarded result = %#v (%T)", v, v)
	}
	if _, err := n2.Apply(ctx, catalog.UpsertInstance(instance(1), catalog.IfIndex(0))); !errors.Is(err, catalog.ErrConflict) {
		t.Fatalf("forwarded conflicting write: %v, want ErrConflict", err)
	}
	// A consistent read on the other follower sees the write at once.
	if err := n2.ConsistentRead(ctx); err != nil {
		t.Fatalf("consistent read on a follower: %v", err)
	}
	if _, err := n2.state.Instance("i-1"); err != nil {
		t.Fatalf("after a consistent read the follower lacks the write: %v", err)
	}
	if s := n2.Staleness(); s < 0 || s > 2*time.Second {
		t.Fatalf("follower staleness %s", s)
	}
	if s := n1.Staleness(); s != 0 {
		t.Fatalf("leader staleness %s, want 0", s)
	}

	// Kill the leader: a write through a follower rides out the election.
	start := time.Now()
	n1.Close()
	n1.srv.Close()
	if _, err := n2.Apply(ctx, catalog.UpsertInstance(instance(2))); err != nil {
		t.Fatalf("write through a follower after the leader died: %v", err)
	}
	t.Logf("failover: first write through a surviving hub %s after the kill", time.Since(start).Round(time.Millisecond))
	testenv.WaitFor(t, 15*time.Second, "dead n1 removed", func() error {
		for _, n := range []*httpNode{n2, n3} {
			srv, err := n.Servers()
			if err != nil {
				return err
			}
			for _, s := range srv {
				if s.ID == "n1" {
					return errors.New("n1 still a member of " + n.ID())
				}
			}
			if _, ok := n.Hubs()["n1"]; ok {
				return errors.New("n1 still in the directory of " + n.ID())
			}
		}
		return nil
	})
}

func TestChooseVoter(t *testing.T) {
	hubs := map[string]HubInfo{"a": {ID: "a", Region: "us"}, "b": {ID: "b", Region: "us"}, "c": {ID: "c", Region: "eu"}}
	voters := func(ids ...string) []Server {
		var out []Server
		for _, id := range ids {
			out = append(out, Server{ID: id, Voter: true})
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		servers    []Server
		joiner     HubInfo
		max, regns int
		want       bool
	}{
		{"room and region under share", voters("a", "c"), HubInfo{ID: "d", Region: "apac"}, 5, 3, true},
		{"region at its share", voters("a", "b", "c"), HubInfo{ID: "d", Region: "us"}, 5, 3, false},
		{"cap reached", voters("a", "b", "c"), HubInfo{ID: "d", Region: "apac"}, 3, 3, false},
		{"one region, room left", voters("a"), HubInfo{ID: "b", Region: "us"}, 3, 0, true},
		{"nonvoters do not count", append(voters("a"), Server{ID: "b"}), HubInfo{ID: "d", Region: "us"}, 5, 3, true},
		{"rejoin does not count itself", voters("a", "b", "c"), HubInfo{ID: "c", Region: "eu"}, 3, 3, true},
	} {
		if got := ChooseVoter(tc.servers, hubs, tc.joiner, tc.max, tc.regns); got != tc.want {
			t.Errorf("%s: ChooseVoter = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestResultRoundTrip(t *testing.T) {
	inst := instance(7)
	inst.ModifyIndex = 9
	for _, v := range []any{nil, inst, catalog.Setting{Key: "k", Value: []byte(`1`)}} {
		got, err := EncodeResult(v, nil).Decode()
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Errorf("round trip %T: %#v, %v", v, got, err)
		}
	}
	for _, sentinel := range []error{catalog.ErrNotFound, catalog.ErrConflict, catalog.ErrInvalid, ErrNotLeader, ErrOutcomeUnknown} {
		_, err := EncodeResult(nil, errors.Join(errors.New("ctx"), sentinel)).Decode()
		if !errors.Is(err, sentinel) {
			t.Errorf("error %v did not survive: %v", sentinel, err)
		}
	}
	if SecretOK("", "") || SecretOK("a", "b") || !SecretOK(testSecret, testSecret) {
		t.Error("SecretOK")
	}
	_ = context.Background
}
