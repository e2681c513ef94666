package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const (
	logTailBytes = 2048
	stopGrace    = 5 * time.Second
)

// proc is a child process in its own process group whose output goes to a
// log file in the test's temp dir.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startProc starts path with args in a new process group, output to
// dir/<name>.log. The caller registers the stop with tb.Cleanup.
func startProc(name, dir, path string, args ...string) (*proc, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Pdeathsig: a test binary that dies (panic, timeout) takes its servers along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited returns an error when the process has ended, nil while it runs.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v); its log ends:\n%s", p.name, p.waitErr, p.logTail())
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after the grace
// period, and waits for the process to be reaped.
func (p *proc) stop() {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
	// Children that ignored SIGTERM after the leader exited.
	_ = syscall.Kill(pgid, syscall.SIGKILL)
}

// logTail returns the end of the process's output.
func (p *proc) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	if len(b) > logTailBytes {
		b = b[len(b)-logTailBytes:]
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	if len(b) == 0 {
		return "(empty log)"
	}
	return string(b)
}

// server describes how to start one kind of private server on a port.
type server struct {
	what    string                                       // for messages: "redis", "mosquitto"
	path    string                                       // executable
	timeout time.Duration                                // how long to wait for ready
	args    func(dir string, port int) ([]string, error) // command line; may write config into dir
	ready   func(port int) error                         // nil once the server answers
}

// startServer starts s on a free port and waits until it is ready. Should
// the process exit before it is ready (typically: another process took the
// port), it retries on a new port. The process group is stopped by
// tb.Cleanup. It returns the port and the process.
func startServer(tb testing.TB, s server) (int, *proc) {
	tb.Helper()
	dir := tb.TempDir() // before Cleanup(stop): cleanups run last-in first-out
	var lastErr error
	for attempt := 1; attempt <= startupAttempts; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("testenv: %s: free port: %v", s.what, err)
		}
		args, err := s.args(dir, port)
		if err != nil {
			tb.Fatalf("testenv: %s: %v", s.what, err)
		}
		p, err := startProc(fmt.Sprintf("%s-%d", s.what, port), dir, s.path, args...)
		if err != nil {
			unavailable(tb, s.what, err)
		}
		err = poll(s.timeout, func() error { return s.ready(port) }, p.exited)
		if err == nil {
			tb.Cleanup(p.stop)
			return port, p
		}
		p.stop()
		lastErr = err
		if !errors.Is(err, errAborted) {
			// It ran but never became ready: a new port will not help.
			lastErr = fmt.Errorf("%w; its log ends:\n%s", err, p.logTail())
			break
		}
	}
	tb.Fatalf("testenv: %s did not start: %v", s.what, lastErr)
	return 0, nil
}
