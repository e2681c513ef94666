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
	"time"

	"github.com/gin-gonic/gin"

	"github.com/redforge/controltower/hub/audit"
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

// Config holds what the API needs from the rest of the hub.
type Config struct {
	Version    string
	Region     string
	NodeID     string
	Components []Component
	Metrics    *metrics.Metrics
	Logger     *slog.Logger
	// Auth authenticates users' sessions and API tokens.
	Auth Authenticator
	// EdgeAuth authenticates enrolled edges on the sync routes.
	EdgeAuth EdgeAuthenticator
	// Sync serves edge sync and enrollment (hub/edgesync); its routes are
	// registered when it is set.
	Sync SyncService
	// Audit records every mutating action.
	Audit Auditor
	// Catalog and Applier read and write the control plane.
	Catalog Catalog
	Applier Applier
	// Fleet manages this hub's runtimes; instance routes are served when
	// it is set. Rows writes instance rows (hub/instances).
	Fleet Fleet
	Rows  Rows
	// Store holds append data (metric samples, audit, AI decisions).
	Store Store
	// Events is the bus /api/ws subscribes to.
	Events *events.Bus
	// Users serves login, sessions, users and API tokens.
	Users *auth.Service
	// AuditLog serves audit queries, verification, export and AI decisions.
	AuditLog *audit.Logger
	// Limiter enforces login and request rate limits.
	Limiter Limiter
	// LoginState keeps the per-account login delay (hub/coord); without
	// it only the per-address login limit applies.
	LoginState LoginState
	// LoginClock is the clock of the login delay (tests); time.Now when nil.
	LoginClock func() time.Time
	// TrustedProxies are the addresses and CIDRs of reverse proxies whose
	// X-Forwarded-For and X-Real-IP name the client. Empty: no proxy is
	// trusted, and the client is the connection's peer address (what the
	// login limit, the audit log and the access log use).
	TrustedProxies []string
	// CORSOrigins may call the API from a browser on another origin.
	CORSOrigins []string
	// Cluster is the hub's Raft node: GET /api/cluster, /api/regions,
	// /api/route, staleness headers and ?consistent=1 reads. ClusterHandler
	// serves the hub-to-hub calls (cluster.Handler); Routes is this hub's
	// probe view of the others; Topology the configured regions (optional).
	Cluster        ClusterNode
	ClusterHandler http.Handler
	Routes         RouteTable
	Topology       *regions.Topology
	// Moves lists failover instances moved out of a failed region.
	Moves func() []regions.Move
	// Checkpoints keeps workflow checkpoints (POST/GET /api/checkpoints,
	// registered when set).
	Checkpoints CheckpointStore
	// Deploy runs blue-green deployments (hub/deploy); Proxy serves
	// /i/{name}/ (hub/proxy). Their routes are registered when set.
	Deploy Deployer
	Proxy  DataProxy
	// Backups makes, lists, verifies and prunes backups (hub/backup);
	// its routes are registered when set.
	Backups Backups
	// FlowsGit is the flows mirror in Git: GET /api/flows/git and POST
	// /api/flows/restore (registered when set).
	FlowsGit FlowsGit
	// ConfigCatalog serves configuration export and import (GET
	// /api/config/export, POST /api/config/import), registered when set.
	ConfigCatalog backup.ConfigCatalog
	// PeerRoutes are hub-to-hub endpoints (path → handler) that check the
	// cluster secret themselves (events fan-out, in-flight counts).
	PeerRoutes map[string]http.Handler
	// PeerClient calls other hubs (forwarded log reads, the regions' RTT
	// matrix): mutual TLS with the cluster CA when configured. Nil: a
	// plain client.
	PeerClient *http.Client

	// Observability (analytics.go, prometheus.go, alerts.go). Analytics
	// answers GET /api/metrics/fleet and /api/metrics/instances/:id;
	// Prices is the LLM price table (GET /api/metrics/prices);
	// GrafanaURL, when set, is where the console embeds the dashboards
	// from; Alerts serves alert rules, active alerts and their history.
	Analytics  Analytics
	Prices     func() metrics.PriceTable
	GrafanaURL string
	Alerts     AlertService

	// Editor serves instances' Node-RED editors (/editor/{name}/,
	// registered when set, with Users); RuntimeBrokerAddr is the hub bus
	// as this hub's runtimes reach it (editor deploys are turned back into
	// documents with it).
	Editor            EditorProxy
	RuntimeBrokerAddr func() string
	// Nodes is this hub's node package cache: node package and snapshot
	// routes are registered when it is set (with Deploy).
	Nodes NodePackages
	// Snapshots reads instance snapshots; their routes are registered when
	// set (with Deploy).
	Snapshots SnapshotCatalog
	// Models serves the LLM gateway (/v1/*) and the model registry
	// (/api/models, /api/routes/llm) over ModelCatalog; Sealer seals
	// provider keys. Registered when Models and ModelCatalog are set.
	Models       Models
	ModelCatalog ModelCatalog
	Sealer       Sealer
}

// Store is what the API reads of the data store (metric samples, status
// history, flows versions), and the flows versions it records.
type Store interface {
	QueryMetricSamples(ctx context.Context, q store.MetricQuery) ([]store.MetricSample, error)
	HistoryStore
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
}

// New builds the router. It does no I/O.
func New(cfg Config) *Server {
	gin.SetMode(gin.ReleaseMode)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: cfg.Metrics}
	e := gin.New()
	e.HandleMethodNotAllowed = true
	e.ContextWithFallback = true
	if err := e.SetTrustedProxies(cfg.TrustedProxies); err != nil {
		// hub.Config.Validate refuses such a list; trust no proxy rather
		// than every one.
		cfg.Logger.Error("trusted proxies ignored: no forwarding header is trusted", logKeyError, err)
		_ = e.SetTrustedProxies(nil)
	}
	e.Use(requestID(), s.accessLog(), recovery(), securityHeaders(grafanaOrigin(cfg.GrafanaURL)), s.cors(), limitBody(), s.readConsistency(), s.storeReads())
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
	s.consoleRoutes()
}

// Handler returns the http.Handler to serve.
func (s *Server) Handler() http.Handler { return s.engine }
