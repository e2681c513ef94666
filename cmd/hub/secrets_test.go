package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestSecretsFromFilesProcess: two hub processes whose admin password and
// cluster secret come only from files (--secrets-dir on one,
// REDFORGE_*_FILE on the other), as Docker and Kubernetes mount secrets:
// the admin logs in with the password from the file and the second hub
// joins with the secret from its file.
func TestSecretsFromFilesProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("multi-hub process test (-short)")
	}
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	if err := os.Mkdir(secrets, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]string{"admin-password": adminPassword + "\n", "cluster-secret": clusterSecret + "\n"} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(value), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	noEnv := []string{"REDFORGE_ADMIN_PASSWORD=", "REDFORGE_CLUSTER_SECRET="}
	o := clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Hour, env: noEnv}
	o.extra = []string{"--secrets-dir", secrets}
	a := startHubProc(t, "hub-a", "us", "", o)
	token := a.login(t) // the password from the file, or a random one
	o.extra = nil
	o.env = append(noEnv, "REDFORGE_CLUSTER_SECRET_FILE="+filepath.Join(secrets, "cluster-secret"))
	b := startHubProc(t, "hub-b", "eu", a.api, o)
	waitServers(t, a, token, "hub-a", "hub-b")
	if code, body, _, err := b.do("GET", "/api/cluster", token, nil); err != nil || code != 200 {
		t.Fatalf("token on the joined hub: %d %s %v", code, body, err)
	}
}
