// Package agent is the edge's link to the control plane: enrollment on
// first boot (a one-time token exchanged for the edge's own credential,
// kept in the data dir with mode 0600), periodic heartbeats, the desired
// config pull and reporting the applied config version.
//
// It owns the credential file and the applied-config state. Applying flows
// to a local Node-RED is optional: with NodeREDURL set the agent POSTs the
// bundle's flows to its Admin API (full deploy); without it the bundle is
// only saved to the data dir (config-bundle.json) and reported applied.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/redforge/controltower/nodered"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

// Defaults and file names.
const (
	DefaultHeartbeatInterval = 60 * time.Second
	CredentialFile           = "credential.json"
	BundleFile               = "config-bundle.json"
	EnrollPath               = "/api/edges/enroll"
	HeartbeatPath            = "/api/sync/heartbeat"
	ConfigPath               = "/api/sync/config/"
)

// ErrNotEnrolled is returned by LoadCredential when the data dir holds no
// credential and no token was given.
var ErrNotEnrolled = errors.New("agent: edge is not enrolled: start it once with --token (an enrollment token from POST /api/edges/tokens)")

// Credential is the edge's identity; the file holding it is 0600 and its
// Secret never printed.
type Credential struct {
	EdgeID string `json:"edge_id"`
	Secret string `json:"credential"`
	Name   string `json:"name,omitempty"`
	Region string `json:"region,omitempty"`
}

// String keeps the secret out of logs and %v.
func (c Credential) String() string { return "edge " + c.EdgeID + " credential [redacted]" }

// LogValue keeps the secret out of slog.
func (c Credential) LogValue() slog.Value { return slog.StringValue(c.String()) }

// LoadOrEnroll returns the credential saved in dataDir, or, when there is
// none, enrolls with token at the first hub that answers and saves the
// result (0600) before returning it. Errors: ErrNotEnrolled without a
// saved credential or token; the hub's refusal (a used or expired token).
func LoadOrEnroll(ctx context.Context, client *http.Client, dataDir string, hubs []string, token, name, version string) (Credential, error) {
	path := filepath.Join(dataDir, CredentialFile)
	if b, err := os.ReadFile(path); err == nil {
		var c Credential
		if err := json.Unmarshal(b, &c); err != nil || c.EdgeID == "" || c.Secret == "" {
			return Credential{}, fmt.Errorf("credential file %s is damaged; remove it and enroll again with a new token", path)
		}
		return c, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return Credential{}, fmt.Errorf("read credential: %w", err)
	}
	if token == "" {
		return Credential{}, ErrNotEnrolled
	}
	body, _ := json.Marshal(map[string]string{"token": token, "name": name, "version": version})
	var errs []string
	for _, hub := range hubs {
		c, err := enroll(ctx, client, hub, body)
		if err != nil {
			errs = append(errs, err.Error())
			var refused *refusedError
			if errors.As(err, &refused) {
				return Credential{}, err // the token is bad: another hub will say the same
			}
			continue
		}
		if err := writeFile0600(path, c); err != nil {
			return Credential{}, err
		}
		return c, nil
	}
	return Credential{}, fmt.Errorf("enroll: no hub answered: %s", strings.Join(errs, "; "))
}

type refusedError struct {
	status int
	body   string
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("enroll refused (status %d): %s", e.status, e.body)
}

func enroll(ctx context.Context, client *http.Client, hub string, body []byte) (Credential, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(hub, "/")+EnrollPath, bytes.NewReader(body))
	if err != nil {
		return Credential{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return Credential{}, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 400 && resp.StatusCode < 500 {
		return Credential{}, &refusedError{resp.StatusCode, string(data)}
	}
	if resp.StatusCode != http.StatusCreated {
		return Credential{}, fmt.Errorf("%s: status %d", hub, resp.StatusCode)
	}
	var c Credential
	if err := json.Unmarshal(data, &c); err != nil || c.EdgeID == "" || c.Secret == "" {
		return Credential{}, fmt.Errorf("%s: enroll answer has no edge id or credential", hub)
	}
	return c, nil
}

func writeFile0600(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("save %s: %w", path, err)
	}
	return nil
}

// Config configures an Agent.
type Config struct {
	Credential        Credential
	DataDir           string
	Router            *router.Router
	Client            *http.Client
	HeartbeatInterval time.Duration
	Version           string
	NodeREDURL        string // optional local Node-RED Admin API base URL
	Logger            *slog.Logger
	Now               func() time.Time
	// Backlog is optional: what each stream holds unsynced, reported in
	// heartbeats (as backlog and, for older hubs, queue_depth).
	Backlog func() map[string]*syncproto.StreamBacklog
	// MQTTCredentials, when set, hands the local Node-RED its per-flow
	// credentials for the edge's broker: every mqtt-broker node of the
	// deployed flows that points at one of MQTTHosts on MQTTPort gets
	// MQTTCredentials(its id) as its user and password. Nodes pointing
	// elsewhere get nothing, so no credential leaves the edge.
	MQTTCredentials func(nodeID string) (user, password string)
	MQTTHosts       []string
	MQTTPort        string
}

// Agent sends heartbeats and applies the desired config.
type Agent struct {
	cfg Config

	mu            sync.Mutex
	applied       uint64
	lastHeartbeat time.Time
	lastErr       error
}

// New returns an Agent; it reads the applied version from the data dir.
func New(cfg Config) *Agent {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Agent{cfg: cfg}
	if b, err := os.ReadFile(filepath.Join(cfg.DataDir, BundleFile)); err == nil {
		var saved struct {
			Version uint64 `json:"version"`
		}
		if json.Unmarshal(b, &saved) == nil {
			a.applied = saved.Version
		}
	}
	return a
}

// Run heartbeats and pulls config every HeartbeatInterval until ctx ends.
func (a *Agent) Run(ctx context.Context) {
	for {
		if err := a.Tick(ctx); err != nil && ctx.Err() == nil {
			a.cfg.Logger.Warn("agent tick failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(a.cfg.HeartbeatInterval):
		}
	}
}

// Tick pulls the desired config (applying a newer version) and sends one
// heartbeat with the applied version.
func (a *Agent) Tick(ctx context.Context) error {
	errPull := a.pullConfig(ctx)
	errHB := a.heartbeat(ctx)
	err := errors.Join(errPull, errHB)
	a.mu.Lock()
	a.lastErr = err
	if errHB == nil {
		a.lastHeartbeat = a.cfg.Now()
	}
	a.mu.Unlock()
	return err
}

// Applied returns the applied config version.
func (a *Agent) Applied() uint64 { a.mu.Lock(); defer a.mu.Unlock(); return a.applied }

// LastHeartbeat returns when the last heartbeat was accepted.
func (a *Agent) LastHeartbeat() time.Time { a.mu.Lock(); defer a.mu.Unlock(); return a.lastHeartbeat }

func (a *Agent) do(ctx context.Context, method, path, ctype string, body []byte) ([]byte, error) {
	var errs []string
	for _, hub := range a.cfg.Router.Ordered() {
		req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(hub, "/")+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Accept", syncproto.ContentTypeProtobuf)
		req.Header.Set("Authorization", "Bearer "+a.cfg.Credential.Secret)
		resp, err := a.cfg.Client.Do(req)
		if err != nil {
			a.cfg.Router.ReportFailure(hub, err)
			errs = append(errs, err.Error())
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			errs = append(errs, fmt.Sprintf("%s: status %d", hub, resp.StatusCode))
			continue
		}
		if resp.StatusCode >= 300 {
			return nil, fmt.Errorf("%s %s: status %d: %s", method, path, resp.StatusCode, data)
		}
		return data, nil
	}
	return nil, fmt.Errorf("%s %s: no hub answered: %s", method, path, strings.Join(errs, "; "))
}

func (a *Agent) heartbeat(ctx context.Context) error {
	hb := &syncproto.Heartbeat{EdgeId: a.cfg.Credential.EdgeID, SentUnixNanos: a.cfg.Now().UnixNano(),
		AppliedConfigVersion: a.Applied(), Version: a.cfg.Version}
	if a.cfg.Backlog != nil {
		hb.Backlog = a.cfg.Backlog()
		hb.QueueDepth = make(map[string]int64, len(hb.Backlog))
		for stream, b := range hb.Backlog {
			hb.QueueDepth[stream] = b.GetDepth()
		}
	}
	body, _ := proto.Marshal(hb)
	_, err := a.do(ctx, http.MethodPost, HeartbeatPath, syncproto.ContentTypeProtobuf, body)
	return err
}

func (a *Agent) pullConfig(ctx context.Context) error {
	data, err := a.do(ctx, http.MethodGet, ConfigPath+a.cfg.Credential.EdgeID, "", nil)
	if err != nil {
		return err
	}
	b := &syncproto.ConfigBundle{}
	if err := proto.Unmarshal(data, b); err != nil {
		return fmt.Errorf("config bundle: %w", err)
	}
	if b.Version <= a.Applied() {
		return nil
	}
	if err := a.apply(ctx, b); err != nil {
		return fmt.Errorf("apply config version %d: %w", b.Version, err)
	}
	a.mu.Lock()
	a.applied = b.Version
	a.mu.Unlock()
	a.cfg.Logger.Info("config applied", "version", b.Version)
	return nil
}

// apply deploys the flows to the local Node-RED when one is configured,
// then saves the bundle (the record of what is applied).
func (a *Agent) apply(ctx context.Context, b *syncproto.ConfigBundle) error {
	if a.cfg.NodeREDURL != "" && len(b.Flows) > 0 {
		var flows []json.RawMessage
		var err error
		if err = json.Unmarshal(b.Flows, &flows); err != nil {
			return fmt.Errorf("config bundle flows: not a JSON array: %w", err)
		}
		if a.cfg.MQTTCredentials != nil {
			if flows, err = InjectMQTTCredentials(flows, a.cfg.MQTTHosts, a.cfg.MQTTPort, a.cfg.MQTTCredentials); err != nil {
				return fmt.Errorf("config bundle flows: %w", err)
			}
		}
		c, err := nodered.New(a.cfg.NodeREDURL, "", "")
		if err != nil {
			return err
		}
		if _, err := c.DeployFlows(ctx, flows, "", nodered.DeployFull); err != nil {
			return fmt.Errorf("deploy flows to local Node-RED: %w", err)
		}
	}
	saved := map[string]any{"version": b.Version, "flows": json.RawMessage(orNull(b.Flows)), "settings": json.RawMessage(orNull(b.Settings))}
	return writeFile0600(filepath.Join(a.cfg.DataDir, BundleFile), saved)
}

func orNull(b []byte) []byte {
	if len(b) == 0 || !json.Valid(b) {
		return []byte("null")
	}
	return b
}
