package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	keyPGBin     = "REDFORGE_TEST_PG_BIN"
	defaultPGBin = "/usr/lib/postgresql/15/bin"
)

// PGServer is a private PostgreSQL 15 server of one test, for what the
// shared server must not be put through (WAL archiving, point-in-time
// recovery, being stopped).
type PGServer struct {
	Bin     string // PostgreSQL's bin directory (pg_ctl, pg_basebackup …)
	DataDir string
	Port    int
	DSN     string // postgres://postgres@127.0.0.1:PORT/postgres?sslmode=disable
	Root    string // a temp dir the postgres user can use
	tb      testing.TB
}

// PGBin returns PostgreSQL 15's bin directory.
func PGBin(tb testing.TB) string {
	tb.Helper()
	bin, err := lookup(keyPGBin)
	if err != nil {
		bin = defaultPGBin
	}
	if err := checkExecutable(filepath.Join(bin, "pg_ctl")); err != nil {
		unavailable(tb, "postgresql-15", err)
	}
	return bin
}

// PrivatePostgres initialises a PostgreSQL 15 cluster in a temp dir (as
// the postgres user: the server refuses to run as root), with conf added
// to its configuration, starts it on a free 127.0.0.1 port (no other
// listener; trust authentication on loopback) and stops it at cleanup.
func PrivatePostgres(tb testing.TB, conf string) *PGServer {
	tb.Helper()
	bin := PGBin(tb)
	root := PostgresUserDir(tb)
	s := &PGServer{Bin: bin, Root: root, DataDir: filepath.Join(root, "pgdata"), tb: tb}
	if out, err := s.asPostgres(filepath.Join(bin, "initdb"), "-D", s.DataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		tb.Fatalf("testenv: initdb: %v: %s", err, out)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	s.Port = port
	s.Configure(conf)
	s.Start()
	tb.Cleanup(s.Stop)
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return s
}

// PostgresUserDir returns a temp dir the postgres user owns and can reach.
func PostgresUserDir(tb testing.TB) string {
	tb.Helper()
	u, err := user.Lookup("postgres")
	if err != nil {
		unavailable(tb, "postgres user", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	root := tb.TempDir()
	for d := root; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, fi.Mode().Perm()|0o011)
		}
	}
	if err := os.Chown(root, uid, gid); err != nil {
		tb.Fatalf("testenv: chown %s: %v", root, err)
	}
	return root
}

// Configure writes conf (and the listener settings) into the cluster's
// redforge.conf, read at the next start.
func (s *PGServer) Configure(conf string) {
	sock := filepath.Join(s.Root, "sock")
	_ = os.MkdirAll(sock, 0o700)
	s.chown(sock)
	body := fmt.Sprintf("listen_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nfsync = off\nlog_min_messages = warning\n%s\n", s.Port, sock, conf)
	p := filepath.Join(s.DataDir, "redforge.conf")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		s.tb.Fatal(err)
	}
	s.chown(p)
	auto := filepath.Join(s.DataDir, "postgresql.conf")
	b, _ := os.ReadFile(auto)
	if !containsLine(string(b), "include_if_exists = 'redforge.conf'") {
		f, err := os.OpenFile(auto, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			s.tb.Fatal(err)
		}
		fmt.Fprintln(f, "include_if_exists = 'redforge.conf'")
		f.Close()
	}
}

func containsLine(s, line string) bool {
	for _, l := range filepathSplitLines(s) {
		if l == line {
			return true
		}
	}
	return false
}

func filepathSplitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// Start starts the server and waits until it accepts connections and has
// left recovery.
func (s *PGServer) Start() {
	s.tb.Helper()
	logf := filepath.Join(s.Root, "postgres.log")
	if out, err := s.asPostgres(filepath.Join(s.Bin, "pg_ctl"), "-D", s.DataDir, "-l", logf, "-w", "-t", "120", "start").CombinedOutput(); err != nil {
		b, _ := os.ReadFile(logf)
		s.tb.Fatalf("testenv: pg_ctl start: %v: %s\n%s", err, out, tail(b))
	}
}

// Stop stops the server (fast shutdown); stopping a stopped one does
// nothing.
func (s *PGServer) Stop() {
	_ = s.asPostgres(filepath.Join(s.Bin, "pg_ctl"), "-D", s.DataDir, "-m", "fast", "-w", "stop").Run()
}

// UseDataDir points the server at another data directory (a restored
// one), owned by the postgres user from then on.
func (s *PGServer) UseDataDir(dir string) {
	s.tb.Helper()
	if err := s.asRoot("chown", "-R", "postgres:postgres", dir).Run(); err != nil {
		s.tb.Fatalf("testenv: chown %s: %v", dir, err)
	}
	os.Chmod(dir, 0o700)
	s.DataDir = dir
	s.Configure("")
}

// WaitReady polls until the server answers a query outside recovery.
func (s *PGServer) WaitReady(timeout time.Duration) {
	s.tb.Helper()
	WaitFor(s.tb, timeout, "postgres on "+strconv.Itoa(s.Port)+" out of recovery", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, s.DSN)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		var rec bool
		if err := c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec); err != nil {
			return err
		}
		if rec {
			return fmt.Errorf("still in recovery")
		}
		return nil
	})
}

// Log returns the end of the server's log.
func (s *PGServer) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Root, "postgres.log"))
	return tail(b)
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func (s *PGServer) chown(p string) { _ = s.asRoot("chown", "postgres:postgres", p).Run() }

func (s *PGServer) asPostgres(name string, args ...string) *exec.Cmd {
	return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
}

func (s *PGServer) asRoot(name string, args ...string) *exec.Cmd { return exec.Command(name, args...) }
