package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"time"
)

// PeerALPN is the ALPN protocol name a hub offers (beside http/1.1) when it
// calls another hub: a hub whose public face has another certificate
// (ACME, --tls-cert) answers it with its cluster certificate.
const PeerALPN = "redforge-peer"

// Cluster is a hub's identity in its cluster: the cluster CA and this
// hub's certificate issued by it (towerctl cluster ca issue).
type Cluster struct {
	CACert *x509.Certificate
	Pool   *x509.CertPool
	Pair   *KeyPair
}

// LoadCluster reads the cluster CA certificate and this hub's certificate
// and key. Each error names its flag (--cluster-ca, --cluster-cert,
// --cluster-key) and file; a certificate the CA did not sign is refused.
func LoadCluster(caFile, certFile, keyFile string) (*Cluster, error) {
	cas, err := ReadCerts(caFile)
	if err != nil {
		return nil, fmt.Errorf("--cluster-ca: %w", err)
	}
	pair, err := LoadKeyPair(certFile, keyFile, "--cluster-cert", "--cluster-key")
	if err != nil {
		return nil, err
	}
	c := &Cluster{CACert: cas[0], Pool: x509.NewCertPool(), Pair: pair}
	for _, ca := range cas {
		c.Pool.AddCert(ca)
	}
	if err := c.verifyLeaf(pair.Certificate()); err != nil {
		return nil, fmt.Errorf("--cluster-cert %s was not issued by the CA of --cluster-ca %s: %w", certFile, caFile, err)
	}
	return c, nil
}

func (c *Cluster) verifyLeaf(cert *tls.Certificate) error {
	if cert == nil || cert.Leaf == nil {
		return errors.New("no certificate")
	}
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if ic, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(ic)
		}
	}
	_, err := cert.Leaf.Verify(x509.VerifyOptions{Roots: c.Pool, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

// Pin is the cluster CA's pin (what enrollment tokens carry).
func (c *Cluster) Pin() string { return (&CA{Cert: c.CACert}).Pin() }

// ServerConfig is the TLS configuration of a listener only hubs use (the
// Raft transport): this hub's certificate, and a client certificate from
// the cluster CA required of every peer.
func (c *Cluster) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.Pair.GetCertificate,
		ClientAuth:     tls.RequireAndVerifyClientCert,
		ClientCAs:      c.Pool,
	}
}

// ClientConfig is the TLS configuration of a hub calling another hub: it
// trusts only the cluster CA and presents this hub's certificate. The
// server name is checked against the address dialled (http.Transport sets
// it from the URL; DialTLS sets it from the address).
func (c *Cluster) ClientConfig() *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS12,
		RootCAs:              c.Pool,
		GetClientCertificate: c.Pair.GetClientCertificate,
		NextProtos:           []string{PeerALPN, "http/1.1"},
	}
}

// DialTLS dials addr with ClientConfig, checking the peer's certificate
// names the host of addr.
func (c *Cluster) DialTLS(addr string, timeout time.Duration) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	cfg := c.ClientConfig()
	cfg.ServerName = host
	cfg.NextProtos = nil
	return tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, cfg)
}

// PeerVerified reports whether a TLS connection's client presented a
// certificate that chains to the cluster CA (the server asked for one with
// ClientCAs = the cluster pool, so a verified chain is exactly that).
func PeerVerified(cs *tls.ConnectionState) bool {
	return cs != nil && len(cs.VerifiedChains) > 0
}

// OffersPeer reports whether a ClientHello comes from a hub (PeerALPN).
func OffersPeer(hello *tls.ClientHelloInfo) bool {
	return hello != nil && slices.Contains(hello.SupportedProtos, PeerALPN)
}
