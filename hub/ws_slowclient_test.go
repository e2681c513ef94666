package hub_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/internal/hubtest"
)

// A WebSocket client that stops reading does not hold back another: the
// other gets every event in order while the stalled one's socket is full.
// The stalled one, when it reads again, gets its events in order, never
// twice, and an events.dropped notice counting exactly the events it
// missed (or, past the write timeout, a closed connection).
func TestWebSocketSlowClientDoesNotBlockOthers(t *testing.T) {
	h := hubtest.Start(t)
	url := "ws" + strings.TrimPrefix(h.URL, "http") + "/api/ws?types=" + events.InstanceStatus
	hdr := http.Header{"Authorization": {"Bearer " + h.AdminToken}}
	fast, _, err := websocket.DefaultDialer.Dial(url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Close()
	// The stalled client's receive buffer is 4 KiB (no autotuning), so the
	// hub's writes to it block once the hub's send buffer is full.
	small := &websocket.Dialer{NetDialContext: (&net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) }); err != nil {
			return err
		}
		return serr
	}}).DialContext}
	slow, _, err := small.Dial(url, hdr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	for _, c := range []*websocket.Conn{fast, slow} { // the hello
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}

	type ev struct {
		Type string `json:"type"`
		Data struct {
			Seq   int `json:"seq"`
			Count int `json:"count"`
		} `json:"data"`
	}
	var got atomic.Int64
	fastErr := make(chan error, 1)
	go func() {
		for want := 0; ; want++ {
			var e ev
			if err := fast.ReadJSON(&e); err != nil {
				fastErr <- err
				return
			}
			if e.Type != events.InstanceStatus || e.Data.Seq != want {
				fastErr <- fmt.Errorf("fast client: got %s seq %d, want seq %d", e.Type, e.Data.Seq, want)
				return
			}
			got.Add(1)
		}
	}()
	// 16 KiB events, each published once the fast client has the one
	// before: 1,000 of them (16 MB) overflow the hub's send buffer to the
	// stalled client and its 256-event queue.
	const n = 1000
	pad := strings.Repeat("x", 16<<10)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range n {
		h.Events.Publish(events.New(events.InstanceStatus, map[string]any{"seq": i, "pad": pad}))
		for got.Load() <= int64(i) {
			select {
			case err := <-fastErr:
				t.Fatal(err)
			case <-ctx.Done():
				t.Fatalf("fast client stuck at %d of %d events while the other stalled", got.Load(), n)
			case <-time.After(100 * time.Microsecond):
			}
		}
	}

	// The stalled client reads now. Its last losses are announced with
	// the next event that finds room, so the hub publishes small ones
	// until the client reaches them.
	type result struct {
		inOrder, dropped int
		err              error
	}
	done := make(chan result, 1)
	go func() {
		next, r := 0, result{}
		_ = slow.SetReadDeadline(time.Now().Add(time.Minute))
		for next < n {
			var e ev
			if err := slow.ReadJSON(&e); err != nil {
				if r.inOrder == 0 {
					r.err = fmt.Errorf("stalled client got nothing: %w", err)
				}
				break // closed past the write timeout: allowed
			}
			switch e.Type {
			case events.Dropped:
				r.dropped += e.Data.Count
				next += e.Data.Count
			case events.InstanceStatus:
				if e.Data.Seq != next {
					r.err = fmt.Errorf("stalled client: got seq %d, want %d (%d counted as dropped)", e.Data.Seq, next, r.dropped)
					break
				}
				next++
				r.inOrder++
			}
			if r.err != nil {
				break
			}
		}
		done <- r
	}()
	for seq := n; ; seq++ {
		select {
		case r := <-done:
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.dropped == 0 {
				t.Fatalf("stalled client dropped nothing of %d events of 16 KiB: the test did not stall it", n)
			}
			t.Logf("stalled client: %d events in order, %d dropped and counted", r.inOrder, r.dropped)
			return
		case <-ctx.Done():
			t.Fatal("stalled client did not catch up once reading")
		case <-time.After(20 * time.Millisecond):
			h.Events.Publish(events.New(events.InstanceStatus, map[string]any{"seq": seq}))
		}
	}
}
