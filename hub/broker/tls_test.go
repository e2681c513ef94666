package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/hub/pki"
)

// pair is a leaf of ca as a tls.Certificate (for 127.0.0.1).
func pair(t *testing.T, ca *pki.CA, name string) tls.Certificate {
	t.Helper()
	l, err := ca.Issue(name, []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key}
}

// MQTTS on the embedded broker, with paho: a client over TLS authenticates
// as on the plain listener and its publishes reach the hub's subscribers;
// a client certificate is optional but one from another CA is refused; a
// client that does not trust the broker's CA, or speaks plain MQTT to the
// TLS port, gets nowhere.
func TestEmbeddedMQTTS(t *testing.T) {
	ca, err := pki.NewCA("hub CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	b := NewEmbedded("127.0.0.1:0", staticAuth{"inst-1": "secret"}, nil)
	b.TLSListen = "127.0.0.1:0"
	b.TLS = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{pair(t, ca, "hub")},
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool}
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if b.TLSAddr() == "" || b.TLSAddr() == b.Addr() {
		t.Fatalf("MQTTS address %q (plain %q)", b.TLSAddr(), b.Addr())
	}
	got := make(chan string, 10)
	unsub, err := b.Subscribe(context.Background(), "inst/+/status", 1, func(topic string, p []byte) { got <- topic + "=" + string(p) })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()

	opts := func(user, pass string, cfg *tls.Config) *paho.ClientOptions {
		return paho.NewClientOptions().AddBroker("ssl://" + b.TLSAddr()).SetClientID("c-" + user).SetTLSConfig(cfg).
			SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	}
	trusting := func(cert *tls.Certificate) *tls.Config {
		cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert != nil {
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		return cfg
	}
	try := func(o *paho.ClientOptions) error {
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return fmt.Errorf("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(50)
		}
		return tok.Error()
	}

	c := paho.NewClient(opts("inst-1", "secret", trusting(nil)))
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("MQTTS connect: %v", tok.Error())
	}
	defer c.Disconnect(50)
	if tok := c.Publish("inst/inst-1/status", 1, false, "running"); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish over MQTTS: %v", tok.Error())
	}
	select {
	case m := <-got:
		if m != "inst/inst-1/status=running" {
			t.Fatalf("hub subscriber got %q", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a publish over MQTTS never reached the hub's subscriber")
	}

	good := pair(t, ca, "inst-1-client")
	if err := try(opts("inst-1", "secret", trusting(&good))); err != nil {
		t.Errorf("client certificate from the CA: %v", err)
	}
	if err := try(opts("inst-1", "wrong", trusting(nil))); err == nil {
		t.Error("wrong password accepted over MQTTS")
	}
	other, err := pki.NewCA("rogue CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue := pair(t, other, "rogue")
	if err := try(opts("inst-1", "secret", trusting(&rogue))); err == nil {
		t.Error("client certificate from another CA accepted")
	}
	if err := try(opts("inst-1", "secret", &tls.Config{RootCAs: x509.NewCertPool()})); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("client without the CA: %v, want a certificate error", err)
	}
	plain := paho.NewClientOptions().AddBroker("tcp://" + b.TLSAddr()).SetClientID("plain").
		SetUsername("inst-1").SetPassword("secret").SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	if err := try(plain); err == nil {
		t.Error("plain MQTT connected on the MQTTS port")
	}
}
