package testenv

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/toxics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Link is a TCP proxy on loopback in front of a real server, used to cut,
// slow or reset the network between two components (this kernel has no
// netem). It is toxiproxy used as a library.
type Link struct {
	tb    testing.TB
	proxy *toxiproxy.Proxy
	n     int
}

// Proxy starts a Link from a free 127.0.0.1 port to upstream (host:port)
// and stops it at cleanup.
func Proxy(tb testing.TB, upstream string) *Link {
	tb.Helper()
	return ProxyOn(tb, "127.0.0.1", upstream)
}

// ProxyOn starts a Link from a free port of host to upstream.
func ProxyOn(tb testing.TB, host, upstream string) *Link {
	tb.Helper()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "link", net.JoinHostPort(host, "0"), upstream)
	if err := p.Start(); err != nil {
		tb.Fatalf("testenv: start proxy to %s: %v", upstream, err)
	}
	tb.Cleanup(p.Stop)
	return &Link{tb: tb, proxy: p}
}

// Addr is the proxy's host:port; point the client here instead of upstream.
func (l *Link) Addr() string { return l.proxy.Listen }

// Cut stops the proxy: established connections are closed and new ones
// are refused, as when a link goes down.
func (l *Link) Cut() { l.proxy.Stop() }

// Restore brings the link back on the same address.
func (l *Link) Restore() {
	l.tb.Helper()
	if err := l.proxy.Start(); err != nil {
		l.tb.Fatalf("testenv: restore proxy %s: %v", l.proxy.Listen, err)
	}
}

// Latency adds a fixed delay (plus jitter) in both directions and returns
// a function that removes it.
func (l *Link) Latency(ms, jitterMS int64) (remove func()) {
	l.tb.Helper()
	var names []string
	for _, dir := range []string{"downstream", "upstream"} {
		l.n++
		name := fmt.Sprintf("latency-%d", l.n)
		attrs := &toxics.LatencyToxic{Latency: ms, Jitter: jitterMS}
		if _, err := l.proxy.Toxics.AddToxicJson(toxicJSON(l.tb, name, "latency", dir, attrs)); err != nil {
			l.tb.Fatalf("testenv: add latency: %v", err)
		}
		names = append(names, name)
	}
	return func() {
		for _, n := range names {
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), n)
		}
	}
}

// Blackhole makes the link silent, as when the host behind it dies without
// closing anything: connections (established and new) stay open and every
// byte in both directions is dropped, until the returned restore is called.
func (l *Link) Blackhole() (restore func()) {
	l.tb.Helper()
	var names []string
	for _, dir := range []string{"downstream", "upstream"} {
		l.n++
		name := fmt.Sprintf("blackhole-%d", l.n)
		attrs := &toxics.TimeoutToxic{Timeout: 0} // 0: never close, drop everything
		if _, err := l.proxy.Toxics.AddToxicJson(toxicJSON(l.tb, name, "timeout", dir, attrs)); err != nil {
			l.tb.Fatalf("testenv: add blackhole: %v", err)
		}
		names = append(names, name)
	}
	return func() {
		for _, n := range names {
			_ = l.proxy.Toxics.RemoveToxic(context.Background(), n)
		}
	}
}

func toxicJSON(tb testing.TB, name, typ, stream string, attrs any) *bytes.Reader {
	b, err := json.Marshal(map[string]any{"name": name, "type": typ, "stream": stream, "toxicity": 1.0, "attributes": attrs})
	if err != nil {
		tb.Fatalf("testenv: toxic %s: %v", name, err)
	}
	return bytes.NewReader(b)
}
