package syncproto

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestTokenPin(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ca"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(der)
	pin := CAPin(ca)
	if !ValidPin(pin) || !strings.HasPrefix(pin, "sha256:") {
		t.Fatalf("pin %q", pin)
	}
	for _, tc := range []struct {
		token, pin string
		ok         bool
	}{
		{TokenWithPin("rfet_abc-_x", pin), pin, true},
		{TokenWithPin("rfet_abc", ""), "", true},
		{"rfet_abc.sha256:00", "sha256:00", false},
		{"rfet_abc.md5:" + strings.Repeat("0", 64), "md5:" + strings.Repeat("0", 64), false},
	} {
		got, ok := TokenPin(tc.token)
		if got != tc.pin || ok != tc.ok {
			t.Errorf("TokenPin(%q) = %q, %v; want %q, %v", tc.token, got, ok, tc.pin, tc.ok)
		}
	}
}
