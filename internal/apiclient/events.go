// Package apiclient is the Go client of the hub's event stream, GET
// /api/ws: towerctl's `events` command and the load benchmarks use it. It
// speaks only the public API (a bearer token, the JSON event shape) and
// owns no retry policy: a caller that wants to stay connected dials again.
package apiclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Event is one message of the stream: {"type","time","data","origin"}.
type Event struct {
	Type   string          `json:"type"`
	Time   time.Time       `json:"time"`
	Data   json.RawMessage `json:"data"`
	Origin string          `json:"origin,omitempty"`
}

// Hello is the type of the first event of every stream.
const Hello = "hello"

// DefaultDialer is the dialer Dial uses when none is given: small
// buffers, since an event is a few hundred bytes, and a handshake timeout.
var DefaultDialer = &websocket.Dialer{
	HandshakeTimeout: 15 * time.Second,
	ReadBufferSize:   2048,
	WriteBufferSize:  512,
	WriteBufferPool:  &writePool,
}

// writePool lends write buffers to idle connections of DefaultDialer, so
// a client that only listens holds none.
var writePool sync.Pool

// Events is an open event stream. Next is not safe for concurrent use;
// Close may be called from any goroutine.
type Events struct {
	conn *websocket.Conn
}

// Dial opens the event stream of the hub at hubURL (http:// or https://)
// with a bearer token, limited to types when any are given. dialer nil
// means DefaultDialer. The returned stream has read the hub's hello
// event. Errors: a malformed hubURL; the hub's HTTP answer when it
// refuses the upgrade (401 without a valid token, 403 without the
// instances:read permission); a network error.
func Dial(ctx context.Context, hubURL, token string, dialer *websocket.Dialer, types ...string) (*Events, error) {
	u, err := eventsURL(hubURL, types)
	if err != nil {
		return nil, err
	}
	if dialer == nil {
		dialer = DefaultDialer
	}
	hdr := http.Header{}
	if token != "" {
		hdr.Set("Authorization", "Bearer "+token)
	}
	conn, resp, err := dialer.DialContext(ctx, u, hdr)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("open %s: hub answered %s", redact(u), resp.Status)
		}
		return nil, fmt.Errorf("open %s: %w", redact(u), err)
	}
	e := &Events{conn: conn}
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(deadline)
	}
	first, err := e.Next()
	_ = conn.SetReadDeadline(time.Time{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("open %s: no hello: %w", redact(u), err)
	}
	if first.Type != Hello {
		conn.Close()
		return nil, fmt.Errorf("open %s: first event is %q, want %q", redact(u), first.Type, Hello)
	}
	return e, nil
}

// eventsURL is ws(s)://host/api/ws?types=… for an http(s) hub URL.
func eventsURL(hubURL string, types []string) (string, error) {
	u, err := url.Parse(strings.TrimRight(hubURL, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("hub URL %q is not http(s)://host:port", hubURL)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("hub URL %q is not http(s)://host:port", hubURL)
	}
	u.Path += "/api/ws"
	if len(types) > 0 {
		u.RawQuery = url.Values{"types": {strings.Join(types, ",")}}.Encode()
	}
	return u.String(), nil
}

// redact drops a URL's user info from error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return s
}

// ErrClosed is returned by Next once the hub closed the stream normally
// (a "going away" close at hub shutdown) or Close was called.
var ErrClosed = errors.New("event stream closed")

// Next waits for the next event. Errors: ErrClosed at a normal close; a
// message that is not an event; a network error.
func (e *Events) Next() (Event, error) {
	var ev Event
	_, b, err := e.conn.ReadMessage()
	if err != nil {
		if websocket.IsCloseError(err, websocket.CloseNormalClosure, websocket.CloseGoingAway) || errors.Is(err, net.ErrClosed) {
			return ev, ErrClosed
		}
		return ev, err
	}
	if err := json.Unmarshal(b, &ev); err != nil {
		return ev, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// SetReadDeadline bounds the wait of the next calls to Next; the zero
// time waits for ever.
func (e *Events) SetReadDeadline(t time.Time) error { return e.conn.SetReadDeadline(t) }

// Close ends the stream with a normal close.
func (e *Events) Close() error {
	_ = e.conn.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	return e.conn.Close()
}
