// Package nodes installs the npm packages of Node-RED nodes an instance
// runs (catalog.Instance.Nodes), on each hub, for the hub's own runtimes.
// It owns a per-hub package cache in the data dir: uploaded tarballs
// (named by their SHA-256; a hub that lacks one fetches it from the hub it
// was uploaded to) and installed node sets, one node_modules tree per set
// (npm install, run by the hub with --ignore-scripts, so no package code
// runs at install). The fleet copies a set's tree into a runtime's user
// dir before the runtime starts (fleet.Spec.NodesDir): runtimes never run
// npm, and a confined runtime (read-only root, Landlock) needs no write
// access beyond its own user dir. It also owns the cluster-wide allow- and
// deny-lists (a catalog setting). It does not decide when a node set
// changes (a blue-green deployment does) nor serve HTTP (hub/api).
package nodes

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Limits.
const (
	// MaxTarballBytes bounds an uploaded package tarball.
	MaxTarballBytes = 30 << 20 // below the API's request body bound (32 MB)
	// DefaultInstallTimeout bounds one npm install of a node set.
	DefaultInstallTimeout = 5 * time.Minute
)

// Errors, matched with errors.Is.
var (
	// ErrNotReady: the node set is being installed; ask again later.
	ErrNotReady = errors.New("nodes: the node set is being installed")
	// ErrInvalid: a bad package name, version or tarball (a *FieldError
	// names the field).
	ErrInvalid = catalog.ErrInvalid
	// ErrDenied: the cluster's lists refuse the package (a *DeniedError).
	ErrDenied = errors.New("nodes: package refused by the cluster's node policy")
)

// FieldError names what is wrong with a request.
type FieldError struct{ Field, Message string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

var (
	// namePattern is npm's package name rule (lower case, url-safe, an
	// optional scope), which also keeps names safe as paths.
	namePattern = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]{0,213}$`)
	// versionPattern is an exact semantic version (no ranges: every hub
	// must install the same package).
	versionPattern = regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)
	shaPattern     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// CheckName and CheckVersion validate a package reference.
func CheckName(name string) error {
	if !namePattern.MatchString(name) || strings.Contains(name, "..") {
		return invalid("name", "%q is not an npm package name (lower case letters, digits, . _ ~ -, an optional @scope/)", name)
	}
	return nil
}

// CheckVersion refuses anything but an exact version.
func CheckVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return invalid("version", "%q is not an exact version such as 1.2.3 (ranges would let hubs install different code)", v)
	}
	return nil
}

// Fetcher gets an uploaded tarball from the hub it was uploaded to.
type Fetcher func(ctx context.Context, hub, sha string) (io.ReadCloser, error)

// Config configures a Cache.
type Config struct {
	// Dir holds the cache (tarballs/, sets/, npm/); the hub's data dir
	// subdirectory "nodes".
	Dir string
	// NPM is the npm binary; empty: "npm" from PATH.
	NPM string
	// Registry is the npm registry packages come from; empty: npm's own
	// configuration.
	Registry string
	// InstallTimeout bounds one install; DefaultInstallTimeout when zero.
	InstallTimeout time.Duration
	// Fetch gets a tarball this hub lacks from another hub (nil: none).
	Fetch  Fetcher
	Logger *slog.Logger
}

// Cache is one hub's package cache. It is safe for concurrent use.
type Cache struct {
	cfg Config
	log *slog.Logger

	mu      sync.Mutex
	ready   map[string]string  // set hash → node_modules dir
	failed  map[string]failure // set hash → the last install's failure
	running map[string]bool    // set hash → an install in progress
}

// failure is a failed install, reported until RetryAfter has passed.
type failure struct {
	err error
	at  time.Time
}

// RetryAfter is how long a failed install is reported before the next
// Prepare tries again.
const RetryAfter = time.Minute

// New returns a cache; it does no I/O.
func New(cfg Config) *Cache {
	if cfg.InstallTimeout <= 0 {
		cfg.InstallTimeout = DefaultInstallTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Cache{cfg: cfg, log: cfg.Logger, ready: map[string]string{}, failed: map[string]failure{}, running: map[string]bool{}}
}

// Tarball is an uploaded package.
type Tarball struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Size    int64  `json:"size"`
}

func (c *Cache) tarballPath(sha string) string {
	return filepath.Join(c.cfg.Dir, "tarballs", sha+".tgz")
}

// Store keeps an uploaded tarball (at most MaxTarballBytes) after checking
// it is an npm package of Node-RED nodes: a gzipped tar whose
// package/package.json has a valid name, an exact version and a
// "node-red" section. Errors: a *FieldError (field "tarball") for
// anything else.
func (c *Cache) Store(r io.Reader) (Tarball, error) {
	if err := os.MkdirAll(filepath.Join(c.cfg.Dir, "tarballs"), 0o700); err != nil {
		return Tarball{}, err
	}
	tmp, err := os.CreateTemp(filepath.Join(c.cfg.Dir, "tarballs"), ".upload-*")
	if err != nil {
		return Tarball{}, err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, MaxTarballBytes+1))
	if err != nil {
		tmp.Close()
		return Tarball{}, fmt.Errorf("read the tarball: %w", err)
	}
	if n > MaxTarballBytes {
		tmp.Close()
		return Tarball{}, invalid("tarball", "larger than %d MB", MaxTarballBytes>>20)
	}
	if err := tmp.Close(); err != nil {
		return Tarball{}, err
	}
	pkg, err := ReadPackage(tmp.Name())
	if err != nil {
		return Tarball{}, err
	}
	t := Tarball{Name: pkg.Name, Version: pkg.Version, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	if err := os.Rename(tmp.Name(), c.tarballPath(t.SHA256)); err != nil {
		return Tarball{}, err
	}
	return t, nil
}

// Package is what ReadPackage finds in a tarball's package.json.
type Package struct {
	Name    string          `json:"name"`
	Version string          `json:"version"`
	NodeRED json.RawMessage `json:"node-red"`
}

// ReadPackage reads package/package.json from an npm tarball and checks
// it (see Store).
func ReadPackage(file string) (Package, error) {
	f, err := os.Open(file)
	if err != nil {
		return Package{}, err
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		return Package{}, invalid("tarball", "not a gzipped tarball (npm pack makes one): %v", err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return Package{}, invalid("tarball", "no package/package.json in the tarball (npm pack makes one)")
		}
		if err != nil {
			return Package{}, invalid("tarball", "not a readable tarball: %v", err)
		}
		if path.Clean(hdr.Name) != "package/package.json" {
			continue
		}
		var p Package
		if err := json.NewDecoder(io.LimitReader(tr, 1<<20)).Decode(&p); err != nil {
			return Package{}, invalid("tarball", "package.json does not decode: %v", err)
		}
		if err := CheckName(p.Name); err != nil {
			return Package{}, invalid("tarball", "package.json: %v", err)
		}
		if err := CheckVersion(p.Version); err != nil {
			return Package{}, invalid("tarball", "package.json: %v", err)
		}
		if len(p.NodeRED) == 0 || string(p.NodeRED) == "null" {
			return Package{}, invalid("tarball", "%s has no \"node-red\" section in its package.json: it is not a package of Node-RED nodes", p.Name)
		}
		return p, nil
	}
}

// Open returns an uploaded tarball this hub has (for another hub).
// Errors: os.ErrNotExist.
func (c *Cache) Open(sha string) (*os.File, error) {
	if !shaPattern.MatchString(sha) {
		return nil, os.ErrNotExist
	}
	return os.Open(c.tarballPath(sha))
}

// Has reports whether this hub has an uploaded tarball.
func (c *Cache) Has(sha string) bool {
	f, err := c.Open(sha)
	if err == nil {
		f.Close()
	}
	return err == nil
}

// SetHash names a node set (order does not matter).
func SetHash(pkgs []catalog.NodePackage) string {
	keys := make([]string, 0, len(pkgs))
	for _, p := range pkgs {
		keys = append(keys, p.Name+"@"+p.Version+"#"+p.Source+"#"+p.SHA256)
	}
	slices.Sort(keys)
	h := sha256.Sum256([]byte(strings.Join(keys, "\n")))
	return hex.EncodeToString(h[:8])
}

// Prepare returns the node_modules tree of a node set, installed in this
// hub's cache. A set not installed yet is installed in the background:
// Prepare then returns an error wrapping ErrNotReady, and the caller asks
// again; a failed install returns its error for RetryAfter, then is
// tried again.
func (c *Cache) Prepare(pkgs []catalog.NodePackage) (string, error) {
	if len(pkgs) == 0 {
		return "", nil
	}
	hash := SetHash(pkgs)
	dir := filepath.Join(c.cfg.Dir, "sets", hash, "node_modules")
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.ready[hash]; ok {
		return d, nil
	}
	if f, ok := c.failed[hash]; ok {
		if time.Since(f.at) < RetryAfter {
			return "", f.err
		}
		delete(c.failed, hash)
	}
	if _, err := os.Stat(filepath.Join(c.cfg.Dir, "sets", hash, ".installed")); err == nil {
		c.ready[hash] = dir
		return dir, nil
	}
	if !c.running[hash] {
		c.running[hash] = true
		go c.install(hash, slices.Clone(pkgs))
	}
	return "", fmt.Errorf("%s: %w", describe(pkgs), ErrNotReady)
}

func describe(pkgs []catalog.NodePackage) string {
	var s []string
	for _, p := range pkgs {
		s = append(s, p.Name+"@"+p.Version)
	}
	return strings.Join(s, ", ")
}

func (c *Cache) install(hash string, pkgs []catalog.NodePackage) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.InstallTimeout)
	defer cancel()
	start := time.Now()
	err := c.installSet(ctx, hash, pkgs)
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.running, hash)
	if err != nil {
		c.failed[hash] = failure{err: fmt.Errorf("install node packages %s: %w", describe(pkgs), err), at: time.Now()}
		c.log.Warn("node set install failed", "set", hash, "packages", describe(pkgs), "error", err)
		return
	}
	c.ready[hash] = filepath.Join(c.cfg.Dir, "sets", hash, "node_modules")
	c.log.Info("node set installed", "set", hash, "packages", describe(pkgs), "took", time.Since(start).Round(time.Millisecond))
}

// installSet runs npm install for the set into a temporary prefix and
// moves it into place.
func (c *Cache) installSet(ctx context.Context, hash string, pkgs []catalog.NodePackage) error {
	sets := filepath.Join(c.cfg.Dir, "sets")
	if err := os.MkdirAll(sets, 0o700); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(sets, ".install-"+hash+"-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	specs := make([]string, 0, len(pkgs))
	offline := true
	for _, p := range pkgs {
		switch p.Source {
		case catalog.NodeSourceUpload:
			file, err := c.tarball(ctx, p)
			if err != nil {
				return err
			}
			specs = append(specs, file)
		default:
			offline = false
			specs = append(specs, p.Name+"@"+p.Version)
		}
	}
	manifest, _ := json.Marshal(map[string]any{"name": "redforge-node-set", "version": "0.0.0", "private": true})
	if err := os.WriteFile(filepath.Join(tmp, "package.json"), manifest, 0o600); err != nil {
		return err
	}
	npm := c.cfg.NPM
	if npm == "" {
		npm = "npm"
	}
	args := []string{"install", "--prefix", tmp, "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev",
		"--no-package-lock", "--install-links", "--loglevel=error", "--cache", filepath.Join(c.cfg.Dir, "npm-cache"),
		"--fetch-retries=1", "--fetch-retry-mintimeout=1000", "--fetch-retry-maxtimeout=5000", "--fetch-timeout=60000"}
	if offline {
		args = append(args, "--offline")
	}
	if c.cfg.Registry != "" {
		args = append(args, "--registry", c.cfg.Registry)
	}
	args = append(args, specs...)
	cmd := exec.CommandContext(ctx, npm, args...)
	cmd.Dir = tmp
	// npm gets a home of its own, not the hub's (which may hold secrets).
	home := filepath.Join(c.cfg.Dir, "npm-home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return err
	}
	cmd.Env = []string{"HOME=" + home, "PATH=" + os.Getenv("PATH"), "npm_config_update_notifier=false"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("npm install: %v: %s", err, lastLines(string(out), 8))
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(tmp, "node_modules", filepath.FromSlash(p.Name), "package.json")); err != nil {
			return fmt.Errorf("npm did not install %s", p.Name)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, ".installed"), []byte(describe(pkgs)+"\n"), 0o600); err != nil {
		return err
	}
	final := filepath.Join(sets, hash)
	_ = os.RemoveAll(final)
	return os.Rename(tmp, final)
}

// tarball returns the local path of an uploaded package, fetching it from
// the hub it was uploaded to when this hub lacks it.
func (c *Cache) tarball(ctx context.Context, p catalog.NodePackage) (string, error) {
	file := c.tarballPath(p.SHA256)
	if _, err := os.Stat(file); err == nil {
		return file, nil
	}
	if c.cfg.Fetch == nil || p.Hub == "" {
		return "", fmt.Errorf("the tarball of %s@%s (sha256 %s) is not on this hub", p.Name, p.Version, p.SHA256)
	}
	rc, err := c.cfg.Fetch(ctx, p.Hub, p.SHA256)
	if err != nil {
		return "", fmt.Errorf("fetch the tarball of %s@%s from hub %s: %w", p.Name, p.Version, p.Hub, err)
	}
	defer rc.Close()
	t, err := c.Store(rc)
	if err != nil {
		return "", fmt.Errorf("tarball of %s@%s from hub %s: %w", p.Name, p.Version, p.Hub, err)
	}
	if t.SHA256 != p.SHA256 {
		_ = os.Remove(c.tarballPath(t.SHA256))
		return "", fmt.Errorf("the tarball of %s@%s from hub %s has sha256 %s, want %s", p.Name, p.Version, p.Hub, t.SHA256, p.SHA256)
	}
	return file, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// CopyTree copies a node_modules tree into dst (replacing what was
// there): directories and regular files, readable by everyone who may
// reach dst; symlinks (npm's .bin) are left out.
func CopyTree(src, dst string) error {
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if d.Name() == ".bin" {
				return filepath.SkipDir
			}
			return os.MkdirAll(target, 0o755)
		case d.Type().IsRegular():
			return copyFile(p, target)
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi.Mode()&0o111 != 0 {
		mode = 0o755
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
