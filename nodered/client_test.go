package nodered

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/internal/testenv"
)

func helloFlow(path, reply string) []json.RawMessage {
	doc := fmt.Sprintf(`[
	 {"id":"tab1","type":"tab","label":"hello"},
	 {"id":"in1","type":"http in","z":"tab1","url":"%s","method":"get","wires":[["fn1"]]},
	 {"id":"fn1","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":"%s","tot":"str"}],"wires":[["out1"]]},
	 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]}
	]`, path, reply)
	nodes, err := ValidateFlows([]byte(doc))
	if err != nil {
		panic(err)
	}
	return nodes
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestClientAgainstNodeRED(t *testing.T) {
	nr := testenv.NodeRED(t)
	c, err := New(nr.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("Health: %v", err)
	}
	if v, err := c.Version(ctx); err != nil || !strings.HasPrefix(v, "4.1") {
		t.Fatalf("Version = %q, %v; want 4.1.x", v, err)
	}
	before, err := c.GetFlows(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := c.DeployFlows(ctx, helloFlow("/hello", "v1"), before.Rev, DeployFull)
	if err != nil || rev == "" || rev == before.Rev {
		t.Fatalf("DeployFlows = %q, %v", rev, err)
	}
	testenv.WaitFor(t, 20*time.Second, "deployed flow answers", func() error {
		if code, body := get(t, nr.URL+"/hello"); code != 200 || body != "v1" {
			return fmt.Errorf("GET /hello = %d %q", code, body)
		}
		return nil
	})
	after, err := c.GetFlows(ctx)
	if err != nil || after.Rev != rev || len(after.Flows) != 4 {
		t.Fatalf("GetFlows after deploy = rev %q (%d nodes), %v; want rev %q, 4 nodes", after.Rev, len(after.Flows), err, rev)
	}
	// Deploying against the old rev must be refused, and change nothing.
	if _, err := c.DeployFlows(ctx, helloFlow("/hello", "v2"), before.Rev, DeployFull); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale rev deploy: %v, want ErrConflict", err)
	}
	if code, body := get(t, nr.URL+"/hello"); code != 200 || body != "v1" {
		t.Fatalf("after refused deploy GET /hello = %d %q, want v1", code, body)
	}
	if _, err := c.DeployFlows(ctx, helloFlow("/hello", "v2"), rev, DeployFlows); err != nil {
		t.Fatalf("flows deploy: %v", err)
	}
	testenv.WaitFor(t, 20*time.Second, "v2 answers", func() error {
		if code, body := get(t, nr.URL+"/hello"); body != "v2" {
			return fmt.Errorf("GET /hello = %d %q", code, body)
		}
		return nil
	})
}

// TestClientAdminAuth runs Node-RED with adminAuth and checks the client
// logs in with a bearer token and reports wrong credentials clearly.
func TestClientAdminAuth(t *testing.T) {
	paths := testenv.NodeREDPaths(t)
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	settings := fmt.Sprintf(`module.exports = {
  uiHost: "127.0.0.1", uiPort: %d, flowFile: "flows.json",
  adminAuth: {type: "credentials", users: [{username: "tower", password: %q, permissions: "*"}]},
  logging: {console: {level: "warn"}}
};`, port, hash)
	settingsFile := filepath.Join(dir, "settings.js")
	if err := os.WriteFile(settingsFile, []byte(settings), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(paths.Node, paths.RedJS, "--userDir", dir, "--settings", settingsFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, _ := os.Create(filepath.Join(dir, "nodered.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)

	ctx := context.Background()
	anon, _ := New(base, "", "")
	testenv.WaitFor(t, 60*time.Second, "Node-RED with adminAuth up", func() error { return anon.Health(ctx) })
	if _, err := anon.GetFlows(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("GetFlows without a token: %v, want ErrUnauthorized", err)
	}
	wrong, _ := New(base, "tower", "nope")
	if _, err := wrong.GetFlows(ctx); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("GetFlows with a wrong password: %v, want ErrUnauthorized", err)
	}
	c, _ := New(base, "tower", "s3cret-pass")
	f, err := c.GetFlows(ctx)
	if err != nil {
		t.Fatalf("GetFlows with credentials: %v", err)
	}
	if _, err := c.DeployFlows(ctx, helloFlow("/auth-hello", "ok"), f.Rev, DeployFull); err != nil {
		t.Fatalf("DeployFlows with credentials: %v", err)
	}
}

// TestClientTimeout points the client at a server that accepts and never
// answers: every call must return within its timeout.
func TestClientTimeout(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	c, _ := New("http://"+ln.Addr().String(), "", "")
	c.Timeout = 300 * time.Millisecond
	start := time.Now()
	err = c.Health(context.Background())
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Health against a silent server: %v, want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Health took %v despite a 300ms timeout", d)
	}
	if _, err := New("ftp://x", "", ""); err == nil {
		t.Fatal("ftp URL accepted")
	}
}
