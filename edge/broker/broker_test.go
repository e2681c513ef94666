package broker_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

const (
	topicAudit   = broker.TopicPrefix + "audit"
	topicMetrics = broker.TopicPrefix + "metrics"
)

// MustOutbox opens an outbox in a temp dir, closed at cleanup.
func MustOutbox(tb testing.TB) *outbox.Outbox {
	tb.Helper()
	o := outbox.New(filepath.Join(tb.TempDir(), "outbox.db"))
	if err := o.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { o.Close() })
	return o
}

// Test credentials: every test broker (MustBroker) knows two users,
// testUser and testAdmin (who may read the record streams), with
// testPassword; MustPaho and dialV5 connect as testUser.
const (
	testUser     = "tester"
	testAdmin    = "admin"
	testPassword = "test-password-1"
)

var testFlowKey = []byte("test-flow-key-0123456789abcdef")

// testUsers are the bcrypt hashes of the test users (at the lowest cost:
// tests connect often).
var testUsers = func() map[string][]byte {
	h, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return map[string][]byte{testUser: h, testAdmin: h}
}()

// MustBroker opens a broker on a free loopback port, closed at cleanup.
// Without cfg.Auth it authenticates the test users and per-flow
// credentials of testFlowKey.
func MustBroker(tb testing.TB, cfg broker.Config) *broker.Broker {
	tb.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	if cfg.Auth == nil {
		cfg.Auth = broker.NewAuth(testUsers, testAdmin, testFlowKey)
	}
	b := broker.New(cfg)
	if err := b.Open(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

// MustPaho connects an MQTT 3.1.1 paho client to b as testUser.
func MustPaho(tb testing.TB, b *broker.Broker, id string) paho.Client {
	tb.Helper()
	return mustPahoWith(tb, pahoOptions(b, id))
}

// mustPahoWith connects a paho client with opts.
func mustPahoWith(tb testing.TB, opts *paho.ClientOptions) paho.Client {
	tb.Helper()
	c := paho.NewClient(opts)
	id := opts.ClientID
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("connect %s: %v", id, tok.Error())
	}
	tb.Cleanup(func() { c.Disconnect(0) })
	return c
}

func pahoOptions(b *broker.Broker, id string) *paho.ClientOptions {
	return paho.NewClientOptions().
		AddBroker("tcp://" + b.Addr().String()).
		SetClientID(id).
		SetProtocolVersion(4).
		SetAutoReconnect(false).
		SetConnectTimeout(5 * time.Second).
		SetUsername(testUser).SetPassword(testPassword)
}

func mustPublish(tb testing.TB, c paho.Client, topic string, qos byte, payload string) {
	tb.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		tb.Fatalf("publish %s %q: no PUBACK in 10s (%v)", topic, payload, tok.Error())
	}
}

func payloads(tb testing.TB, o *outbox.Outbox, stream string) []string {
	tb.Helper()
	recs, err := o.Pending(context.Background(), stream, 0, 1000)
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Payload))
	}
	return out
}

func refusedIs(b *broker.Broker, reason string, want uint64) func() error {
	return func() error {
		if got := b.Counts().Refused[reason]; got != want {
			return fmt.Errorf("refused[%s] = %d, want %d", reason, got, want)
		}
		return nil
	}
}

func done(tok paho.Token) bool {
	select {
	case <-tok.Done():
		return true
	default:
		return false
	}
}

// gate is an Appender that holds every Append until released.
type gate struct {
	next    broker.Appender
	entered chan struct{}
	release chan struct{}
}

func (g *gate) Append(ctx context.Context, stream string, payload []byte, arrived time.Time) (int64, error) {
	g.entered <- struct{}{}
	<-g.release
	return g.next.Append(ctx, stream, payload, arrived)
}

// TestQoS1PubackOnlyAfterDurable: the PUBACK does not come while the
// outbox append is held, and once it comes the record is already in the
// outbox (read at once, no polling).
func TestQoS1PubackOnlyAfterDurable(t *testing.T) {
	o := MustOutbox(t)
	g := &gate{next: o, entered: make(chan struct{}), release: make(chan struct{})}
	b := MustBroker(t, broker.Config{Outbox: g})
	c := MustPaho(t, b, "pub")

	tok := c.Publish(topicAudit, 1, false, `{"action":"deploy","n":1}`)
	select {
	case <-g.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("publish never reached the outbox hook")
	}
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK arrived while the outbox append was still held")
	}
	close(g.release)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after append: %v", tok.Error())
	}
	if got := payloads(t, o, outbox.StreamAudit); len(got) != 1 || got[0] != `{"action":"deploy","n":1}` {
		t.Fatalf("outbox after PUBACK = %q", got)
	}
	if n := b.Counts().Accepted[outbox.StreamAudit]; n != 1 {
		t.Fatalf("accepted[audit] = %d, want 1", n)
	}
}

// TestRefusesNonObjectPayloads (MQTT 3.1.1): a refused QoS 1 publish gets no
// PUBACK (paho.mqtt.golang speaks only 3.1.1, so the test proves it by
// ordering: a later valid publish on the same connection is acked while the
// refused tokens stay open), is counted, and is not stored.
func TestRefusesNonObjectPayloads(t *testing.T) {
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o})
	c := MustPaho(t, b, "bad-pub")

	bad := []string{"not json", `[1,2]`, `{"a":`, `"str"`, ``, `{} {}`, `42`}
	var toks []paho.Token
	for i, p := range bad {
		toks = append(toks, c.Publish(topicAudit, 1, false, p))
		testenv.WaitFor(t, 10*time.Second, "refusal of "+p, refusedIs(b, broker.ReasonNotJSONObject, uint64(i+1)))
	}
	c.Publish(topicMetrics, 0, false, "qos0 garbage")
	testenv.WaitFor(t, 10*time.Second, "qos0 refusal", refusedIs(b, broker.ReasonNotJSONObject, uint64(len(bad)+1)))

	mustPublish(t, c, topicAudit, 1, " {\"ok\":true}\n")
	for i, tok := range toks {
		if done(tok) {
			t.Errorf("refused publish %q was acknowledged (err %v)", bad[i], tok.Error())
		}
	}
	if got := payloads(t, o, outbox.StreamAudit); len(got) != 1 || got[0] != " {\"ok\":true}\n" {
		t.Fatalf("audit stream = %q, want only the valid record", got)
	}
	if got := payloads(t, o, outbox.StreamMetrics); len(got) != 0 {
		t.Fatalf("metrics stream = %q, want empty", got)
	}
	if n := b.Counts().Accepted[outbox.StreamAudit]; n != 1 {
		t.Fatalf("accepted[audit] = %d, want 1", n)
	}
}

// TestOutboxFailureIsNeverAcked: with the outbox closed a record publish is
// refused and counted; 3.1.1 gets no PUBACK, MQTT 5 gets reason 0x80.
func TestOutboxFailureIsNeverAcked(t *testing.T) {
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o})
	c := MustPaho(t, b, "pub")
	v5 := dialV5(t, b.Addr().String(), "pub5")
	o.Close()

	tok := c.Publish(topicAudit, 1, false, `{"n":1}`)
	testenv.WaitFor(t, 10*time.Second, "outbox refusal", refusedIs(b, broker.ReasonOutbox, 1))
	mustPublish(t, c, "site/other", 1, "not a record topic") // passes through, acked after the refusal
	if done(tok) {
		t.Fatalf("publish acknowledged although the outbox is closed (err %v)", tok.Error())
	}
	if code := v5.publish(t, topicAudit, 7, `{"n":2}`); code != packets.ErrUnspecifiedError.Code {
		t.Fatalf("MQTT 5 PUBACK reason = %#x, want %#x", code, packets.ErrUnspecifiedError.Code)
	}
	if got := b.Counts().Refused[broker.ReasonOutbox]; got != 2 {
		t.Fatalf("refused[outbox_error] = %d, want 2", got)
	}
}

// TestMQTT5ReasonCodes: an MQTT 5 client gets PUBACK 0x99 (payload format
// invalid) for a non-object and 0x00 for a stored record.
func TestMQTT5ReasonCodes(t *testing.T) {
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o})
	v5 := dialV5(t, b.Addr().String(), "v5")
	if code := v5.publish(t, topicAudit, 1, `not json`); code != packets.ErrPayloadFormatInvalid.Code {
		t.Fatalf("reason for non-JSON = %#x, want %#x", code, packets.ErrPayloadFormatInvalid.Code)
	}
	if code := v5.publish(t, topicAudit, 2, `{"ok":1}`); code != packets.CodeSuccess.Code {
		t.Fatalf("reason for valid record = %#x, want success", code)
	}
	if got := payloads(t, o, outbox.StreamAudit); len(got) != 1 || got[0] != `{"ok":1}` {
		t.Fatalf("audit stream = %q", got)
	}
	if n := b.Counts().Refused[broker.ReasonNotJSONObject]; n != 1 {
		t.Fatalf("refused = %d, want 1", n)
	}
}

// TestRecordsStillReachSubscribers: record topics are stored and routed;
// other topics are routed and not stored; QoS 0 records are stored too.
func TestRecordsStillReachSubscribers(t *testing.T) {
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o})
	sub := mustPahoWith(t, pahoOptions(b, "sub").SetUsername(testAdmin)) // only the admin reads the record streams
	var got atomic.Int64
	for _, topic := range []string{topicMetrics, "site/other"} {
		tok := sub.Subscribe(topic, 1, func(paho.Client, paho.Message) { got.Add(1) })
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", topic, tok.Error())
		}
	}
	pub := MustPaho(t, b, "pub")
	mustPublish(t, pub, "site/other", 1, "anything")
	pub.Publish(topicMetrics, 0, false, `{"cpu":0.5}`)
	testenv.WaitFor(t, 10*time.Second, "both messages delivered", func() error {
		if n := got.Load(); n != 2 {
			return fmt.Errorf("%d delivered", n)
		}
		return nil
	})
	if p := payloads(t, o, outbox.StreamMetrics); len(p) != 1 || p[0] != `{"cpu":0.5}` {
		t.Fatalf("metrics stream = %q", p)
	}
}

func TestLocalAuthRefusesOtherNetworks(t *testing.T) {
	o := MustOutbox(t)
	auth := broker.NewLocalAuth([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})
	b := MustBroker(t, broker.Config{Outbox: o, Auth: auth})
	c := paho.NewClient(pahoOptions(b, "outsider"))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect neither succeeded nor failed")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
		t.Fatal("client from 127.0.0.1 admitted by an auth hook for 10.0.0.0/8")
	}
	if !broker.NewLocalAuth(broker.DefaultLocalNets()).Nets[0].Contains(netip.MustParseAddr("127.0.0.1")) {
		t.Fatal("default nets do not start with loopback")
	}
}

func TestOpenErrors(t *testing.T) {
	if err := broker.New(broker.Config{Listen: "127.0.0.1:0"}).Open(context.Background()); err == nil || !strings.Contains(err.Error(), "Outbox") {
		t.Fatalf("nil outbox: %v", err)
	}
	o := MustOutbox(t)
	err := broker.New(broker.Config{Listen: "127.0.0.1:0", Outbox: o, Topics: map[string]string{"a/#": "audit"}}).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Topics") {
		t.Fatalf("wildcard topic: %v", err)
	}
	b := MustBroker(t, broker.Config{Outbox: o})
	err = broker.New(broker.Config{Listen: b.Addr().String(), Outbox: o}).Open(context.Background())
	if err == nil || !strings.Contains(err.Error(), b.Addr().String()) {
		t.Fatalf("port in use: %v", err)
	}
	if err := b.Health(); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := b.Health(); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("health after close: %v", err)
	}
}

// v5conn is a minimal MQTT 5 client built from mochi's packet codec,
// because paho.mqtt.golang speaks only 3.1.1.
type v5conn struct {
	c net.Conn
	r *bufio.Reader
}

func dialV5(tb testing.TB, addr, id string) *v5conn {
	tb.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	v := &v5conn{c: c, r: bufio.NewReader(c)}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: 5,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 60, ClientIdentifier: id,
			UsernameFlag: true, Username: []byte(testUser), PasswordFlag: true, Password: []byte(testPassword)},
	}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	v.write(tb, buf.Bytes())
	if ack := v.read(tb); ack.FixedHeader.Type != packets.Connack || ack.ReasonCode != 0 {
		tb.Fatalf("connect: got %+v", ack.FixedHeader)
	}
	return v
}

// publish sends a QoS 1 publish and returns the PUBACK reason code.
func (v *v5conn) publish(tb testing.TB, topic string, id uint16, payload string) byte {
	tb.Helper()
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: 1},
		ProtocolVersion: 5,
		TopicName:       topic,
		PacketID:        id,
		Payload:         []byte(payload),
	}
	var buf bytes.Buffer
	if err := pk.PublishEncode(&buf); err != nil {
		tb.Fatal(err)
	}
	v.write(tb, buf.Bytes())
	ack := v.read(tb)
	if ack.FixedHeader.Type != packets.Puback || ack.PacketID != id {
		tb.Fatalf("publish %d: got packet type %d id %d", id, ack.FixedHeader.Type, ack.PacketID)
	}
	return ack.ReasonCode
}

func (v *v5conn) write(tb testing.TB, b []byte) {
	tb.Helper()
	v.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := v.c.Write(b); err != nil {
		tb.Fatal(err)
	}
}

func (v *v5conn) read(tb testing.TB) packets.Packet {
	tb.Helper()
	v.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	hb, err := v.r.ReadByte()
	if err != nil {
		tb.Fatalf("read: %v", err)
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(hb); err != nil {
		tb.Fatal(err)
	}
	n, mult := 0, 1
	for { // variable byte integer
		b, err := v.r.ReadByte()
		if err != nil {
			tb.Fatal(err)
		}
		n += int(b&127) * mult
		if b&128 == 0 {
			break
		}
		mult *= 128
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(v.r, body); err != nil {
		tb.Fatal(err)
	}
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	}
	if err != nil {
		tb.Fatal(err)
	}
	return pk
}

// TestVectorsStoredCanonical: a vectors publish is stored as its canonical
// vector record (packed float32), checksummed as such; a malformed one is
// refused with 0x99 and counted as invalid_vector, and nothing is stored.
func TestVectorsStoredCanonical(t *testing.T) {
	o := MustOutbox(t)
	b := MustBroker(t, broker.Config{Outbox: o})
	v5 := dialV5(t, b.Addr().String(), "v5-vec")
	for i, bad := range []string{`{"id":"a","vector":[1,"x"]}`, `{"id":"a"}`, `{"vector":[1]}`, `{"id":"a","vector":[1],"extra":1}`, `{"id":"a","vector":[1e40]}`} {
		if code := v5.publish(t, "redforge/v1/vectors", uint16(i+1), bad); code != packets.ErrPayloadFormatInvalid.Code {
			t.Fatalf("%s: reason %#x, want 0x99", bad, code)
		}
	}
	if code := v5.publish(t, "redforge/v1/vectors", 9, `{"id":"doc","vector":[0.5,-2],"metadata":{"page":3}}`); code != packets.CodeSuccess.Code {
		t.Fatalf("valid vector: reason %#x", code)
	}
	if n := b.Counts().Refused[broker.ReasonInvalidVector]; n != 5 {
		t.Fatalf("refused[invalid_vector] = %d, want 5", n)
	}
	recs, err := o.Pending(context.Background(), outbox.StreamVectors, 0, 10)
	if err != nil || len(recs) != 1 {
		t.Fatalf("stored %d vectors (%v), want 1", len(recs), err)
	}
	want := syncproto.AppendVectorRecord(nil, "doc", syncproto.PackFloat32([]float32{0.5, -2}), []byte(`{"page":3}`))
	if !bytes.Equal(recs[0].Payload, want) || recs[0].Checksum != syncproto.Checksum(want) {
		t.Fatalf("stored %q, want the canonical record %q", recs[0].Payload, want)
	}
}
