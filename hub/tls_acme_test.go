package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	pebbleca "github.com/letsencrypt/pebble/v2/ca"
	pebbledb "github.com/letsencrypt/pebble/v2/db"
	pebbleva "github.com/letsencrypt/pebble/v2/va"
	pebblewfe "github.com/letsencrypt/pebble/v2/wfe"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// pebble is Let's Encrypt's test ACME server (github.com/letsencrypt/pebble)
// run in the test's process, with its challenge test server as the DNS
// resolver of its validation authority (every name is 127.0.0.1).
type pebble struct {
	dir    string           // ACME directory URL (HTTPS)
	caFile string           // PEM of the CA of the directory's HTTPS certificate
	ca     *pebbleca.CAImpl // the ACME CA: its root signs the issued chains
}

// startPebble runs pebble's web front end over HTTPS (a certificate from a
// test CA, written to caFile for --acme-ca) and a validation authority that
// checks TLS-ALPN-01 on tlsPort of whatever name it is asked about.
func startPebble(t *testing.T, tlsPort int) *pebble {
	t.Helper()
	// No random waits before validation and no bad-nonce injection: the
	// test polls instead of sleeping.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	logs := &testenv.Buffer{}
	logger := log.New(logs, "", 0)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- pebble ---\n%s", logs.String())
		}
	})

	dnsAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	srv, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDefaultDNSIPv4("127.0.0.1")
	srv.SetDefaultDNSIPv6("") // A records only: the hub listens on 127.0.0.1
	go srv.Run()
	t.Cleanup(srv.Shutdown)

	db := pebbledb.NewMemoryStore()
	ca := pebbleca.New(logger, db, "", "ecdsa", 0, 1, map[string]pebbleca.Profile{"default": {Description: "default"}})
	va := pebbleva.New(logger, 0, tlsPort, false, dnsAddr, db)
	wfe := pebblewfe.New(logger, db, va, ca, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	webCA, _ := testCA(t)
	cert, key := issue(t, webCA, "pebble", "127.0.0.1")
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewUnstartedServer(wfe.Handler())
	web.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	web.StartTLS()
	t.Cleanup(web.Close)
	caFile := filepath.Join(t.TempDir(), "pebble-web-ca.crt")
	if err := pki.WriteCerts(caFile, webCA.Cert); err != nil {
		t.Fatal(err)
	}
	return &pebble{dir: web.URL + pebblewfe.DirectoryPath, caFile: caFile, ca: ca}
}

// The hub gets its HTTPS certificate for a public name from an ACME CA
// (pebble), answering the TLS-ALPN-01 challenge on its API port, and serves
// the API with it (HSTS on); a name it was not configured for gets no
// certificate; callers without a name (an IP address, as other hubs and
// edges of a cluster dial) get the cluster certificate.
func TestHTTPSFromACME(t *testing.T) {
	port := testenv.FreePort(t)
	p := startPebble(t, port)
	const name = "hub.pebble.test"
	ca, caDir := testCA(t)
	cert, key := issue(t, ca, "hub1", "127.0.0.1")
	h := hubtest.Start(t, func(c *hub.Config) {
		c.Listen = fmt.Sprintf("127.0.0.1:%d", port)
		c.ACMEDomains = name
		c.ACMEDirectory = p.dir
		c.ACMECA = p.caFile
		c.ACMEEmail = "ops@pebble.test"
		c.ClusterCA, c.ClusterCert, c.ClusterKey = filepath.Join(caDir, pki.CACertFile), cert, key
	})

	roots := x509.NewCertPool()
	roots.AddCert(p.ca.GetRootCert(0).Cert)
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: name},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, h.Addr())
		},
	}}
	resp, err := client.Get("https://" + name + "/api/health")
	if err != nil {
		t.Fatalf("GET over the ACME certificate: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Strict-Transport-Security"), "max-age=") {
		t.Fatalf("health: %d HSTS %q %s", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"), body)
	}
	leaf := resp.TLS.PeerCertificates[0]
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != name {
		t.Fatalf("served certificate names %v, want [%s]", leaf.DNSNames, name)
	}
	if leaf.Issuer.CommonName == ca.Cert.Subject.CommonName {
		t.Fatalf("served the cluster certificate for %s", name)
	}
	// The certificate and the ACME account are kept for the next start.
	if ents, err := os.ReadDir(filepath.Join(h.Config.DataDir, "acme")); err != nil || len(ents) < 2 {
		t.Fatalf("acme cache: %v %v", ents, err)
	}

	// A name the hub was not configured for: no certificate.
	other := &tls.Config{RootCAs: roots, ServerName: "evil.pebble.test"}
	if c, err := tls.Dial("tcp", h.Addr(), other); err == nil {
		c.Close()
		t.Fatal("handshake for a name not in --acme-domains succeeded")
	}
	// By address (no server name): the cluster certificate.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if cn, err := servedName(h.Addr(), pool); err != nil || cn != "hub1" {
		t.Fatalf("by address: %q %v, want the cluster certificate hub1", cn, err)
	}
}
