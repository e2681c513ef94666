package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestCA is a certificate authority of one test, for servers started with
// TLS (TLSPostgres, TLSRedis) and the clients that verify them.
type TestCA struct {
	Cert     *x509.Certificate
	CertFile string // PEM of Cert, for sslrootcert= or --redis-ca
	Pool     *x509.CertPool
	key      *ecdsa.PrivateKey
	dir      string
	tb       testing.TB
}

// NewTestCA makes a CA (ECDSA P-256, valid one hour) in a temp dir.
func NewTestCA(tb testing.TB, name string) *TestCA {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	ca := &TestCA{Cert: cert, key: key, dir: tb.TempDir(), tb: tb, Pool: x509.NewCertPool()}
	ca.Pool.AddCert(cert)
	ca.CertFile = filepath.Join(ca.dir, "ca.crt")
	writePEM(tb, ca.CertFile, "CERTIFICATE", der, 0o644)
	return ca
}

// Issue signs a server and client certificate for hosts (DNS names and IP
// addresses) and writes it and its key (0600) to files named after the
// first host.
func (ca *TestCA) Issue(hosts ...string) (certFile, keyFile string) {
	tb := ca.tb
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: serialNumber(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	base := filepath.Join(ca.dir, strings.NewReplacer(":", "_", "/", "_").Replace(hosts[0])+"-"+serialNumber().Text(36))
	certFile, keyFile = base+".crt", base+".key"
	writePEM(tb, certFile, "CERTIFICATE", der, 0o644)
	writePEM(tb, keyFile, "EC PRIVATE KEY", kder, 0o600)
	return certFile, keyFile
}

func writePEM(tb testing.TB, path, typ string, der []byte, mode os.FileMode) {
	tb.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
		tb.Fatal(err)
	}
}

func serialNumber() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// TLSPostgres starts a private PostgreSQL 15 server (as PrivatePostgres) with
// ssl on and a certificate from ca for localhost and 127.0.0.1, and
// hostssl-only access over TCP: a client without TLS is refused. Its DSN
// is sslmode=verify-full with sslrootcert=ca.CertFile, at localhost.
func TLSPostgres(tb testing.TB, ca *TestCA) *PGServer {
	tb.Helper()
	cert, key := ca.Issue("localhost", "127.0.0.1")
	s := initPostgres(tb)
	// The server reads its key as the postgres user, which must own it
	// (mode 0600); the files go to the server's own directory.
	for _, f := range []string{cert, key} {
		b, err := os.ReadFile(f)
		if err != nil {
			tb.Fatal(err)
		}
		dst := filepath.Join(s.DataDir, "server"+filepath.Ext(f))
		if err := os.WriteFile(dst, b, 0o600); err != nil {
			tb.Fatal(err)
		}
		s.chown(dst)
	}
	hba := filepath.Join(s.DataDir, "pg_hba.conf")
	rules := "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n"
	if err := os.WriteFile(hba, []byte(rules), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.chown(hba)
	s.Configure("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
	s.Start()
	tb.Cleanup(s.Stop)
	s.DSN = fmt.Sprintf("postgres://postgres@localhost:%d/postgres?sslmode=verify-full&sslrootcert=%s", s.Port, ca.CertFile)
	return s
}

// TLSRedis starts a private redis-server that speaks only TLS, with a
// certificate from ca for localhost and 127.0.0.1 (client certificates not
// asked for), and returns its URL, rediss://localhost:PORT/0. The server
// is stopped by tb.Cleanup.
func TLSRedis(tb testing.TB, ca *TestCA) string {
	tb.Helper()
	bin := mustExecutable(tb, "redis-server", keyRedisServer)
	cert, key := ca.Issue("localhost", "127.0.0.1")
	port, _ := startServer(tb, server{
		what:    "redis (TLS)",
		path:    bin,
		timeout: defaultStartWait,
		args: func(dir string, port int) ([]string, error) {
			return []string{"--save", "", "--appendonly", "no", "--port", "0", "--tls-port", strconv.Itoa(port),
				"--tls-cert-file", cert, "--tls-key-file", key, "--tls-ca-cert-file", ca.CertFile,
				"--tls-auth-clients", "no", "--bind", "127.0.0.1", "--dir", dir}, nil
		},
		ready: func(port int) error { return redisTLSPing(port, ca.Pool) },
	})
	return fmt.Sprintf("rediss://localhost:%d/0", port)
}

// redisTLSPing sends an inline PING over TLS and expects +PONG.
func redisTLSPing(port int, pool *x509.CertPool) error {
	d := &net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	b := make([]byte, 64)
	n, err := conn.Read(b)
	if err != nil {
		return err
	}
	if line := strings.TrimSpace(string(b[:n])); line != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
