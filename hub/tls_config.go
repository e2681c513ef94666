package hub

import (
	"fmt"
	"strings"
)

// TLSConfig is the TLS part of Config. The zero value is plain HTTP (what
// `make run` uses on loopback); any of --tls-cert, --acme-domains or
// --cluster-cert turns HTTPS on for the API and console.
type TLSConfig struct {
	// TLSCert and TLSKey are PEM files of the API's certificate (chain
	// first-leaf) and key, re-read when they change on disk.
	TLSCert string `json:"tls_cert"`
	TLSKey  string `json:"tls_key"`
	// ACMEDomains (comma-separated public names) asks an ACME CA (Let's
	// Encrypt by default) for the API's certificate instead, answering its
	// TLS-ALPN-01 challenge on --listen (port 443 for a public CA).
	ACMEDomains   string `json:"acme_domains"`
	ACMEEmail     string `json:"acme_email"`
	ACMEDirectory string `json:"acme_directory"`
	// ACMECA is a PEM file of the CA that signs the ACME directory's own
	// HTTPS certificate, for a private ACME server; empty: system roots.
	ACMECA string `json:"acme_ca"`
	// ClusterCA, ClusterCert and ClusterKey are the cluster CA and this
	// hub's certificate from it (towerctl cluster ca issue): hub-to-hub
	// traffic (Raft, forwarded writes, joins, peer calls) is then mutual
	// TLS, and only hubs with a certificate from that CA are admitted.
	// Without --tls-cert or --acme-domains the API serves this certificate
	// too, and enrollment tokens carry the CA's pin.
	ClusterCA   string `json:"cluster_ca"`
	ClusterCert string `json:"cluster_cert"`
	ClusterKey  string `json:"cluster_key"`
	// HTTPRedirectListen, when set with TLS on, is a plain HTTP listener
	// that only redirects to HTTPS (and answers nothing else).
	HTTPRedirectListen string `json:"http_redirect_listen"`
	// MQTTTLSListen adds an MQTTS listener to the embedded broker (the
	// API's certificate); MQTTClientCA, when set, verifies the client
	// certificates MQTT clients may present (optional for them).
	MQTTTLSListen string `json:"mqtt_tls_listen"`
	MQTTClientCA  string `json:"mqtt_client_ca"`
	// RedisCA is a PEM file of the CA that signs the Redis server's
	// certificate, for rediss:// URLs; empty: system roots.
	RedisCA string `json:"redis_ca"`
}

// tlsOptions are the TLS settings as flags (and REDFORGE_* env).
func (c *Config) tlsOptions() []option {
	t := &c.TLSConfig
	return []option{
		{"tls-cert", "PEM certificate (chain) of the HTTPS API and console; re-read when it changes; turns HTTPS on", &t.TLSCert},
		{"tls-key", "PEM private key of --tls-cert", &t.TLSKey},
		{"acme-domains", "comma-separated public names to get the HTTPS certificate for from an ACME CA (TLS-ALPN-01 on --listen, which must be port 443 for a public CA)", &t.ACMEDomains},
		{"acme-email", "contact e-mail given to the ACME CA", &t.ACMEEmail},
		{"acme-directory", "ACME directory URL (default: Let's Encrypt)", &t.ACMEDirectory},
		{"acme-ca", "PEM CA file trusted for the ACME directory's HTTPS (a private ACME server)", &t.ACMECA},
		{"cluster-ca", "PEM cluster CA certificate (towerctl cluster ca init): hub-to-hub traffic is mutual TLS with certificates from it", &t.ClusterCA},
		{"cluster-cert", "this hub's PEM certificate from the cluster CA (towerctl cluster ca issue)", &t.ClusterCert},
		{"cluster-key", "PEM private key of --cluster-cert", &t.ClusterKey},
		{"http-redirect-listen", "with HTTPS on, a plain HTTP address that only redirects to HTTPS (default: none)", &t.HTTPRedirectListen},
		{"mqtt-tls-listen", "MQTTS listen address of the embedded broker (needs HTTPS on; its certificate)", &t.MQTTTLSListen},
		{"mqtt-client-ca", "PEM CA that MQTT client certificates are verified with (clients may also connect without one)", &t.MQTTClientCA},
		{"redis-ca", "PEM CA of the Redis server's certificate for rediss:// (default: system roots)", &t.RedisCA},
	}
}

// TLSOn reports whether the API serves HTTPS.
func (c TLSConfig) TLSOn() bool {
	return c.TLSCert != "" || c.ACMEDomains != "" || c.ClusterCert != ""
}

// ClusterTLS reports whether hub-to-hub traffic is mutual TLS.
func (c TLSConfig) ClusterTLS() bool { return c.ClusterCA != "" }

// acmeDomains returns the entries of ACMEDomains, trimmed.
func (c TLSConfig) acmeDomains() []string {
	var out []string
	for _, d := range strings.Split(c.ACMEDomains, ",") {
		if d = strings.TrimSpace(d); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// validateTLS returns the TLS settings' problems, by field.
func (c Config) validateTLS() []error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	t := c.TLSConfig
	pair := func(certFlag, cert, keyFlag, key string) {
		if cert != "" && key == "" {
			bad(keyFlag, "required with --%s", certFlag)
		}
		if key != "" && cert == "" {
			bad(certFlag, "required with --%s", keyFlag)
		}
	}
	pair("tls-cert", t.TLSCert, "tls-key", t.TLSKey)
	pair("cluster-cert", t.ClusterCert, "cluster-key", t.ClusterKey)
	if t.TLSCert != "" && t.ACMEDomains != "" {
		bad("acme-domains", "cannot be combined with --tls-cert: pick files or ACME")
	}
	for _, d := range t.acmeDomains() {
		if !strings.Contains(d, ".") || strings.ContainsAny(d, "/:@ *") {
			bad("acme-domains", "%q is not a public DNS name such as hub.example.com", d)
		}
	}
	if (t.ClusterCA == "") != (t.ClusterCert == "") {
		if t.ClusterCA == "" {
			bad("cluster-ca", "required with --cluster-cert: the CA the other hubs' certificates are checked with")
		} else {
			bad("cluster-cert", "required with --cluster-ca: this hub's certificate from that CA (towerctl cluster ca issue)")
		}
	}
	if !t.TLSOn() {
		if t.HTTPRedirectListen != "" {
			bad("http-redirect-listen", "needs HTTPS on (--tls-cert, --acme-domains or --cluster-cert)")
		}
		if t.MQTTTLSListen != "" {
			bad("mqtt-tls-listen", "needs a certificate (--tls-cert or --cluster-cert)")
		}
	}
	if t.MQTTTLSListen != "" {
		if err := checkHostPort(t.MQTTTLSListen); err != nil {
			bad("mqtt-tls-listen", "%v", err)
		}
		if c.MQTT != "" {
			bad("mqtt-tls-listen", "is a listener of the embedded broker, which --mqtt replaces")
		}
	}
	if t.HTTPRedirectListen != "" {
		if err := checkHostPort(t.HTTPRedirectListen); err != nil {
			bad("http-redirect-listen", "%v", err)
		}
	}
	if c.Join != "" && t.ClusterTLS() && strings.HasPrefix(c.Join, "http://") {
		bad("join", "%q: with --cluster-ca hubs speak HTTPS; use https://", c.Join)
	}
	if c.Advertise != "" && t.TLSOn() && strings.HasPrefix(c.Advertise, "http://") {
		bad("advertise", "%q: with HTTPS on, other hubs must reach this one at https://", c.Advertise)
	}
	return errs
}
