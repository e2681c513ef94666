package broker_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
)

// testPKI is a CA and what it signs, for TLS tests.
type testPKI struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestPKI(tb testing.TB, name string) *testPKI {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testPKI{cert: cert, key: key, pool: pool}
}

// leaf signs a server (for 127.0.0.1) and client certificate named name.
func (p *testPKI) leaf(tb testing.TB, name string) tls.Certificate {
	tb.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		tb.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// MQTTS on the edge broker, with paho: records published over TLS are
// stored as over plain MQTT; passwords are still checked; a client
// certificate is optional, but one from another CA is refused; plain MQTT
// on the TLS port gets nowhere.
func TestMQTTS(t *testing.T) {
	ca := newTestPKI(t, "edge CA")
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o, TLSListen: "127.0.0.1:0", TLS: &tls.Config{
		MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{ca.leaf(t, "edge")},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: ca.pool,
	}})
	if b.TLSAddr() == nil {
		t.Fatal("no MQTTS address")
	}
	url := "ssl://" + b.TLSAddr().String()
	opts := func(id string, cert *tls.Certificate) *paho.ClientOptions {
		cfg := &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return pahoOptions(b, id).SetTLSConfig(cfg).SetConnectTimeout(5 * time.Second)
	}
	connect := func(o *paho.ClientOptions) error {
		o.Servers = nil
		c := paho.NewClient(o.AddBroker(url))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return errTimeout
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}

	// Without a client certificate, by password.
	o1 := opts("tls-pub", nil)
	o1.Servers = nil
	c := mustPahoWith(t, o1.AddBroker(url))
	mustPublish(t, c, broker.TopicPrefix+"audit", 1, `{"over":"tls"}`)
	if got := payloads(t, o, outbox.StreamAudit); len(got) != 1 || got[0] != `{"over":"tls"}` {
		t.Fatalf("outbox after an MQTTS publish: %q", got)
	}
	// With a client certificate from the CA.
	good := ca.leaf(t, "sensor-1")
	if err := connect(opts("tls-cert", &good)); err != nil {
		t.Fatalf("client certificate from the CA: %v", err)
	}
	// A wrong password is refused over TLS too.
	if err := connect(opts("tls-badpw", nil).SetPassword("wrong")); err == nil {
		t.Fatal("wrong password accepted over MQTTS")
	}
	// A client certificate from another CA is refused.
	rogue := newTestPKI(t, "rogue CA").leaf(t, "rogue")
	if err := connect(opts("tls-rogue", &rogue)); err == nil {
		t.Fatal("client certificate from another CA accepted")
	}
	// A client that does not trust the broker's CA does not connect.
	untrusting := opts("tls-untrusting", nil)
	untrusting.TLSConfig = &tls.Config{RootCAs: x509.NewCertPool()}
	if err := connect(untrusting); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client without the CA: %v, want a certificate error", err)
	}
	// Plain MQTT on the TLS port.
	plain := pahoOptions(b, "plain-on-tls")
	plain.Servers = nil
	c2 := paho.NewClient(plain.AddBroker("tcp://" + b.TLSAddr().String()))
	if tok := c2.Connect(); tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
		c2.Disconnect(0)
		t.Fatal("plain MQTT connected on the MQTTS port")
	}
}

type timeoutError struct{}

func (timeoutError) Error() string { return "no CONNACK in 10s" }

var errTimeout error = timeoutError{}
