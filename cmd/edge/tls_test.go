package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

// mitm is a TLS-terminating proxy in front of a hub with a certificate from
// another CA, counting the requests it sees (none must reach it from an
// edge that pins the hub's CA).
type mitm struct {
	url  string
	seen atomic.Int64
}

func startMITM(t *testing.T, upstream string, upstreamCA *x509.Certificate, chain ...*x509.Certificate) *mitm {
	t.Helper()
	rogue, err := pki.NewCA("rogue CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := rogue.Issue("mitm", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pair := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw, rogue.Cert.Raw}, PrivateKey: leaf.Key}
	for _, c := range chain {
		pair.Certificate = append(pair.Certificate, c.Raw)
	}
	u, _ := url.Parse(upstream)
	pool := x509.NewCertPool()
	pool.AddCert(upstreamCA)
	proxy := httputil.NewSingleHostReverseProxy(u)
	proxy.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	m := &mitm{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.seen.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	m.url = srv.URL
	return m
}

// An edge enrolled with a token that pins the hub's CA reaches the hub over
// HTTPS and keeps the pin for later starts; a man in the middle with a
// certificate from another CA (even with the real CA certificate appended)
// gets nothing, not even the token, also after a restart without the
// token; a hub with a public certificate answers the edge with its cluster
// one; a pinned token with an http:// hub is refused at start.
func TestEnrollmentPinsHubCA(t *testing.T) {
	ca, err := pki.NewCA("cluster CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	caFile, certFile, keyFile := filepath.Join(dir, "ca.crt"), filepath.Join(dir, "hub.crt"), filepath.Join(dir, "hub.key")
	if err := pki.WriteCerts(caFile, ca.Cert); err != nil {
		t.Fatal(err)
	}
	if _, err := ca.IssueFiles("hub1", []string{"127.0.0.1"}, time.Hour, certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	h := hubtest.Start(t, func(c *hub.Config) {
		c.ClusterCA, c.ClusterCert, c.ClusterKey = caFile, certFile, keyFile
	})
	newToken := func() string {
		var tok struct {
			Token string `json:"token"`
		}
		h.JSON(t, "POST", "/api/edges/tokens", map[string]any{}, 201, &tok)
		if pin, ok := syncproto.TokenPin(tok.Token); !ok || pin != ca.Pin() {
			t.Fatalf("token %q does not pin the cluster CA %s", tok.Token, ca.Pin())
		}
		return tok.Token
	}

	// Men in the middle: nothing reaches them, the edge does not enroll.
	for name, m := range map[string]*mitm{
		"another CA":                       startMITM(t, h.URL, ca.Cert),
		"another CA, real CA in the chain": startMITM(t, h.URL, ca.Cert, ca.Cert),
	} {
		logs := &testenv.Buffer{}
		e := MustRunMain(t, logs, "--hub", m.url, "--token", newToken())
		testenv.WaitFor(t, 30*time.Second, name+": enrollment refused", func() error {
			if !strings.Contains(logs.String(), "not from the CA the enrollment token pins") {
				return io.EOF
			}
			return nil
		})
		if e.EdgeID() != "" || m.seen.Load() != 0 {
			t.Fatalf("%s: edge %q enrolled, %d requests reached the man in the middle", name, e.EdgeID(), m.seen.Load())
		}
		e.Close()
	}

	// The real hub: enrolled, pin kept, heartbeats accepted.
	logs := &testenv.Buffer{}
	e := MustRunMain(t, logs, "--hub", h.URL, "--token", newToken(), "--heartbeat-interval", "1s")
	testenv.WaitFor(t, 30*time.Second, "edge enrolled over pinned HTTPS", func() error {
		if e.EdgeID() == "" {
			return io.EOF
		}
		return nil
	})
	if b, err := os.ReadFile(filepath.Join(e.Config.DataDir, PinFile)); err != nil || strings.TrimSpace(string(b)) != ca.Pin() {
		t.Fatalf("pin file: %q %v", b, err)
	}
	testenv.WaitFor(t, 30*time.Second, "edge seen by the hub", func() error {
		code, b := h.Do(t, "GET", "/api/edges/"+e.EdgeID(), h.AdminToken, nil)
		if code != 200 || !strings.Contains(string(b), `"last_heartbeat"`) {
			return io.EOF
		}
		return nil
	})

	// Restarted without the token, the edge keeps the pin: a man in the
	// middle still gets nothing.
	dataDir := e.Config.DataDir
	e.Close()
	m0 := startMITM(t, h.URL, ca.Cert)
	logs = &testenv.Buffer{}
	e = MustRunMain(t, logs, "--data-dir", dataDir, "--hub", m0.url, "--heartbeat-interval", "1s")
	testenv.WaitFor(t, 30*time.Second, "the restarted edge refuses the man in the middle", func() error {
		if !strings.Contains(logs.String(), "not from the CA the enrollment token pins") {
			return io.EOF
		}
		return nil
	})
	if m0.seen.Load() != 0 {
		t.Fatalf("%d requests of the restarted edge reached the man in the middle", m0.seen.Load())
	}
	e.Close()

	// A hub whose API has a public certificate (another CA) answers an
	// edge with its cluster certificate, which the pin accepts.
	pub, err := pki.NewCA("public CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pubCert, pubKey := filepath.Join(dir, "public.crt"), filepath.Join(dir, "public.key")
	if _, err := pub.IssueFiles("public", []string{"127.0.0.1"}, time.Hour, pubCert, pubKey); err != nil {
		t.Fatal(err)
	}
	h2 := hubtest.Start(t, func(c *hub.Config) {
		c.ClusterCA, c.ClusterCert, c.ClusterKey = caFile, certFile, keyFile
		c.TLSCert, c.TLSKey = pubCert, pubKey
	})
	var tok2 struct {
		Token string `json:"token"`
	}
	h2.JSON(t, "POST", "/api/edges/tokens", map[string]any{}, 201, &tok2)
	e2 := MustRunMain(t, &testenv.Buffer{}, "--hub", h2.URL, "--token", tok2.Token)
	testenv.WaitFor(t, 30*time.Second, "edge enrolled with a hub with a public certificate", func() error {
		if e2.EdgeID() == "" {
			return io.EOF
		}
		return nil
	})

	// A pinned token with a hub at http:// cannot be checked: refused.
	m := NewMain()
	m.Stdout, m.Stderr = io.Discard, io.Discard
	m.LookupEnv = func(string) (string, bool) { return "", false }
	if err := m.ParseFlags(context.Background(), []string{"--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--mqtt-allow-anonymous", "--hub", "http://127.0.0.1:1", "--token", newToken()}); err != nil {
		t.Fatal(err)
	}
	err = m.Run(context.Background())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), "https://") {
		t.Fatalf("pinned token with an http:// hub: %v, want a refusal naming https://", err)
	}
}

// The MQTTS flags: a paho client that trusts the CA connects over TLS and
// its record is accepted; a renewed certificate is served without a
// restart; a bad file is refused at start, naming the flag.
func TestMQTTSFlags(t *testing.T) {
	ca, err := pki.NewCA("edge CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "edge.crt"), filepath.Join(dir, "edge.key")
	if _, err := ca.IssueFiles("first", []string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	m := MustRunMain(t, io.Discard, "--mqtt-tls-listen", fmt.Sprintf("127.0.0.1:%d", port), "--mqtt-tls-cert", cert, "--mqtt-tls-key", key)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	served := func() (string, error) {
		var cn string
		c := paho.NewClient(paho.NewClientOptions().AddBroker(fmt.Sprintf("ssl://127.0.0.1:%d", port)).
			SetClientID("tls-pub").SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).
			SetUsername(testMQTTUser).SetPassword(testMQTTPassword).
			SetTLSConfig(&tls.Config{RootCAs: pool, VerifyConnection: func(cs tls.ConnectionState) error {
				cn = cs.PeerCertificates[0].Subject.CommonName
				return nil
			}}))
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return "", fmt.Errorf("connect: %v", tok.Error())
		}
		defer c.Disconnect(0)
		if tok := c.Publish("redforge/v1/audit", 1, false, `{"over":"mqtts"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			return "", fmt.Errorf("publish: %v", tok.Error())
		}
		return cn, nil
	}
	if cn, err := served(); err != nil || cn != "first" {
		t.Fatalf("MQTTS: %q %v", cn, err)
	}
	if n := m.Broker.Counts().Accepted["audit"]; n != 1 {
		t.Fatalf("accepted[audit] = %d after an MQTTS publish, want 1", n)
	}
	if _, err := ca.IssueFiles("second", []string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(cert, later, later)
	_ = os.Chtimes(key, later, later)
	testenv.WaitFor(t, 10*time.Second, "the renewed certificate served", func() error {
		cn, err := served()
		if err == nil && cn != "second" {
			err = fmt.Errorf("served %q", cn)
		}
		return err
	})

	bad := NewMain()
	bad.Stdout, bad.Stderr = io.Discard, io.Discard
	bad.LookupEnv = func(string) (string, bool) { return "", false }
	if err := bad.ParseFlags(context.Background(), []string{"--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0", "--listen", "127.0.0.1:0",
		"--mqtt-allow-anonymous", "--mqtt-tls-listen", "127.0.0.1:0", "--mqtt-tls-cert", key, "--mqtt-tls-key", key}); err != nil {
		t.Fatal(err)
	}
	err = bad.Run(context.Background())
	bad.Close()
	if err == nil || !strings.Contains(err.Error(), "mqtt-tls-cert") {
		t.Fatalf("a key as --mqtt-tls-cert: %v, want an error naming the flag", err)
	}
}
