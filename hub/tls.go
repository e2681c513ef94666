package hub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"

	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/syncproto"
)

// HSTSMaxAge is the max-age of the Strict-Transport-Security header the
// API sends over HTTPS (one year).
const HSTSMaxAge = 365 * 24 * time.Hour

// tlsParts are the hub's TLS material, loaded by openTLS.
type tlsParts struct {
	cluster *pki.Cluster      // --cluster-ca/-cert/-key; nil: hub-to-hub in clear
	public  *pki.KeyPair      // --tls-cert/--tls-key
	acme    *autocert.Manager // --acme-domains
	pin     string            // the CA pin enrollment tokens carry; "" for none
	peer    *http.Transport   // hub-to-hub HTTP client transport
	redir   *http.Server      // --http-redirect-listen
}

// openTLS loads the certificates and keys (each error names its flag and
// file) and builds the hub-to-hub HTTP transport: mutual TLS with the
// cluster CA when --cluster-ca is set.
func (h *Hub) openTLS(context.Context) error {
	c := h.Config.TLSConfig
	t := &h.tlsp
	var err error
	if c.ClusterCA != "" {
		if t.cluster, err = pki.LoadCluster(c.ClusterCA, c.ClusterCert, c.ClusterKey); err != nil {
			return err
		}
		t.pin = t.cluster.Pin()
	}
	if c.TLSCert != "" {
		if t.public, err = pki.LoadKeyPair(c.TLSCert, c.TLSKey, "--tls-cert", "--tls-key"); err != nil {
			return err
		}
		if t.pin == "" {
			t.pin = chainCAPin(t.public.Certificate())
		}
	}
	if domains := c.acmeDomains(); len(domains) > 0 {
		if t.acme, err = h.acmeManager(domains); err != nil {
			return err
		}
	}
	t.peer = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 8, IdleConnTimeout: 90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second, ForceAttemptHTTP2: false}
	if t.cluster != nil {
		t.peer.TLSClientConfig = t.cluster.ClientConfig()
	}
	h.peerClient = h.peerHTTP(5 * time.Second)
	return nil
}

// chainCAPin is the pin of the last certificate of a served chain when it
// is a CA (a private CA appended to --tls-cert), else "" (a public CA: the
// edge then checks the hub against the system roots).
func chainCAPin(c *tls.Certificate) string {
	if c == nil || len(c.Certificate) < 2 {
		return ""
	}
	last, err := x509.ParseCertificate(c.Certificate[len(c.Certificate)-1])
	if err != nil || !last.IsCA {
		return ""
	}
	return syncproto.CAPin(last)
}

// acmeManager builds the ACME certificate manager: TLS-ALPN-01 on the API
// listener, certificates and the account key cached in data-dir/acme.
func (h *Hub) acmeManager(domains []string) (*autocert.Manager, error) {
	c := h.Config.TLSConfig
	client := &acme.Client{DirectoryURL: c.ACMEDirectory, UserAgent: "redforge-hub/" + h.Version}
	if c.ACMECA != "" {
		cas, err := pki.ReadCerts(c.ACMECA)
		if err != nil {
			return nil, fmt.Errorf("--acme-ca: %w", err)
		}
		pool := x509.NewCertPool()
		for _, ca := range cas {
			pool.AddCert(ca)
		}
		client.HTTPClient = &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	}
	return &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(filepath.Join(h.Config.DataDir, "acme")),
		HostPolicy: autocert.HostWhitelist(domains...),
		Email:      c.ACMEEmail,
		Client:     client,
	}, nil
}

// serverTLS is the API listener's TLS configuration, nil when HTTPS is
// off. With a cluster CA, a client certificate is asked for and, when one
// is given, must chain to the cluster CA: that is how hub-to-hub calls
// prove they come from a hub (requirePeer).
func (h *Hub) serverTLS() *tls.Config {
	t := &h.tlsp
	if t.public == nil && t.acme == nil && t.cluster == nil {
		return nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}, GetCertificate: h.getCertificate}
	if t.acme != nil {
		cfg.NextProtos = append(cfg.NextProtos, acme.ALPNProto)
	}
	if t.cluster != nil {
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		cfg.ClientCAs = t.cluster.Pool
	}
	return cfg
}

// getCertificate picks the certificate for a handshake: the cluster one
// for hubs and edges (they offer pki.PeerALPN or syncproto.EdgeALPN and
// check it against the cluster CA) and when there is no other, else the
// public one (files or ACME; ACME falls back to the cluster certificate
// for names it does not serve, such as a bare IP address).
func (h *Hub) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	t := &h.tlsp
	if t.cluster != nil && (pki.OffersPeer(hello) || slices.Contains(hello.SupportedProtos, syncproto.EdgeALPN) || (t.public == nil && t.acme == nil)) {
		return t.cluster.Pair.Certificate(), nil
	}
	if t.acme != nil {
		c, err := t.acme.GetCertificate(hello)
		if err != nil && t.cluster != nil && !slices.Contains(hello.SupportedProtos, acme.ALPNProto) {
			return t.cluster.Pair.Certificate(), nil
		}
		return c, err
	}
	if t.public != nil {
		return t.public.Certificate(), nil
	}
	return nil, errors.New("no certificate")
}

// peerHTTP is an HTTP client for calls to other hubs, sharing one
// transport (mutual TLS with the cluster CA when configured).
func (h *Hub) peerHTTP(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: h.tlsp.peer}
}

// raftTLS is the Raft transport's mutual TLS, nil without a cluster CA.
func (h *Hub) raftTLS() *cluster.TransportTLS {
	if h.tlsp.cluster == nil {
		return nil
	}
	return &cluster.TransportTLS{Server: h.tlsp.cluster.ServerConfig(), Dial: h.tlsp.cluster.DialTLS}
}

// requirePeer admits a hub-to-hub call only over a connection whose client
// certificate chains to the cluster CA, when there is one (403 otherwise;
// the cluster secret is checked after it).
func (h *Hub) requirePeer(next http.Handler) http.Handler {
	if h.tlsp.cluster == nil || next == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !pki.PeerVerified(r.TLS) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"error":{"code":"peer_certificate_required","message":"hub-to-hub calls need a client certificate from the cluster CA (--cluster-cert)"}}`))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// withHSTS adds Strict-Transport-Security to answers sent over HTTPS.
func withHSTS(next http.Handler) http.Handler {
	v := fmt.Sprintf("max-age=%d; includeSubDomains", int(HSTSMaxAge.Seconds()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", v)
		}
		next.ServeHTTP(w, r)
	})
}

// listenTLS wraps the bound API listener in TLS when HTTPS is on, and
// starts the plain redirect listener (--http-redirect-listen).
func (h *Hub) listenTLS(ctx context.Context, ln net.Listener) (net.Listener, error) {
	cfg := h.serverTLS()
	if cfg == nil {
		return ln, nil
	}
	if addr := h.Config.HTTPRedirectListen; addr != "" {
		rln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("http-redirect-listen %s: %w", addr, err)
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		h.tlsp.redir = &http.Server{Handler: redirectHTTPS(port), ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(h.Logger.Handler(), slog.LevelDebug)}
		go func() { _ = h.tlsp.redir.Serve(rln) }()
		h.onClose("http-redirect", h.tlsp.redir.Close)
	}
	return tls.NewListener(ln, cfg), nil
}

// redirectHTTPS answers every plain HTTP request with a permanent
// redirect to the same host and path on the HTTPS port.
func redirectHTTPS(port string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(r.Host); err == nil {
			host = h
		}
		if port != "443" {
			host = net.JoinHostPort(host, port)
		} else if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
			host = "[" + host + "]"
		}
		http.Redirect(w, r, "https://"+host+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// CAPin is the CA pin enrollment tokens carry ("" when the edge is to
// check the hub against the system roots, or HTTPS is off).
func (h *Hub) CAPin() string { return h.tlsp.pin }

// mqttTLS is the MQTTS listener's configuration (the API's certificates),
// nil without --mqtt-tls-listen. With --mqtt-client-ca a client may
// present a certificate, which must then chain to that CA.
func (h *Hub) mqttTLS() (*tls.Config, error) {
	if h.Config.MQTTTLSListen == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: h.getCertificate}
	if f := h.Config.MQTTClientCA; f != "" {
		cas, err := pki.ReadCerts(f)
		if err != nil {
			return nil, fmt.Errorf("--mqtt-client-ca: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		for _, ca := range cas {
			cfg.ClientCAs.AddCert(ca)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// redisCAs is the pool of --redis-ca, nil without it (system roots).
func (h *Hub) redisCAs() (*x509.CertPool, error) {
	if h.Config.RedisCA == "" {
		return nil, nil
	}
	cas, err := pki.ReadCerts(h.Config.RedisCA)
	if err != nil {
		return nil, fmt.Errorf("--redis-ca: %w", err)
	}
	pool := x509.NewCertPool()
	for _, ca := range cas {
		pool.AddCert(ca)
	}
	return pool, nil
}
