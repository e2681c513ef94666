// Package hubtest starts a real hub in-process for tests (real Raft, the
// embedded or a real PostgreSQL store, a real fleet driver) and gives
// them an authenticated HTTP client. It is for tests only.
package hubtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/pki"
	"github.com/redforge/controltower/internal/testenv"
)

// AdminPassword is the first admin's password in every test hub.
const AdminPassword = "test-admin-password-1"

// Hub is a running test hub.
type Hub struct {
	*hub.Hub
	URL        string
	AdminToken string
	// Client sends Do's requests: it trusts the hub's CA when HTTPS is on
	// (the cluster CA and the certificates of --tls-cert's chain).
	Client *http.Client
	tb     testing.TB
}

// Start opens a hub on private ports in a temp data dir; opts adjust the
// config first. The hub is closed at cleanup.
func Start(tb testing.TB, opts ...func(*hub.Config)) *Hub {
	tb.Helper()
	return start(tb, slog.New(slog.NewTextHandler(testWriter{tb}, &slog.HandlerOptions{Level: slog.LevelWarn})), opts...)
}

// StartLogged is Start with every log line of the hub, debug included,
// written to w (for tests that check what the hub logs).
func StartLogged(tb testing.TB, w io.Writer, opts ...func(*hub.Config)) *Hub {
	tb.Helper()
	return start(tb, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})), opts...)
}

func start(tb testing.TB, log *slog.Logger, opts ...func(*hub.Config)) *Hub {
	tb.Helper()
	cfg := hub.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.DataDir = tb.TempDir()
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(tb))
	cfg.MQTTListen = "127.0.0.1:0"
	cfg.Driver = "process"
	cfg.MonitorInterval = time.Second
	cfg.AdminPassword = AdminPassword
	cfg.NodeRED = testenv.NodeREDPaths(tb).RedJS
	// A private port range per hub, below the ephemeral ports, so that hubs
	// of tests running in parallel rarely hand out (or check) each other's
	// ports and no test's outgoing connection holds an instance's port.
	cfg.InstancePortMin, cfg.InstancePortMax = testenv.PortRange(50)
	for _, o := range opts {
		o(&cfg)
	}
	h := hub.New(cfg, "test", log)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Open(ctx); err != nil {
		tb.Fatalf("hubtest: open hub: %v", err)
	}
	th := &Hub{Hub: h, URL: h.URL(), tb: tb, Client: &http.Client{Timeout: 60 * time.Second}}
	if cfg.TLSOn() {
		th.Client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trustedRoots(tb, cfg)}}
	}
	tb.Cleanup(func() {
		th.Client.CloseIdleConnections() // its own transport's, with TLS
		if err := h.Close(); err != nil {
			tb.Errorf("hubtest: close hub: %v", err)
		}
		// Instances outlive their hub on purpose (like containers); a
		// test's must not outlive the test.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		rts, err := h.Driver.List(ctx)
		if err != nil {
			tb.Errorf("hubtest: list runtimes: %v", err)
		}
		for _, rt := range rts {
			if err := h.Driver.Remove(ctx, rt.InstanceID); err != nil {
				tb.Errorf("hubtest: remove instance %s: %v", rt.InstanceID, err)
			}
		}
	})
	th.AdminToken = th.Login(tb, "admin", AdminPassword)
	return th
}

type testWriter struct{ tb testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.tb.Logf("%s", bytes.TrimRight(p, "\n"))
	return len(p), nil
}

// Login returns an access token for username.
func (h *Hub) Login(tb testing.TB, username, password string) string {
	tb.Helper()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if code, body := h.Do(tb, http.MethodPost, "/api/auth/login", "", map[string]string{"username": username, "password": password}); code != 200 {
		tb.Fatalf("hubtest: login %s: %d %s", username, code, body)
	} else if err := json.Unmarshal(body, &out); err != nil {
		tb.Fatal(err)
	}
	return out.AccessToken
}

// CreateUser creates a user with role and returns a token for them.
func (h *Hub) CreateUser(tb testing.TB, username, role string) string {
	tb.Helper()
	pw := "password-of-" + username
	code, body := h.Do(tb, http.MethodPost, "/api/users", h.AdminToken,
		map[string]string{"username": username, "password": pw, "role": role})
	if code != http.StatusCreated {
		tb.Fatalf("hubtest: create user %s: %d %s", username, code, body)
	}
	return h.Login(tb, username, pw)
}

// Do sends a request with an optional bearer token and JSON body (a
// []byte body is sent as is) and returns the status and body.
func (h *Hub) Do(tb testing.TB, method, path, token string, body any) (int, []byte) {
	tb.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			tb.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.URL+path, r)
	if err != nil {
		tb.Fatal(err)
	}
	if r != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := h.Client
	if c == nil {
		c = &http.Client{Timeout: 60 * time.Second}
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatalf("hubtest: %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// JSON is Do as the admin, decoding the response into out (when not nil)
// and failing the test unless the status is want.
func (h *Hub) JSON(tb testing.TB, method, path string, body any, want int, out any) {
	tb.Helper()
	code, b := h.Do(tb, method, path, h.AdminToken, body)
	if code != want {
		tb.Fatalf("hubtest: %s %s = %d, want %d: %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatalf("hubtest: decode %s: %v: %s", path, err, b)
		}
	}
}

// Backends lists the data stores hub-level suites run on: the embedded
// SQLite default and a real PostgreSQL.
var Backends = []string{"sqlite", "postgres"}

// WithBackend returns the Start option for backend ("sqlite" is the
// default and changes nothing).
func WithBackend(tb testing.TB, backend string) func(*hub.Config) {
	return func(c *hub.Config) {
		if backend == "postgres" {
			c.Store = testenv.Postgres(tb)
		}
	}
}

// trustedRoots are the certificates of the cluster CA file and of the
// --tls-cert chain: what a client of a test hub on HTTPS trusts.
func trustedRoots(tb testing.TB, cfg hub.Config) *x509.CertPool {
	tb.Helper()
	pool := x509.NewCertPool()
	for _, f := range []string{cfg.ClusterCA, cfg.TLSCert} {
		if f == "" {
			continue
		}
		certs, err := pki.ReadCerts(f)
		if err != nil {
			tb.Fatalf("hubtest: %v", err)
		}
		for _, c := range certs {
			pool.AddCert(c)
		}
	}
	return pool
}
