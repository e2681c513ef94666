package pki

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// ReloadCheck is how often a KeyPair looks at its files' modification
// times: a handshake after that re-reads them if either changed.
const ReloadCheck = time.Second

// KeyPair is a certificate and key read from files and re-read when either
// file changes on disk (checked at most every ReloadCheck, on a handshake),
// so a renewed certificate is served without a restart. A change that does
// not load (half-written, mismatched) keeps the previous pair and is
// reported by Err until a good pair loads.
type KeyPair struct {
	certFile, keyFile string
	certFlag, keyFlag string // for errors: the flags that named the files

	mu      sync.Mutex
	cert    *tls.Certificate
	certMod time.Time
	keyMod  time.Time
	checked time.Time
	err     error
	now     func() time.Time
}

// LoadKeyPair reads certFile and keyFile. certFlag and keyFlag name the
// settings they came from (e.g. "--tls-cert"), for errors: a missing file,
// a file without PEM, or a key that does not match the certificate.
func LoadKeyPair(certFile, keyFile, certFlag, keyFlag string) (*KeyPair, error) {
	k := &KeyPair{certFile: certFile, keyFile: keyFile, certFlag: certFlag, keyFlag: keyFlag, now: time.Now}
	cm, km, err := k.stat()
	if err != nil {
		return nil, err
	}
	if err := k.load(cm, km); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *KeyPair) stat() (cm, km time.Time, err error) {
	ci, err := os.Stat(k.certFile)
	if err != nil {
		return cm, km, fmt.Errorf("%s: %w", k.certFlag, err)
	}
	ki, err := os.Stat(k.keyFile)
	if err != nil {
		return cm, km, fmt.Errorf("%s: %w", k.keyFlag, err)
	}
	return ci.ModTime(), ki.ModTime(), nil
}

func (k *KeyPair) load(cm, km time.Time) error {
	certPEM, err := os.ReadFile(k.certFile)
	if err != nil {
		return fmt.Errorf("%s: %w", k.certFlag, err)
	}
	keyPEM, err := os.ReadFile(k.keyFile)
	if err != nil {
		return fmt.Errorf("%s: %w", k.keyFlag, err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return k.pairError(err)
	}
	k.cert, k.certMod, k.keyMod, k.err = &c, cm, km, nil
	return nil
}

// pairError turns tls.X509KeyPair's error into one that names the flags
// and files and never quotes the key.
func (k *KeyPair) pairError(err error) error {
	msg := err.Error()
	switch {
	case containsAny(msg, "does not match", "private key type does not match"):
		return fmt.Errorf("%s %s does not match the certificate of %s %s (use the key made with that certificate)", k.keyFlag, k.keyFile, k.certFlag, k.certFile)
	case containsAny(msg, "find any PEM data in certificate", "failed to find certificate PEM"):
		return fmt.Errorf("%s %s holds no PEM certificate", k.certFlag, k.certFile)
	case containsAny(msg, "find any PEM data in key", "failed to find PEM block with type ending in \"PRIVATE KEY\"", "failed to parse private key"):
		return fmt.Errorf("%s %s holds no PEM private key", k.keyFlag, k.keyFile)
	}
	return fmt.Errorf("%s %s / %s %s: not a certificate and its key", k.certFlag, k.certFile, k.keyFlag, k.keyFile)
}

// Certificate returns the current pair, re-reading the files when one
// changed since the last look (at most every ReloadCheck).
func (k *KeyPair) Certificate() *tls.Certificate {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	if now.Sub(k.checked) < ReloadCheck {
		return k.cert
	}
	k.checked = now
	cm, km, err := k.stat()
	if err != nil {
		k.err = err
		return k.cert
	}
	if cm.Equal(k.certMod) && km.Equal(k.keyMod) {
		return k.cert
	}
	if err := k.load(cm, km); err != nil {
		k.err = err
	}
	return k.cert
}

// Err is the error of the last reload that failed, nil once a pair loads.
func (k *KeyPair) Err() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.err
}

// Leaf is the parsed current certificate.
func (k *KeyPair) Leaf() *x509.Certificate { return k.Certificate().Leaf }

// GetCertificate is a tls.Config.GetCertificate.
func (k *KeyPair) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

// GetClientCertificate is a tls.Config.GetClientCertificate.
func (k *KeyPair) GetClientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	return k.Certificate(), nil
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
