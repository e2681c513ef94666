// Package api serves the hub's REST API, WebSocket events, metrics and the
// console over gin. It owns routing, middleware (request id, access log,
// recovery, security headers) and the mapping of domain errors to HTTP
// status codes; it owns no state. The components it serves are reached
// through small interfaces declared here, so hub/hub.go wires them.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/auth"
	"github.com/redforge/controltower/hub/backup"
	"github.com/redforge/controltower/hub/events"
	"github.com/redforge/controltower/hub/metrics"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/regions"
)

// Checker is a component whose health /api/health reports. Ping must
// return promptly (it gets a context with a short deadline).
type Checker interface {
	Ping(ctx context.Context) error
}

// Component is a named Checker; the name appears in health responses.
type Component struct {
	Name    string
	Checker Checker
}

// Config holds what the API needs from the rest of the hub. Each
// component is wired once, as one field whose type is the capability the
// API uses of it: a small interface declared here or beside the routes
// that use it, composed when one component serves several route groups
// (Catalog, Cluster, Users, Audit, Limits, Proxy). A route group is
// registered when the fields it needs are set.
type Config struct {
	// This hub and its HTTP surface.
	Version    string
	Region     string
	NodeID     string
	Components []Component
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	// TrustedProxies are the addresses and CIDRs of reverse proxies whose
	// X-Forwarded-For and X-Real-IP name the client. Empty: no proxy is
	// trusted, and the client is the connection's peer address (what the
	// login limit, the audit log and the access log use).
	TrustedProxies []string
	// CORSOrigins may call the API from a browser on another origin.
	CORSOrigins []string

	// Catalog reads the control plane (hub/catalog.State); Cluster writes
	// it and is this hub's Raft node (hub/cluster.Node): GET /api/cluster,
	// /api/regions, /api/route, staleness headers and ?consistent=1 reads.
	Catalog Catalog
	Cluster ControlPlane
	// Store holds append data (hub/store): metric samples, status history,
	// flows versions and workflow checkpoints.
	Store Store
	// Users authenticates sessions and API tokens and serves login, users,
	// API tokens, signing keys and editor sessions (hub/auth.Service).
	Users Users
	// Audit records every mutating action and serves audit queries,
	// verification, export, reports and AI decisions (hub/audit.Logger).
	Audit AuditLog
	// Limits enforces the request and login rate limits and keeps the
	// per-account login delay (hub/coord); LoginClock is the clock of the
	// login delay (tests), time.Now when nil.
	Limits     Limits
	LoginClock func() time.Time
	// Sync serves edge sync and enrollment and authenticates enrolled
	// edges (hub/edgesync); its routes are registered when it is set.
	Sync SyncService
	// Events is the bus /api/ws subscribes to.
	Events *events.Bus

	// Fleet manages this hub's runtimes; instance routes are served when
	// it is set. Rows writes instance rows (hub/instances).
	Fleet Fleet
	Rows  Rows
	// Deploy runs blue-green deployments (hub/deploy). Proxy serves
	// /i/{name}/ and, with Users, instances' Node-RED editors at
	// /editor/{name}/ (hub/proxy). Their routes are registered when set.
	Deploy Deployer
	Proxy  InstanceProxy
	// RuntimeBrokerAddr is the hub bus as this hub's runtimes reach it
	// (editor deploys are turned back into documents with it).
	RuntimeBrokerAddr func() string
	// Nodes is this hub's node package cache: node package routes are
	// registered when it is set (with Deploy).
	Nodes NodePackages
	// Backups makes, lists, verifies and prunes backups (hub/backup);
	// its routes are registered when set.
	Backups Backups
	// FlowsGit is the flows mirror in Git: GET /api/flows/git and POST
	// /api/flows/restore (registered when set).
	FlowsGit FlowsGit
	// Models serves the LLM gateway (/v1/*) and the model registry
	// (/api/models, /api/routes/llm); Sealer seals provider keys.
	// Registered when Models and Catalog are set.
	Models Models
	Sealer Sealer

	// Peers are the multi-hub parts (cluster.go, hubs.go, regions.go).
	Peers Peers
	// Observability serves analytics, prices, dashboards and alerts
	// (analytics.go, prometheus.go, alerts.go).
	Observability Observability
}

// Catalog is what the API reads of the control plane: one object
// (hub/catalog.State) seen through each route group's capability.
type Catalog interface {
	InstanceCatalog      // instances, hubs, allocations, flows (instances.go)
	SnapshotCatalog      // instance snapshots (snapshots.go)
	ModelCatalog         // the model registry (models.go)
	backup.ConfigCatalog // configuration export and import (configio.go)
}

// Peers are the hub-to-hub parts of the API.
type Peers struct {
	// Handler serves the hub-to-hub Raft calls (cluster.Handler); it
	// checks the cluster secret itself.
	Handler http.Handler
	// Routes are other hub-to-hub endpoints (path → handler) that check
	// the cluster secret themselves (events fan-out, in-flight counts).
	Routes map[string]http.Handler
	// Client calls other hubs (forwarded log reads, the regions' RTT
	// matrix): mutual TLS with the cluster CA when configured. Nil: a
	// plain client.
	Client *http.Client
	// Table is this hub's probe view of the others; Topology the
	// configured regions (optional); Moves lists failover instances moved
	// out of a failed region.
	Table    RouteTable
	Topology *regions.Topology
	Moves    func() []regions.Move
}

// Observability is what the metrics and alerting routes serve. Analytics
// answers GET /api/metrics/fleet and /api/metrics/instances/:id; Prices
// is the LLM price table (GET /api/metrics/prices); GrafanaURL, when set,
// is where the console embeds the dashboards from; Alerts serves alert
// rules, active alerts and their history. Each is optional.
type Observability struct {
	Analytics  Analytics
	Prices     func() metrics.PriceTable
	GrafanaURL string
	Alerts     AlertService
}

// Store is what the API reads of the data store (metric samples, status
// history, flows versions, checkpoints), and the flows versions and
// checkpoints it records.
type Store interface {
	QueryMetricSamples(ctx context.Context, q store.MetricQuery) ([]store.MetricSample, error)
	HistoryStore
	CheckpointStore
}

// Authenticator turns a bearer credential into a principal; refusals are
// errors that are auth.ErrUnauthenticated.
type Authenticator interface {
	Authenticate(ctx context.Context, bearer string) (auth.Principal, error)
}

// EdgeAuthenticator turns an edge's bearer credential into its edge id.
type EdgeAuthenticator interface {
	AuthenticateEdge(ctx context.Context, bearer string) (string, error)
}

// Server is the hub's HTTP API.
type Server struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics.Metrics
	engine  *gin.Engine

	routeTable []RouteInfo

	stopProfiles chan struct{} // closed by StopProfiles (debug.go)
	stopOnce     sync.Once
}

// New builds the router. It does no I/O.
func New(cfg Config) *Server {
	gin.SetMode(gin.ReleaseMode)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics, stopProfiles: make(chan struct{})}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		// hub.Config.Validate refuses such a list; trust no proxy rather
		// than every one.
		cfg.Logger.Error("trusted proxies ignored: no forwarding header is trusted", logKeyError, err)
		_ = e.SetTrustedProxies(nil)
	}
	e.Use(requestID(), s.accessLog(), recovery(), securityHeaders(grafanaOrigin(cfg.Observability.GrafanaURL)), s.cors(), limitBody(), s.readConsistency(), s.storeReads())
	e.NoRoute(func(c *gin.Context) {
		abort(c, &Error{Status: http.StatusNotFound, Code: "not_found", Message: "no route " + c.Request.Method + " " + c.Request.URL.Path})
	})
	e.NoMethod(func(c *gin.Context) {
		abort(c, &Error{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: c.Request.Method + " is not allowed on " + c.Request.URL.Path})
	})
	s.engine = e
	s.routes()
	return s
}

func (s *Server) routes() {
	s.handle(http.MethodGet, "/api/health", Public, s.health)
	if s.metrics != nil {
		h := s.metrics.Handler()
		s.handle(http.MethodGet, "/metrics", Public, func(c *gin.Context) { h.ServeHTTP(c.Writer, c.Request) })
	}
	s.authRoutes()
	s.auditRoutes()
	s.reportRoutes()
	s.instanceRoutes()
	s.hubRoutes()
	s.wsRoutes()
	s.syncRoutes()
	s.clusterRoutes()
	s.deploymentRoutes()
	s.checkpointRoutes()
	s.analyticsRoutes()
	s.prometheusRoutes()
	s.alertRoutes()
	s.editorRoutes()
	s.nodeRoutes()
	s.snapshotRoutes()
	s.backupRoutes()
	s.flowsGitRoutes()
	s.configRoutes()
	s.modelRoutes()
	s.debugRoutes()
	s.consoleRoutes()
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }
