package broker_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/internal/testenv"
)

// connects reports whether a client with opts is admitted.
func connects(t *testing.T, opts *paho.ClientOptions) bool {
	t.Helper()
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect neither succeeded nor failed")
	}
	if tok.Error() != nil {
		return false
	}
	c.Disconnect(0)
	return true
}

// TestAuthRequiresCredentials (issue 13.6): a local client needs a user's
// password or its per-flow credential; none, a wrong one, or another
// node's flow password is refused. The open mode admits anyone local.
func TestAuthRequiresCredentials(t *testing.T) {
	b := MustBroker(t, broker.Config{Outbox: MustOutbox(t)})
	flowUser, flowPass := broker.FlowCredential(testFlowKey, "a1b2c3d4.e5f6")
	_, otherPass := broker.FlowCredential(testFlowKey, "other-node")
	for _, c := range []struct {
		name, user, pass string
		ok               bool
	}{
		{"no credentials", "", "", false},
		{"unknown user", "mallory", testPassword, false},
		{"wrong password", testUser, "wrong", false},
		{"user", testUser, testPassword, true},
		{"per-flow credential", flowUser, flowPass, true},
		{"another node's flow password", flowUser, otherPass, false},
		{"flow user without password", flowUser, "", false},
	} {
		opts := pahoOptions(b, "c-"+strings.ReplaceAll(c.name, " ", "-")).SetUsername(c.user).SetPassword(c.pass)
		if got := connects(t, opts); got != c.ok {
			t.Errorf("%s: admitted %v, want %v", c.name, got, c.ok)
		}
	}
	open := MustBroker(t, broker.Config{Outbox: MustOutbox(t), Auth: broker.NewLocalAuth(broker.DefaultLocalNets())})
	if !connects(t, pahoOptions(open, "anon").SetUsername("").SetPassword("")) {
		t.Error("the open mode refused a local client without credentials")
	}
	if _, err := broker.ReadUsers(strings.NewReader("# users\nalice:" + string(testUsers[testUser]) + "\n\nbob:plaintext\n")); err == nil || !strings.Contains(err.Error(), "line 4") {
		t.Errorf("a users file with a plaintext password: %v, want an error naming line 4", err)
	}
}

// subscribeResult returns the SUBACK code of each filter (0x80: refused).
func subscribeResult(t *testing.T, c paho.Client, filters ...string) map[string]byte {
	t.Helper()
	m := map[string]byte{}
	for _, f := range filters {
		m[f] = 1
	}
	tok := c.SubscribeMultiple(m, func(paho.Client, paho.Message) {})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %v: %v", filters, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()
}

// TestACL (issue 13.6): a client may not read the record streams or other
// clients' topics with a wildcard, nor $SYS; the admin may read the
// streams, not $SYS. A record published with retain is not kept, so a
// later subscriber gets no one else's record.
func TestACL(t *testing.T) {
	b := MustBroker(t, broker.Config{Outbox: MustOutbox(t)})
	user := MustPaho(t, b, "user")
	refused := []string{"#", "+/v1/audit", "redforge/#", "redforge/v1/#", "redforge/v1/ai_decisions", "$SYS/#", "$SYS/broker/clients/connected", "$share/g/#", "$share/g/redforge/v1/audit"}
	allowed := []string{"site/other", "sensors/+/temp", "sensors/#", "$share/g/sensors/#"}
	res := subscribeResult(t, user, append(refused, allowed...)...)
	for _, f := range refused {
		if res[f] != 0x80 {
			t.Errorf("user subscribed to %s (SUBACK %#x), want refused", f, res[f])
		}
	}
	for _, f := range allowed {
		if res[f] == 0x80 {
			t.Errorf("user refused %s, want allowed", f)
		}
	}
	admin := mustPahoWith(t, pahoOptions(b, "admin").SetUsername(testAdmin))
	res = subscribeResult(t, admin, "#", "redforge/v1/#", "$SYS/#")
	if res["#"] == 0x80 || res["redforge/v1/#"] == 0x80 || res["$SYS/#"] != 0x80 {
		t.Errorf("admin SUBACKs %v: want # and redforge/v1/# allowed, $SYS/# refused", res)
	}
	open := MustBroker(t, broker.Config{Outbox: MustOutbox(t), Auth: broker.NewLocalAuth(broker.DefaultLocalNets())})
	anon := mustPahoWith(t, pahoOptions(open, "anon").SetUsername("").SetPassword(""))
	if res := subscribeResult(t, anon, "$SYS/#"); res["$SYS/#"] != 0x80 {
		t.Errorf("open mode: $SYS/# SUBACK %#x, want refused", res["$SYS/#"])
	}

	// A retained record is stored but not kept for later subscribers.
	tok := user.Publish("redforge/v1/ai_decisions", 1, true, `{"model":"m","prompt":"secret prompt"}`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	late := mustPahoWith(t, pahoOptions(b, "late").SetUsername(testAdmin))
	var mu sync.Mutex
	var got []string
	var marker atomic.Bool
	// Only retained messages count: the record's own delivery, which
	// follows its PUBACK, may reach this subscriber live.
	stok := late.SubscribeMultiple(map[string]byte{"redforge/v1/ai_decisions": 1, "site/marker": 1}, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		if m.Retained() || m.Topic() == "site/marker" {
			got = append(got, m.Topic())
		}
		mu.Unlock()
		if m.Topic() == "site/marker" {
			marker.Store(true)
		}
	})
	if !stok.WaitTimeout(10*time.Second) || stok.Error() != nil {
		t.Fatal(stok.Error())
	}
	mustPublish(t, user, "site/marker", 1, "after") // retained messages come at subscribe, before it
	testenv.WaitFor(t, 10*time.Second, "the marker", func() error {
		if !marker.Load() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("a later subscriber got %v: the retained record was kept", got)
	}
}

// syncBuffer is a bytes.Buffer safe for the broker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogsCarryNoPayload (issue 13.7): a 1 MB invalid publish, refused
// over MQTT 3.1.1 and MQTT 5, logs (even at debug) its size and a quoted
// prefix of at most broker.LogPayloadPrefix bytes, never the payload.
func TestLogsCarryNoPayload(t *testing.T) {
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := MustBroker(t, broker.Config{Outbox: MustOutbox(t), Logger: log})
	big := "not json " + strings.Repeat("A", 1_000_000-9)
	c := MustPaho(t, b, "big")
	c.Publish(topicAudit, 1, false, big)
	testenv.WaitFor(t, 10*time.Second, "the 3.1.1 refusal", refusedIs(b, broker.ReasonNotJSONObject, 1))
	v5 := dialV5(t, b.Addr().String(), "big5")
	v5.publish(t, topicAudit, 1, big)
	testenv.WaitFor(t, 10*time.Second, "the MQTT 5 refusal", refusedIs(b, broker.ReasonNotJSONObject, 2))
	out := logs.String()
	longest := 0
	for line := range strings.Lines(out) {
		longest = max(longest, len(line))
	}
	if longest > 2048 || strings.Contains(out, strings.Repeat("A", broker.LogPayloadPrefix+1)) || strings.Contains(out, "65 65 65") {
		t.Fatalf("a log line of %d bytes carries the payload:\n%.3000s", longest, out)
	}
	if !strings.Contains(out, "bytes=1000000") || !strings.Contains(out, `not json AAAA`) {
		t.Fatalf("the refusal's size and prefix are not logged:\n%.3000s", out)
	}
}
