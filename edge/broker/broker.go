// Package broker is the edge node's embedded MQTT broker (mochi-mqtt v2).
// Local Node-RED flows publish records to it; publishes on the configured
// record topics are appended to the outbox before the broker acknowledges
// them, so an acknowledged QoS 1 record is durable on the edge.
//
// It owns the MQTT listener, the mochi hooks (local auth, the outbox hook)
// and the accepted/refused counters. It does not own the storage (it
// writes through the Appender interface, which edge/outbox implements),
// where credentials come from (cmd/edge reads the users file) or metrics
// export (cmd/edge reads Counts). Clients authenticate and are held to an
// ACL (auth.go); a publish on a record topic is never retained; no log
// line carries more than a prefix of a payload (logsafe.go).
//
// # PUBACK ordering in mochi v2.7.9
//
// Read from server.go (*Server).processPublish, which runs on the client's
// read goroutine: ACL check, then hooks.OnPublish, then (QoS 1) the PUBACK
// is written, then the message is routed to subscribers. OnPublish is
// synchronous and runs before any acknowledgement, so appending inside it
// gives "PUBACK only after durable". Its result (hooks.go (*Hooks).OnPublish
// stops at the first hook error):
//
//   - nil: PUBACK (or PUBREC for QoS 2) with success, then delivery.
//   - packets.ErrRejectPacket: processPublish returns nil at once: no ack of
//     any kind and no delivery, for every protocol version. An MQTT 3.1.1
//     client keeps the message in flight and resends it when it reconnects.
//   - another packets.Code, only if the client speaks MQTT 5 and QoS > 0:
//     a PUBACK carrying that reason code, no delivery. mochi builds a PUBACK
//     here even for QoS 2, where the protocol wants a PUBREC.
//   - any other error, or a Code for MQTT 3.1.1 or QoS 0: the error is
//     logged and the publish proceeds as if accepted (success PUBACK and
//     delivery). Returning a plain error would therefore ack a record that
//     was never stored.
//
// So the outbox hook refuses with a reason code only for MQTT 5 QoS 1, and
// with ErrRejectPacket in every other case.
//
// # Pipelined QoS 1 (pipeline.go)
//
// Holding the client's read goroutine for one commit per message caps a
// client at one record per fsync. When the Appender is also an
// AsyncAppender (edge/outbox is), a QoS 1 record publish is queued with
// AppendAsync and refused to mochi with ErrRejectPacket (mochi then neither
// acks nor delivers it); a per-client goroutine waits for the commits in
// arrival order and only then writes each PUBACK itself and hands the
// message to subscribers through mochi's inline client (skipped when the
// topic has no subscriber and the message is not retained). The PUBACKs of
// a run of stored records go out in one write. PUBACK-after-commit and
// in-order PUBACKs hold; a refusal is answered as above. The edge is at-least-once
// between client and outbox: a record committed just before a crash or a
// lost PUBACK is resent by the client and stored again under a new seq.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Defaults.
const (
	// DefaultListen is the MQTT TCP listen address.
	DefaultListen = ":1883"
	// DefaultAppendTimeout bounds how long a publish waits for a place in
	// the outbox's write queue before it is refused.
	DefaultAppendTimeout = 10 * time.Second
	// DefaultMaxPacketSize is the largest MQTT packet accepted; larger ones
	// make mochi disconnect the client. It protects a small device's memory.
	DefaultMaxPacketSize = 1 << 20
	// readBufferSize is each client's read buffer: large enough that a
	// burst of 1 KiB publishes costs one read syscall, not one each.
	readBufferSize = 64 << 10
	// TopicPrefix is the prefix of the default record topics.
	TopicPrefix = "redforge/v1/"
)

// Refusal reasons, the label values of Counts.Refused.
const (
	ReasonNotJSONObject = "not_json_object" // payload is not a JSON object
	ReasonInvalidVector = "invalid_vector"  // a vectors payload is not {"id","vector":[numbers],"metadata"}
	ReasonOutbox        = "outbox_error"    // the outbox did not commit the record
	ReasonQuota         = "quota_exceeded"  // the outbox disk budget is spent for this stream
)

// Reasons lists every refusal reason.
func Reasons() []string {
	return []string{ReasonNotJSONObject, ReasonInvalidVector, ReasonOutbox, ReasonQuota}
}

// ErrClosed is returned by Health when the broker is not running.
var ErrClosed = errors.New("broker: not running")

// Appender stores a record durably and returns its seq; edge/outbox.Outbox
// implements it. Append must return only after the record is durable.
type Appender interface {
	Append(ctx context.Context, stream string, payload []byte, arrived time.Time) (seq int64, err error)
}

// DefaultTopics maps each record topic to its outbox stream:
// redforge/v1/<stream> for the five streams.
func DefaultTopics() map[string]string {
	m := map[string]string{}
	for _, s := range []string{"vectors", "audit", "ai_decisions", "checkpoints", "metrics"} {
		m[TopicPrefix+s] = s
	}
	return m
}

// Config configures a Broker. Zero fields take their defaults in New.
type Config struct {
	// Listen is the TCP address for MQTT. Default: DefaultListen. Use
	// "127.0.0.1:0" for a free port and read it back with Addr.
	Listen string
	// TLSListen, when set with TLS, adds an MQTTS listener (TCP with TLS)
	// beside Listen; clients authenticate on it as on the plain one, and a
	// client certificate, when TLS asks for one, is checked on top.
	TLSListen string
	TLS       *tls.Config
	// Topics maps an exact topic name (no wildcards) to an outbox stream.
	// Default: DefaultTopics().
	Topics map[string]string
	// Outbox receives the records. Required.
	Outbox Appender
	// Auth is the mochi hook deciding who may connect, publish and
	// subscribe. Default: NewAuth(nil, "", nil), which admits nobody:
	// give users, per-flow credentials or the open mode (NewLocalAuth).
	Auth mqtt.Hook
	// AppendTimeout bounds the wait for the outbox queue. Default: DefaultAppendTimeout.
	AppendTimeout time.Duration
	// MaxPacketSize is the largest accepted MQTT packet. Default: DefaultMaxPacketSize.
	MaxPacketSize uint32
	// Logger receives the broker's and mochi's logs. Default: slog.Default().
	Logger *slog.Logger
	// Now stamps each record's arrival. Default: time.Now.
	Now func() time.Time
}

// Counts is a snapshot of the broker's record counters.
type Counts struct {
	Accepted map[string]uint64 // by stream: records stored in the outbox
	Refused  map[string]uint64 // by reason: record publishes refused, never stored
}

// Broker is the embedded MQTT broker. Create it with New, then Open.
type Broker struct {
	cfg      Config
	accepted map[string]*atomic.Uint64 // by stream, fixed at New
	refused  map[string]*atomic.Uint64 // by reason, fixed at New

	mu     sync.Mutex
	state  int // 0 new, 1 open, 2 closed
	server *mqtt.Server
	ln     net.Listener
	tlsLn  net.Listener
	ctx    context.Context // canceled by Close; parent of every Append
	cancel context.CancelFunc
}

// New returns a Broker for cfg, filling zero fields with defaults. It does
// no I/O.
func New(cfg Config) *Broker {
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if cfg.Topics == nil {
		cfg.Topics = DefaultTopics()
	}
	if cfg.Auth == nil {
		cfg.Auth = NewAuth(nil, "", nil)
	}
	if cfg.AppendTimeout == 0 {
		cfg.AppendTimeout = DefaultAppendTimeout
	}
	if cfg.MaxPacketSize == 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	b := &Broker{cfg: cfg, accepted: map[string]*atomic.Uint64{}, refused: map[string]*atomic.Uint64{}}
	for _, stream := range cfg.Topics {
		b.accepted[stream] = new(atomic.Uint64)
	}
	for _, r := range Reasons() {
		b.refused[r] = new(atomic.Uint64)
	}
	return b
}

func (b *Broker) validate() error {
	var problems []string
	if b.cfg.Outbox == nil {
		problems = append(problems, "Outbox is nil")
	}
	if len(b.cfg.Topics) == 0 {
		problems = append(problems, "Topics is empty")
	}
	for topic, stream := range b.cfg.Topics {
		if topic == "" || strings.ContainsAny(topic, "+#") || strings.HasPrefix(topic, "$") {
			problems = append(problems, fmt.Sprintf("Topics: %q must be a plain topic name (no wildcards, no $ prefix)", topic))
		}
		if stream == "" {
			problems = append(problems, fmt.Sprintf("Topics: %q maps to an empty stream", topic))
		}
	}
	if b.cfg.AppendTimeout < 0 {
		problems = append(problems, fmt.Sprintf("AppendTimeout %s must be > 0", b.cfg.AppendTimeout))
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return fmt.Errorf("broker config: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Open binds the MQTT listener, installs the hooks and starts serving. It
// returns an error if the config is invalid or the address cannot be bound.
func (b *Broker) Open(ctx context.Context) error {
	if err := b.validate(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 0 {
		return errors.New("broker: already opened")
	}
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", b.cfg.Listen)
	if err != nil {
		return fmt.Errorf("mqtt listen %s: %w", b.cfg.Listen, err)
	}
	var tlsLn net.Listener
	if b.cfg.TLSListen != "" {
		if b.cfg.TLS == nil {
			ln.Close()
			return errors.New("broker: TLSListen needs TLS (a certificate)")
		}
		if tlsLn, err = new(net.ListenConfig).Listen(ctx, "tcp", b.cfg.TLSListen); err != nil {
			ln.Close()
			return fmt.Errorf("mqtts listen %s: %w", b.cfg.TLSListen, err)
		}
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = b.cfg.MaxPacketSize
	// mochi logs whole packets: packetSafeHandler keeps payloads out.
	mochiLog := slog.New(packetSafeHandler{b.cfg.Logger.Handler()}).With(logKeyComponent, "mochi")
	server := mqtt.New(&mqtt.Options{Capabilities: caps, InlineClient: true, ClientNetReadBufferSize: readBufferSize, Logger: mochiLog})
	err = errors.Join(
		server.AddHook(b.cfg.Auth, nil),
		server.AddHook(&outboxHook{b: b}, nil),
		server.AddListener(listeners.NewNet("mqtt", ln)),
	)
	if err == nil && tlsLn != nil {
		err = server.AddListener(listeners.NewNet("mqtts", tls.NewListener(tlsLn, b.cfg.TLS)))
	}
	if err == nil {
		err = server.Serve() // starts goroutines and returns
	}
	if err != nil {
		ln.Close()
		if tlsLn != nil {
			tlsLn.Close()
		}
		return fmt.Errorf("start mqtt broker: %w", err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.server, b.ln, b.tlsLn, b.state = server, ln, tlsLn, 1
	b.cfg.Logger.Info("mqtt broker listening", logKeyAddr, ln.Addr().String())
	if tlsLn != nil {
		b.cfg.Logger.Info("mqtts listening", logKeyAddr, tlsLn.Addr().String())
	}
	return nil
}

// Addr returns the bound MQTT address, or nil before Open.
func (b *Broker) Addr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln == nil {
		return nil
	}
	return b.ln.Addr()
}

// TLSAddr returns the bound MQTTS address, or nil without one.
func (b *Broker) TLSAddr() net.Addr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tlsLn == nil {
		return nil
	}
	return b.tlsLn.Addr()
}

// Health returns nil while the broker is serving, ErrClosed otherwise.
func (b *Broker) Health() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 1 {
		return ErrClosed
	}
	return nil
}

// Close stops the listener, disconnects clients and makes publishes still
// waiting for the outbox queue give up (they are refused, never acked).
// mochi does not wait for client goroutines, so an OnPublish already inside
// Append may still finish after Close returns; close the outbox after the
// broker. Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 1 {
		b.state = 2
		return nil
	}
	b.state = 2
	b.cancel()
	return b.server.Close()
}

// deliver routes a stored record to subscribers through the inline client
// (the pipelined path refused it to mochi so it could ack after commit).
func (b *Broker) deliver(pk packets.Packet) {
	b.mu.Lock()
	server := b.server
	b.mu.Unlock()
	if server == nil {
		return
	}
	if !pk.FixedHeader.Retain { // most records have no local subscriber: skip the inline publish
		subs := server.Topics.Subscribers(pk.TopicName)
		if len(subs.Subscriptions) == 0 && len(subs.Shared) == 0 && len(subs.InlineSubscriptions) == 0 {
			return
		}
	}
	_ = server.Publish(pk.TopicName, pk.Payload, pk.FixedHeader.Retain, pk.FixedHeader.Qos)
}

// Counts returns the accepted and refused counters.
func (b *Broker) Counts() Counts {
	c := Counts{Accepted: map[string]uint64{}, Refused: map[string]uint64{}}
	for k, v := range b.accepted {
		c.Accepted[k] = v.Load()
	}
	for k, v := range b.refused {
		c.Refused[k] = v.Load()
	}
	return c
}

// Log keys.
const (
	logKeyComponent = "component"
	logKeyAddr      = "addr"
	logKeyClient    = "client"
	logKeyTopic     = "topic"
	logKeyStream    = "stream"
	logKeySeq       = "seq"
	logKeyReason    = "reason"
	logKeyRemote    = "remote"
	logKeyError     = "error"
	logKeyPayload   = "payload"
)

// DefaultLocalNets are the networks Auth admits by default: loopback,
// private (RFC 1918, IPv6 ULA), link-local and the shared address space
// (RFC 6598). A Node-RED in a container on a Docker bridge is included.
func DefaultLocalNets() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"127.0.0.0/8", "::1/128",
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7",
		"169.254.0.0/16", "fe80::/10",
		"100.64.0.0/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}
