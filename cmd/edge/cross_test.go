package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/internal/testenv"
)

// qemuStartTimeout is how long the emulated binary may take to serve
// /healthz; emulation on a busy 2-core machine is slow.
const qemuStartTimeout = 90 * time.Second

// TestCrossBuildRunsUnderQemu builds the static Raspberry Pi binaries
// (CGO_ENABLED=0, linux/arm64 and linux/arm GOARM=7), checks they are
// static ELF files for the right machine, runs each under qemu-user-static
// with free ports and a temp data dir, waits for /healthz, publishes one
// QoS 1 record, stops it with SIGTERM and expects exit 0 and the record in
// the outbox it left behind.
func TestCrossBuildRunsUnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and emulates")
	}
	if runtime.GOOS != "linux" {
		t.Skip("qemu-user runs on linux only")
	}
	for _, tc := range []struct {
		name, goarch, goarm string
		machine             elf.Machine
	}{
		{"arm64", "arm64", "", elf.EM_AARCH64},
		{"armv7", "arm", "7", elf.EM_ARM},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qemu := testenv.Qemu(t, tc.goarch)
			start := time.Now()
			bin := buildEdge(t, tc.goarch, tc.goarm)
			t.Logf("built %s in %s", filepath.Base(bin), time.Since(start).Round(time.Millisecond))
			assertStaticELF(t, bin, tc.machine)
			runUnderQemu(t, qemu, bin)
		})
	}
}

func buildEdge(t *testing.T, goarch, goarm string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redforge-edge-"+goarch+goarm)
	cmd := exec.Command(goTool(t), "build", "-trimpath", "-o", bin, ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build GOARCH=%s GOARM=%s: %v\n%s", goarch, goarm, err, out)
	}
	return bin
}

// assertStaticELF fails unless bin is an ELF for machine with no program
// interpreter (PT_INTERP) and no shared library dependencies.
func assertStaticELF(t *testing.T, bin string, machine elf.Machine) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Machine != machine {
		t.Fatalf("%s: machine %s, want %s", bin, f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s has PT_INTERP: dynamically linked", bin)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Fatalf("%s needs shared libraries %v (%v)", bin, libs, err)
	}
}

func runUnderQemu(t *testing.T, qemu, bin string) {
	t.Helper()
	dataDir := t.TempDir()
	mqttAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	httpAddr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	var logs testenv.Buffer
	cmd := exec.Command(qemu, bin, "--data-dir", dataDir, "--mqtt-listen", mqttAddr, "--listen", httpAddr, "--mqtt-users", testUsersFile(t))
	cmd.Env = withoutEdgeEnv(os.Environ())
	cmd.Stdout, cmd.Stderr = &logs, &logs
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
		default:
			cmd.Process.Kill()
			<-exited
		}
	})

	client := &http.Client{Timeout: 5 * time.Second}
	testenv.WaitFor(t, qemuStartTimeout, "GET /healthz of the emulated edge", func() error {
		select {
		case <-exited:
			t.Fatalf("edge exited before it was healthy: %v\n%s", waitErr, logs.String())
		default:
		}
		return healthy(client, "http://"+httpAddr+"/healthz")
	})
	healthyAfter := time.Since(started)

	publishTo(t, mqttAddr, "redforge/v1/checkpoints", `{"step":1}`)

	stopAt := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("no exit 30s after SIGTERM\n%s", logs.String())
	}
	if waitErr != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", waitErr, logs.String())
	}
	if !strings.Contains(logs.String(), "redforge-edge stopped") {
		t.Fatalf("no clean-stop log line:\n%s", logs.String())
	}
	t.Logf("%s: healthy %s after start under qemu, exited 0 %s after SIGTERM",
		filepath.Base(bin), healthyAfter.Round(time.Millisecond), time.Since(stopAt).Round(time.Millisecond))

	// The database written by the emulated binary opens here, record intact.
	o := outbox.New(filepath.Join(dataDir, "outbox.db"))
	if err := o.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	recs, err := o.Pending(context.Background(), outbox.StreamCheckpoints, 0, 10)
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != `{"step":1}` || recs[0].Verify() != nil {
		t.Fatalf("outbox after emulated run: %v %+v", err, recs)
	}
}

func healthy(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	if !strings.Contains(string(body), `"status":"ok"`) {
		return errors.New("body: " + string(body))
	}
	return nil
}

func publishTo(t *testing.T, addr, topic, payload string) {
	t.Helper()
	c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + addr).
		SetClientID("cross-test").SetAutoReconnect(false).SetConnectTimeout(30 * time.Second).
		SetUsername(testMQTTUser).SetPassword(testMQTTPassword))
	if tok := c.Connect(); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to emulated broker: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("publish to emulated broker: no PUBACK (%v)", tok.Error())
	}
}

// withoutEdgeEnv drops REDFORGE_EDGE_* so the host's settings cannot leak
// into the child.
func withoutEdgeEnv(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, EnvPrefix) {
			out = append(out, kv)
		}
	}
	return out
}
