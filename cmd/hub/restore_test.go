package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

func restoreCmd(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	var out testenv.Buffer
	r := &Restore{Stdout: &out, Stderr: &out, Getenv: func(k string) string { return env[k] }}
	code := r.Run(context.Background(), args)
	return code, out.String()
}

func httpGet(url string) (int, string) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String()
}

const drillFlow = `[
 {"id":"tab1","type":"tab","label":"dr"},
 {"id":"in1","type":"http in","z":"tab1","url":"/hello","method":"get","wires":[["fn1"]]},
 {"id":"fn1","type":"change","z":"tab1","rules":[{"t":"set","p":"payload","pt":"msg","to":"restored-from-s3","tot":"str"}],"wires":[["out1"]]},
 {"id":"out1","type":"http response","z":"tab1","statusCode":"200","wires":[]}
]`

// TestDrillControlTowerLossFromS3: a hub backs up to an S3-compatible
// bucket (SeaweedFS), age-encrypted with its secrets key inside; then its
// data dir and store are gone, runtimes included. redforge-hub restore
// latest --from the bucket rebuilds it into a new data dir; the hub started
// on it has the users and serves the instance's flows. RPO is the time
// since the backup, RTO from the loss to the instance serving again. A
// second restore into the now used data dir is refused, naming it.
func TestDrillControlTowerLossFromS3(t *testing.T) {
	s3 := testenv.S3(t)
	for k, v := range s3.Env() {
		t.Setenv(k, v)
	}
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	vault := t.TempDir() // the operator's safe, apart from the hub
	idFile := filepath.Join(vault, "backup.agekey")
	if err := os.WriteFile(idFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := hubtest.Start(t, func(c *hub.Config) {
		c.BackupDest = s3.URL
		c.BackupAgeRecipients = id.Recipient().String()
		c.BackupIncludeKey = true
	})
	h.CreateUser(t, "dana", "OPERATOR")
	var inst struct {
		ID string `json:"id"`
	}
	h.JSON(t, "POST", "/api/instances", map[string]any{"name": "ct"}, 201, &inst)
	testenv.WaitFor(t, 90*time.Second, "instance running", func() error {
		var v struct {
			Observed struct{ Status string } `json:"observed"`
		}
		h.JSON(t, "GET", "/api/instances/ct", nil, 200, &v)
		if v.Observed.Status != fleet.StatusRunning {
			return fmt.Errorf("status %s", v.Observed.Status)
		}
		return nil
	})
	h.JSON(t, "PUT", "/api/instances/ct/flows", []byte(drillFlow), 200, nil)
	var made struct {
		Name string `json:"name"`
	}
	h.JSON(t, "POST", "/api/backups", nil, 201, &made)
	backedUp := time.Now()
	if !strings.HasSuffix(made.Name, ".tar.zst.age") {
		t.Fatalf("archive %s is not age-encrypted", made.Name)
	}

	// Total loss: the hub, its runtimes, its data dir and store.
	if err := h.Close(); err != nil {
		t.Log(err)
	}
	ctx := context.Background()
	rts, _ := h.Driver.List(ctx)
	for _, rt := range rts {
		_ = h.Driver.Remove(ctx, rt.InstanceID)
	}
	if err := os.RemoveAll(h.Config.DataDir); err != nil {
		t.Fatal(err)
	}
	lost := time.Now()

	dir := filepath.Join(t.TempDir(), "new")
	raft := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	code, out := restoreCmd(t, s3.Env(), "latest", "--from", s3.URL, "--data-dir", dir, "--raft-listen", raft, "--age-identity", idFile)
	if code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	t.Logf("%s", out)
	restored := time.Since(lost)
	h2 := hubtest.Start(t, func(c *hub.Config) { c.DataDir, c.RaftListen = dir, raft })
	h2.Login(t, "dana", "password-of-dana")
	testenv.WaitFor(t, 3*time.Minute, "the instance serving its flows again", func() error {
		if code, body := httpGet(h2.URL + "/i/ct/hello"); code != 200 || !strings.Contains(body, "restored-from-s3") {
			return fmt.Errorf("%d %q", code, body)
		}
		return nil
	})
	t.Logf("control-tower loss: RPO %v (since the backup), RTO %v (restore from S3 %v, then the hub up and the instance serving)",
		lost.Sub(backedUp).Round(time.Millisecond), time.Since(lost).Round(100*time.Millisecond), restored.Round(time.Millisecond))

	code, out = restoreCmd(t, s3.Env(), "latest", "--from", s3.URL, "--data-dir", dir, "--age-identity", idFile)
	if code == 0 || !strings.Contains(out, dir) || !strings.Contains(out, "not empty") {
		t.Fatalf("restore into a used data dir: exit %d: %s", code, out)
	}
	code, out = restoreCmd(t, s3.Env(), "latest", "--from", s3.URL, "--data-dir", filepath.Join(t.TempDir(), "x"))
	if code == 0 || !strings.Contains(out, "age-identity") {
		t.Fatalf("restore of an encrypted archive without its identity: exit %d: %s", code, out)
	}
	code, out = restoreCmd(t, s3.Env(), "--data-dir", filepath.Join(t.TempDir(), "y"))
	if code != 2 || !strings.Contains(out, "ARCHIVE") {
		t.Fatalf("restore without an archive: exit %d: %s", code, out)
	}
}
