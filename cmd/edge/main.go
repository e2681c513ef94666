// Command redforge-edge runs an edge node: the embedded MQTT broker that
// local Node-RED flows publish records to, the SQLite outbox that keeps
// them until the hub has them, and an HTTP endpoint for /healthz and
// /metrics. See Main for the wiring and Config for the settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without os.Exit: 0 after a clean shutdown on SIGTERM or
// SIGINT, 2 for a usage error, 1 when the edge cannot start or stop
// cleanly. Every failure is one line on stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain()
	m.Stdout, m.Stderr = stdout, stderr
	if err := m.ParseFlags(ctx, args); errors.Is(err, flag.ErrHelp) {
		return 0
	} else if err != nil {
		fmt.Fprintf(stderr, "redforge-edge: %v\n", err)
		return 2
	}
	if err := m.Run(ctx); err != nil {
		fmt.Fprintf(stderr, "redforge-edge: %v\n", err)
		return 1
	}
	<-ctx.Done()
	stop() // a second signal now kills the process the default way
	m.Logger.Info("shutting down")
	if err := m.Close(); err != nil {
		fmt.Fprintf(stderr, "redforge-edge: %v\n", err)
		return 1
	}
	return 0
}
