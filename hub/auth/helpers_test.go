package auth

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/cluster"
	"github.com/redforge/controltower/internal/testenv"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// env is a Service on a real one-node Raft cluster.
type env struct {
	svc   *Service
	node  *cluster.Node
	state *catalog.State
	clock *clock
	logs  *testenv.Buffer
}

// MustEnv starts a one-node cluster in a temp dir and a Service on it with
// a signing key, bcrypt.MinCost and a test clock.
func MustEnv(tb testing.TB) *env {
	tb.Helper()
	e := MustEnvWithoutKey(tb)
	if err := e.svc.EnsureSigningKey(ctxT(tb)); err != nil {
		tb.Fatal(err)
	}
	return e
}

// MustEnvWithoutKey is MustEnv before EnsureSigningKey.
func MustEnvWithoutKey(tb testing.TB) *env {
	tb.Helper()
	state := catalog.NewState()
	node := cluster.New(cluster.Config{
		DataDir:            tb.TempDir(),
		NodeID:             "auth-test",
		BindAddr:           "127.0.0.1:0",
		Bootstrap:          true,
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 150 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotInterval:   time.Hour,
		Logger:             slog.New(slog.DiscardHandler),
	}, state)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := node.Open(ctx); err != nil {
		tb.Fatalf("open raft node: %v", err)
	}
	tb.Cleanup(func() { node.Close() })
	e := &env{node: node, state: state, clock: &clock{t: time.Now()}, logs: &testenv.Buffer{}}
	e.svc = New(Config{
		BcryptCost: bcrypt.MinCost,
		Now:        e.clock.Now,
		Logger:     slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}, state, node)
	return e
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// MustUser creates a user with the given role and password directly in
// the catalog.
func (e *env) MustUser(tb testing.TB, name string, role catalog.Role, pw string) catalog.User {
	tb.Helper()
	hash, err := HashPassword(pw, bcrypt.MinCost)
	if err != nil {
		tb.Fatal(err)
	}
	now := e.clock.Now().UTC()
	u := catalog.User{ID: uuid.NewString(), Username: name, PasswordHash: hash, Role: role, CreatedAt: now, UpdatedAt: now}
	v, err := e.node.Apply(ctxT(tb), catalog.PutUser(u))
	if err != nil {
		tb.Fatal(err)
	}
	return v.(catalog.User)
}

// MustApply commits cmd or fails the test.
func (e *env) MustApply(tb testing.TB, cmd catalog.Command) any {
	tb.Helper()
	v, err := e.node.Apply(ctxT(tb), cmd)
	if err != nil {
		tb.Fatalf("apply %s: %v", cmd.Type, err)
	}
	return v
}

// MustLogin logs in or fails the test.
func (e *env) MustLogin(tb testing.TB, name, pw string) (Tokens, Principal) {
	tb.Helper()
	toks, p, err := e.svc.Login(ctxT(tb), name, pw, "192.0.2.1")
	if err != nil {
		tb.Fatalf("login %s: %v", name, err)
	}
	return toks, p
}

// MustAuth authenticates or fails the test.
func (e *env) MustAuth(tb testing.TB, bearer string) Principal {
	tb.Helper()
	p, err := e.svc.Authenticate(ctxT(tb), bearer)
	if err != nil {
		tb.Fatalf("authenticate: %v", err)
	}
	return p
}

// wantReason fails unless err is an ErrUnauthenticated with reason r.
func wantReason(tb testing.TB, what string, err error, r Reason) {
	tb.Helper()
	if !errors.Is(err, ErrUnauthenticated) || ReasonOf(err) != r {
		tb.Errorf("%s: err = %v, want ErrUnauthenticated with reason %q", what, err, r)
	}
}

const (
	adminPW = "correct horse battery"
	opPW    = "operator password 1"
)
