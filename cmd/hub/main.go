// Command redforge-hub runs one regional hub of RedForge Control Tower.
// With no flags it starts a complete one-node hub on embedded defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/redforge/controltower/hub"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	// The process driver starts this binary again as the launcher that
	// confines a runtime before it execs Node-RED; the sandbox package's
	// init takes that run over (argv[0] sandbox.Argv0) before main.
	_ "github.com/redforge/controltower/hub/fleet/sandbox"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == "restore" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := (&Restore{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}).Run(ctx, os.Args[2:])
		stop()
		os.Exit(code)
	}
	m := &Main{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}
	if err := m.ParseFlags(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "redforge-hub:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := m.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "redforge-hub:", err)
		os.Exit(1)
	}
}

// Main is the hub program, separate from main() so tests can run the whole
// binary in-process.
type Main struct {
	Stdout, Stderr io.Writer
	Getenv         func(string) string

	Config hub.Config
	Hub    *hub.Hub
	// Ready, when set, is closed once the hub serves requests.
	Ready chan struct{}
}

// ParseFlags reads flags, the environment and the config file, and
// validates the result, reporting every problem at once.
func (m *Main) ParseFlags(args []string) error {
	cfg, err := hub.ParseConfig(args, m.Getenv, m.Stderr)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	m.Config = cfg
	return nil
}

// Run starts the hub and serves until ctx is done, then shuts down.
func (m *Main) Run(ctx context.Context) error {
	level, _ := hub.ParseLevel(m.Config.LogLevel)
	log := slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: level}))
	raiseOpenFiles(log) // rlimit.go
	if m.Config.Redis != "" {
		coordredis.SetLogger(log.With("component", "go-redis"))
	}
	m.Hub = hub.New(m.Config, version, log)
	if err := m.Hub.Open(ctx); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "RedForge Control Tower hub %s ready at %s (node %s, region %s, driver %s)\n",
		version, m.Hub.URL(), m.Hub.NodeID, m.Config.Region, m.Hub.Driver.Name())
	if pw := m.Hub.AdminPassword; pw != "" {
		fmt.Fprintf(m.Stdout, "\nFirst start: log in as admin with password %s\n(shown only this once; change it with PATCH /api/users/:id or set REDFORGE_ADMIN_PASSWORD before the first start)\n\n", pw)
	}
	if m.Ready != nil {
		close(m.Ready)
	}
	stopNotify := notifySystemd(m.Hub.URL(), log) // notify.go
	var serveErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "reason", context.Cause(ctx))
	case serveErr = <-m.Hub.Serving():
		serveErr = fmt.Errorf("http server stopped: %w", serveErr)
	}
	stopNotify()
	return errors.Join(serveErr, m.Close())
}

// Close stops the hub.
func (m *Main) Close() error {
	if m.Hub == nil {
		return nil
	}
	return m.Hub.Close()
}
