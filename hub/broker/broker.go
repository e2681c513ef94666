// Package broker is the hub's MQTT bus for instance control signals
// (drain/active, acks) and instance input topics. It is either an embedded
// mochi-mqtt broker (the default) or a client of an outside broker
// (--mqtt tcp://…). It owns the connection and the broker's client
// authentication; it does not own topic naming, which belongs to its users.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Handler receives messages for a subscription.
type Handler func(topic string, payload []byte)

// Bus is what the hub's packages use to talk MQTT, whichever broker is
// behind it.
type Bus interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error
	Subscribe(ctx context.Context, filter string, qos byte, fn Handler) (unsubscribe func(), err error)
	Ping(ctx context.Context) error
	Close() error
}

// ErrClosed is returned by a Bus after Close.
var ErrClosed = errors.New("broker: closed")

// Authenticator decides whether an MQTT client may connect. The embedded
// broker refuses every outside client unless one says yes: nothing is
// anonymous by default.
type Authenticator interface {
	Authenticate(clientID, username string, password []byte) bool
}

// ACL decides what an authenticated client may read (subscribe) and
// write (publish). An Authenticator that is also an ACL is asked for every
// subscription and publish of outside clients; one that is not admits
// every topic.
type ACL interface {
	Allow(username, topic string, write bool) bool
}

// Embedded runs a mochi-mqtt broker inside the hub process.
type Embedded struct {
	// Listen is the TCP address of the broker, e.g. 127.0.0.1:1884.
	Listen string
	// Auth authenticates outside clients; nil refuses them all.
	Auth   Authenticator
	Logger *slog.Logger
	// TLSListen, when set with TLS, adds an MQTTS listener; clients
	// authenticate on it as on the plain one (a client certificate, when
	// TLS asks for one, is checked on top).
	TLSListen string
	TLS       *tls.Config

	srv    *mqtt.Server
	ln     net.Listener
	tlsLn  net.Listener
	nextID atomic.Int64
	closed atomic.Bool
}

var _ Bus = (*Embedded)(nil)

// NewEmbedded returns a broker for listen; it does no I/O.
func NewEmbedded(listen string, auth Authenticator, log *slog.Logger) *Embedded {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Embedded{Listen: listen, Auth: auth, Logger: log}
}

// Open binds the listener and starts serving.
func (b *Embedded) Open(ctx context.Context) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", b.Listen)
	if err != nil {
		return fmt.Errorf("mqtt listen %s: %w", b.Listen, err)
	}
	b.ln = ln
	b.srv = mqtt.New(&mqtt.Options{InlineClient: true, Logger: slog.New(quietEOF{b.Logger.Handler()})})
	if err := b.srv.AddHook(&authHook{auth: b.Auth}, nil); err != nil {
		ln.Close()
		return fmt.Errorf("mqtt auth hook: %w", err)
	}
	if err := b.srv.AddListener(listeners.NewNet("hub", ln)); err != nil {
		ln.Close()
		return fmt.Errorf("mqtt listener: %w", err)
	}
	if b.TLSListen != "" && b.TLS != nil {
		tln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", b.TLSListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("mqtt-tls-listen %s: %w", b.TLSListen, err)
		}
		b.tlsLn = tln
		if err := b.srv.AddListener(listeners.NewNet("hub-tls", tls.NewListener(tln, b.TLS))); err != nil {
			ln.Close()
			tln.Close()
			return fmt.Errorf("mqtts listener: %w", err)
		}
	}
	if err := b.srv.Serve(); err != nil {
		ln.Close()
		return fmt.Errorf("mqtt serve: %w", err)
	}
	return nil
}

// Addr is the bound broker address (useful when Listen had port 0).
func (b *Embedded) Addr() string {
	if b.ln == nil {
		return ""
	}
	return b.ln.Addr().String()
}

// TLSAddr is the bound MQTTS address, "" without one.
func (b *Embedded) TLSAddr() string {
	if b.tlsLn == nil {
		return ""
	}
	return b.tlsLn.Addr().String()
}

// Publish injects a message as the hub's inline client.
func (b *Embedded) Publish(_ context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if b.closed.Load() || b.srv == nil {
		return ErrClosed
	}
	return b.srv.Publish(topic, payload, retain, qos)
}

// Subscribe registers an inline subscription for filter.
func (b *Embedded) Subscribe(_ context.Context, filter string, _ byte, fn Handler) (func(), error) {
	if b.closed.Load() || b.srv == nil {
		return nil, ErrClosed
	}
	id := int(b.nextID.Add(1))
	err := b.srv.Subscribe(filter, id, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		fn(pk.TopicName, pk.Payload)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = b.srv.Unsubscribe(filter, id) }) }, nil
}

// Ping reports whether the broker accepts TCP connections.
func (b *Embedded) Ping(ctx context.Context) error {
	if b.closed.Load() || b.ln == nil {
		return ErrClosed
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", b.ln.Addr().String())
	if err != nil {
		return fmt.Errorf("embedded broker not accepting connections: %w", err)
	}
	return conn.Close()
}

// Close stops the broker and disconnects its clients.
//
// mochi's Close disconnects the clients it knows, then closes the
// listener and waits for every client to be gone. A client accepted in
// between (a runtime reconnecting at that moment) is never disconnected,
// and Close would wait for it for ever (seen in CI: a hub's Close hung
// 17 minutes). So while Close waits, the clients still attached are
// disconnected every stragglerSweep; once the listener is closed no new
// one can come.
func (b *Embedded) Close() error {
	if b.closed.Swap(true) || b.srv == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- b.srv.Close() }()
	t := time.NewTicker(stragglerSweep)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-t.C:
			for _, cl := range b.srv.Clients.GetAll() {
				if !cl.Net.Inline {
					cl.Stop(packets.ErrServerShuttingDown)
				}
			}
		}
	}
}

// stragglerSweep is how often Close disconnects clients that attached
// while the broker was closing.
const stragglerSweep = 250 * time.Millisecond

// authHook admits the inline client (the hub itself) and whatever Auth
// admits, and checks outside clients' topics against Auth's ACL.
type authHook struct {
	mqtt.HookBase
	auth Authenticator
}

func (h *authHook) ID() string { return "redforge-auth" }

func (h *authHook) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}

func (h *authHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	if cl.Net.Inline {
		return true
	}
	return h.auth != nil && h.auth.Authenticate(cl.ID, string(pk.Connect.Username), pk.Connect.Password)
}

func (h *authHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if cl.Net.Inline {
		return true
	}
	acl, ok := h.auth.(ACL)
	if !ok {
		return h.auth != nil
	}
	return acl.Allow(string(cl.Properties.Username), topic, write)
}
