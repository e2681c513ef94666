package hub_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// testCA makes a CA in a temp dir and returns it with its directory.
func testCA(t *testing.T) (*pki.CA, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	ca, err := pki.InitCA(dir, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca, dir
}

// issue writes a certificate for hosts and returns its cert and key files.
func issue(t *testing.T, ca *pki.CA, name string, hosts ...string) (string, string) {
	t.Helper()
	dir := t.TempDir()
	cert, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if _, err := ca.IssueFiles(name, hosts, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// servedName dials addr and returns the common name of the certificate the
// server presents.
func servedName(addr string, pool *x509.CertPool) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// The API and console are served over HTTPS from --tls-cert/--tls-key with
// HSTS; a renewed certificate is served without a restart; the plain
// listener only redirects; plain HTTP on the TLS port gets no API.
func TestHTTPSFromFiles(t *testing.T) {
	ca, _ := testCA(t)
	cert, key := issue(t, ca, "first", "127.0.0.1")
	redirect := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	h := hubtest.Start(t, func(c *hub.Config) {
		c.TLSCert, c.TLSKey = cert, key
		c.HTTPRedirectListen = redirect
	})
	if !strings.HasPrefix(h.URL, "https://") {
		t.Fatalf("URL %s", h.URL)
	}
	resp, err := h.Client.Get(h.URL + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("health %d", resp.StatusCode)
	}
	if v := resp.Header.Get("Strict-Transport-Security"); !strings.HasPrefix(v, "max-age=31536000") {
		t.Fatalf("HSTS header %q", v)
	}
	resp, err = h.Client.Get(h.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("console: %d, HSTS %q", resp.StatusCode, resp.Header.Get("Strict-Transport-Security"))
	}

	// The plain listener redirects and serves nothing.
	noFollow := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Get("http://" + redirect + "/api/instances?x=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	_, port, _ := net.SplitHostPort(h.Addr())
	if want := "https://127.0.0.1:" + port + "/api/instances?x=1"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain listener: %d Location %q, want 308 %s (%s)", resp.StatusCode, resp.Header.Get("Location"), want, body)
	}
	// Plain HTTP on the TLS port reaches no handler.
	resp, err = noFollow.Get("http://" + h.Addr() + "/api/health")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP on the HTTPS port answered 200: %s", b)
		}
	}

	// Renew: the new certificate is served without a restart.
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := ca.IssueFiles("second", []string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(cert, later, later)
	_ = os.Chtimes(key, later, later)
	testenv.WaitFor(t, 10*time.Second, "renewed certificate served", func() error {
		name, err := servedName(h.Addr(), pool)
		if err != nil {
			return err
		}
		if name != "second" {
			return fmt.Errorf("still serves %q", name)
		}
		return nil
	})
}

// A hub does not start with a key that does not match its certificate, a
// missing file, or a cluster certificate of another CA; the error names
// the flag and the file.
func TestHTTPSRefusesBadFiles(t *testing.T) {
	ca, caDir := testCA(t)
	other, _ := testCA(t)
	certA, keyA := issue(t, ca, "a", "127.0.0.1")
	_, keyB := issue(t, ca, "b", "127.0.0.1")
	rogueCert, rogueKey := issue(t, other, "rogue", "127.0.0.1")
	for _, tc := range []struct {
		name string
		set  func(*hub.Config)
		want []string
	}{
		{"mismatched key", func(c *hub.Config) { c.TLSCert, c.TLSKey = certA, keyB }, []string{"--tls-key", keyB, "does not match", certA}},
		{"missing cert", func(c *hub.Config) { c.TLSCert, c.TLSKey = certA+".missing", keyA }, []string{"--tls-cert", certA + ".missing"}},
		{"key without cert", func(c *hub.Config) { c.TLSKey = keyA }, []string{"--tls-cert: required with --tls-key"}},
		{"cluster cert of another CA", func(c *hub.Config) {
			c.ClusterCA, c.ClusterCert, c.ClusterKey = filepath.Join(caDir, pki.CACertFile), rogueCert, rogueKey
		}, []string{"--cluster-cert", rogueCert, "not issued by the CA of --cluster-ca"}},
		{"cluster cert without CA", func(c *hub.Config) { c.ClusterCert, c.ClusterKey = certA, keyA }, []string{"--cluster-ca: required with --cluster-cert"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := hub.DefaultConfig()
			cfg.Listen, cfg.MQTTListen, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
			cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			tc.set(&cfg)
			h := hub.New(cfg, "test", nil)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := h.Open(ctx)
			if err == nil {
				h.Close()
				t.Fatal("hub opened")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "PRIVATE KEY") {
				t.Errorf("error quotes a key: %v", err)
			}
		})
	}
}
