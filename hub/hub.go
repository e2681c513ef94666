// Package hub wires one regional hub together: the Raft node and catalog,
// the data store, coordination, the MQTT bus and the HTTP API. It owns the
// order in which components start and stop and nothing else; each
// capability lives in its own sub-package.
package hub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redforge/controltower/hub/api"
	"github.com/redforge/controltower/hub/audit"
	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/broker"
	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/hub/coord"
	"github.com/redforge/controltower/hub/coord/memory"
	coordredis "github.com/redforge/controltower/hub/coord/redis"
	"github.com/redforge/controltower/hub/deploy"
	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/fleet/docker"
	"github.com/redforge/controltower/hub/fleet/process"
	"github.com/redforge/controltower/hub/instances"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/models"
	"github.com/redforge/controltower/hub/nodes"
	"github.com/redforge/controltower/hub/proxy"
	"github.com/redforge/controltower/hub/schedule"
	"github.com/redforge/controltower/hub/secrets"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/hub/store/postgres"
	"github.com/redforge/controltower/hub/store/sqlite"
)

// Hub is one running hub. Fields are set by Open.
type Hub struct {
	Config  Config
	Version string
	Logger  *slog.Logger

	NodeID  string
	State   *catalog.State
	Raft    *cluster.Node
	Store   store.Store
	Coord   coord.Coord
	Bus     broker.Bus
	Metrics *metrics.Metrics
	API     *api.Server
	Events  *events.Bus
	Auth    *auth.Service
	Audit   *audit.Logger
	Fleet   *fleet.Manager
	Deploy  *deploy.Orchestrator // blue-green deployments
	Proxy   *proxy.Proxy         // /i/{name}/ data plane
	Driver  fleet.Driver
	Models  *models.Gateway // the LLM gateway and model registry (models_wiring.go)

	// Instances owns instance rows and runtime credentials; Scheduler
	// places replicas (acting on the leader); Seal seals the catalog's
	// secrets.
	Instances *instances.Service
	Scheduler *schedule.Scheduler
	Seal      *secrets.Sealer
	// Nodes is this hub's cache of instances' node packages.
	Nodes *nodes.Cache

	// Backups makes, verifies and prunes backups; FlowsGit mirrors every
	// deployed flows version into Git (backups.go).
	Backups  *backup.Service
	FlowsGit *backup.GitMirror

	// caughtUp is set once this hub's catalog has caught up with the
	// cluster after the start (fleet.Deps.Ready).
	caughtUp   atomic.Bool
	peerClient *http.Client

	// AdminPassword is set when Open created the first admin with a
	// generated password; the caller prints it once.
	AdminPassword string

	bg     context.Context
	cancel context.CancelFunc
	bgDone sync.WaitGroup
	Sync   *edgesync.Service // edge sync and enrollment

	ln      net.Listener // the bound API listener
	srvLn   net.Listener // ln, in TLS when HTTPS is on (tls.go)
	tlsp    tlsParts     // certificates and hub-to-hub transport (tls.go)
	httpSrv *http.Server
	serveCh chan error
	closers []namedCloser
	cl      clusterParts       // multi-hub wiring (cluster_wiring.go)
	obs     observabilityParts // analytics and alerting (observability.go)

	// apiURL is URL() once listening, for instances; apiReady is closed
	// then (instance_env.go).
	apiURL   string
	apiOnce  sync.Once
	apiReady chan struct{}
}

type namedCloser struct {
	name  string
	close func() error
}

// New returns a hub for cfg; it does no I/O.
func New(cfg Config, version string, log *slog.Logger) *Hub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Hub{Config: cfg, Version: version, Logger: log}
}

// Open starts every component in dependency order. On failure it stops
// what it started and returns an error naming the component.
func (h *Hub) Open(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			_ = h.Close()
		}
	}()
	if err := h.Config.Validate(); err != nil {
		return err
	}
	h.Config.DebugConfig.apply(h.Logger)
	if err := os.MkdirAll(h.Config.DataDir, 0o750); err != nil {
		return fmt.Errorf("data-dir %s: %w", h.Config.DataDir, err)
	}
	if h.NodeID, err = h.nodeID(); err != nil {
		return err
	}
	h.Metrics = metrics.New(h.Version, h.Config.Region)
	h.Events = events.NewBus()
	h.bg, h.cancel = context.WithCancel(context.WithoutCancel(ctx))

	steps := []struct {
		name string
		open func(context.Context) error
	}{
		{"tls", h.openTLS},
		{"secrets", h.openSecrets},
		{"store", h.openStore},
		{"coord", h.openCoord},
		{"raft", h.openRaft},
		{"broker", h.openBroker},
		// Every listener is bound and every backend open before the join
		// (startup.go): a hub that cannot start must not become a voter.
		{"listen", h.bindHTTP},
		{"driver", h.openDriver},
		{"join", h.joinCluster},
		{"auth", h.openAuth},
		{"fleet", h.openFleet},
		{"observability", h.openObservability},
		{"http", h.openHTTP},
		{"cluster", h.openCluster},
	}
	for _, s := range steps {
		if err := s.open(ctx); err != nil {
			return err
		}
	}
	h.Logger.Info("hub ready", "node_id", h.NodeID, "region", h.Config.Region,
		"listen", h.Addr(), "store", Redact(h.storeTarget()), "raft", h.Raft.State())
	return nil
}

func (h *Hub) onClose(name string, f func() error) {
	h.closers = append(h.closers, namedCloser{name, f})
}

func (h *Hub) storeTarget() string {
	kind, target := StoreKind(h.Config.Store)
	if kind == "sqlite" && target == "" {
		target = filepath.Join(h.Config.DataDir, "hub.db")
	}
	return target
}

// openSecrets loads the key that seals the catalog's secrets: derived
// from the cluster secret (every hub of a cluster has the same), or kept
// in the data dir of a hub without one.
func (h *Hub) openSecrets(context.Context) error {
	var err error
	if h.Config.ClusterSecret != "" {
		h.Seal, err = secrets.FromClusterSecret(h.Config.ClusterSecret)
	} else {
		h.Seal, err = secrets.FromKeyFile(h.Config.DataDir)
	}
	if err != nil {
		return fmt.Errorf("secrets key: %w", err)
	}
	return nil
}

func (h *Hub) openStore(ctx context.Context) error {
	kind, _ := StoreKind(h.Config.Store)
	target := h.storeTarget()
	switch kind {
	case "postgres":
		db := postgres.New(target)
		db.RetryFor = h.Config.StoreRetry
		db.Observer = storeObserver{h}
		db.Replicas = h.Config.ReadReplicas()
		db.OnReplicaLag = storeObserver{h}.replicaLag
		if err := db.Open(ctx); err != nil {
			return fmt.Errorf("store %s: %w", Redact(target), err)
		}
		h.Store = db
	default:
		db := sqlite.New(target)
		if err := db.Open(ctx); err != nil {
			return fmt.Errorf("store %s: %w", target, err)
		}
		h.Store = db
	}
	h.onClose("store", h.Store.Close)
	return nil
}

func (h *Hub) openCoord(ctx context.Context) error {
	if h.Config.Redis == "" {
		h.Coord = memory.New()
	} else {
		c := coordredis.New(h.Config.Redis)
		var err error
		if c.RootCAs, err = h.redisCAs(); err != nil {
			return err
		}
		if err := c.Open(ctx); err != nil {
			return fmt.Errorf("redis %s: %w", Redact(h.Config.Redis), err)
		}
		h.Coord = c
	}
	h.onClose("coord", h.Coord.Close)
	return nil
}

func (h *Hub) openRaft(ctx context.Context) error {
	h.State = catalog.NewState()
	cfg := cluster.DefaultConfig()
	cfg.DataDir = filepath.Join(h.Config.DataDir, "raft")
	cfg.NodeID = h.NodeID
	cfg.BindAddr = h.Config.RaftListen
	cfg.Bootstrap = true
	cfg.Logger = h.Logger.With("component", "raft")
	h.configureCluster(&cfg)
	h.Raft = cluster.New(cfg, h.State)
	if err := h.Raft.Open(ctx); err != nil {
		return fmt.Errorf("raft %s: %w", h.Config.RaftListen, err)
	}
	h.onClose("raft", h.Raft.Close)
	return nil
}

func (h *Hub) openBroker(ctx context.Context) (err error) {
	if h.Config.MQTT != "" {
		ext := broker.NewExternal(h.Config.MQTT, "redforge-hub-"+h.NodeID)
		if err := ext.Open(ctx); err != nil {
			return fmt.Errorf("mqtt %s: %w", Redact(h.Config.MQTT), err)
		}
		h.Bus = ext
	} else {
		emb := broker.NewEmbedded(h.Config.MQTTListen, deploy.NewBrokerAuth(h.checkMQTT, h.State), h.Logger.With("component", "mqtt"))
		if emb.TLS, err = h.mqttTLS(); err != nil {
			return err
		}
		emb.TLSListen = h.Config.MQTTTLSListen
		if err := emb.Open(ctx); err != nil {
			return fmt.Errorf("mqtt-listen %s: %w", h.Config.MQTTListen, err)
		}
		h.Bus = emb
	}
	h.onClose("broker", h.Bus.Close)
	return nil
}

func (h *Hub) openHTTP(ctx context.Context) error {
	h.Sync = edgesync.New(edgesync.Config{Catalog: h.State, Raft: h.Raft, Store: h.Store,
		Logger: h.Logger.With("component", "sync"), CAPin: h.CAPin()})
	h.openDeploy()
	if err := h.openBackups(); err != nil {
		return err
	}
	if err := h.openModels(); err != nil {
		return fmt.Errorf("models: %w", err)
	}
	// Each component once, as the capability the API uses of it
	// (hub/api/server.go).
	h.API = api.New(api.Config{
		Version:    h.Version,
		Region:     h.Config.Region,
		NodeID:     h.NodeID,
		Components: h.healthComponents(),
		Metrics:    h.Metrics,
		Logger:     h.Logger.With("component", "api"),
		// Forwarding headers count only from TrustedProxies (empty: none).
		TrustedProxies: h.Config.TrustedProxyList(),
		CORSOrigins:    strings.Split(h.Config.CORSOrigins, ","),

		Catalog: h.State,
		Cluster: h.Raft,
		Store:   h.Store,
		Users:   h.Auth,
		Audit:   h.Audit,
		// Rate limits and the per-account login delay live in coord.
		Limits:     h.Coord,
		LoginClock: h.Config.LoginClock,
		Sync:       h.Sync,
		Events:     h.Events,

		Fleet:             h.Fleet,
		Rows:              h.Instances,
		Deploy:            h.Deploy,
		Proxy:             h.Proxy, // /i/{name}/ and /editor/{name}/
		RuntimeBrokerAddr: h.runtimeBrokerAddr,
		Nodes:             h.Nodes,
		Backups:           h.Backups,
		FlowsGit:          h.flowsGit(),
		Models:            h.Models, // model marketplace (models_wiring.go)
		Sealer:            h.Seal,

		Peers:         h.apiPeers(),         // cluster_wiring.go
		Observability: h.apiObservability(), // observability.go
	})
	// Started only now: it reads h.API, which this function has just set.
	h.background(func(ctx context.Context) { h.every(ctx, healthMetricsInterval, h.refreshHealthMetrics) })
	ln := h.srvLn // bound by bindHTTP before the join
	h.apiURL = h.URL()
	close(h.apiReadyCh())
	h.httpSrv = &http.Server{
		Handler:           withHSTS(h.API.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(h.Logger.Handler(), slog.LevelWarn),
		// No WriteTimeout: a CPU profile or trace (GET /debug/pprof/,
		// up to api.MaxProfileSeconds) and long API calls (backups,
		// flows rollouts, WebSocket) hold a response open; Shutdown ends
		// the profiles at once (StopProfiles).
	}
	h.httpSrv.RegisterOnShutdown(h.API.StopProfiles)
	h.serveCh = make(chan error, 1)
	go func() { h.serveCh <- h.httpSrv.Serve(ln) }()
	h.onClose("http", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), h.Config.ShutdownTimeout)
		defer cancel()
		return h.httpSrv.Shutdown(ctx)
	})
	return nil
}

// healthComponents are the components /api/health reports.
func (h *Hub) healthComponents() []api.Component {
	return []api.Component{
		{Name: "raft", Checker: h.Raft},
		{Name: "store", Checker: h.Store},
		{Name: "store-integrity", Checker: h.storeCheck()},
		{Name: "coord", Checker: h.Coord},
		{Name: "broker", Checker: h.Bus},
	}
}

// openAuth makes sure the signing key and the first admin exist, and
// starts the audit logger.
func (h *Hub) openAuth(ctx context.Context) error {
	// Background work stops before the broker, Raft and the store close.
	h.onClose("background", func() error {
		h.cancel()
		h.bgDone.Wait()
		h.Events.Close()
		return nil
	})
	h.Auth = auth.New(auth.Config{Logger: h.Logger.With("component", "auth"), Sealer: h.Seal}, h.State, h.Raft)
	// A hub that just joined may not have the leader's catalog (and so the
	// key and admin) yet, nor a route to the leader: retry for a while
	// rather than fail the start.
	if err := untilOK(ctx, startupRetry, func() error { return h.Auth.EnsureSigningKey(ctx) }); err != nil {
		return fmt.Errorf("auth signing key: %w", err)
	}
	if err := untilOK(ctx, startupRetry, func() error { return h.Auth.EnsureEditorKey(ctx) }); err != nil {
		return fmt.Errorf("auth editor key: %w", err)
	}
	var created bool
	var generated string
	err := untilOK(ctx, startupRetry, func() (err error) {
		created, generated, err = h.Auth.EnsureAdmin(ctx, h.Config.AdminPassword)
		return err
	})
	if err != nil {
		return fmt.Errorf("first admin: %w", err)
	}
	if created {
		h.AdminPassword = generated
	}
	h.Audit = audit.New(h.Store, audit.Config{Logger: h.Logger.With("component", "audit"),
		Anchors: audit.CatalogAnchors{Catalog: h.State, Applier: h.Raft}, MaxBatch: h.Config.AuditMaxBatch})
	h.Instances = instances.New(h.State, h.Raft, h.Seal, h.Auth)
	h.background(func(ctx context.Context) { h.every(ctx, time.Minute, h.maintainAuth) })
	return nil
}

// startupRetry bounds how long Open retries a control-plane write that a
// hub still joining its cluster cannot make yet.
const startupRetry = 30 * time.Second

// untilOK calls f until it succeeds, ctx ends or limit passes, and returns
// its last error.
func untilOK(ctx context.Context, limit time.Duration, f func() error) error {
	deadline := time.Now().Add(limit)
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		err := f()
		if err == nil || time.Now().Add(wait).After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// maintainAuth sweeps expired sessions and anchors the audit chain.
func (h *Hub) maintainAuth(ctx context.Context) {
	if !h.Raft.IsLeader() {
		return
	}
	if _, err := h.Auth.Sweep(ctx); err != nil {
		h.Logger.Warn("auth sweep", "error", err)
	}
	if _, err := h.Audit.Anchor(ctx); err != nil {
		h.Logger.Warn("audit anchor", "error", err)
	}
}

// openFleet starts the fleet manager on the driver openDriver opened.
func (h *Hub) openFleet(ctx context.Context) error {
	drv := h.Driver // opened by openDriver before the join
	h.Nodes = nodes.New(nodes.Config{Dir: filepath.Join(h.Config.DataDir, "nodes"), NPM: h.Config.NPM,
		Registry: h.Config.NPMRegistry, Fetch: h.fetchPackage, Logger: h.Logger.With("component", "nodes")})
	h.Fleet = fleet.NewManager(fleet.Config{HubID: h.NodeID, Advertise: h.runtimeHost(), MonitorInterval: h.Config.MonitorInterval,
		MetricsInterval: h.Config.metricsInterval(),
		PortMin:         h.Config.InstancePortMin, PortMax: h.Config.InstancePortMax}, fleet.Deps{
		Driver: drv, Catalog: h.State, Applier: h.Raft, Credentials: h.Instances, Render: h.renderFlows,
		Ready: h.caughtUp.Load, Bus: h.Events, Samples: h.Store, Metrics: h.Metrics,
		Logger:   h.Logger.With("component", "fleet"),
		Decorate: h.decorateInstance,
	})
	h.background(h.catchUp)
	h.Fleet.RecordHistory(h.Store, h.logicalInstanceID)
	if !h.Config.scratch { // a verification copy keeps the backup's history as it is
		h.background(h.pruneHistory)
	}
	h.background(h.Fleet.Run)
	if h.Config.Demo {
		h.background(h.startDemo)
	}
	h.Logger.Info("fleet driver", "driver", drv.Name())
	return nil
}

func (h *Hub) pickDriver(ctx context.Context) (fleet.Driver, error) {
	if h.Config.scratch {
		return scratchDriver{}, nil // a backup verification copy (backups.go)
	}
	dataDir, err := filepath.Abs(h.Config.DataDir)
	if err != nil {
		return nil, fmt.Errorf("data-dir: %w", err)
	}
	if h.Config.Driver != "process" {
		d := docker.New(docker.Config{Host: h.Config.DockerHost, HubID: h.NodeID, DataDir: dataDir,
			DefaultImage: h.Config.Image, Network: h.Config.DockerNetwork, Log: h.Logger.With("component", "docker")})
		octx, cancel := context.WithTimeout(ctx, 3*time.Second)
		err := d.Open(octx)
		cancel()
		if err == nil {
			h.onClose("docker", d.Close)
			return d, nil
		}
		if h.Config.Driver == "docker" {
			return nil, fmt.Errorf("driver docker: %w", err)
		}
		h.Logger.Info("no Docker daemon answers; using the process driver", "reason", err)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("driver process: node not found in PATH (install Node.js 18 or later)")
	}
	redJS := h.Config.NodeRED
	if redJS == "" {
		redJS = findNodeRED()
	}
	d := process.New(process.Config{DataDir: dataDir, Node: node, RedJS: redJS, HubID: h.NodeID,
		Log: h.Logger.With("component", "process")})
	if err := d.Open(ctx); err != nil {
		return nil, fmt.Errorf("driver process: %w (set --node-red to node_modules/node-red/red.js; make run installs it)", err)
	}
	return d, nil
}

// findNodeRED looks for red.js where make installs Node-RED.
func findNodeRED() string {
	var dirs []string
	if c := os.Getenv("REDFORGE_CACHE"); c != "" {
		dirs = append(dirs, filepath.Join(c, "node-red"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, ".cache", "redforge", "node-red"))
	}
	dirs = append(dirs, ".")
	for _, d := range dirs {
		p := filepath.Join(d, "node_modules", "node-red", "red.js")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func (h *Hub) bgCtx() context.Context { return h.bg }

// background runs f until Close.
func (h *Hub) background(f func(ctx context.Context)) {
	h.bgDone.Add(1)
	go func() {
		defer h.bgDone.Done()
		f(h.bgCtx())
	}()
}

// every calls f now and then every interval until ctx ends.
func (h *Hub) every(ctx context.Context, interval time.Duration, f func(context.Context)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		f(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Addr is the bound HTTP address, e.g. 127.0.0.1:3000.
func (h *Hub) Addr() string {
	if h.ln == nil {
		return ""
	}
	return h.ln.Addr().String()
}

// URL is a URL a local client can use to reach the API.
func (h *Hub) URL() string {
	host, port, err := net.SplitHostPort(h.Addr())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return h.scheme() + "://" + net.JoinHostPort(host, port)
}

// scheme is https when the API serves HTTPS, else http.
func (h *Hub) scheme() string {
	if h.Config.TLSOn() {
		return "https"
	}
	return "http"
}

// Serving returns a channel that yields the HTTP server's error if it stops
// on its own.
func (h *Hub) Serving() <-chan error { return h.serveCh }

// Close stops components in reverse start order: HTTP first (draining
// requests), then the broker, Raft, coordination and store.
func (h *Hub) Close() error {
	var errs []error
	for i := len(h.closers) - 1; i >= 0; i-- {
		c := h.closers[i]
		if err := c.close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("close %s: %w", c.name, err))
		}
	}
	h.closers = nil
	return errors.Join(errs...)
}

// nodeID returns the configured node id or a stable one kept in the data
// dir, so a restarted hub rejoins Raft as itself.
func (h *Hub) nodeID() (string, error) {
	if h.Config.NodeID != "" {
		return h.Config.NodeID, nil
	}
	path := filepath.Join(h.Config.DataDir, "node-id")
	if b, err := os.ReadFile(path); err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("data-dir: read node id: %w", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	id := "hub-" + hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(id+"\n"), 0o640); err != nil {
		return "", fmt.Errorf("data-dir: write node id: %w", err)
	}
	return id, nil
}

// openDeploy builds the deployment orchestrator and the /i/{name}/ proxy
// and starts the orchestrator's loop (it acts only on the leader).
func (h *Hub) openDeploy() {
	o := deploy.New(deploy.Config{BrokerAddr: h.brokerAddr, RelaySession: h.relaySession()}, deploy.Deps{
		Catalog: h.State, Applier: h.Raft, Fleet: h.Fleet, Rows: h.Instances, Bus: h.Bus, Coord: h.Coord, Audit: h.Audit,
		Events: h.Events, Checkpoints: h.Store, IsLeader: h.Raft.IsLeader, ClusterIdle: h.clusterIdle,
		Logger: h.Logger.With("component", "deploy"), Observer: h.Metrics.Deploy, Logs: h.replicaLogs,
	})
	h.Proxy = proxy.New(proxyResolver{h.Instances, h.State}, h.locality(), h.Logger.With("component", "proxy"))
	h.onClose("proxy", h.Proxy.Close)
	o.SetProxy(h.Proxy)
	h.Deploy = o
	if !h.Config.scratch { // a verification copy must not drive the real runtimes
		h.background(o.Run)
	}
}

// checkMQTT admits a runtime to the embedded broker with its row's own
// bus password; it refuses until the instance service is open.
func (h *Hub) checkMQTT(row string, password []byte) bool {
	return h.Instances != nil && h.Instances.CheckMQTT(row, password)
}

// renderFlows prepares a row's flows for one of this hub's runtimes: its
// names, its bus credentials and the flows' own node credentials.
func (h *Hub) renderFlows(_ context.Context, w catalog.Work, creds fleet.Creds) ([]json.RawMessage, error) {
	nodes, err := deploy.Render(w.Flows.Doc, w.Row, creds, h.runtimeBrokerAddr())
	if err != nil || w.Flows.Credentials == "" {
		return nodes, err
	}
	logical, err := h.Instances.Logical(w.Row)
	if err != nil {
		return nil, err
	}
	nodeCreds, err := h.Instances.OpenFlowCredentials(logical.ID, w.Flows.Credentials)
	if err != nil {
		return nil, err
	}
	return deploy.InjectCredentials(nodes, nodeCreds)
}

// runtimeBrokerAddr is the bus address as this hub's runtimes reach it:
// an embedded broker bound to all interfaces is reached on loopback.
func (h *Hub) runtimeBrokerAddr() string {
	addr := h.brokerAddr()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// catchUp marks the catalog caught up once a consistent read succeeds
// (the leader confirmed this hub has applied everything committed before
// it), retrying until it does: until then the fleet neither creates nor
// removes runtimes.
func (h *Hub) catchUp(ctx context.Context) {
	for wait := 100 * time.Millisecond; ctx.Err() == nil; wait = min(2*wait, 2*time.Second) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := h.Raft.ConsistentRead(rctx)
		cancel()
		if err == nil {
			h.caughtUp.Store(true)
			h.Fleet.Kick()
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// proxyResolver resolves /i/{name}/ through the instance service and the
// catalog's allocations.
type proxyResolver struct {
	rows *instances.Service
	cat  *catalog.State
}

func (r proxyResolver) Live(name string) (catalog.Instance, error) { return r.rows.Live(name) }

func (r proxyResolver) InstanceAllocations(rowID string) []catalog.Allocation {
	return r.cat.InstanceAllocations(rowID)
}

// locality tells the proxy where this hub is and how far the others are.
func (h *Hub) locality() proxy.Locality {
	return proxy.Locality{Hub: h.NodeID, Region: h.Config.Region,
		HubRegion: func(id string) string {
			hu, err := h.State.Hub(id)
			if err != nil {
				return ""
			}
			return hu.Region
		},
		RTT: func(id string) (time.Duration, bool) {
			st, ok := h.peerStatus(id)
			return st.RTT, ok && st.RTT > 0
		}}
}

// brokerAddr is the address instances reach the bus at: the embedded
// broker's, or the outside broker's host:port from --mqtt. With an
// outside broker every hub shares the bus, so an instance stays on it
// when the hub that deployed it dies.
func (h *Hub) brokerAddr() string {
	switch b := h.Bus.(type) {
	case *broker.Embedded:
		return b.Addr()
	case *broker.External:
		return b.Addr()
	}
	return ""
}
