package hub_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/internal/hubtest"
	"github.com/redforge/controltower/internal/testenv"
)

// openErr opens a hub configured as hubtest does, changed by opt, and
// returns Open's error (closing the hub when it opened).
func openErr(t *testing.T, opt func(*hub.Config)) error {
	t.Helper()
	cfg := hub.DefaultConfig()
	cfg.Listen, cfg.MQTTListen = "127.0.0.1:0", "127.0.0.1:0"
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.DataDir = t.TempDir()
	cfg.AdminPassword = hubtest.AdminPassword
	cfg.Driver = "process"
	cfg.NodeRED = testenv.NodeREDPaths(t).RedJS
	opt(&cfg)
	h := hub.New(cfg, "test", slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := h.Open(ctx)
	if err == nil {
		_ = h.Close()
	}
	return err
}

// The store over TLS: a PostgreSQL server that takes TLS connections only,
// with a certificate from a test CA; the hub connects with
// sslmode=verify-full and that CA, and refuses a server whose certificate
// another CA signed.
func TestStoreVerifyFull(t *testing.T) {
	ca := testenv.NewTestCA(t, "store CA")
	pg := testenv.TLSPostgres(t, ca)

	// The server refuses clients without TLS.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	plain := strings.Replace(strings.Split(pg.DSN, "?")[0], "localhost", "127.0.0.1", 1) + "?sslmode=disable"
	if c, err := pgx.Connect(ctx, plain); err == nil {
		c.Close(ctx)
		t.Fatal("the test server took a connection without TLS")
	}

	h := hubtest.Start(t, func(c *hub.Config) { c.Store = pg.DSN })
	var tok struct {
		Token string `json:"token"`
	}
	h.JSON(t, "POST", "/api/users", map[string]string{"username": "tls-user", "password": "tls-user-password-1", "role": "VIEWER"}, 201, nil)
	h.JSON(t, "POST", "/api/edges/tokens", map[string]any{}, 201, &tok)

	// Every connection of the hub is TLS (the server takes no other), and
	// there are some.
	c, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, `SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
		WHERE s.ssl AND a.backend_type = 'client backend' AND s.pid <> pg_backend_pid()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no TLS connection of the hub on the server")
	}

	// A certificate from another CA: the hub does not start, and says why.
	other := testenv.NewTestCA(t, "other CA")
	bad := strings.Replace(pg.DSN, ca.CertFile, other.CertFile, 1)
	err = openErr(t, func(c *hub.Config) { c.Store = bad })
	if err == nil || !strings.Contains(err.Error(), "store") || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("store with a server certificate from another CA: %v, want a store certificate error", err)
	}
}

// Coordination over TLS: a Redis that speaks only TLS, with a certificate
// from a test CA; the hub connects to rediss:// with --redis-ca and
// coordinates through it, and refuses the server without that CA.
func TestCoordRediss(t *testing.T) {
	ca := testenv.NewTestCA(t, "redis CA")
	url := testenv.TLSRedis(t, ca)
	h := hubtest.Start(t, func(c *hub.Config) { c.Redis, c.RedisCA = url, ca.CertFile })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Coord.Set(ctx, "tls-test", []byte("over rediss"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if v, err := h.Coord.Get(ctx, "tls-test"); err != nil || string(v) != "over rediss" {
		t.Fatalf("get over rediss: %q %v", v, err)
	}

	other := testenv.NewTestCA(t, "other CA")
	for name, caFile := range map[string]string{"another CA": other.CertFile, "system roots": ""} {
		err := openErr(t, func(c *hub.Config) { c.Redis, c.RedisCA = url, caFile })
		if err == nil || !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("rediss with %s: %v, want a redis certificate error", name, err)
		}
	}
}
