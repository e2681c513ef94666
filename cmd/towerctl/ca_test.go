package main

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/hubtest"
)

// towerctl cluster ca init|issue makes a CA (key 0600, its pin printed)
// and hub certificates for names and addresses that chain to it; a hub
// started with them serves HTTPS that towerctl reaches with --ca
// (REDFORGE_HUB_CA), long commands included, and refuses to trust without.
func TestClusterCACommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ca")
	var h *hubtest.Hub // set below; run needs one only for the hub URL
	ctl := func(env map[string]string, args ...string) (int, string) {
		t.Helper()
		if h == nil {
			h = &hubtest.Hub{URL: "http://127.0.0.1:1"}
		}
		return run(t, h, filepath.Join(dir, "..", "session.json"), env, args...)
	}
	code, out := ctl(nil, "cluster", "ca", "init", "--dir", dir, "--name", "test cluster CA")
	if code != 0 || !strings.Contains(out, "CA pin: sha256:") {
		t.Fatalf("ca init = %d\n%s", code, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, pki.CAKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key: %v %v, want mode 0600", fi, err)
	}
	if code, out := ctl(nil, "cluster", "ca", "init", "--dir", dir); code == 0 || !strings.Contains(out, "already exists") {
		t.Fatalf("second ca init = %d, want a refusal:\n%s", code, out)
	}
	if code, out := ctl(nil, "cluster", "ca", "issue", "--dir", dir, "--name", "hub1"); code == 0 || !strings.Contains(out, "--host") {
		t.Fatalf("issue without --host = %d\n%s", code, out)
	}
	code, out = ctl(nil, "cluster", "ca", "issue", "--dir", dir, "--name", "hub1", "--host", "127.0.0.1,hub1.example.net", "--days", "30")
	if code != 0 || !strings.Contains(out, "--cluster-cert") {
		t.Fatalf("ca issue = %d\n%s", code, out)
	}
	ca, err := pki.LoadCA(dir)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pki.ReadCerts(filepath.Join(dir, "hub1.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	for _, name := range []string{"127.0.0.1", "hub1.example.net"} {
		if _, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, DNSName: name}); err != nil {
			t.Errorf("hub1.crt for %s: %v", name, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "hub1.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("hub1.key: %v %v, want mode 0600", fi, err)
	}

	h = hubtest.Start(t, func(c *hub.Config) {
		c.ClusterCA = filepath.Join(dir, pki.CACertFile)
		c.ClusterCert, c.ClusterKey = filepath.Join(dir, "hub1.crt"), filepath.Join(dir, "hub1.key")
	})
	withCA := map[string]string{"REDFORGE_HUB_CA": filepath.Join(dir, pki.CACertFile), "REDFORGE_TOKEN": h.AdminToken}
	if code, out := ctl(map[string]string{"REDFORGE_TOKEN": h.AdminToken}, "health"); code == 0 || !strings.Contains(out, "certificate") {
		t.Fatalf("health over HTTPS without the CA = %d, want a certificate error:\n%s", code, out)
	}
	if code, out := ctl(withCA, "health"); code != 0 {
		t.Fatalf("health with --ca = %d\n%s", code, out)
	}
	// backup create runs on a client of its own with a longer timeout.
	if code, out := ctl(withCA, "backup", "create"); code != 0 {
		t.Fatalf("backup create with --ca = %d\n%s", code, out)
	}
}
