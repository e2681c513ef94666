package syncproto

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"strings"
)

// A CA pin names the certificate authority an edge trusts for its hubs:
// "sha256:" and the hex SHA-256 of the CA certificate's public key (its
// SubjectPublicKeyInfo), so a CA re-issued with the same key keeps its pin.
// An enrollment token carries the pin after a dot, "rfet_….sha256:…", so
// the edge can check the hub it enrolls with before it sends the token.
const pinPrefix = "sha256:"

// EdgeALPN is the ALPN protocol name an edge offers (beside http/1.1) when
// it calls a hub, so a hub with a public certificate on its API answers an
// edge with the certificate of the CA the edge pinned.
const EdgeALPN = "redforge-edge"

// CAPin returns the pin of ca.
func CAPin(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return pinPrefix + hex.EncodeToString(sum[:])
}

// ValidPin reports whether pin has the form CAPin returns.
func ValidPin(pin string) bool {
	h, ok := strings.CutPrefix(pin, pinPrefix)
	if !ok || len(h) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil
}

// TokenWithPin returns token with pin appended; an empty pin leaves the
// token as it is.
func TokenWithPin(token, pin string) string {
	if pin == "" {
		return token
	}
	return token + "." + pin
}

// TokenPin returns the pin an enrollment token carries, "" when it carries
// none, and ok false when the part after the dot is not a pin.
func TokenPin(token string) (pin string, ok bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return "", true
	}
	pin = token[i+1:]
	return pin, ValidPin(pin)
}
