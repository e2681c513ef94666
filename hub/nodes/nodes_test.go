package nodes_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/nodes"
	"github.com/redforge/controltower/internal/testenv"
)

// offlineRegistry is an address where no registry answers: an install
// that needed the network would fail.
const offlineRegistry = "http://127.0.0.1:9/"

func waitPrepared(t *testing.T, c *nodes.Cache, pkgs []catalog.NodePackage) (string, error) {
	t.Helper()
	var dir string
	var last error
	testenv.WaitFor(t, 2*time.Minute, "the node set installed", func() error {
		var err error
		dir, err = c.Prepare(pkgs)
		if errors.Is(err, nodes.ErrNotReady) {
			return err
		}
		last = err
		return nil
	})
	return dir, last
}

// TestInstallUploadedPackageOffline: an uploaded tarball installs with no
// registry reachable, and the set's tree copies into a user dir.
func TestInstallUploadedPackageOffline(t *testing.T) {
	c := nodes.New(nodes.Config{Dir: t.TempDir(), Registry: offlineRegistry})
	pkg := testenv.NodePackage{Name: "node-red-contrib-greet", Version: "1.0.0", Type: "greet", Reply: "hi"}
	tb, err := c.Store(bytes.NewReader(pkg.Tarball(t)))
	if err != nil {
		t.Fatal(err)
	}
	if tb.Name != pkg.Name || tb.Version != "1.0.0" || len(tb.SHA256) != 64 || !c.Has(tb.SHA256) {
		t.Fatalf("stored %+v", tb)
	}
	set := []catalog.NodePackage{{Name: tb.Name, Version: tb.Version, Source: catalog.NodeSourceUpload, SHA256: tb.SHA256}}
	if _, err := c.Prepare(set); !errors.Is(err, nodes.ErrNotReady) {
		t.Fatalf("first Prepare: %v, want ErrNotReady while it installs", err)
	}
	dir, err := waitPrepared(t, c, set)
	if err != nil {
		t.Fatalf("install: %v", err)
	}
	dst := filepath.Join(t.TempDir(), "node_modules")
	if err := nodes.CopyTree(dir, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dst, "node-red-contrib-greet", "greet.js")); err != nil || !strings.Contains(string(b), "registerType") {
		t.Fatalf("copied tree lacks the node: %v", err)
	}
	// Prepared again from the cache, even by a new Cache on the same dir.
	again, err := nodes.New(nodes.Config{Dir: c2dir(dir)}).Prepare(set)
	if err != nil || again != dir {
		t.Fatalf("a second cache on the same dir: %q %v, want %q", again, err, dir)
	}
}

// c2dir is the cache dir of a set's node_modules dir (…/sets/{hash}/node_modules).
func c2dir(setModules string) string { return filepath.Dir(filepath.Dir(filepath.Dir(setModules))) }

// TestInstallFailures: a dependency that is not in the tarball cannot be
// installed offline, and says so; bad tarballs are refused at upload.
func TestInstallFailures(t *testing.T) {
	c := nodes.New(nodes.Config{Dir: t.TempDir(), Registry: offlineRegistry})
	pkg := testenv.NodePackage{Name: "node-red-contrib-needy", Version: "2.0.0", Type: "needy", Reply: "x",
		Dependencies: map[string]string{"left-pad": "1.3.0"}}
	tb, err := c.Store(bytes.NewReader(pkg.Tarball(t)))
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitPrepared(t, c, []catalog.NodePackage{{Name: tb.Name, Version: tb.Version, Source: catalog.NodeSourceUpload, SHA256: tb.SHA256}})
	if err == nil || !strings.Contains(err.Error(), "npm install") {
		t.Fatalf("install with a missing dependency: %v, want npm's failure", err)
	}
	for name, body := range map[string][]byte{
		"not gzip":    []byte("plain text"),
		"no node-red": mustTar(t, `{"name":"left-pad","version":"1.0.0"}`),
		"bad name":    mustTar(t, `{"name":"../evil","version":"1.0.0","node-red":{}}`),
		"range":       mustTar(t, `{"name":"ok","version":"^1.0.0","node-red":{}}`),
	} {
		var fe *nodes.FieldError
		if _, err := c.Store(bytes.NewReader(body)); !errors.As(err, &fe) || fe.Field != "tarball" {
			t.Errorf("%s: %v, want a tarball error", name, err)
		}
	}
	if _, err := c.Prepare([]catalog.NodePackage{{Name: "x", Version: "1.0.0", Source: catalog.NodeSourceUpload, SHA256: strings.Repeat("a", 64)}}); !errors.Is(err, nodes.ErrNotReady) {
		t.Fatalf("prepare: %v", err)
	}
	_, err = waitPrepared(t, c, []catalog.NodePackage{{Name: "x", Version: "1.0.0", Source: catalog.NodeSourceUpload, SHA256: strings.Repeat("a", 64)}})
	if err == nil || !strings.Contains(err.Error(), "not on this hub") {
		t.Fatalf("a tarball no hub has: %v", err)
	}
}

func mustTar(t *testing.T, manifest string) []byte {
	return testenv.NodePackage{}.TarballWith(t, map[string][]byte{"package/package.json": []byte(manifest)})
}

func TestPolicy(t *testing.T) {
	p := nodes.Policy{Allow: []string{"node-red-contrib-*", "@acme/*"}, Deny: []string{"node-red-contrib-bad*"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"node-red-contrib-ok":  "",
		"@acme/tools":          "",
		"node-red-contrib-bad": "deny-list (node-red-contrib-bad*)",
		"left-pad":             "not on the cluster's allow-list (node-red-contrib-*, @acme/*)",
	} {
		err := p.Check(name)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && (err == nil || !errors.Is(err, nodes.ErrDenied) || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want %q", name, err, want)
		}
	}
	if err := (nodes.Policy{Deny: []string{"[x"}}).Validate(); err == nil || !strings.Contains(fmt.Sprint(err), "deny[0]") {
		t.Errorf("bad pattern: %v", err)
	}
	if err := (nodes.Policy{}).Check("anything"); err != nil {
		t.Errorf("empty policy refuses: %v", err)
	}
}

// FuzzReadPackage: any bytes uploaded as a tarball are refused or read,
// never a panic.
func FuzzReadPackage(f *testing.F) {
	f.Add(testenv.NodePackage{Name: "node-red-contrib-a", Version: "1.0.0", Type: "a", Reply: "x"}.Tarball(f))
	f.Add([]byte("not gzip"))
	f.Add(testenv.NodePackage{}.TarballWith(f, map[string][]byte{"package/package.json": []byte(`{"name":"x","version":"1.0.0","node-red":{}}`)}))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), "x.tgz")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if pkg, err := nodes.ReadPackage(p); err == nil && (nodes.CheckName(pkg.Name) != nil || nodes.CheckVersion(pkg.Version) != nil) {
			t.Fatalf("accepted %+v", pkg)
		}
	})
}
