package process

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/prometheus/procfs"
	"github.com/redforge/controltower/hub/fleet/sandbox"
)

// systemReadOnly are the trees a Landlock-confined runtime may read and
// execute from besides node's and Node-RED's: libraries, commands for exec
// nodes, configuration (CA certificates, DNS, time zones) and the kernel's
// views node reads (/proc, cgroup limits, CPUs). Missing ones are skipped.
var systemReadOnly = []string{
	"/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/proc",
	"/sys/fs/cgroup", "/sys/devices/system/cpu",
}

// devices a runtime may read and write under Landlock. Not /dev/tty: a
// hub started from a terminal would lend it that terminal.
var devices = []string{"/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom"}

// allocMu serializes uid allocation with the record that claims the uid,
// across every Driver of this process (tests run several on one host).
var allocMu sync.Mutex

// defaultRunDir is Config.RunDir or its default (see Config.RunDir).
func (d *Driver) defaultRunDir() string {
	if d.cfg.RunDir != "" {
		if abs, err := filepath.Abs(d.cfg.RunDir); err == nil {
			return abs
		}
		return d.cfg.RunDir
	}
	if !d.switchUsers {
		return filepath.Join(d.cfg.DataDir, "instances")
	}
	sum := sha256.Sum256([]byte(d.cfg.DataDir))
	return filepath.Join(DefaultRunRoot, hex.EncodeToString(sum[:8]))
}

// openIsolation prepares how runtimes are confined: it learns the kernel's
// Landlock ABI, makes node absolute, and with uid switching makes the data
// dir 0700, makes RunDir 0711 and checks that runtime uids can reach node,
// red.js and RunDir. Without Landlock it warns once.
func (d *Driver) openIsolation() error {
	node, err := absProgram(d.cfg.Node)
	if err != nil {
		return fmt.Errorf("process driver: node binary: %w", err)
	}
	d.cfg.Node = node
	d.landlockABI = sandbox.LandlockABI()
	d.readOnly = d.readOnlyPaths()
	if d.switchUsers {
		if err := d.prepareUserSwitch(); err != nil {
			return err
		}
	} else if err := os.MkdirAll(d.runDir, 0o700); err != nil {
		return fmt.Errorf("process driver: run dir: %w", err)
	}
	if d.landlockABI > 0 {
		for _, dir := range []string{d.cfg.DataDir, d.runDir} {
			if root := under(dir, d.readOnly); root != "" {
				return fmt.Errorf("process driver: %s lies under %s, which every runtime may read; move it elsewhere", dir, root)
			}
		}
	}
	switch {
	case d.landlockABI == 0 && d.switchUsers:
		d.log.Warn("this kernel offers no Landlock: runtimes are confined by their own uids only and can read what any user can")
	case d.landlockABI == 0:
		d.log.Warn("this kernel offers no Landlock and the hub is not root: runtimes run unconfined as the hub's user and can read and change its data dir; run the hub as root or on a kernel with Landlock (Linux 5.13+)")
	}
	d.log.Info("runtime isolation", "own_uids", d.switchUsers, "landlock_abi", d.landlockABI, "run_dir", d.runDir)
	return nil
}

// prepareUserSwitch makes the data dir the hub's alone, makes RunDir
// traversable but not listable, and checks that a runtime uid reaches
// node, red.js and RunDir.
func (d *Driver) prepareUserSwitch() error {
	if err := os.Chmod(d.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("process driver: data dir: %w", err)
	}
	if err := os.MkdirAll(d.runDir, 0o711); err != nil {
		return fmt.Errorf("process driver: run dir: %w", err)
	}
	if err := os.Chmod(d.runDir, 0o711); err != nil {
		return fmt.Errorf("process driver: run dir: %w", err)
	}
	var errs []error
	for _, c := range []struct {
		path string
		perm fs.FileMode // what others need on the path itself
	}{{d.cfg.Node, 0o001}, {d.cfg.RedJS, 0o004}, {d.runDir, 0o001}} {
		if err := reachable(c.path, c.perm); err != nil {
			errs = append(errs, fmt.Errorf("process driver: runtimes run as unprivileged uids (%d-%d) and %w",
				d.cfg.UIDBase, d.cfg.UIDBase+d.cfg.UIDCount-1, err))
		}
	}
	return errors.Join(errs...)
}

// reachable checks that a user who owns nothing on the way can reach path
// (o+x on every parent dir, of the path as given and as resolved) and has
// perm on it.
func reachable(path string, perm fs.FileMode) error {
	paths := []string{path}
	if real, err := filepath.EvalSymlinks(path); err == nil && real != path {
		paths = append(paths, real)
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("cannot reach %s: %w", path, err)
		}
		if fi.Mode().Perm()&perm != perm {
			return fmt.Errorf("cannot use %s (mode %04o); run chmod o+%s %s", p, fi.Mode().Perm(), permLetters(perm), p)
		}
		for dir := filepath.Dir(p); ; dir = filepath.Dir(dir) {
			if fi, err := os.Stat(dir); err == nil && fi.Mode().Perm()&0o001 == 0 {
				return fmt.Errorf("cannot reach %s: %s is mode %04o; run chmod o+x %s (or install it elsewhere)", path, dir, fi.Mode().Perm(), dir)
			}
			if dir == filepath.Dir(dir) {
				break
			}
		}
	}
	return nil
}

func permLetters(perm fs.FileMode) string {
	var b strings.Builder
	for _, c := range []struct {
		bit fs.FileMode
		l   byte
	}{{0o004, 'r'}, {0o002, 'w'}, {0o001, 'x'}} {
		if perm&c.bit != 0 {
			b.WriteByte(c.l)
		}
	}
	return b.String()
}

// absProgram resolves a bare program name through PATH and makes the path
// absolute: the launcher execs it without a PATH search.
func absProgram(p string) (string, error) {
	if !strings.ContainsRune(p, '/') {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", err
		}
		p = found
	}
	return filepath.Abs(p)
}

// readOnlyPaths are the system trees, node's dir and Node-RED's
// node_modules (resolved), and the dir /etc/resolv.conf points into.
func (d *Driver) readOnlyPaths() []string {
	ro := append([]string(nil), systemReadOnly...)
	if real, err := filepath.EvalSymlinks(d.cfg.Node); err == nil {
		ro = append(ro, filepath.Dir(real))
	}
	if real, err := filepath.EvalSymlinks(d.cfg.RedJS); err == nil {
		ro = append(ro, modulesRoot(real))
	}
	if real, err := filepath.EvalSymlinks("/etc/resolv.conf"); err == nil && under(real, []string{"/etc"}) == "" {
		ro = append(ro, filepath.Dir(real))
	}
	return ro
}

// modulesRoot is the node_modules dir that holds Node-RED (red.js is
// <prefix>/node_modules/node-red/red.js), not the prefix, which may be a
// checkout holding a data dir; for another layout, red.js's own dir.
func modulesRoot(redJS string) string {
	dir := filepath.Dir(redJS)
	if parent := filepath.Dir(dir); filepath.Base(parent) == "node_modules" {
		return parent
	}
	return dir
}

// under returns the root of roots that path is or lies beneath, or "".
func under(path string, roots []string) string {
	for _, root := range roots {
		if path == root || strings.HasPrefix(path, strings.TrimSuffix(root, "/")+"/") {
			return root
		}
	}
	return ""
}

// confinement is how the launcher confines r's runtime.
func (d *Driver) confinement(r record) sandbox.Spec {
	s := sandbox.Spec{UID: r.UID, GID: r.UID}
	if d.landlockABI > 0 {
		s.Landlock = true
		s.ReadOnly = d.readOnly
		s.ReadWrite = []string{r.UserDir, tmpDir(r)}
		s.ReadWriteFiles = devices
	}
	return s
}

// confined reports whether runtimes start through the launcher.
func (d *Driver) confined() bool { return d.switchUsers || d.landlockABI > 0 }

// prepareRunDirs makes r's runtime dirs: <RunDir>/<id> (0711 and the
// hub's when runtimes have their own uids, so a runtime cannot swap its
// user dir for a link) and its temp dir, and gives a new temp dir to the
// runtime's uid. With handOver it also gives the user dir and everything
// in it (symlinks not followed) to that uid: only for a user dir no
// process of the uid has touched yet (Create, adoptIsolation), since a
// running one could swap a dir for a link under the walk.
func (d *Driver) prepareRunDirs(r record, handOver bool) error {
	base := filepath.Dir(r.UserDir)
	perm := fs.FileMode(0o700)
	if r.UID != 0 {
		perm = 0o711
	}
	if err := os.MkdirAll(base, perm); err != nil {
		return err
	}
	if err := os.Chmod(base, perm); err != nil {
		return err
	}
	err := os.Mkdir(tmpDir(r), 0o700)
	switch {
	case errors.Is(err, fs.ErrExist):
	case err != nil:
		return err
	case r.UID != 0:
		if err := os.Lchown(tmpDir(r), r.UID, r.UID); err != nil {
			return err
		}
	}
	if !handOver || r.UID == 0 {
		return nil
	}
	err = filepath.WalkDir(r.UserDir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, r.UID, r.UID)
	})
	if err != nil {
		return fmt.Errorf("hand %s to uid %d: %w", r.UserDir, r.UID, err)
	}
	return nil
}

// allocUID returns the lowest uid of the range that no instance record in
// the data dir (of any hub), no account in /etc/passwd and no running
// process uses. The caller holds allocMu until the record claiming it is
// saved.
func (d *Driver) allocUID() (int, error) {
	used := d.recordedUIDs()
	for _, uid := range passwdUIDs() {
		used[uid] = true
	}
	for _, uid := range processUIDs() {
		used[uid] = true
	}
	for uid := d.cfg.UIDBase; uid < d.cfg.UIDBase+d.cfg.UIDCount; uid++ {
		if !used[uid] {
			return uid, nil
		}
	}
	return 0, fmt.Errorf("no free runtime uid in %d-%d; widen the range", d.cfg.UIDBase, d.cfg.UIDBase+d.cfg.UIDCount-1)
}

func (d *Driver) recordedUIDs() map[int]bool {
	used := make(map[int]bool)
	paths, _ := filepath.Glob(filepath.Join(d.cfg.DataDir, "instances", "*", runtimeFile))
	for _, p := range paths {
		var r struct {
			UID int `json:"uid"`
		}
		if b, err := os.ReadFile(p); err == nil && json.Unmarshal(b, &r) == nil && r.UID != 0 {
			used[r.UID] = true
		}
	}
	return used
}

// passwdUIDs are the uids of /etc/passwd's accounts.
func passwdUIDs() []int {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return nil
	}
	defer f.Close()
	var uids []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Split(sc.Text(), ":"); len(fields) > 2 {
			if uid, err := strconv.Atoi(fields[2]); err == nil {
				uids = append(uids, uid)
			}
		}
	}
	return uids
}

// processUIDs are the real uids of the running processes.
func processUIDs() []int {
	procs, _ := procfs.AllProcs()
	uids := make([]int, 0, len(procs))
	for _, p := range procs {
		if st, err := p.NewStatus(); err == nil { // it may have exited since
			uids = append(uids, int(st.UIDs[0]))
		}
	}
	return uids
}

// adoptIsolation moves a record made before runtimes had their own uids
// (UID 0, user dir under the data dir) to one: it allocates a uid, moves
// the user dir into RunDir (a copy when RunDir is on another filesystem,
// the original removed once the record names the copy) and hands it over.
// A no-op when runtimes keep the hub's uid or r already has one.
func (d *Driver) adoptIsolation(r *record) error {
	if !d.switchUsers || r.UID != 0 {
		return nil
	}
	allocMu.Lock()
	defer allocMu.Unlock()
	uid, err := d.allocUID()
	if err != nil {
		return err
	}
	moved := *r
	moved.UID, moved.UserDir = uid, d.userDir(r.InstanceID)
	copied := false
	if moved.UserDir != r.UserDir {
		if err := os.MkdirAll(filepath.Dir(moved.UserDir), 0o711); err != nil {
			return err
		}
		if copied, err = moveDir(r.UserDir, moved.UserDir); err != nil {
			return fmt.Errorf("move user dir %s to %s: %w", r.UserDir, moved.UserDir, err)
		}
	}
	if err := d.prepareRunDirs(moved, true); err != nil {
		return err
	}
	if err := d.update(r.InstanceID, func(rec *record) { rec.UID, rec.UserDir = moved.UID, moved.UserDir }); err != nil {
		return err
	}
	if copied {
		// Only now that the record names the copy: a crash before this
		// left the original as the one the record names, and the move is
		// done again from it.
		if err := os.RemoveAll(r.UserDir); err != nil {
			d.log.Warn("the user dir was copied to its new place; removing the original failed", "instance", r.InstanceID, "user_dir", r.UserDir, "error", err)
		}
	}
	d.log.Info("instance moved to its own uid", "instance", r.InstanceID, "uid", uid, "user_dir", moved.UserDir, "copied_across_filesystems", copied)
	*r = moved
	return nil
}

// moveDir renames src to dst. When they are on different filesystems it
// copies src instead (os.CopyFS, each file and dir then given its source's
// permission bits back), into a sibling of dst that is synced to disk and
// then renamed to dst, replacing what an earlier, interrupted move left
// there; src is kept, and copied reports that the caller must remove it
// once nothing names it any more.
func moveDir(src, dst string) (copied bool, err error) {
	var from, to syscall.Stat_t
	if err := syscall.Stat(src, &from); err != nil {
		return false, &fs.PathError{Op: "stat", Path: src, Err: err}
	}
	if err := syscall.Stat(filepath.Dir(dst), &to); err != nil {
		return false, &fs.PathError{Op: "stat", Path: filepath.Dir(dst), Err: err}
	}
	if from.Dev == to.Dev {
		return false, os.Rename(src, dst)
	}
	staging := dst + ".moving"
	if err := os.RemoveAll(staging); err != nil {
		return false, err
	}
	fail := func(err error) (bool, error) {
		os.RemoveAll(staging)
		return false, err
	}
	if err := os.CopyFS(staging, os.DirFS(src)); err != nil {
		return fail(fmt.Errorf("copy across filesystems: %w", err))
	}
	err = filepath.WalkDir(src, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		return os.Chmod(filepath.Join(staging, rel), info.Mode().Perm())
	})
	if err != nil {
		return fail(fmt.Errorf("copy permissions: %w", err))
	}
	syscall.Sync() // the copy is on disk before the record names it
	if err := os.RemoveAll(dst); err != nil {
		return fail(err)
	}
	if err := os.Rename(staging, dst); err != nil {
		return fail(err)
	}
	return true, nil
}
