package hub_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// --mqtt-tls-listen: the embedded broker's MQTTS listener serves the hub's
// certificate and authenticates clients as the plain listener does (an
// unknown client gets a refused CONNACK, not a way in); with
// --mqtt-client-ca a client certificate from another CA is refused in the
// handshake. (Publishing over MQTTS is tested on the broker itself.)
func TestMQTTSOnHub(t *testing.T) {
	ca, caDir := testCA(t)
	cert, key := issue(t, ca, "hub1", "127.0.0.1")
	addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hubtest.Start(t, func(c *hub.Config) {
		c.ClusterCA, c.ClusterCert, c.ClusterKey = filepath.Join(caDir, pki.CACertFile), cert, key
		c.MQTTTLSListen = addr
		c.MQTTClientCA = filepath.Join(caDir, pki.CACertFile)
	})
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	try := func(cfg *tls.Config) error {
		c := paho.NewClient(paho.NewClientOptions().AddBroker("ssl://" + addr).SetClientID("outsider").
			SetUsername("no-such-instance").SetPassword("x").SetTLSConfig(cfg).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			return fmt.Errorf("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	var served string
	err := try(&tls.Config{RootCAs: pool, VerifyConnection: func(cs tls.ConnectionState) error {
		served = cs.PeerCertificates[0].Subject.CommonName
		return nil
	}})
	if served != "hub1" {
		t.Fatalf("MQTTS served %q, want the hub's certificate", served)
	}
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "not authorized") {
		t.Fatalf("unknown client over MQTTS: %v, want a refused CONNACK", err)
	}
	other, _ := testCA(t)
	l, err := other.Issue("rogue", []string{"127.0.0.1"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rogue := &tls.Certificate{Certificate: [][]byte{l.Cert.Raw}, PrivateKey: l.Key}
	err = try(&tls.Config{RootCAs: pool, GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return rogue, nil }})
	if err == nil || strings.Contains(strings.ToLower(err.Error()), "not authorized") {
		t.Fatalf("client certificate from another CA: %v, want a refused handshake", err)
	}
}
