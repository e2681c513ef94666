package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
)

// version is set with -ldflags "-X main.version=...".
var version = "dev"

// Log keys.
const (
	logKeyComponent = "component"
	logKeyError     = "error"
)

// shutdownTimeout bounds the HTTP server's graceful shutdown.
const shutdownTimeout = 5 * time.Second

// Main is the redforge-edge program: ParseFlags, then Run, then Close.
// Tests run it in-process with ports 127.0.0.1:0 and read the bound
// addresses from HTTPAddr and MQTTAddr.
type Main struct {
	Config    Config
	Stdout    io.Writer                       // --help output
	Stderr    io.Writer                       // logs
	LookupEnv func(key string) (string, bool) // default os.LookupEnv
	Logger    *slog.Logger                    // set by Run if nil

	Outbox *outbox.Outbox // set by Run
	Broker *broker.Broker // set by Run

	flowKey  []byte // derives the local Node-RED's per-flow MQTT credentials
	mqttOpen bool   // --mqtt-allow-anonymous: warned in the log and /healthz

	link       *hubLink // the hub link, nil without --hub
	httpServer *http.Server
	httpLn     net.Listener
	httpDone   chan error
	stopNotify func() // stops the systemd watchdog loop (notify.go)
	started    bool   // Run completed
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{Config: DefaultConfig(), Stdout: os.Stdout, Stderr: os.Stderr, LookupEnv: os.LookupEnv}
}

// ParseFlags applies REDFORGE_EDGE_* environment variables, then args, on
// top of m.Config and validates the result. It returns flag.ErrHelp after
// printing usage for -h, or one error naming every bad flag or variable.
func (m *Main) ParseFlags(ctx context.Context, args []string) error {
	fs := m.Config.flagSet()
	fs.SetOutput(io.Discard) // errors are returned, not printed
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v, ok := m.LookupEnv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s: %w", envName(f.Name), err))
			}
		}
	})
	if err := joinLine(envErrs); err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			m.usage(fs)
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (all settings are flags; see -h)", fs.Arg(0))
	}
	return m.Config.Validate()
}

func (m *Main) usage(fs *flag.FlagSet) {
	fmt.Fprintf(m.Stdout, "Usage: redforge-edge [flags]\n\nEvery flag can also be set as %s<FLAG>, e.g. %s; a flag wins over the variable.\n\n", EnvPrefix, envName("data-dir"))
	fs.SetOutput(m.Stdout)
	fs.PrintDefaults()
}

// Run validates the configuration, opens the outbox in the data dir,
// starts the MQTT broker and the HTTP server, and returns once all are
// serving. On error it closes whatever it had started.
func (m *Main) Run(ctx context.Context) (err error) {
	if err := m.Config.Validate(); err != nil {
		return err
	}
	level, _ := parseLevel(m.Config.LogLevel)
	if m.Logger == nil {
		m.Logger = slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
	}
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if err := prepareDataDir(m.Config.DataDir); err != nil {
		return err
	}
	m.Outbox = outbox.New(filepath.Join(m.Config.DataDir, "outbox.db"))
	m.Outbox.Budget = m.Config.DiskBudget
	if err := m.Outbox.Open(ctx); err != nil {
		return err
	}
	auth, err := m.mqttAuth()
	if err != nil {
		return err
	}
	mqttTLS, err := m.mqttTLS()
	if err != nil {
		return err
	}
	m.Broker = broker.New(broker.Config{
		Listen:    m.Config.MQTTListen,
		TLSListen: m.Config.MQTTTLSListen,
		TLS:       mqttTLS,
		Outbox:    m.Outbox,
		Auth:      auth,
		Logger:    m.Logger.With(logKeyComponent, "broker"),
	})
	if err := m.Broker.Open(ctx); err != nil {
		return err
	}
	if err := m.startHTTP(ctx); err != nil {
		return err
	}
	if err := m.startHubLink(); err != nil {
		return err
	}
	m.Logger.Info("redforge-edge started",
		"version", version,
		"data_dir", m.Config.DataDir,
		"mqtt", m.Broker.Addr().String(),
		"http", m.httpLn.Addr().String(),
		"hubs", len(m.Config.Hubs),
		"token_set", m.Config.Token != "")
	m.started = true
	if err := m.startNotify(); err != nil {
		m.Logger.Warn("notify systemd", logKeyError, err)
	}
	return nil
}

// prepareDataDir creates dir and proves it is writable, so an unusable
// data dir fails at start with a message naming it.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data dir %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".write-check-*")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

func (m *Main) startHTTP(ctx context.Context) error {
	ln, err := new(net.ListenConfig).Listen(ctx, "tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("http listen %s: %w", m.Config.Listen, err)
	}
	m.httpLn = ln
	if m.Config.DebugPprof {
		// Validate refused a listen address that is not loopback; the
		// bound one is checked too (localhost resolves as the host says).
		if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
			return fmt.Errorf("debug-pprof: the HTTP server is bound to %s, which is not a loopback address; profiles are served on loopback only", ln.Addr())
		}
		m.Logger.Warn("Go profiles served at /debug/pprof/ without authentication (--debug-pprof)", "http", ln.Addr().String())
	}
	m.httpServer = &http.Server{
		Handler:           m.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
	}
	m.httpDone = make(chan error, 1)
	go func() { m.httpDone <- m.httpServer.Serve(ln) }()
	return nil
}

// HTTPAddr returns the bound health/metrics address, nil before Run.
func (m *Main) HTTPAddr() net.Addr {
	if m.httpLn == nil {
		return nil
	}
	return m.httpLn.Addr()
}

// MQTTAddr returns the bound MQTT address, nil before Run.
func (m *Main) MQTTAddr() net.Addr {
	if m.Broker == nil {
		return nil
	}
	return m.Broker.Addr()
}

// Close stops the HTTP server, then the broker (no new records), then the
// outbox (commits what is queued). It returns every error met.
func (m *Main) Close() error {
	var errs []error
	if m.stopNotify != nil {
		m.stopNotify()
		m.stopNotify = nil
	}
	if m.started {
		_, _ = daemon.SdNotify(false, daemon.SdNotifyStopping)
	}
	if m.httpServer != nil {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := m.httpServer.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
		if err := <-m.httpDone; err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("http serve: %w", err))
		}
		m.httpServer = nil
	}
	if m.link != nil {
		m.link.stop()
		m.link = nil
	}
	if m.Broker != nil {
		if err := m.Broker.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.Outbox != nil {
		if err := m.Outbox.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.started && len(errs) == 0 {
		m.Logger.Info("redforge-edge stopped")
	}
	m.started = false
	return joinLine(errs)
}

// joinLine joins errs into one error on one line ("a; b"), nil if none.
func joinLine(errs []error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}
