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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

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

const (
	mqttUser     = "publisher"
	mqttPassword = "publisher-password-1"
)

// edgeProc is a real redforge-edge syncing to a hub.
type edgeProc struct {
	cmd     *exec.Cmd
	logs    *testenv.Buffer
	exited  chan struct{}
	mqtt    string
	http    string
	dataDir string
	edgeID  string
}

// startEdge enrolls a redforge-edge with th and waits for its broker.
func startEdge(t testing.TB, th *testHub) *edgeProc {
	t.Helper()
	tok, err := th.Sync.CreateToken(context.Background(), edgesync.TokenRequest{}, "test")
	if err != nil {
		t.Fatal(err)
	}
	users, err := bcrypt.GenerateFromPassword([]byte(mqttPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(t.TempDir(), "mqtt-users")
	if err := os.WriteFile(usersFile, []byte(mqttUser+":"+string(users)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &edgeProc{logs: &testenv.Buffer{}, exited: make(chan struct{}), dataDir: t.TempDir(),
		mqtt: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)), http: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))}
	e.cmd = exec.Command(testenv.EdgeBinary(t), "--data-dir", e.dataDir, "--mqtt-listen", e.mqtt, "--listen", e.http,
		"--log-level", "warn", "--hub", th.url, "--token", tok.Token, "--sync-batch", "500", "--mqtt-users", usersFile)
	e.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	e.cmd.Stdout, e.cmd.Stderr = e.logs, e.logs
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.cmd.Wait(); close(e.exited) }()
	t.Cleanup(func() {
		_ = e.cmd.Process.Kill()
		<-e.exited
		if t.Failed() {
			t.Logf("--- edge log ---\n%s", e.logs.String())
		}
	})
	testenv.WaitFor(t, 60*time.Second, "edge enrolled and its broker up", func() error {
		select {
		case <-e.exited:
			t.Fatalf("edge exited:\n%s", e.logs.String())
		default:
		}
		b, err := os.ReadFile(filepath.Join(e.dataDir, "credential.json"))
		if err != nil {
			return err
		}
		var cred struct {
			EdgeID string `json:"edge_id"`
		}
		if err := json.Unmarshal(b, &cred); err != nil || cred.EdgeID == "" {
			return fmt.Errorf("credential.json: %v", err)
		}
		e.edgeID = cred.EdgeID
		c := paho.NewClient(mqttOptions("tcp://" + e.mqtt).SetAutoReconnect(false).SetConnectTimeout(time.Second))
		if tk := c.Connect(); !tk.WaitTimeout(2*time.Second) || tk.Error() != nil {
			return fmt.Errorf("mqtt connect: %v", tk.Error())
		}
		c.Disconnect(0)
		return nil
	})
	return e
}

func mqttOptions(broker string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(broker).SetUsername(mqttUser).SetPassword(mqttPassword)
}

// depth is the edge's outbox depth over every stream (-1 on error).
func (e *edgeProc) depth() (float64, error) {
	return metric("http://"+e.http, "redforge_edge_outbox_depth{")
}

// payload builds a valid record of stream; id is unique in the test.
func payload(stream string, id int) string {
	switch stream {
	case "vectors":
		return fmt.Sprintf(`{"id":"v%d","vector":[%d.5,-0.25,1e-3,%d],"metadata":{"n":%d}}`, id, id%97, id, id)
	case "audit":
		return fmt.Sprintf(`{"action":"edge.test","resource_type":"rec","resource_id":"%d","details":{}}`, id)
	case "ai_decisions":
		return fmt.Sprintf(`{"flow_name":"f","model":"m","prompt":"p%d","response":"r","confidence":0.5,"tokens_used":%d,"latency_ms":1}`, id, id)
	case "checkpoints":
		return fmt.Sprintf(`{"workflow_id":"w","step":%d,"state":{}}`, id)
	}
	return fmt.Sprintf(`{"name":"m","value":%d,"labels":{}}`, id)
}

// publish sends ids [from, to) round-robin over the streams at QoS 1 with
// window messages in flight and returns the PUBACKed records; a publish
// not acked is an error.
func publish(addr, clientID string, from, to, window int) ([]edgecheck.Published, error) {
	c := paho.NewClient(mqttOptions("tcp://" + addr).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).SetCleanSession(true))
	if tk := c.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		return nil, fmt.Errorf("connect: %v", tk.Error())
	}
	defer c.Disconnect(0)
	type inflight struct {
		rec edgecheck.Published
		tok paho.Token
	}
	var acked []edgecheck.Published
	q := make([]inflight, 0, window)
	drain := func(n int) error {
		for len(q) > n {
			f := q[0]
			q = q[1:]
			if !f.tok.WaitTimeout(30*time.Second) || f.tok.Error() != nil {
				return fmt.Errorf("publish not acked: %v", f.tok.Error())
			}
			acked = append(acked, f.rec)
		}
		return nil
	}
	streams := edgecheck.Streams
	for id := from; id < to; id++ {
		s := streams[id%len(streams)]
		r := edgecheck.Published{Stream: s, Payload: payload(s, id)}
		q = append(q, inflight{r, c.Publish("redforge/v1/"+s, 1, false, r.Payload)})
		if err := drain(window - 1); err != nil {
			return acked, err
		}
	}
	return acked, drain(0)
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
