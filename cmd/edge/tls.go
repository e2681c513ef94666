package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/syncproto"
)

// PinFile is the file in the data dir that keeps the pin of the hubs' CA
// taken from the enrollment token, so the edge keeps checking its hubs
// against that CA after enrollment (when it runs without the token).
const PinFile = "hub-ca.pin"

// ErrNotPinnedCA is the error of a handshake with a hub whose certificate
// does not chain to the CA the enrollment token pinned.
var ErrNotPinnedCA = errors.New("the hub's certificate is not from the CA the enrollment token pins (a man in the middle, or a hub of another cluster)")

// hubPin returns the CA pin the edge checks its hubs with: the token's when
// it carries one (saved to PinFile for later starts), else the one saved at
// enrollment, else "" (hubs are checked against the system roots).
func hubPin(dataDir, token string) (string, error) {
	path := filepath.Join(dataDir, PinFile)
	if token != "" {
		pin, ok := syncproto.TokenPin(token)
		if !ok {
			return "", errors.New("token: the part after the last dot is not a CA pin (sha256:…); copy the whole token")
		}
		if pin != "" {
			if err := os.WriteFile(path, []byte(pin+"\n"), 0o600); err != nil {
				return "", fmt.Errorf("save the hub CA pin: %w", err)
			}
			return pin, nil
		}
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read the hub CA pin: %w", err)
	}
	pin := strings.TrimSpace(string(b))
	if !syncproto.ValidPin(pin) {
		return "", fmt.Errorf("%s is damaged (not a sha256: pin); enroll again with a new token", path)
	}
	return pin, nil
}

// hubTransport is the HTTP transport of every call to a hub (enrollment,
// sync, heartbeats, health probes). With a pin, an HTTPS hub must present
// a chain that ends in a CA with that pin and whose leaf names the address
// dialled; nothing is sent to a hub that does not.
func hubTransport(pin string) *http.Transport {
	t := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}
	if pin == "" {
		return t
	}
	d := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		cfg := &tls.Config{
			MinVersion: tls.VersionTLS12,
			ServerName: host,
			// The hub answers an edge with the certificate of its cluster
			// CA even when its public face has another (ACME, --tls-cert).
			NextProtos: []string{syncproto.EdgeALPN, "http/1.1"},
			// Checked by VerifyConnection against the pinned CA only.
			InsecureSkipVerify: true, //nolint:gosec // verified below
			VerifyConnection:   func(cs tls.ConnectionState) error { return verifyPinned(cs, pin, host) },
		}
		conn := tls.Client(raw, cfg)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.HandshakeContext(hctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("hub %s: %w", addr, err)
		}
		return conn, nil
	}
	return t
}

// verifyPinned checks a hub's chain: a CA certificate in it must have the
// pin, and the leaf must chain to that CA (through the chain's other
// certificates) and name host.
func verifyPinned(cs tls.ConnectionState, pin, host string) error {
	certs := cs.PeerCertificates
	if len(certs) == 0 {
		return ErrNotPinnedCA
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	found := false
	for _, c := range certs {
		if c.IsCA && syncproto.CAPin(c) == pin {
			roots.AddCert(c)
			found = true
		} else {
			inter.AddCert(c)
		}
	}
	if !found {
		return fmt.Errorf("%w: it presents %q, issued by %q", ErrNotPinnedCA, certs[0].Subject.CommonName, certs[0].Issuer.CommonName)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: host,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return fmt.Errorf("%w: %v", ErrNotPinnedCA, err)
	}
	return nil
}

// mqttTLS is the MQTTS listener's configuration, nil without
// --mqtt-tls-listen. Errors name the flag and the file.
func (m *Main) mqttTLS() (*tls.Config, error) {
	c := m.Config
	if c.MQTTTLSListen == "" {
		return nil, nil
	}
	kp := &reloadingPair{certFile: c.MQTTTLSCert, keyFile: c.MQTTTLSKey}
	if err := kp.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: kp.get}
	if c.MQTTClientCA != "" {
		b, err := os.ReadFile(c.MQTTClientCA)
		if err != nil {
			return nil, fmt.Errorf("mqtt-client-ca: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("mqtt-client-ca: %s holds no PEM certificate", c.MQTTClientCA)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// reloadCheck is how often the MQTTS certificate files are looked at.
const reloadCheck = time.Second

// reloadingPair is a certificate and key from files, re-read on a
// handshake when either file changed (looked at most every reloadCheck),
// so a renewed certificate is served without a restart. A change that does
// not load (half-written, mismatched) keeps the previous pair until a good
// one loads.
type reloadingPair struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mod     [2]time.Time
	checked time.Time
}

func (p *reloadingPair) stat() ([2]time.Time, error) {
	var mod [2]time.Time
	for i, f := range []string{p.certFile, p.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return mod, fmt.Errorf("%s: %w", [2]string{"mqtt-tls-cert", "mqtt-tls-key"}[i], err)
		}
		mod[i] = st.ModTime()
	}
	return mod, nil
}

// load reads the pair. Errors name the flags and files, never the key.
func (p *reloadingPair) load() error {
	mod, err := p.stat()
	if err != nil {
		return err
	}
	c, err := tls.LoadX509KeyPair(p.certFile, p.keyFile)
	if err != nil {
		return fmt.Errorf("mqtt-tls-cert %s / mqtt-tls-key %s: not a PEM certificate and its matching key", p.certFile, p.keyFile)
	}
	p.cert, p.mod = &c, mod
	return nil
}

func (p *reloadingPair) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := time.Now(); now.Sub(p.checked) >= reloadCheck {
		p.checked = now
		if mod, err := p.stat(); err == nil && mod != p.mod {
			_ = p.load() // a bad change keeps the previous pair
		}
	}
	return p.cert, nil
}
