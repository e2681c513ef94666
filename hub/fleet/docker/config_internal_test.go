package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/docker/go-connections/nat"

	"github.com/redforge/controltower/hub/fleet"
)

// TestBridgeConfig checks what the default (bridge) network mode asks of
// Docker; the test dockerd runs with --bridge=none, so this is checked on
// the request, not on a running container.
func TestBridgeConfig(t *testing.T) {
	d := New(Config{HubID: "hub-x", DataDir: t.TempDir(), ExtraLabels: map[string]string{LabelHub: "spoofed", "team": "a"}})
	d.dataDir = d.cfg.DataDir
	spec := fleet.Spec{InstanceID: "b1", Port: 18888, CPU: 1.5, MemoryMB: 512, AdminUser: "hub", AdminPassword: "pw",
		Env: map[string]string{"B": "2", "A": "1"}}
	cfg, hc := d.containerConfig(spec)
	if cfg.Image != DefaultImage || hc.NetworkMode != "bridge" {
		t.Errorf("image %q network %q", cfg.Image, hc.NetworkMode)
	}
	p := nat.Port("1880/tcp")
	if _, ok := cfg.ExposedPorts[p]; !ok {
		t.Errorf("exposed ports %v", cfg.ExposedPorts)
	}
	if b := hc.PortBindings[p]; len(b) != 1 || b[0].HostIP != "127.0.0.1" || b[0].HostPort != "18888" {
		t.Errorf("port bindings %v, want 127.0.0.1:18888 → 1880", hc.PortBindings)
	}
	if hc.NanoCPUs != 1_500_000_000 || hc.Memory != 512<<20 || hc.MemorySwap != 512<<20 {
		t.Errorf("resources %+v", hc.Resources)
	}
	if cfg.Labels[LabelHub] != "hub-x" || cfg.Labels["team"] != "a" || cfg.Labels[LabelPort] != "18888" {
		t.Errorf("labels %v: extra labels kept, ours not overridable", cfg.Labels)
	}
	if strings.Join(cfg.Env, ",") != "A=1,B=2,HOME=/data" {
		t.Errorf("env %v", cfg.Env)
	}
	if cfg.User == "" || strings.HasPrefix(cfg.User, "0:") || !hc.ReadonlyRootfs || hc.Tmpfs["/tmp"] != TmpfsOptions ||
		strings.Join(hc.CapDrop, ",") != "ALL" || strings.Join(hc.SecurityOpt, ",") != "no-new-privileges:true" || hc.Privileged {
		t.Errorf("confinement: user %q, read-only root %v, tmpfs %v, cap drop %v, security opts %v, privileged %v",
			cfg.User, hc.ReadonlyRootfs, hc.Tmpfs, hc.CapDrop, hc.SecurityOpt, hc.Privileged)
	}
	if err := d.writeUserDir(spec); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(d.userDir("b1"), fleet.SettingsFile))
	if err != nil {
		t.Fatal(err)
	}
	// In a bridge network Node-RED listens on all of the container's
	// interfaces, port 1880 (the settings travel as an escaped JSON string).
	if !strings.Contains(string(b), `\"uiHost\": \"0.0.0.0\"`) || !strings.Contains(string(b), `\"uiPort\": 1880`) {
		t.Errorf("bridge settings.js does not listen on 0.0.0.0:1880:\n%s", b)
	}
}
