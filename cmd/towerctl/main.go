// Command towerctl is the operator CLI of RedForge Control Tower. It
// speaks only the hub's public REST API, but for the PostgreSQL
// point-in-time recovery subcommands (backup basebackup|wal-push|wal-fetch|
// pitr, pitr.go), which a database server and an operator run against the
// backup destination while the hub's database may be down.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"
)

var version = "dev"

// DefaultHub is the hub URL when neither --hub nor REDFORGE_HUB is set.
const DefaultHub = "http://127.0.0.1:3000"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// command is one towerctl subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, cl *Client, args []string, out io.Writer) error
}

func commands() []command {
	return []command{
		{"health", "show the hub's health and each component's status", runHealth},
		{"audit", "export the audit log (--format json|csv --out FILE) or verify an export offline (verify FILE)", runAudit},
		{"login", "log in and keep the session (--username, --password-stdin or REDFORGE_PASSWORD)", runLogin},
		{"logout", "end the saved session", runLogout},
		{"instances", "list|create [--replicas N]|show|start|stop|restart|scale NAME N|delete|logs [--replica N]|flows get|flows versions|flows deploy FILE", runInstances},
		{"hubs", "list|drain HUB|undrain HUB", runHubs},
		{"events", "stream the hub's events as JSON lines (--types a,b --count N)", runEvents},
		{"deploy", "(FILE | --flows-version N) --instance NAME [--wait]: blue-green deploy, printing its phases", runDeploy},
		{"rollback", "DEPLOYMENT_ID: roll a deployment back inside its rollback window", runRollback},
		{"edges", "list|show ID|token [--region R] [--ttl D]|config get ID|config set ID FLOWS_FILE [--settings FILE]", runEdges},
		{"auth", "keys|rotate-keys: list the JWT signing keys, or add one that new tokens use (old tokens verify until they expire)", runAuth},
		{"cluster", "status|leave HUB_ID|join --id --region --raft --api (needs REDFORGE_CLUSTER_SECRET)|ca init|ca issue --name HUB --host H,… (the cluster CA's files)", runCluster},
		{"nodes", "list NAME|install NAME (PKG@VERSION|--tarball FILE)|remove NAME PKG|policy [set --allow --deny]: node packages, blue-green", runNodes},
		{"snapshots", "list NAME|create NAME --name T|show|compare NAME ID [--with ID]|rollback NAME ID [--wait]|delete", runSnapshots},
		{"config", "export [--out FILE] | import FILE [--dry-run]: users, roles, tokens' metadata, regions, placement", runConfig},
		{"flows", "restore --instance NAME --tag T [--wait]: redeploy a version from the flows Git mirror blue-green | git", runFlows},
		{"backup", "create|list|verify NAME|prune [--dry-run]|pitr --to TIME --pgdata DIR|basebackup|wal-push|wal-fetch (--dest)", runBackup},
		{"models", "list|add NAME:VERSION|show NAME|rollback NAME|bench DATASET --models a,b|providers list|set ID", runModels},
		{"routes", "llm set NAME --policy P --candidates a,b|llm show [NAME]", runRoutes},
		{"debug", "pprof NAME [--seconds N] [-o FILE]: save a Go profile of the hub (heap, goroutine, profile = CPU, trace …; ADMIN)", runDebug},
		{"version", "print towerctl's version", func(_ context.Context, _ *Client, _ []string, out io.Writer) error {
			_, err := fmt.Fprintln(out, "towerctl", version)
			return err
		}},
	}
}

// exitError carries a specific exit code (e.g. 1 for "unhealthy").
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Run executes towerctl with args and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("towerctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	hubURL := fs.String("hub", firstNonEmpty(getenv("REDFORGE_HUB"), DefaultHub), "hub URL (env REDFORGE_HUB)")
	timeout := fs.Duration("timeout", 30*time.Second, "request timeout")
	caFile := fs.String("ca", getenv("REDFORGE_HUB_CA"), "PEM CA file the hub's HTTPS certificate is checked with (a private CA such as the cluster CA; env REDFORGE_HUB_CA; default: system roots)")
	fs.Usage = func() { usage(stderr, fs) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		usage(stderr, fs)
		return 2
	}
	name := fs.Arg(0)
	for _, c := range commands() {
		if c.name != name {
			continue
		}
		cl, err := NewClient(*hubURL, getenv("REDFORGE_TOKEN"), *timeout)
		if err != nil {
			fmt.Fprintln(stderr, "towerctl:", err)
			return 2
		}
		tc, err := tlsClientConfig(*caFile)
		if err != nil {
			fmt.Fprintln(stderr, "towerctl:", err)
			return 2
		}
		if tc != nil {
			cl.http.Transport = &http.Transport{TLSClientConfig: tc}
		}
		cl.sessionFile, cl.getenv, cl.stdin = sessionPath(getenv), getenv, stdin
		if err := c.run(ctx, cl, fs.Args()[1:], stdout); err != nil {
			fmt.Fprintln(stderr, "towerctl "+name+":", err)
			var ee *exitError
			if errors.As(err, &ee) {
				return ee.code
			}
			return 1
		}
		return 0
	}
	fmt.Fprintf(stderr, "towerctl: unknown command %q; run towerctl -h for the list\n", name)
	return 2
}

func usage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: towerctl [--hub URL] <command> [args]\n\ncommands:")
	cmds := commands()
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].name < cmds[j].name })
	for _, c := range cmds {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nflags:")
	fs.PrintDefaults()
}

// newFlags is a flag set for a subcommand that returns errors instead of
// exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("towerctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if strings.TrimSpace(s) != "" {
			return s
		}
	}
	return ""
}
