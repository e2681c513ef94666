// Package fleettest is the contract suite every fleet.Driver passes: Run
// drives a real Node-RED through create, start, health with adminAuth, a
// deployed http-in flow, stats, logs, stop, start, restart, a kill behind
// the driver's back and removal, plus duplicate and invalid specs, hub
// isolation and adoption by a new driver value. BenchCreateToHealthy
// measures how long instances take to answer. It owns no driver: each
// driver's tests call it with a Harness.
package fleettest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/nodered"
)

// Timeouts of the suite, generous for two shared cores.
const (
	StartTimeout = 90 * time.Second
	opTimeout    = 60 * time.Second
	AdminUser    = "tower-test"
)

// Harness is how the suite drives one implementation.
type Harness struct {
	// New returns an opened driver for hub hubID that keeps instance data
	// under dataDir (<dataDir>/instances/<id>/userdir); it registers its
	// Close with tb.Cleanup. It is called more than once with the same
	// arguments to model a hub restart.
	New func(tb testing.TB, hubID, dataDir string) fleet.Driver
	// Kill kills the instance's runtime with SIGKILL behind the driver's
	// back (the Docker API directly; kill(2) on the pid).
	Kill func(tb testing.TB, rt fleet.Runtime)
	// Gone returns an error while anything of the runtime (container,
	// process) is left.
	Gone func(rt fleet.Runtime) error
	// UserDir, when set, is where driver d keeps the instance's Node-RED
	// user dir (on the hub's machine); nil means
	// <dataDir>/instances/<id>/userdir.
	UserDir func(d fleet.Driver, dataDir, instanceID string) string
}

func (h Harness) userDir(d fleet.Driver, dataDir, id string) string {
	if h.UserDir != nil {
		return h.UserDir(d, dataDir, id)
	}
	return filepath.Join(instanceDir(dataDir, id), "userdir")
}

// Run runs the contract suite against the driver the harness makes.
func Run(t *testing.T, h Harness) {
	t.Run("Lifecycle", func(t *testing.T) { testLifecycle(t, h) })
	t.Run("CreateTwice", func(t *testing.T) { testCreateTwice(t, h) })
	t.Run("InvalidSpec", func(t *testing.T) { testInvalidSpec(t, h) })
	t.Run("ListIsPerHub", func(t *testing.T) { testListIsPerHub(t, h) })
	t.Run("Adoption", func(t *testing.T) { testAdoption(t, h) })
	t.Run("ExitNotify", func(t *testing.T) { testExitNotify(t, h) })
}

// NewHubID returns a random hub id, so tests sharing a dockerd or data dir
// never see each other's instances.
func NewHubID() string { return "hub-" + randomHex(6) }

// NewSpec returns a valid spec for a fresh instance on a free port, with a
// random admin password and one environment variable.
func NewSpec(tb testing.TB, prefix string) fleet.Spec {
	tb.Helper()
	return fleet.Spec{
		InstanceID: prefix + "-" + randomHex(5), Name: prefix + " instance",
		Port: testenv.FreePort(tb), MemoryMB: 256,
		Env:       map[string]string{"REDFORGE_GREETING": `hi "there"; $(not a shell)`},
		AdminUser: AdminUser, AdminPassword: "pw-" + randomHex(12),
	}
}

// NewDriver makes a driver and removes every instance it still lists when
// the test ends, so no Node-RED outlives a failed test.
func NewDriver(tb testing.TB, h Harness, hubID, dataDir string) fleet.Driver {
	tb.Helper()
	d := h.New(tb, hubID, dataDir)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		rts, err := d.List(ctx)
		if err != nil {
			tb.Errorf("cleanup: list: %v", err)
			return
		}
		for _, rt := range rts {
			if err := d.Remove(ctx, rt.InstanceID); err != nil {
				tb.Errorf("cleanup: remove %s: %v", rt.InstanceID, err)
			}
		}
	})
	return d
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	tb.Cleanup(cancel)
	return ctx
}

func baseURL(port int) string { return fmt.Sprintf("http://127.0.0.1:%d", port) }

// adminURL is where a runtime's editor and admin API answer.
func adminURL(port int) string { return baseURL(port) + fleet.AdminRoot }

// Client returns a Node-RED Admin API client logged in as the spec's admin.
func Client(tb testing.TB, spec fleet.Spec) *nodered.Client {
	tb.Helper()
	c, err := newClient(spec)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func newClient(spec fleet.Spec) (*nodered.Client, error) {
	return nodered.New(adminURL(spec.Port), spec.AdminUser, spec.AdminPassword)
}

// WaitHealthy waits until the instance answers /settings with the admin
// credentials and runs Node-RED 4.
func WaitHealthy(tb testing.TB, spec fleet.Spec) {
	tb.Helper()
	c := Client(tb, spec)
	testenv.WaitFor(tb, StartTimeout, spec.InstanceID+" healthy", func() error {
		v, err := c.Version(context.Background())
		if err == nil && !strings.HasPrefix(v, "4.") {
			return fmt.Errorf("Node-RED version %q, want 4.x", v)
		}
		return err
	})
}

// HelloFlow is a tab with GET /hello → reply and GET /env → the value of
// the REDFORGE_GREETING environment variable.
func HelloFlow(reply string) []json.RawMessage {
	doc := fmt.Sprintf(`[
	 {"id":"tab1","type":"tab","label":"hello"},
	 {"id":"in1","type":"http in","z":"tab1","url":"/hello","method":"get","wires":[["set1"]]},
	 {"id":"set1","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":%q,"tot":"str"}],"wires":[["out1"]]},
	 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]},
	 {"id":"in2","type":"http in","z":"tab1","url":"/env","method":"get","wires":[["set2"]]},
	 {"id":"set2","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":"REDFORGE_GREETING","tot":"env"}],"wires":[["out2"]]},
	 {"id":"out2","type":"http response","z":"tab1","statusCode":"200","wires":[]}
	]`, reply)
	var nodes []json.RawMessage
	if err := json.Unmarshal([]byte(doc), &nodes); err != nil {
		panic(err)
	}
	return nodes
}

var plainHTTP = &http.Client{Timeout: 5 * time.Second}

// get returns the status and body of GET url.
func get(url string) (int, string, error) {
	resp, err := plainHTTP.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func waitBody(tb testing.TB, url, want string) {
	tb.Helper()
	testenv.WaitFor(tb, opTimeout, "GET "+url+" = "+want, func() error {
		code, body, err := get(url)
		if err != nil {
			return err
		}
		if code != http.StatusOK || body != want {
			return fmt.Errorf("GET %s = %d %q", url, code, body)
		}
		return nil
	})
}

// portAnswers reports whether something accepts connections on the port.
func portAnswers(port int) bool {
	c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// portFree returns nil once a listener can bind the port.
func portFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}

func instanceDir(dataDir, id string) string { return filepath.Join(dataDir, "instances", id) }

func mustInspect(tb testing.TB, d fleet.Driver, id string, want fleet.State) fleet.Runtime {
	tb.Helper()
	rt, err := d.Inspect(ctxT(tb), id)
	if err != nil {
		tb.Fatalf("Inspect %s: %v", id, err)
	}
	if rt.State != want {
		tb.Fatalf("Inspect %s: state %q, want %q (%+v)", id, rt.State, want, rt)
	}
	return rt
}

func listIDs(tb testing.TB, d fleet.Driver) []string {
	tb.Helper()
	rts, err := d.List(ctxT(tb))
	if err != nil {
		tb.Fatalf("List: %v", err)
	}
	ids := make([]string, len(rts))
	for i, rt := range rts {
		ids[i] = rt.InstanceID
	}
	return ids
}

// logBuffer collects a following log stream.
type logBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func readAll(tb testing.TB, rc io.ReadCloser, err error) string {
	tb.Helper()
	if err != nil {
		tb.Fatalf("Logs: %v", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		tb.Fatalf("Logs: read: %v", err)
	}
	return string(b)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

func isNotFound(err error) bool { return errors.Is(err, fleet.ErrNotFound) }

func dirGone(path string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s still exists (stat: %v)", path, err)
	}
	return nil
}
