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
	opts, host, err := e.options(e.ClientID)
	if err != nil {
		return err
	}
	e.client = paho.NewClient(opts.SetCleanSession(true))
	if err := wait(ctx, e.client.Connect()); err != nil {
		return fmt.Errorf("mqtt connect %s: %w", host, err)
	}
	return nil
}

// options are the client options for the broker of e.URL.
func (e *External) options(clientID string) (*paho.ClientOptions, string, error) {
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil, "", fmt.Errorf("mqtt url: %w", err)
	}
	opts := paho.NewClientOptions().
		AddBroker((&url.URL{Scheme: u.Scheme, Host: u.Host}).String()).
		SetClientID(clientID).
		SetConnectTimeout(5 * time.Second).
		SetAutoReconnect(true).
		SetOrderMatters(true)
	if u.User != nil {
		opts.SetUsername(u.User.Username())
		if p, ok := u.User.Password(); ok {
			opts.SetPassword(p)
		}
	}
	return opts, u.Host, nil
}

// Addr is the outside broker's host:port, as instances reach it too.
func (e *External) Addr() string {
	u, err := url.Parse(e.URL)
	if err != nil {
		return ""
	}
	return u.Host
}

// DurableHandler receives the messages of a durable subscription. id is
// the message's packet id in the session; redelivered is set when the
// broker sends it again because an earlier delivery of it (to this
// session, possibly on a connection of a process that died) was not
// acknowledged.
type DurableHandler func(topic string, payload []byte, id uint16, redelivered bool)

// SubscribeDurable subscribes filter at qos on a connection of its own
// with a persistent session named clientID: the broker keeps queuing
// matching messages while the connection is gone, and whoever connects
// next with the same clientID (another hub, after a failover) receives
// them in order. fn runs one message at a time and the message is
// acknowledged only after fn returns, so a process killed inside fn gets
// the message redelivered to the next holder of the session. stop
// disconnects without unsubscribing (the session keeps queuing).
func (e *External) SubscribeDurable(ctx context.Context, clientID, filter string, qos byte, fn DurableHandler) (stop func(), err error) {
	opts, host, err := e.options(clientID)
	if err != nil {
		return nil, err
	}
	handler := func(_ paho.Client, m paho.Message) { fn(m.Topic(), m.Payload(), m.MessageID(), m.Duplicate()) }
	opts.SetCleanSession(false).
		// Messages the session queued arrive as soon as the connection is up,
		// possibly before the subscription's route is registered here.
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(c paho.Client) {
			// The session normally keeps the subscription; subscribing again
			// is harmless and covers a broker that lost the session.
			c.Subscribe(filter, qos, handler)
		})
	c := paho.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("mqtt connect %s as %s: %w", host, clientID, err)
	}
	if err := wait(ctx, c.Subscribe(filter, qos, handler)); err != nil {
		c.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return func() { c.Disconnect(250) }, nil
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
