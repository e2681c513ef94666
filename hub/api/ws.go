package api

import (
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/gorilla/websocket"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/events"
)

const (
	wsWriteTimeout = 10 * time.Second
	wsPingInterval = 30 * time.Second
)

func (s *Server) wsRoutes() {
	if s.cfg.Events == nil {
		return
	}
	s.handle(http.MethodGet, "/api/ws", Perm(auth.ResourceInstances, auth.ActionRead), s.websocket)
}

// wsWriteBuffers lends write buffers to WebSocket connections for the
// length of one message: most clients are idle between events, so 10,000
// of them hold no 16 KiB write buffer each. BenchmarkWebSocketFanout
// measured 61 KiB of hub resident memory per client without the pool and
// 51 KiB with it at 1,000 clients (resident memory includes the garbage
// collector's headroom, so the figure is noisy: 59 KiB at 10,000).
var wsWriteBuffers sync.Pool

var upgrader = websocket.Upgrader{
	ReadBufferSize:  1024,
	WriteBufferSize: 16 << 10,
	WriteBufferPool: &wsWriteBuffers,
	// Browsers send Origin; only the hub's own pages may connect. Scripts
	// (no Origin header) authenticate with their bearer token like any
	// other request.
	CheckOrigin: func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		if origin == "" {
			return true
		}
		u, err := url.Parse(origin)
		return err == nil && strings.EqualFold(u.Host, r.Host)
	},
}

// websocket streams hub events as JSON messages {"type","time","data"}.
// ?types=instance.status,deployment.phase limits the stream to those types.
// Browsers, which cannot set headers on a WebSocket, pass their access
// token as ?access_token=.
func (s *Server) websocket(c *gin.Context) {
	want := map[string]bool{}
	for _, t := range strings.Split(c.Query("types"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			want[t] = true
		}
	}
	conn, err := upgrader.Upgrade(c.Writer, c.Request, nil)
	if err != nil {
		return // the upgrader has answered with an HTTP error
	}
	defer conn.Close()
	sub := s.cfg.Events.SubscribeMessages(0)
	defer sub.Close()

	closed := make(chan struct{})
	go func() {
		defer close(closed)
		conn.SetReadLimit(4096)
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}()
	_ = conn.WriteJSON(events.New("hello", gin.H{"user": principal(c).Username}))
	ping := time.NewTicker(wsPingInterval)
	defer ping.Stop()
	for {
		select {
		case <-closed:
			return
		case <-c.Request.Context().Done():
			return
		case <-ping.C:
			if err := conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(wsWriteTimeout)); err != nil {
				return
			}
		case m, ok := <-sub.M:
			if !ok {
				_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "hub shutting down"), time.Now().Add(time.Second))
				return
			}
			if len(want) > 0 && !want[m.Type] && m.Type != events.Dropped {
				continue
			}
			_ = conn.SetWriteDeadline(time.Now().Add(wsWriteTimeout))
			// The same bytes for every client (compression is never
			// negotiated). Not a websocket.PreparedMessage: its frame
			// cache takes one mutex per write, which all 10,000 writers
			// of an event would share.
			if err := conn.WriteMessage(websocket.TextMessage, m.JSON()); err != nil {
				return
			}
			if s.metrics != nil {
				d := time.Since(m.Time).Seconds()
				s.metrics.WSFanout.Observe(d)
				s.metrics.WSFanoutMax.Observe(d)
			}
		}
	}
}
