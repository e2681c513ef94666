package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

func mustCA(t *testing.T, dir string) *CA {
	t.Helper()
	ca, err := InitCA(dir, "test CA")
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func TestInitCAWritesKeysPrivateAndRefusesOverwrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	ca := mustCA(t, dir)
	st, err := os.Stat(filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := InitCA(dir, ""); !errors.Is(err, ErrExists) {
		t.Fatalf("second init: %v, want ErrExists", err)
	}
	back, err := LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	if back.Pin() != ca.Pin() || !syncproto.ValidPin(ca.Pin()) {
		t.Fatalf("pin %q after load, %q before", back.Pin(), ca.Pin())
	}
	out := t.TempDir()
	l, err := back.IssueFiles("hub1", []string{"10.1.2.3", "hub1.example"}, time.Hour, filepath.Join(out, "hub1.crt"), filepath.Join(out, "hub1.key"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Cert.IPAddresses) != 1 || l.Cert.IPAddresses[0].String() != "10.1.2.3" || len(l.Cert.DNSNames) != 1 {
		t.Fatalf("SANs: %v %v", l.Cert.IPAddresses, l.Cert.DNSNames)
	}
	if st, _ := os.Stat(filepath.Join(out, "hub1.key")); st.Mode().Perm() != 0o600 {
		t.Fatalf("hub1.key mode %v", st.Mode().Perm())
	}
	if _, err := back.Issue("x", []string{"a b"}, time.Hour); err == nil {
		t.Fatal("a host with a space was accepted")
	}
	if _, err := back.Issue("x", nil, time.Hour); err == nil {
		t.Fatal("no hosts was accepted")
	}
}

func TestLoadKeyPairErrorsNameFlagAndFile(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, filepath.Join(dir, "ca"))
	a := filepath.Join(dir, "a")
	b := filepath.Join(dir, "b")
	for _, p := range []string{a, b} {
		if _, err := ca.IssueFiles("h", []string{"127.0.0.1"}, time.Hour, p+".crt", p+".key"); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		cert, key string
		want      []string
	}{
		{a + ".crt", b + ".key", []string{"--tls-key " + b + ".key does not match", a + ".crt"}},
		{filepath.Join(dir, "none.crt"), a + ".key", []string{"--tls-cert", "none.crt", "no such file"}},
		{a + ".crt", filepath.Join(dir, "none.key"), []string{"--tls-key", "none.key"}},
		{a + ".key", a + ".key", []string{"--tls-cert " + a + ".key holds no PEM certificate"}},
	} {
		_, err := LoadKeyPair(tc.cert, tc.key, "--tls-cert", "--tls-key")
		if err == nil {
			t.Fatalf("%s/%s: loaded", tc.cert, tc.key)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s/%s: %q lacks %q", tc.cert, tc.key, err, w)
			}
		}
		if strings.Contains(err.Error(), "PRIVATE KEY-----") {
			t.Errorf("error quotes a key: %v", err)
		}
	}
}

// A server using KeyPair.GetCertificate serves a replaced certificate
// without a restart, and keeps the old one while the files are bad.
func TestKeyPairReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, filepath.Join(dir, "ca"))
	cert, key := filepath.Join(dir, "s.crt"), filepath.Join(dir, "s.key")
	first, err := ca.IssueFiles("first", []string{"127.0.0.1"}, time.Hour, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := LoadKeyPair(cert, key, "--tls-cert", "--tls-key")
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Now()
	kp.now = func() time.Time { return clock }
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: kp.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	served := func() string {
		t.Helper()
		conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].Subject.CommonName
	}
	if got := served(); got != first.Cert.Subject.CommonName {
		t.Fatalf("served %q", got)
	}
	// Replace both files, with later modification times.
	if _, err := ca.IssueFiles("second", []string{"127.0.0.1"}, time.Hour, cert, key); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute)
	_ = os.Chtimes(cert, later, later)
	_ = os.Chtimes(key, later, later)
	if got := served(); got != "first" {
		t.Fatalf("reloaded before ReloadCheck passed: %q", got)
	}
	clock = clock.Add(ReloadCheck)
	if got := served(); got != "second" {
		t.Fatalf("after the change: served %q, want second", got)
	}
	// A broken key keeps the last good pair and is reported.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	even := later.Add(time.Minute)
	_ = os.Chtimes(key, even, even)
	clock = clock.Add(ReloadCheck)
	if got := served(); got != "second" {
		t.Fatalf("after a bad change: served %q", got)
	}
	if err := kp.Err(); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("Err = %v", err)
	}
}

func TestLoadClusterRefusesCertificateOfAnotherCA(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, filepath.Join(dir, "ca"))
	other := mustCA(t, filepath.Join(dir, "other"))
	if _, err := other.IssueFiles("rogue", []string{"127.0.0.1"}, time.Hour, filepath.Join(dir, "r.crt"), filepath.Join(dir, "r.key")); err != nil {
		t.Fatal(err)
	}
	_, err := LoadCluster(filepath.Join(dir, "ca", CACertFile), filepath.Join(dir, "r.crt"), filepath.Join(dir, "r.key"))
	if err == nil || !strings.Contains(err.Error(), "--cluster-cert") || !strings.Contains(err.Error(), "--cluster-ca") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ca.IssueFiles("good", []string{"127.0.0.1"}, time.Hour, filepath.Join(dir, "g.crt"), filepath.Join(dir, "g.key")); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCluster(filepath.Join(dir, "ca", CACertFile), filepath.Join(dir, "g.crt"), filepath.Join(dir, "g.key"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Pin() != ca.Pin() {
		t.Fatal("cluster pin differs from the CA's")
	}
}

// Mutual TLS between two cluster members works; a client with another
// CA's certificate, or none, is refused by the server; a server with
// another CA's certificate is refused by the client.
func TestClusterMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, filepath.Join(dir, "ca"))
	other := mustCA(t, filepath.Join(dir, "other"))
	load := func(c *CA, name string) *Cluster {
		t.Helper()
		crt, key := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if _, err := c.IssueFiles(name, []string{"127.0.0.1"}, time.Hour, crt, key); err != nil {
			t.Fatal(err)
		}
		// The rogue trusts its own CA: it believes it is a member.
		cl, err := LoadCluster(filepath.Join(dir, map[*CA]string{ca: "ca", other: "other"}[c], CACertFile), crt, key)
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	a, b, rogue := load(ca, "a"), load(ca, "b"), load(other, "rogue")
	serve := func(c *Cluster) string {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					buf := make([]byte, 1)
					if _, err := conn.Read(buf); err == nil {
						conn.Write(buf)
					}
				}()
			}
		}()
		return ln.Addr().String()
	}
	roundTrip := func(c *Cluster, addr string) error {
		conn, err := c.DialTLS(addr, 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte{1}); err != nil {
			return err
		}
		_, err = io.ReadFull(conn, make([]byte, 1))
		return err
	}
	addrA := serve(a)
	if err := roundTrip(b, addrA); err != nil {
		t.Fatalf("member to member: %v", err)
	}
	if err := roundTrip(rogue, addrA); err == nil {
		t.Fatal("a client with another CA's certificate was admitted")
	}
	if err := roundTrip(b, serve(rogue)); err == nil {
		t.Fatal("a server with another CA's certificate was trusted")
	}
	// No client certificate at all.
	conn, err := tls.Dial("tcp", addrA, &tls.Config{RootCAs: a.Pool, ServerName: "127.0.0.1"})
	if err == nil {
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte{1})
		_, err = io.ReadFull(conn, make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("a client without a certificate was admitted")
	}
}

// A write that fails (a full disk) is an error, and the file it was to
// replace is left as it was, never half-written.
func TestWriteFailsOnFullDisk(t *testing.T) {
	dir := testenv.Tmpfs(t, "8k")
	ca, err := NewCA("full-disk CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bundle.crt")
	if err := WriteCerts(path, ca.Cert); err != nil {
		t.Fatal(err)
	}
	many := make([]*x509.Certificate, 40) // ~20 KB of PEM: more than the disk holds
	for i := range many {
		many[i] = ca.Cert
	}
	if err := WriteCerts(path, many...); err == nil {
		t.Fatal("WriteCerts on a full disk returned no error")
	}
	if certs, err := ReadCerts(path); err != nil || len(certs) != 1 {
		t.Fatalf("the previous file: %d certificates, %v; want it untouched", len(certs), err)
	}
}
