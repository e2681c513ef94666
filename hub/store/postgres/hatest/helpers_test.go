package hatest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
)

const adminPassword = "correct-horse-battery-staple-42"

// testHub is a real hub in-process on the given store.
type testHub struct {
	*hub.Hub
	url   string
	token string
	logs  *testenv.Buffer
}

// startHub opens a hub whose --store is dsn; opts adjust the config.
func startHub(t testing.TB, dsn string, opts ...func(*hub.Config)) *testHub {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.MQTTListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Store = dsn
	cfg.NodeID = "hub-pgha"
	cfg.AdminPassword = adminPassword
	for _, o := range opts {
		o(&cfg)
	}
	logs := &testenv.Buffer{}
	h := hub.New(cfg, "test", slogTo(logs))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Open(ctx); err != nil {
		t.Fatalf("open hub: %v", err)
	}
	th := &testHub{Hub: h, url: "http://" + cfg.Listen, logs: logs}
	t.Cleanup(func() {
		h.Close()
		if t.Failed() {
			t.Logf("--- hub log ---\n%s", logs.String())
		}
	})
	code, body := th.do(t, "POST", "/api/auth/login", "", map[string]string{"username": "admin", "password": adminPassword})
	if code != 200 {
		t.Fatalf("login: %d %s", code, body)
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.Unmarshal(body, &out)
	th.token = out.AccessToken
	return th
}

var client = &http.Client{Timeout: 90 * time.Second}

// do sends a JSON request and returns the status and body (status 0 on a
// transport error).
func (th *testHub) do(t testing.TB, method, path, token string, body any) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, th.url+path, r)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// health is GET /api/health.
type health struct {
	Status     string
	Failed     []string
	Degraded   []string
	Components map[string]struct{ Status, Error string }
}

func (th *testHub) health() (int, health, error) {
	resp, err := client.Get(th.url + "/api/health")
	if err != nil {
		return 0, health{}, err
	}
	defer resp.Body.Close()
	var h health
	err = json.NewDecoder(resp.Body).Decode(&h)
	return resp.StatusCode, h, err
}

// metric sums the samples of the hub's metric lines starting with prefix.
func metric(base, prefix string) (float64, error) {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var total float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		total += v
	}
	return total, sc.Err()
}

// edgeProc is a real redforge-edge syncing to a hub.
type edgeProc struct {
	*edgecheck.Process
	edgeID string
}

// startEdge enrolls a redforge-edge with th and waits for its broker.
func startEdge(t testing.TB, th *testHub) *edgeProc {
	t.Helper()
	tok, err := th.Sync.CreateToken(context.Background(), edgesync.TokenRequest{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	e := &edgeProc{Process: edgecheck.StartProcess(t, edgecheck.ProcessConfig{Bin: testenv.EdgeBinary(t),
		Args: []string{"--hub", th.url, "--token", tok.Token, "--sync-batch", "500"}})}
	e.edgeID = e.EdgeID(t, 60*time.Second)
	e.WaitMQTT(t, 60*time.Second)
	return e
}

// depth is the edge's outbox depth over every stream (-1 on error).
func (e *edgeProc) depth() (float64, error) {
	return metric("http://"+e.HTTP, "redforge_edge_outbox_depth{")
}

// envInt reads a size knob from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// slogTo is a logger writing text lines to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// writers runs n goroutines that call write(w, i) (w the writer, i its
// i-th call) in a loop until stop, counting what succeeded and failed.
type writers struct {
	ok, failed atomic.Int64
	first      atomic.Value // the first failure's error
	stopc      chan struct{}
	wg         sync.WaitGroup
}

func startWriters(n int, write func(w, i int) error) *writers {
	ws := &writers{stopc: make(chan struct{})}
	for w := range n {
		ws.wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-ws.stopc:
					return
				default:
				}
				if err := write(w, i); err != nil {
					ws.failed.Add(1)
					ws.first.CompareAndSwap(nil, err)
					continue
				}
				ws.ok.Add(1)
			}
		})
	}
	return ws
}

// stop stops the writers and waits for them.
func (ws *writers) stop() { close(ws.stopc); ws.wg.Wait() }

// waitOK waits until at least n writes succeeded.
func (ws *writers) waitOK(tb testing.TB, timeout time.Duration, what string, n int64) {
	tb.Helper()
	testenv.WaitFor(tb, timeout, what, func() error {
		if got := ws.ok.Load(); got < n {
			return fmt.Errorf("%d of %d", got, n)
		}
		return nil
	})
}
