package edgesync_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

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
		dir, err := testenv.BuildDir("redforge-edge-bin-")
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

// startEdge starts redforge-edge bin (under wrapper, if any) on dataDir
// with args (edgecheck.StartProcess).
func startEdge(tb testing.TB, wrapper []string, bin, dataDir string, args ...string) *edgecheck.Process {
	tb.Helper()
	return edgecheck.StartProcess(tb, edgecheck.ProcessConfig{Bin: bin, Wrapper: wrapper, DataDir: dataDir, Args: args})
}

// edgeIDOf waits for the edge of dataDir to enroll and returns its id.
func edgeIDOf(tb testing.TB, dataDir string, timeout time.Duration) string {
	tb.Helper()
	var id string
	testenv.WaitFor(tb, timeout, "edge enrollment", func() error {
		var err error
		id, err = edgecheck.ReadEdgeID(dataDir)
		return err
	})
	return id
}

// publish publishes ids [from, to) round-robin over the streams
// (edgecheck.Publish) and returns the PUBACKed records; it stops early,
// without error, when the connection drops.
func publish(addr, clientID string, from, to, window int) []edgecheck.Published {
	acked, _ := edgecheck.Publish(addr, clientID, from, to, window)
	return acked
}

// verifyHub checks that the hub holds exactly want for edgeID
// (edgecheck.Verify) and returns how many records it holds that no
// publisher saw PUBACKed, an error unless extraOK.
func verifyHub(tb testing.TB, st store.Store, edgeID string, want []edgecheck.Published, extraOK bool) int {
	tb.Helper()
	_, extra := edgecheck.Verify(tb, st, edgeID, want, extraOK)
	return extra
}
