package cluster

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// TransportTLS puts the Raft transport on mutual TLS: every connection in
// is a TLS server handshake with Server (which must require and verify a
// client certificate), every connection out is made by Dial (which must
// present this node's certificate and check the peer's). hub/pki builds
// both from the cluster CA.
type TransportTLS struct {
	Server *tls.Config
	Dial   func(addr string, timeout time.Duration) (net.Conn, error)
}

// tlsStream is a raft.StreamLayer over TLS.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	dial      func(addr string, timeout time.Duration) (net.Conn, error)
}

var _ raft.StreamLayer = (*tlsStream)(nil)

func (s *tlsStream) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.dial(string(addr), timeout)
}

func (s *tlsStream) Addr() net.Addr {
	if s.advertise != nil {
		return s.advertise
	}
	return s.Listener.Addr()
}

// newTLSTransport is raft.NewTCPTransport on a TLS stream layer.
func newTLSTransport(bind string, advertise net.Addr, t *TransportTLS, hl *hclogAdapter) (*raft.NetworkTransport, error) {
	if t.Server == nil || t.Dial == nil || t.Server.ClientAuth != tls.RequireAndVerifyClientCert {
		return nil, errors.New("cluster: TLS transport needs a server config that requires client certificates, and a dialer")
	}
	ln, err := net.Listen("tcp", bind)
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport on %s: %w", bind, err)
	}
	s := &tlsStream{Listener: tls.NewListener(ln, t.Server), advertise: advertise, dial: t.Dial}
	if a, ok := s.Addr().(*net.TCPAddr); !ok || a.IP == nil || a.IP.IsUnspecified() {
		ln.Close()
		return nil, fmt.Errorf("cluster: raft transport on %s: not an address other nodes can dial (set AdvertiseAddr when binding to all interfaces)", bind)
	}
	return raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: s, MaxPool: DefaultMaxPool, Timeout: DefaultTransportTimeout, Logger: hl.Named("transport"),
	}), nil
}
