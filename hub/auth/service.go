package auth

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Defaults of the Config tunables.
const (
	DefaultIssuer        = "redforge"
	DefaultAudience      = "redforge-api"
	DefaultAccessTTL     = 15 * time.Minute
	DefaultRefreshTTL    = 7 * 24 * time.Hour
	DefaultSessionMaxAge = 30 * 24 * time.Hour
	DefaultLeeway        = 10 * time.Second
	DefaultBcryptCost    = 12
)

// Catalog is what the package reads from the control-plane catalog.
// *catalog.State satisfies it. Reads may be stale by the replication lag
// on a follower hub.
type Catalog interface {
	User(id string) (catalog.User, error)
	UserByName(username string) (catalog.User, error)
	Users() []catalog.User
	APITokenByHash(hash string) (catalog.APIToken, error)
	APITokens() []catalog.APIToken
	Setting(key string) (catalog.Setting, error)
	Settings() []catalog.Setting
}

// Applier commits catalog commands. *cluster.Node satisfies it; on a
// follower without a forwarder its errors wrap cluster.ErrNotLeader.
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// Sealer seals and opens secrets kept in the catalog (hub/secrets).
type Sealer interface {
	Seal(context, plaintext string) (string, error)
	Open(context, sealed string) (string, error)
}

// Config tunes a Service. Zero fields take the defaults.
type Config struct {
	// Sealer, when set, seals the token signing keys in the catalog, so
	// the Raft log and its snapshots never hold them in clear.
	Sealer Sealer
	// Issuer and Audience are written into and required of every access
	// token. All hubs of a cluster must agree.
	Issuer   string
	Audience string
	// AccessTTL is the lifetime of an access token (JWT).
	AccessTTL time.Duration
	// RefreshTTL is the lifetime of a refresh token; each use rotates it
	// and starts a new lifetime.
	RefreshTTL time.Duration
	// SessionMaxAge bounds a session (a refresh token family) from its
	// login, however often it is refreshed.
	SessionMaxAge time.Duration
	// Leeway is the clock skew tolerated when checking exp, nbf and iat.
	Leeway time.Duration
	// BcryptCost is the cost of new password hashes (bcrypt.MinCost in
	// tests).
	BcryptCost int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives the package's few logs; nil discards them. Secrets
	// are never logged.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.Issuer == "" {
		c.Issuer = DefaultIssuer
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	def(&c.AccessTTL, DefaultAccessTTL)
	def(&c.RefreshTTL, DefaultRefreshTTL)
	def(&c.SessionMaxAge, DefaultSessionMaxAge)
	def(&c.Leeway, DefaultLeeway)
	if c.BcryptCost == 0 {
		c.BcryptCost = DefaultBcryptCost
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Service authenticates principals, issues and revokes sessions and API
// tokens, and manages users. It is safe for concurrent use. Build it with
// New; call EnsureSigningKey (and EnsureAdmin) on the leader at start.
type Service struct {
	cfg Config
	cat Catalog
	ap  Applier
	log *slog.Logger

	dummyOnce sync.Once
	dummyHash []byte

	keyMu sync.Mutex
	key   cachedKey
	edKey cachedEditorKey // the editor key (editor.go)
}

// New returns a Service reading cat and writing through ap. It does no I/O.
func New(cfg Config, cat Catalog, ap Applier) *Service {
	cfg = cfg.withDefaults()
	return &Service{cfg: cfg, cat: cat, ap: ap, log: cfg.Logger.With(logKeyComponent, "auth")}
}

// Config returns the effective configuration (defaults filled in).
func (s *Service) Config() Config { return s.cfg }

// Log keys.
const (
	logKeyComponent = "component"
	logKeyUserID    = "user_id"
	logKeySession   = "session_id"
)

func (s *Service) now() time.Time { return s.cfg.Now() }

// apply commits cmd and returns its result as T.
func apply[T any](ctx context.Context, ap Applier, cmd catalog.Command) (T, error) {
	var zero T
	v, err := ap.Apply(ctx, cmd)
	if err != nil {
		return zero, err
	}
	t, ok := v.(T)
	if !ok && v != nil {
		return zero, fmt.Errorf("apply %s: unexpected result %T", cmd.Type, v)
	}
	return t, nil
}
