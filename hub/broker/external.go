package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// External connects the hub to an outside broker (Mosquitto, EMQX…).
type External struct {
	URL      string
	ClientID string
	client   paho.Client
}

var _ Bus = (*External)(nil)

// NewExternal returns a client for a tcp://user:pass@host:port URL; it does
// no I/O.
func NewExternal(rawURL, clientID string) *External {
	return &External{URL: rawURL, ClientID: clientID}
}

// Open connects, failing with a clear error when the broker is unreachable.
func (e *External) Open(ctx context.Context) error {
	u, err := url.Parse(e.URL)
	if err != nil {
		return fmt.Errorf("mqtt url: %w", err)
	}
	opts := paho.NewClientOptions().
		AddBroker((&url.URL{Scheme: u.Scheme, Host: u.Host}).String()).
		SetClientID(e.ClientID).
		SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(true).
		SetCleanSession(true).
		SetOrderMatters(true)
	if u.User != nil {
		opts.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			opts.SetPassword(p)
		}
	}
	e.client = paho.NewClient(opts)
	if err := wait(ctx, e.client.Connect()); err != nil {
		return fmt.Errorf("mqtt connect %s: %w", u.Host, err)
	}
	return nil
}

// Publish sends a message and waits for the broker's ack at QoS ≥ 1.
func (e *External) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	return wait(ctx, e.client.Publish(topic, qos, retain, payload))
}

// Subscribe subscribes filter at qos.
func (e *External) Subscribe(ctx context.Context, filter string, qos byte, fn Handler) (func(), error) {
	tok := e.client.Subscribe(filter, qos, func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload()) })
	if err := wait(ctx, tok); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return func() { e.client.Unsubscribe(filter).WaitTimeout(5 * time.Second) }, nil
}

// Ping reports whether the connection to the broker is up.
func (e *External) Ping(context.Context) error {
	if e.client == nil || !e.client.IsConnectionOpen() {
		return errors.New("not connected to the MQTT broker")
	}
	return nil
}

// Close disconnects.
func (e *External) Close() error {
	if e.client != nil {
		e.client.Disconnect(250)
	}
	return nil
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
