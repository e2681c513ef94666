package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

// tlsCA is a cluster CA on disk, as towerctl cluster ca init makes it.
type tlsCA struct {
	ca  *pki.CA
	dir string
}

func newTLSCA(t testing.TB, name string) *tlsCA {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	ca, err := pki.InitCA(dir, name)
	if err != nil {
		t.Fatal(err)
	}
	return &tlsCA{ca: ca, dir: dir}
}

func (c *tlsCA) certFile() string { return filepath.Join(c.dir, pki.CACertFile) }

// issue writes a hub certificate for hosts (towerctl cluster ca issue) and
// returns the --cluster-* flags that use it.
func (c *tlsCA) issue(t testing.TB, name string, hosts ...string) []string {
	t.Helper()
	cert, key := filepath.Join(c.dir, name+".crt"), filepath.Join(c.dir, name+".key")
	if _, err := c.ca.IssueFiles(name, hosts, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	return []string{"--cluster-ca", c.certFile(), "--cluster-cert", cert, "--cluster-key", key}
}

// client is an HTTPS client that trusts the CA and presents cert (a
// tls.Certificate, or none when nil).
func (c *tlsCA) client(cert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(c.ca.Cert)
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if cert != nil {
		// Always sent (Certificates would hold back one that the server's
		// list of acceptable CAs does not name): an attacker would.
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
	}
	return &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

// tlsHubArgs are the flags of a hub on host with mutual TLS to the others.
func tlsHubArgs(t testing.TB, c *nsCluster, host *testenv.Host, id, join string, tlsFlags []string) []string {
	args := []string{
		"--listen", host.IP + ":3000", "--advertise", "https://" + host.IP + ":3000",
		"--raft-listen", host.IP + ":7000",
		"--data-dir", t.TempDir(),
		"--mqtt", c.mqtt, "--store", c.store,
		"--node-id", id, "--region", "us",
		"--driver", "process", "--node-red", testenv.NodeREDPaths(t).RedJS,
		"--raft-heartbeat-timeout", "500ms", "--raft-election-timeout", "500ms", "--raft-lease-timeout", "250ms",
		"--hub-lost-timeout", "3s", "--monitor-interval", "1s",
		"--log-level", "info",
	}
	if join != "" {
		args = append(args, "--join", join)
	}
	return append(args, tlsFlags...)
}

// Hubs with certificates from the cluster CA form a cluster over mutual
// TLS (Raft, joins, forwarded writes, on hosts of their own); a hub whose
// certificate comes from another CA cannot join (it exits, naming the
// certificate), and a client certificate from another CA cannot reach the
// hub-to-hub endpoints or the Raft port.
func TestClusterMutualTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-host test (-short)")
	}
	n := testenv.NewNet(t)
	c := &nsCluster{t: t, net: n}
	c.bus = testenv.Mosquitto(t)
	c.mqtt = "tcp://" + n.Expose(strings.TrimPrefix(c.bus, "tcp://")).Addr()
	c.store = exposeDSN(t, n, testenv.Postgres(t))
	ca := newTLSCA(t, "cluster-ca")
	apiClient := ca.client(nil)

	for i, id := range []string{"hub1-us", "hub2-us"} {
		host := n.Host(id)
		join := ""
		if i > 0 {
			join = c.hubs[0].api
		}
		h := &nsHub{t: t, id: id, region: "us", host: host, api: "https://" + host.IP + ":3000", client: apiClient}
		h.args = tlsHubArgs(t, c, host, id, join, ca.issue(t, id, host.IP))
		h.start()
		c.hubs = append(c.hubs, h)
	}
	c.token = c.hubs[0].login(t)
	c.waitMembers(2)

	// A write on the follower is forwarded to the leader over mutual TLS;
	// the token it makes carries the cluster CA's pin and is consumed on
	// the other hub (so it was replicated).
	leader := c.leader()
	follower := c.hubs[0]
	if follower == leader {
		follower = c.hubs[1]
	}
	var tok struct {
		Token string `json:"token"`
	}
	follower.must("POST", "/api/edges/tokens", c.token, map[string]any{}, 201, &tok)
	if pin, ok := syncproto.TokenPin(tok.Token); !ok || pin != ca.ca.Pin() {
		t.Fatalf("token %q: pin %q, want the cluster CA's %s", tok.Token, pin, ca.ca.Pin())
	}
	leader.must("POST", "/api/edges/enroll", "", map[string]string{"token": tok.Token, "name": "edge-mtls"}, 201, nil)

	// The hub-to-hub endpoints: no client certificate → 403 naming it; one
	// from another CA → the handshake fails; one from the cluster CA but
	// without the cluster secret → 401.
	rogue := newTLSCA(t, "rogue-ca")
	rogueCert, err := rogue.ca.Issue("rogue", []string{"10.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roguePair := tls.Certificate{Certificate: [][]byte{rogueCert.Cert.Raw}, PrivateKey: rogueCert.Key}
	applyURL := leader.api + "/api/cluster/join"
	resp, err := apiClient.Post(applyURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("join without a client certificate: %d, want 403", resp.StatusCode)
	}
	if resp, err := ca.client(&roguePair).Post(applyURL, "application/json", strings.NewReader(`{}`)); err == nil {
		resp.Body.Close()
		t.Fatalf("join with a certificate from another CA: %d, want a refused handshake", resp.StatusCode)
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("join with a certificate from another CA: %v, want a certificate error", err)
	}
	goodLeaf, err := ca.ca.Issue("tester", []string{"10.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	goodPair := tls.Certificate{Certificate: [][]byte{goodLeaf.Cert.Raw}, PrivateKey: goodLeaf.Key}
	req, _ := http.NewRequest("POST", applyURL, strings.NewReader(`{}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err = ca.client(&goodPair).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("join with a cluster certificate but no secret: %d, want 401", resp.StatusCode)
	}
	// The Raft port takes no connection without a cluster certificate.
	raftAddr := leader.host.IP + ":7000"
	for name, cert := range map[string]*tls.Certificate{"none": nil, "another CA": &roguePair} {
		cfg := ca.client(cert).Transport.(*http.Transport).TLSClientConfig
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", raftAddr, cfg)
		if err == nil {
			// TLS 1.3: the server's verdict on the client certificate
			// arrives with the first read.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		var alert tls.AlertError
		if !errors.As(err, &alert) && (err == nil || !strings.Contains(err.Error(), "certificate")) {
			t.Fatalf("raft port, client certificate %s: %v, want a refused handshake", name, err)
		}
	}

	// A hub with a certificate from another CA cannot join: it exits with
	// an error naming the certificate, and the cluster keeps two members.
	host := n.Host("hub3-us")
	args := tlsHubArgs(t, c, host, "hub3-us", leader.api, rogue.issue(t, "hub3-us", host.IP))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := host.Command(hubBinary(t), args...)
	cmd = exec.CommandContext(ctx, cmd.Path, cmd.Args[1:]...)
	cmd.Env = append(os.Environ(), "REDFORGE_CLUSTER_SECRET="+clusterSecret, "REDFORGE_ADMIN_PASSWORD="+adminPassword)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("hub with a certificate from another CA: exit %v (context %v), want a refused join:\n%s", err, ctx.Err(), out)
	}
	if !strings.Contains(string(out), "certificate refused") {
		t.Fatalf("the refused hub's error does not name the certificate:\n%s", out)
	}
	if hubs := c.hubsView(leader); len(hubs) != 2 {
		t.Fatalf("hubs after the refused join: %+v", hubs)
	}
}
