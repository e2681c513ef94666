package edgesync_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
)

// envInt reads a size knob from the environment (tests stay small by
// default; benchmarks and soak runs raise them).
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

const testAdminPassword = "correct-horse-battery-staple-42"

// testHub is a real hub (Raft, Postgres store, API) on fixed ports so it
// can be restarted in place.
type testHub struct {
	t   testing.TB
	cfg hub.Config
	H   *hub.Hub
}

func startHub(tb testing.TB, dsn string) *testHub {
	tb.Helper()
	cfg := hub.DefaultConfig()
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb))
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb))
	cfg.MQTTListen = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.Store = dsn
	cfg.NodeID = "hub-test"
	cfg.AdminPassword = testAdminPassword
	th := &testHub{t: tb, cfg: cfg}
	th.open()
	tb.Cleanup(func() { th.close() })
	return th
}

func (th *testHub) open() {
	th.t.Helper()
	h := hub.New(th.cfg, "test", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Open(ctx); err != nil {
		th.t.Fatalf("open hub: %v", err)
	}
	th.H = h
}

func (th *testHub) close() {
	if th.H != nil {
		th.H.Close()
		th.H = nil
	}
}

// restart closes the hub (HTTP drains, Raft and the store close) and opens
// it again on the same ports, data dir and database.
func (th *testHub) restart() {
	th.t.Helper()
	th.close()
	th.open()
}

func (th *testHub) URL() string { return "http://" + th.cfg.Listen }

func (th *testHub) token(tb testing.TB) string {
	tb.Helper()
	tok, err := th.H.Sync.CreateToken(context.Background(), edgesync.TokenRequest{}, "test")
	if err != nil {
		tb.Fatal(err)
	}
	return tok.Token
}

// total returns the records committed for edgeID over all streams.
func (th *testHub) total(edgeID string) int64 {
	wm, err := th.H.Store.Watermarks(context.Background(), edgeID)
	if err != nil {
		return -1
	}
	var n int64
	for _, w := range wm {
		n += w.Count
	}
	return n
}

var (
	edgeBinOnce sync.Once
	edgeBin     string
	edgeBinErr  error
)

// buildEdge builds cmd/edge once per test binary (GOARCH as given).
func buildEdge(tb testing.TB, goarch, goarm string) string {
	tb.Helper()
	build := func() (string, error) {
		dir, err := os.MkdirTemp("", "redforge-edge-bin-")
		if err != nil {
			return "", err
		}
		bin := filepath.Join(dir, "redforge-edge-"+goarch+goarm)
		cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../../cmd/edge")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("go build: %v\n%s", err, out)
		}
		return bin, nil
	}
	if goarch != runtime.GOARCH {
		bin, err := build()
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.RemoveAll(filepath.Dir(bin)) })
		return bin
	}
	edgeBinOnce.Do(func() { edgeBin, edgeBinErr = build() })
	if edgeBinErr != nil {
		tb.Fatal(edgeBinErr)
	}
	return edgeBin
}

// The MQTT user every test edge knows (edgeUsersFile); publishers connect
// as it (edgeMQTTOptions).
const (
	edgeMQTTUser     = "publisher"
	edgeMQTTPassword = "publisher-password-1"
)

// edgeUsersFile writes a --mqtt-users file holding edgeMQTTUser.
func edgeUsersFile(tb testing.TB) string {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(edgeMQTTPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(tb.TempDir(), "mqtt-users")
	if err := os.WriteFile(path, []byte(edgeMQTTUser+":"+string(h)+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// edgeMQTTOptions are paho options for broker, authenticated as edgeMQTTUser.
func edgeMQTTOptions(broker string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(broker).SetUsername(edgeMQTTUser).SetPassword(edgeMQTTPassword)
}

// edgeProc is redforge-edge running as a child process.
type edgeProc struct {
	cmd    *exec.Cmd
	logs   *testenv.Buffer
	exited chan struct{}
	MQTT   string
	HTTP   string
}

func startEdge(tb testing.TB, wrapper []string, bin, dataDir string, args ...string) *edgeProc {
	tb.Helper()
	p := &edgeProc{logs: &testenv.Buffer{}, exited: make(chan struct{}),
		MQTT: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb)),
		HTTP: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb))}
	argv := append(append([]string{}, wrapper...), bin, "--data-dir", dataDir, "--mqtt-listen", p.MQTT, "--listen", p.HTTP, "--log-level", "warn",
		"--mqtt-users", edgeUsersFile(tb))
	argv = append(argv, args...)
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() { p.kill() })
	return p
}

func (p *edgeProc) kill() {
	select {
	case <-p.exited:
	default:
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.exited
	}
}

// waitMQTT waits until the edge's broker accepts a connection.
func (p *edgeProc) waitMQTT(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	testenv.WaitFor(tb, timeout, "edge MQTT listener", func() error {
		select {
		case <-p.exited:
			tb.Fatalf("edge exited:\n%s", p.logs.String())
		default:
		}
		c := paho.NewClient(edgeMQTTOptions("tcp://" + p.MQTT).SetAutoReconnect(false).SetConnectTimeout(time.Second))
		tok := c.Connect()
		tok.WaitTimeout(2 * time.Second)
		if tok.Error() != nil || !c.IsConnected() {
			return fmt.Errorf("connect: %v", tok.Error())
		}
		c.Disconnect(0)
		return nil
	})
}

// edgeID reads the enrolled id from the edge's credential file.
func edgeIDOf(tb testing.TB, dataDir string, timeout time.Duration) string {
	tb.Helper()
	var id string
	testenv.WaitFor(tb, timeout, "edge enrollment", func() error {
		b, err := os.ReadFile(filepath.Join(dataDir, "credential.json"))
		if err != nil {
			return err
		}
		var c struct {
			EdgeID string `json:"edge_id"`
		}
		if err := json.Unmarshal(b, &c); err != nil {
			return err
		}
		id = c.EdgeID
		return nil
	})
	return id
}

// record is what a publisher sent and had PUBACKed.
type record struct {
	stream  string
	payload string
}

// payloadFor builds a record of a stream; id is unique across the test.
func payloadFor(stream string, id int) string {
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

var streams = edgecheck.Streams

// publisher publishes ids [from, to) round-robin over the streams at QoS 1
// with up to window messages in flight, and returns the PUBACKed records.
// It stops early (without error) when the connection drops.
func publish(addr, clientID string, from, to, window int) []record {
	c := paho.NewClient(edgeMQTTOptions("tcp://" + addr).SetClientID(clientID).
		SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetWriteTimeout(5 * time.Second).SetCleanSession(true))
	tok := c.Connect()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil
	}
	defer c.Disconnect(0)
	type inflight struct {
		rec record
		tok paho.Token
	}
	var acked []record
	q := make([]inflight, 0, window)
	drain := func(n int) bool {
		for len(q) > n {
			f := q[0]
			q = q[1:]
			if !f.tok.WaitTimeout(15*time.Second) || f.tok.Error() != nil {
				return false
			}
			acked = append(acked, f.rec)
		}
		return true
	}
	for id := from; id < to; id++ {
		s := streams[id%len(streams)]
		r := record{s, payloadFor(s, id)}
		q = append(q, inflight{r, c.Publish("redforge/v1/"+s, 1, false, r.payload)})
		if !drain(window - 1) {
			return acked
		}
	}
	drain(0)
	return acked
}

// verifyHub checks that the hub holds exactly want for edgeID
// (edgecheck.Verify) and returns how many records it holds that no
// publisher saw PUBACKed, an error unless extraOK.
func verifyHub(tb testing.TB, st store.Store, edgeID string, want []record, extraOK bool) int {
	tb.Helper()
	pub := make([]edgecheck.Published, len(want))
	for i, r := range want {
		pub[i] = edgecheck.Published{Stream: r.stream, Payload: r.payload}
	}
	_, extra := edgecheck.Verify(tb, st, edgeID, pub, extraOK)
	return extra
}
