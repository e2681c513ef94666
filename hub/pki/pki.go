// Package pki is the hub's TLS material: the cluster certificate authority
// that `towerctl cluster ca init|issue` makes (ECDSA P-256 keys, files on
// disk, keys written 0600), certificate files that are reloaded when they
// change on disk, and the TLS configurations of hub-to-hub mutual TLS.
//
// It owns file formats and checks (a missing file, a key that does not
// match its certificate, a certificate that the cluster CA did not sign:
// each error names the flag and the file). It does not own listeners or
// clients; hub wires the configurations into them. Private keys are never
// logged or put in an error.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/redforge/controltower/syncproto"
)

// File names in a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity of what this package makes.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultCertValidity = 2 * 365 * 24 * time.Hour
)

// ErrExists is returned by InitCA when the directory already has a CA.
var ErrExists = errors.New("pki: a CA already exists there")

// CA is a certificate authority with its private key.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Pin is the CA's pin (syncproto.CAPin): what enrollment tokens carry.
func (ca *CA) Pin() string { return syncproto.CAPin(ca.Cert) }

// InitCA makes a new CA named name in dir (ca.crt 0644, ca.key 0600).
// Errors: ErrExists when dir already holds a ca.key or ca.crt.
func InitCA(dir, name string) (*CA, error) {
	for _, f := range []string{CACertFile, CAKeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return nil, fmt.Errorf("%s: %w (remove it to start over; every hub certificate it issued stops being trusted)", filepath.Join(dir, f), ErrExists)
		}
	}
	ca, err := NewCA(name, DefaultCAValidity)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	if err := WriteKey(filepath.Join(dir, CAKeyFile), ca.Key); err != nil {
		return nil, err
	}
	if err := WriteCerts(filepath.Join(dir, CACertFile), ca.Cert); err != nil {
		return nil, err
	}
	return ca, nil
}

// NewCA makes a CA in memory.
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	if name == "" {
		name = "RedForge cluster CA"
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"RedForge Control Tower"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign CA: %w", err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}, nil
}

// LoadCA reads the CA of dir (ca.crt and ca.key).
func LoadCA(dir string) (*CA, error) {
	certs, err := ReadCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("pki: %s holds no PEM key", filepath.Join(dir, CAKeyFile))
	}
	key, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: not an EC private key", filepath.Join(dir, CAKeyFile))
	}
	if !key.PublicKey.Equal(certs[0].PublicKey) {
		return nil, fmt.Errorf("pki: %s does not match %s", filepath.Join(dir, CAKeyFile), filepath.Join(dir, CACertFile))
	}
	return &CA{Cert: certs[0], Key: key}, nil
}

// Leaf is an issued certificate with its key.
type Leaf struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// Issue signs a certificate for name, valid for hosts (DNS names and IP
// addresses, which become its SANs), for both server and client use: one
// certificate is a hub's HTTPS, Raft and peer identity. Errors: no hosts,
// or a host that is neither a name nor an address.
func (ca *CA) Issue(name string, hosts []string, validity time.Duration) (*Leaf, error) {
	if len(hosts) == 0 {
		return nil, errors.New("pki: a certificate needs at least one host (DNS name or IP address) its holder is reached at")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: generate key: %w", err)
	}
	if name == "" {
		name = hosts[0]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, Organization: []string{"RedForge Control Tower"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	for _, h := range hosts {
		h = strings.TrimSpace(h)
		switch ip := net.ParseIP(h); {
		case ip != nil:
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		case h != "" && !strings.ContainsAny(h, "/:@ "):
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		default:
			return nil, fmt.Errorf("pki: host %q is neither a DNS name nor an IP address", h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: sign %s: %w", name, err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &Leaf{Cert: cert, Key: key}, nil
}

// IssueFiles issues a certificate (Issue) and writes it to certPath,
// followed by the CA certificate so peers can build the chain, and its key
// to keyPath (0600).
func (ca *CA) IssueFiles(name string, hosts []string, validity time.Duration, certPath, keyPath string) (*Leaf, error) {
	l, err := ca.Issue(name, hosts, validity)
	if err != nil {
		return nil, err
	}
	if err := WriteKey(keyPath, l.Key); err != nil {
		return nil, err
	}
	if err := WriteCerts(certPath, l.Cert, ca.Cert); err != nil {
		return nil, err
	}
	return l, nil
}

// WriteKey writes key as PEM to path with mode 0600 (replacing the file
// atomically, so a reloading reader never sees half a key).
func WriteKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: encode key: %w", err)
	}
	return writeAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600)
}

// WriteCerts writes certs as PEM to path (mode 0644).
func WriteCerts(path string, certs ...*x509.Certificate) error {
	var b []byte
	for _, c := range certs {
		b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return writeAtomic(path, b, 0o644)
}

func writeAtomic(path string, b []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("pki: write %s: %w", path, err)
	}
	return nil
}

// ReadCerts reads every certificate of a PEM file. Errors: the file cannot
// be read, or holds no certificate.
func ReadCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return out, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
