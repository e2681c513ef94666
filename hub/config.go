package hub

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	coordredis "github.com/redforge/controltower/hub/coord/redis"
)

// Defaults for a hub started with no flags: a complete one-node hub on
// embedded components, listening on loopback-safe addresses.
const (
	DefaultListen     = ":3000"
	DefaultDataDir    = "./data"
	DefaultStore      = "" // empty: SQLite file hub.db in the data dir
	DefaultRedis      = "" // empty: in-memory coordination
	DefaultMQTT       = "" // empty: embedded broker on DefaultMQTTListen
	DefaultMQTTListen = "127.0.0.1:1884"
	DefaultDriver     = "auto"
	DefaultLogLevel   = "info"
	DefaultRaftListen = "127.0.0.1:7000"
	DefaultRegion     = "local"
	DefaultShutdown   = 15 * time.Second
	DefaultMonitor    = 30 * time.Second
	DefaultNetwork    = "bridge"
)

// Config is the whole configuration of one hub. Values come, lowest
// precedence first, from DefaultConfig, a JSON config file, REDFORGE_*
// environment variables and command-line flags.
type Config struct {
	Listen     string `json:"listen"`
	DataDir    string `json:"data_dir"`
	Store      string `json:"store"`
	Redis      string `json:"redis"`
	MQTT       string `json:"mqtt"`
	MQTTListen string `json:"mqtt_listen"`
	Driver     string `json:"driver"`
	LogLevel   string `json:"log_level"`
	RaftListen string `json:"raft_listen"`
	NodeID     string `json:"node_id"`
	Region     string `json:"region"`
	// NodeRED is the red.js of the Node-RED the process driver runs.
	NodeRED string `json:"node_red"`
	// NPM and NPMRegistry install instances' node packages (hub/nodes):
	// the npm binary (default: npm in PATH) and the registry (default:
	// npm's own configuration).
	NPM         string `json:"npm"`
	NPMRegistry string `json:"npm_registry"`
	// DockerHost, DockerNetwork and Image configure the docker driver.
	DockerHost    string `json:"docker_host"`
	DockerNetwork string `json:"docker_network"`
	Image         string `json:"image"`
	// CORSOrigins is a comma-separated list of origins allowed to call the
	// API from a browser; empty means same-origin only.
	CORSOrigins string `json:"cors_origins"`
	// TrustedProxies is a comma-separated list of reverse proxy addresses
	// or CIDRs whose X-Forwarded-For/X-Real-IP headers name the client;
	// empty (the default) trusts none, so the client is the peer address.
	TrustedProxies string `json:"trusted_proxies"`
	// LoginClock, when set, is the clock of the per-account login delay
	// (tests move it instead of waiting); time.Now otherwise.
	LoginClock func() time.Time `json:"-"`
	// Demo creates a demo instance with a sample flow when the fleet is
	// empty (make run sets it).
	Demo bool `json:"demo"`
	// InstancePortMin and InstancePortMax bound the host ports given to
	// instances (0: the fleet's defaults, 18800-19799).
	InstancePortMin int `json:"instance_port_min"`
	InstancePortMax int `json:"instance_port_max"`
	// MonitorInterval is how often each instance's health is checked.
	MonitorInterval time.Duration `json:"monitor_interval"`
	// AdminPassword is the first admin's password (REDFORGE_ADMIN_PASSWORD,
	// REDFORGE_ADMIN_PASSWORD_FILE or admin-password in --secrets-dir;
	// never a flag, so it stays out of process listings). Empty: a random
	// one is generated and printed once.
	AdminPassword string `json:"-"`
	// ShutdownTimeout bounds a graceful shutdown after SIGTERM.
	ShutdownTimeout time.Duration `json:"shutdown_timeout"`
	// ClusterConfig: --join, --advertise, Raft timeouts, the topology
	// (cluster_config.go).
	ClusterConfig
	// ObservabilityConfig: Grafana, LLM prices, metric and alert
	// intervals, the alert mail server (observability_config.go).
	ObservabilityConfig
	// BackupConfig: --backup-*, --flows-git-remote (backup_config.go).
	BackupConfig
	// TLSConfig: HTTPS, ACME, hub-to-hub mutual TLS, MQTTS (tls_config.go).
	TLSConfig
	// RetentionConfig: how much status history and how many flows
	// versions the store keeps (retention.go).
	RetentionConfig
	// AuditConfig: the audit group commit (audit_config.go).
	AuditConfig
	// StoreHAConfig: failover retries and read replicas of a PostgreSQL
	// store (store_config.go).
	StoreHAConfig
	// DebugConfig: block and mutex profiling rates for /debug/pprof/
	// (debug_config.go).
	DebugConfig
}

// DefaultConfig returns the embedded-defaults configuration.
func DefaultConfig() Config {
	return Config{
		Listen:          DefaultListen,
		DataDir:         DefaultDataDir,
		Store:           DefaultStore,
		Redis:           DefaultRedis,
		MQTT:            DefaultMQTT,
		MQTTListen:      DefaultMQTTListen,
		Driver:          DefaultDriver,
		LogLevel:        DefaultLogLevel,
		RaftListen:      DefaultRaftListen,
		Region:          DefaultRegion,
		ShutdownTimeout: DefaultShutdown,
		DockerNetwork:   DefaultNetwork,
		MonitorInterval: DefaultMonitor,
		BackupConfig:    defaultBackupConfig(),
		RetentionConfig: defaultRetentionConfig(),
		StoreHAConfig:   defaultStoreHAConfig(),
	}
}

// option describes one setting once, for flags, env and documentation.
type option struct {
	name  string // flag name; env is REDFORGE_ + upper(name with - as _)
	usage string
	ptr   *string
}

func (c *Config) options() []option {
	return append([]option{
		{"listen", "HTTP listen address for the API, console and metrics", &c.Listen},
		{"data-dir", "directory for Raft state and the embedded SQLite store", &c.DataDir},
		{"store", "data store: empty for SQLite in the data dir, a file path, or postgres://…", &c.Store},
		{"redis", "coordination: empty for in-memory, redis://host:port/db, or redis-sentinel://[:password@]s1:26379,s2:26379,s3:26379/mymaster/0 (Redis behind Sentinel)", &c.Redis},
		{"mqtt", "MQTT broker for instance control: empty for the embedded broker, or tcp://host:port", &c.MQTT},
		{"mqtt-listen", "listen address of the embedded MQTT broker", &c.MQTTListen},
		{"driver", "fleet driver: auto, docker or process", &c.Driver},
		{"log-level", "log level: debug, info, warn or error", &c.LogLevel},
		{"raft-listen", "Raft TCP bind address", &c.RaftListen},
		{"node-id", "Raft node id (default: derived from the raft address)", &c.NodeID},
		{"region", "region this hub belongs to", &c.Region},
		{"node-red", "red.js of Node-RED for the process driver (default: found in the npm cache or ./node_modules)", &c.NodeRED},
		{"npm", "npm binary the hub installs instances' node packages with (default: npm in PATH)", &c.NPM},
		{"npm-registry", "npm registry node packages are installed from (default: npm's own configuration)", &c.NPMRegistry},
		{"docker-host", "Docker daemon for the docker driver (default: DOCKER_HOST or the standard socket)", &c.DockerHost},
		{"docker-network", "docker driver networking: bridge (ports published on 127.0.0.1) or host", &c.DockerNetwork},
		{"image", "Node-RED image for the docker driver", &c.Image},
		{"cors-origins", "comma-separated browser origins allowed to call the API (default: same origin only)", &c.CORSOrigins},
		{"trusted-proxies", "comma-separated reverse proxy IPs or CIDRs whose X-Forwarded-For is trusted (default: none; the peer address is the client)", &c.TrustedProxies},
	}, c.tlsOptions()...)
}

// EnvName returns the environment variable that sets flag name.
func EnvName(name string) string {
	return "REDFORGE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// ParseConfig builds a Config from args and the environment: defaults,
// then the file named by --config or REDFORGE_CONFIG, then REDFORGE_* env,
// then flags. It returns flag.ErrHelp when -h was asked for.
func ParseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("redforge-hub", flag.ContinueOnError)
	fs.SetOutput(usage)
	configFile := fs.String("config", getenv("REDFORGE_CONFIG"), "optional JSON config file")
	secretsDir := fs.String("secrets-dir", getenv("REDFORGE_SECRETS_DIR"), "directory with one file per setting, named as the flag (cluster-secret, admin-password, store …), as Docker and Kubernetes mount secrets; each REDFORGE_X can also be read from the file REDFORGE_X_FILE names (secrets.go)")
	for _, o := range cfg.options() {
		fs.String(o.name, *o.ptr, o.usage+" (env "+EnvName(o.name)+")")
	}
	shutdown := fs.Duration("shutdown-timeout", cfg.ShutdownTimeout, "graceful shutdown bound")
	demo := fs.Bool("demo", false, "create a demo instance with a sample flow when the fleet is empty")
	monitor := fs.Duration("monitor-interval", cfg.MonitorInterval, "instance health check interval (1s or more)")
	applyCluster := clusterFlags(fs)
	applyObservability := observabilityFlags(fs)
	applyBackup := backupFlags(fs)
	applyRetention := retentionFlags(fs)
	applyAudit := auditFlags(fs)
	applyStore := storeFlags(fs)
	applyDebug := debugFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q (flags start with --)", fs.Arg(0))
	}
	if *configFile != "" {
		if err := cfg.loadFile(*configFile); err != nil {
			return cfg, err
		}
	}
	secrets := newSecretFiles(getenv, *secretsDir)
	getenv = secrets.Getenv
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, o := range cfg.options() {
		if v := getenv(EnvName(o.name)); v != "" && !set[o.name] {
			*o.ptr = v
		}
		if set[o.name] {
			*o.ptr = fs.Lookup(o.name).Value.String()
		}
	}
	if set["shutdown-timeout"] {
		cfg.ShutdownTimeout = *shutdown
	}
	if v := getenv("REDFORGE_MONITOR_INTERVAL"); v != "" && !set["monitor-interval"] {
		d, err := time.ParseDuration(v)
		if err != nil {
			return cfg, fmt.Errorf("REDFORGE_MONITOR_INTERVAL: %q is not a duration such as 5s", v)
		}
		cfg.MonitorInterval = d
	}
	if set["demo"] {
		cfg.Demo = *demo
	}
	if set["monitor-interval"] {
		cfg.MonitorInterval = *monitor
	}
	cfg.AdminPassword = getenv("REDFORGE_ADMIN_PASSWORD")
	if err := applyCluster(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyObservability(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyBackup(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyRetention(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyAudit(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyStore(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	if err := applyDebug(&cfg, set, getenv); err != nil {
		return cfg, err
	}
	return cfg, secrets.Err()
}

func (c *Config) loadFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	return nil
}

// FieldError names the setting that is wrong and why.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return "--" + e.Field + ": " + e.Message }

// Validate returns every problem in c at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &FieldError{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	if err := checkHostPort(c.Listen); err != nil {
		bad("listen", "%v", err)
	}
	if strings.TrimSpace(c.DataDir) == "" {
		bad("data-dir", "must not be empty")
	}
	if kind, _ := StoreKind(c.Store); kind == "" {
		bad("store", "%q is neither a file path nor a postgres:// URL", Redact(c.Store))
	}
	if c.Redis != "" {
		if coordredis.IsSentinelURL(c.Redis) {
			if _, err := coordredis.ParseSentinelURL(c.Redis); err != nil {
				bad("redis", "%q: %v", Redact(c.Redis), err)
			}
		} else if u, err := url.Parse(c.Redis); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
			bad("redis", "%q is not a redis://host:port or %s://host:port,host:port/master/db URL", Redact(c.Redis), coordredis.SentinelScheme)
		}
	}
	if c.MQTT != "" {
		if u, err := url.Parse(c.MQTT); err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ssl" && u.Scheme != "tls") || u.Host == "" {
			bad("mqtt", "%q is not a tcp://host:port URL", Redact(c.MQTT))
		}
	} else if err := checkHostPort(c.MQTTListen); err != nil {
		bad("mqtt-listen", "%v", err)
	}
	switch c.Driver {
	case "auto", "docker", "process":
	default:
		bad("driver", "%q is not one of auto, docker, process", c.Driver)
	}
	if _, err := ParseLevel(c.LogLevel); err != nil {
		bad("log-level", "%v", err)
	}
	if err := checkHostPort(c.RaftListen); err != nil {
		bad("raft-listen", "%v", err)
	} else if host, _, _ := net.SplitHostPort(c.RaftListen); (host == "" || net.ParseIP(host).IsUnspecified()) && c.RaftAdvertise == "" {
		bad("raft-listen", "%q needs a concrete host to advertise to other hubs (or set --raft-advertise)", c.RaftListen)
	}
	if c.Region == "" {
		bad("region", "must not be empty")
	}
	c.RetentionConfig.validate(bad)
	c.AuditConfig.validate(bad)
	c.validateStoreHA(bad)
	c.DebugConfig.validate(bad)
	if c.DockerNetwork != "bridge" && c.DockerNetwork != "host" {
		bad("docker-network", "%q is not bridge or host", c.DockerNetwork)
	}
	for _, p := range c.TrustedProxyList() {
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				bad("trusted-proxies", "%q is neither an IP address nor a CIDR such as 10.0.0.0/8", p)
			}
		}
	}
	if c.MonitorInterval < time.Second {
		bad("monitor-interval", "must be at least 1s")
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 12 {
		errs = append(errs, errors.New("REDFORGE_ADMIN_PASSWORD: must be at least 12 characters"))
	}
	if c.ShutdownTimeout <= 0 {
		bad("shutdown-timeout", "must be positive")
	}
	errs = append(errs, c.validateCluster()...)
	errs = append(errs, c.validateObservability()...)
	errs = append(errs, c.validateBackup()...)
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

// TrustedProxyList returns the entries of TrustedProxies, trimmed.
func (c Config) TrustedProxyList() []string {
	var out []string
	for _, p := range strings.Split(c.TrustedProxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if port == "" {
		return fmt.Errorf("%q has no port", addr)
	}
	return nil
}

// StoreKind classifies a --store value: "sqlite" with the file path, or
// "postgres" with the URL. An unknown URL scheme yields "".
func StoreKind(dsn string) (kind, target string) {
	switch {
	case dsn == "":
		return "sqlite", ""
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return "postgres", dsn
	case strings.HasPrefix(dsn, "sqlite://"):
		return "sqlite", strings.TrimPrefix(dsn, "sqlite://")
	case strings.Contains(dsn, "://"):
		return "", ""
	default:
		return "sqlite", dsn
	}
}

// Redact hides the password of a URL so it can be logged or printed.
func Redact(raw string) string {
	if coordredis.IsSentinelURL(raw) {
		s, err := coordredis.ParseSentinelURL(raw)
		if err != nil {
			return coordredis.SentinelScheme + "://(unparsable; not shown)"
		}
		return s.Redacted()
	}
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// ParseLevel maps a --log-level value to a slog level.
func ParseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return l, fmt.Errorf("%q is not one of debug, info, warn, error", s)
	}
	return l, nil
}
