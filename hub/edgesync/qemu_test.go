package edgesync_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// TestArmv7EdgeEnrollsAndSyncsUnderQemu runs the static linux/arm GOARM=7
// redforge-edge under qemu-arm-static: it enrolls with a one-time token at
// a real hub on loopback, accepts QoS 1 publishes and syncs them; the hub's
// Postgres then holds them exactly once.
func TestArmv7EdgeEnrollsAndSyncsUnderQemu(t *testing.T) {
	if testing.Short() {
		t.Skip("cross-compiles and emulates")
	}
	if runtime.GOOS != "linux" {
		t.Skip("qemu-user runs on linux only")
	}
	qemu := testenv.Qemu(t, "arm")
	bin := buildEdge(t, "arm", "7")
	th := startHub(t, testenv.Postgres(t))
	dataDir := t.TempDir()
	start := time.Now()
	token := th.token(t)
	edge := startEdge(t, []string{qemu}, bin, dataDir, "--hub", th.URL(), "--token", token, "--heartbeat-interval", "2s", "--log-level", "debug")
	edge.WaitMQTT(t, 90*time.Second)
	edgeID := edgeIDOf(t, dataDir, 60*time.Second)
	acked := publish(edge.MQTT, "qemu-pub", 0, 50, 10)
	if len(acked) != 50 {
		t.Fatalf("%d of 50 PUBACKed\n%s", len(acked), edge.Logs.String())
	}
	testenv.WaitFor(t, 60*time.Second, "records on the hub", func() error {
		if n := th.total(edgeID); n != 50 {
			return fmt.Errorf("hub holds %d of 50", n)
		}
		return nil
	})
	verifyHub(t, th.H.Store, edgeID, acked, false)
	testenv.WaitFor(t, 30*time.Second, "a heartbeat", func() error {
		v, err := th.H.Sync.Edge(t.Context(), edgeID)
		if err != nil || v.State != "online" {
			return fmt.Errorf("edge %+v %v", v, err)
		}
		return nil
	})
	cred, err := os.ReadFile(filepath.Join(dataDir, "credential.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ Credential string }
	json.Unmarshal(cred, &c)
	if fi, _ := os.Stat(filepath.Join(dataDir, "credential.json")); fi.Mode().Perm() != 0o600 {
		t.Errorf("credential file mode %v, want 0600", fi.Mode().Perm())
	}
	if logs := edge.Logs.String(); c.Credential == "" || strings.Contains(logs, c.Credential) || strings.Contains(logs, token) {
		t.Errorf("the credential or the token is in the debug log")
	}
	t.Logf("armv7 under qemu: enrolled as %s, 50 records PUBACKed and synced exactly once in %s", edgeID, time.Since(start).Round(time.Millisecond))
}
