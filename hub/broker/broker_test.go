package broker

import (
	"context"
	"fmt"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/internal/testenv"
)

type staticAuth map[string]string

func (a staticAuth) Authenticate(_, user string, pass []byte) bool {
	want, ok := a[user]
	return ok && want == string(pass)
}

func connect(addr, user, pass string) error {
	opts := paho.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("c-" + user).
		SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(50)
	}
	return tok.Error()
}

func TestEmbeddedRefusesUnknownClients(t *testing.T) {
	b := NewEmbedded("127.0.0.1:0", staticAuth{"inst-1": "secret"}, nil)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := connect(b.Addr(), "anyone", ""); err == nil {
		t.Error("anonymous client accepted")
	}
	if err := connect(b.Addr(), "inst-1", "wrong"); err == nil {
		t.Error("wrong password accepted")
	}
	if err := connect(b.Addr(), "inst-1", "secret"); err != nil {
		t.Errorf("valid client refused: %v", err)
	}
}

// runBusContract checks what every Bus must do: a subscriber receives what
// is published after it subscribed, in order, and nothing after unsubscribe.
func runBusContract(t *testing.T, b Bus) {
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	got := make(chan string, 100)
	unsub, err := b.Subscribe(ctx, "inst/+/control", 1, func(topic string, p []byte) { got <- topic + "=" + string(p) })
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		if err := b.Publish(ctx, "inst/a/control", []byte(fmt.Sprint(i)), 1, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		select {
		case m := <-got:
			if want := fmt.Sprintf("inst/a/control=%d", i); m != want {
				t.Fatalf("message %d = %q, want %q", i, m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered", i)
		}
	}
	unsub()
	if err := b.Publish(ctx, "inst/a/control", []byte("late"), 1, false); err != nil {
		t.Fatal(err)
	}
	// A marker on another subscription proves the late message had its chance.
	marker := make(chan struct{}, 1)
	unsub2, err := b.Subscribe(ctx, "marker", 1, func(string, []byte) { marker <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	defer unsub2()
	testenv.WaitFor(t, 10*time.Second, "marker delivered", func() error {
		_ = b.Publish(ctx, "marker", []byte("x"), 1, false)
		select {
		case <-marker:
			return nil
		case <-time.After(50 * time.Millisecond):
			return fmt.Errorf("not yet")
		}
	})
	if len(got) != 0 {
		t.Fatalf("message delivered after unsubscribe: %q", <-got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(ctx); err == nil {
		t.Fatal("Ping succeeds after Close")
	}
}

func TestEmbeddedBus(t *testing.T) {
	b := NewEmbedded("127.0.0.1:0", nil, nil)
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	runBusContract(t, b)
}

func TestExternalBusOnMosquitto(t *testing.T) {
	b := NewExternal(testenv.Mosquitto(t), "hub-test")
	if err := b.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	runBusContract(t, b)
}
