package edgecheck

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/edge/agent"
	"github.com/redforge/controltower/internal/testenv"
)

// The MQTT user every test edge accepts (see UsersFile); publishers
// connect as it (MQTTOptions).
const (
	MQTTUser     = "publisher"
	MQTTPassword = "publisher-password-1"
)

// MQTTOptions are paho options for broker, authenticated as MQTTUser.
func MQTTOptions(broker string) *paho.ClientOptions {
	return paho.NewClientOptions().AddBroker(broker).SetUsername(MQTTUser).SetPassword(MQTTPassword)
}

// Users is the edge broker's user table holding MQTTUser (name to bcrypt
// hash, as broker.NewAuth takes it), for an in-process broker.
func Users(tb testing.TB) map[string][]byte {
	tb.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(MQTTPassword), bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	return map[string][]byte{MQTTUser: h}
}

// UsersFile writes an edge --mqtt-users file holding MQTTUser.
func UsersFile(tb testing.TB) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "mqtt-users")
	if err := os.WriteFile(path, []byte(MQTTUser+":"+string(Users(tb)[MQTTUser])+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// Process is a redforge-edge running as a child process of the test,
// killed at cleanup; its log is printed when the test failed.
type Process struct {
	Cmd     *exec.Cmd
	Logs    *testenv.Buffer
	Exited  chan struct{} // closed when the process has exited
	MQTT    string        // host:port of its broker
	HTTP    string        // host:port of its health and metrics server
	DataDir string
}

// ProcessConfig says how to start an edge.
type ProcessConfig struct {
	Bin     string   // the redforge-edge binary (testenv.EdgeBinary)
	Wrapper []string // runs Bin under it (qemu), if any
	DataDir string   // default: a fresh temporary directory
	Args    []string // after --data-dir, --mqtt-listen, --listen, --log-level warn and --mqtt-users
	Env     []string // besides PATH
}

// StartProcess starts an edge on free loopback ports. It does not wait
// for it: see WaitMQTT and EdgeID.
func StartProcess(tb testing.TB, cfg ProcessConfig) *Process {
	tb.Helper()
	if cfg.DataDir == "" {
		cfg.DataDir = tb.TempDir()
	}
	p := &Process{Logs: &testenv.Buffer{}, Exited: make(chan struct{}), DataDir: cfg.DataDir,
		MQTT: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb)),
		HTTP: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb))}
	argv := append(append([]string{}, cfg.Wrapper...), cfg.Bin, "--data-dir", p.DataDir, "--mqtt-listen", p.MQTT, "--listen", p.HTTP,
		"--log-level", "warn", "--mqtt-users", UsersFile(tb))
	argv = append(argv, cfg.Args...)
	p.Cmd = exec.Command(argv[0], argv[1:]...)
	p.Cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, cfg.Env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Logs, p.Logs
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { _ = p.Cmd.Wait(); close(p.Exited) }()
	tb.Cleanup(func() {
		p.Kill()
		if tb.Failed() {
			tb.Logf("--- log of the edge ---\n%s", p.Logs.String())
		}
	})
	return p
}

// Kill SIGKILLs the edge and waits for it to exit.
func (p *Process) Kill() {
	select {
	case <-p.Exited:
	default:
		_ = p.Cmd.Process.Signal(syscall.SIGKILL)
		<-p.Exited
	}
}

// alive fails the test when the edge has exited.
func (p *Process) alive(tb testing.TB) {
	select {
	case <-p.Exited:
		tb.Fatalf("edge exited:\n%s", p.Logs.String())
	default:
	}
}

// WaitMQTT waits until the edge's broker accepts MQTTUser.
func (p *Process) WaitMQTT(tb testing.TB, timeout time.Duration) {
	tb.Helper()
	testenv.WaitFor(tb, timeout, "edge MQTT listener", func() error {
		p.alive(tb)
		c := paho.NewClient(MQTTOptions("tcp://" + p.MQTT).SetAutoReconnect(false).SetConnectTimeout(time.Second))
		tok := c.Connect()
		if !tok.WaitTimeout(2*time.Second) || tok.Error() != nil || !c.IsConnected() {
			return fmt.Errorf("connect: %v", tok.Error())
		}
		c.Disconnect(0)
		return nil
	})
}

// EdgeID waits for the edge to enroll and returns the id in its
// credential file; the test fails at once if the edge exits first.
func (p *Process) EdgeID(tb testing.TB, timeout time.Duration) string {
	tb.Helper()
	var id string
	testenv.WaitFor(tb, timeout, "edge enrollment", func() error {
		p.alive(tb)
		var err error
		id, err = ReadEdgeID(p.DataDir)
		return err
	})
	return id
}

// ReadEdgeID returns the edge id in the credential file of an edge data
// directory, an error until the edge has enrolled.
func ReadEdgeID(dataDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dataDir, agent.CredentialFile))
	if err != nil {
		return "", err
	}
	var c agent.Credential
	if err := json.Unmarshal(b, &c); err != nil || c.EdgeID == "" {
		return "", fmt.Errorf("%s: %v", agent.CredentialFile, err)
	}
	return c.EdgeID, nil
}
