package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/redforge/controltower/edge/broker"
)

// Defaults for Config.
const (
	DefaultDataDir    = "./edge-data"
	DefaultMQTTListen = broker.DefaultListen
	DefaultListen     = "127.0.0.1:9464"
	DefaultLogLevel   = "info"

	DefaultHeartbeatInterval = 60 * time.Second
	DefaultSyncBatch         = 1000
)

// EnvPrefix prefixes the environment variable of every flag: --data-dir is
// REDFORGE_EDGE_DATA_DIR, --hub is REDFORGE_EDGE_HUB, and so on. The EDGE
// part keeps a hub and an edge on one host from reading each other's
// settings. Precedence: flag, then environment, then default.
const EnvPrefix = "REDFORGE_EDGE_"

// Config is the whole configuration of redforge-edge.
type Config struct {
	DataDir    string   // directory for outbox.db; created if missing
	MQTTListen string   // MQTT TCP listen address
	Listen     string   // HTTP listen address for /healthz and /metrics
	Hubs       []string // hub base URLs, nearest first; kept for the syncer
	Token      Secret   // edge credential for the hub; prefer the env var to the flag (argv is public)
	LogLevel   string   // debug, info, warn or error

	Name              string        // edge name sent at enrollment; the hub picks one if empty
	HeartbeatInterval time.Duration // agent heartbeat and config pull interval
	NodeREDURL        string        // local Node-RED Admin API to deploy flows to; empty: save the bundle only
	SyncBatch         int           // most records per sync batch
	DiskBudget        int64         // outbox payload budget in bytes shared by streams; 0: none

	// MQTT clients: the users file (name:bcrypt-hash lines), the user who
	// may read the record streams and wildcards, or the open mode.
	MQTTUsers          string
	MQTTAdmin          string
	MQTTAllowAnonymous bool

	// MQTTS: a TLS listener beside MQTTListen with the certificate and key
	// files (re-read when they change), and the CA that client
	// certificates are checked with when a client presents one.
	MQTTTLSListen string
	MQTTTLSCert   string
	MQTTTLSKey    string
	MQTTClientCA  string

	// DebugPprof serves the Go profiles (net/http/pprof) on Listen under
	// /debug/pprof/. The edge's HTTP server has no authentication, so it
	// is refused unless Listen is a loopback address.
	DebugPprof bool
}

// DefaultConfig returns the configuration used when nothing is set.
func DefaultConfig() Config {
	return Config{
		DataDir:    DefaultDataDir,
		MQTTListen: DefaultMQTTListen,
		Listen:     DefaultListen,
		LogLevel:   DefaultLogLevel,

		HeartbeatInterval: DefaultHeartbeatInterval,
		SyncBatch:         DefaultSyncBatch,
	}
}

// Secret is a string that never prints: fmt and log/slog show it as
// "[redacted]" (or "" when empty). Reveal returns the value.
type Secret string

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// String returns "[redacted]", or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return "[redacted]"
}

// GoString keeps %#v from printing the value.
func (s Secret) GoString() string { return strconv.Quote(s.String()) }

// LogValue keeps log/slog from printing the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// flagSet binds c's fields to flags named as in the --help output.
func (c *Config) flagSet() *flag.FlagSet {
	fs := flag.NewFlagSet("redforge-edge", flag.ContinueOnError)
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for the outbox database (created if missing)")
	fs.StringVar(&c.MQTTListen, "mqtt-listen", c.MQTTListen, "MQTT listen address")
	fs.StringVar(&c.Listen, "listen", c.Listen, "HTTP listen address for /healthz and /metrics")
	fs.Func("hub", "comma-separated hub URLs, nearest first", func(v string) error {
		c.Hubs = splitList(v)
		return nil
	})
	fs.Func("token", "edge token for the hub (prefer "+EnvPrefix+"TOKEN: flags are visible in ps)", func(v string) error {
		c.Token = Secret(v)
		return nil
	})
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "log level: debug, info, warn or error")
	fs.StringVar(&c.Name, "name", c.Name, "edge name sent at enrollment (the hub picks one if empty)")
	fs.DurationVar(&c.HeartbeatInterval, "heartbeat-interval", c.HeartbeatInterval, "heartbeat and config pull interval")
	fs.StringVar(&c.NodeREDURL, "nodered-url", c.NodeREDURL, "local Node-RED Admin API URL to deploy desired flows to (empty: save the bundle only)")
	fs.IntVar(&c.SyncBatch, "sync-batch", c.SyncBatch, "most records per sync batch")
	fs.StringVar(&c.MQTTUsers, "mqtt-users", c.MQTTUsers, "file of MQTT users, one name:bcrypt-hash a line (htpasswd -nB NAME); the local Node-RED gets per-flow credentials of its own")
	fs.StringVar(&c.MQTTAdmin, "mqtt-admin", c.MQTTAdmin, "user of --mqtt-users who may subscribe to the record streams and to wildcards (default: nobody)")
	fs.BoolVar(&c.MQTTAllowAnonymous, "mqtt-allow-anonymous", c.MQTTAllowAnonymous, "open mode: any local MQTT client connects without credentials and reads every topic but $SYS (warned at start and in /healthz)")
	fs.Int64Var(&c.DiskBudget, "disk-budget", c.DiskBudget, "outbox payload budget in bytes shared by all streams, segment files included (0: none); audit and ai_decisions are refused when full, vectors and metrics evicted oldest-first")
	fs.StringVar(&c.MQTTTLSListen, "mqtt-tls-listen", c.MQTTTLSListen, "MQTTS listen address (needs --mqtt-tls-cert and --mqtt-tls-key); clients authenticate as on --mqtt-listen")
	fs.StringVar(&c.MQTTTLSCert, "mqtt-tls-cert", c.MQTTTLSCert, "PEM certificate (chain) of the MQTTS listener; re-read when it changes")
	fs.StringVar(&c.MQTTTLSKey, "mqtt-tls-key", c.MQTTTLSKey, "PEM private key of --mqtt-tls-cert")
	fs.StringVar(&c.MQTTClientCA, "mqtt-client-ca", c.MQTTClientCA, "PEM CA that MQTTS client certificates are checked with (clients may also connect without one)")
	fs.BoolVar(&c.DebugPprof, "debug-pprof", c.DebugPprof, "serve Go profiles at /debug/pprof/ on --listen, which must then be a loopback address (the HTTP server has no authentication)")
	return fs
}

// envName returns the environment variable for a flag.
func envName(flagName string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Validate returns every problem at once, each naming its flag, or nil.
func (c Config) Validate() error {
	var problems []string
	add := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}
	if strings.TrimSpace(c.DataDir) == "" {
		add("data-dir", "must not be empty")
	}
	if err := checkListen(c.MQTTListen); err != nil {
		add("mqtt-listen", "%v", err)
	}
	if err := checkListen(c.Listen); err != nil {
		add("listen", "%v", err)
	} else if c.DebugPprof && !isLoopbackListen(c.Listen) {
		add("debug-pprof", "needs a loopback --listen such as 127.0.0.1:9464, not %q: the HTTP server has no authentication, and profiles show the edge's code and memory", c.Listen)
	}
	if c.Listen == c.MQTTListen && !strings.HasSuffix(c.Listen, ":0") {
		add("listen", "must differ from mqtt-listen (%s)", c.MQTTListen)
	}
	for _, h := range c.Hubs {
		if err := checkHubURL(h); err != nil {
			add("hub", "%q: %v", redactURL(h), err)
		}
	}
	if strings.ContainsAny(c.Token.Reveal(), " \t\r\n") {
		add("token", "must not contain whitespace")
	}
	if c.HeartbeatInterval < time.Second {
		add("heartbeat-interval", "must be at least 1s")
	}
	if c.SyncBatch < 1 || c.SyncBatch > 100000 {
		add("sync-batch", "must be between 1 and 100000")
	}
	if c.DiskBudget < 0 {
		add("disk-budget", "must not be negative")
	}
	if c.NodeREDURL != "" {
		if err := checkHubURL(c.NodeREDURL); err != nil {
			add("nodered-url", "%q: %v", redactURL(c.NodeREDURL), err)
		}
	}
	if c.MQTTAdmin != "" && c.MQTTUsers == "" {
		add("mqtt-admin", "names a user of --mqtt-users, which is not set")
	}
	if c.MQTTAllowAnonymous && c.MQTTUsers != "" {
		add("mqtt-allow-anonymous", "cannot be combined with --mqtt-users: the open mode checks no credentials")
	}
	if c.MQTTTLSListen != "" {
		if err := checkListen(c.MQTTTLSListen); err != nil {
			add("mqtt-tls-listen", "%v", err)
		}
		if c.MQTTTLSCert == "" || c.MQTTTLSKey == "" {
			add("mqtt-tls-listen", "needs --mqtt-tls-cert and --mqtt-tls-key")
		}
	} else if c.MQTTTLSCert != "" || c.MQTTTLSKey != "" || c.MQTTClientCA != "" {
		add("mqtt-tls-listen", "required with --mqtt-tls-cert, --mqtt-tls-key or --mqtt-client-ca")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		add("log-level", "%v", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port (example :1883 or 127.0.0.1:9464)", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: port must be a number 0-65535", addr)
	}
	return nil
}

// isLoopbackListen reports whether addr (host:port) listens on loopback
// only: a loopback IP (127.0.0.0/8, ::1) or localhost. An empty host or
// another name listens, or may listen, on other interfaces.
func isLoopbackListen(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func checkHubURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme must be http or https")
	}
	if u.Host == "" {
		return fmt.Errorf("missing host")
	}
	if u.User != nil {
		return fmt.Errorf("must not carry credentials; use token")
	}
	return nil
}

// redactURL hides a password in s, so a bad --hub never echoes a credential.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil {
		return u.Redacted()
	}
	return "(unparsable URL)"
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not one of debug, info, warn, error", s)
}
