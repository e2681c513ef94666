package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/redforge/controltower/edge/agent"
	"github.com/redforge/controltower/edge/syncer"
	"github.com/redforge/controltower/router"
	"github.com/redforge/controltower/syncproto"
)

// hubLink is the edge's connection to the hubs: enrollment, then the
// syncer and the agent, all in the background so the broker keeps taking
// records while no hub is reachable.
type hubLink struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	syncer *syncer.Syncer
	agent  *agent.Agent
	cred   agent.Credential
}

// enrollRetry bounds the wait between enrollment attempts.
const enrollRetry = 5 * time.Second

// startHubLink starts the background link when hubs are configured.
func (m *Main) startHubLink() error {
	if len(m.Config.Hubs) == 0 {
		return nil
	}
	pin, err := hubPin(m.Config.DataDir, m.Config.Token.Reveal())
	if err != nil {
		return err
	}
	for _, h := range m.Config.Hubs {
		if pin != "" && !strings.HasPrefix(h, "https://") {
			return fmt.Errorf("hub: %q: the hubs' CA is pinned (enrollment token); reach them at https://", redactURL(h))
		}
	}
	transport := hubTransport(pin)
	rt, err := router.New(router.Config{Targets: m.Config.Hubs,
		Prober: &router.HTTPProber{Client: &http.Client{Timeout: router.DefaultTimeout, Transport: transport}}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &hubLink{cancel: cancel}
	m.link = l
	client := &http.Client{Timeout: syncer.DefaultRequestTimeout, Transport: transport}
	log := m.Logger.With(logKeyComponent, "sync")
	l.wg.Go(func() { rt.Run(ctx) })
	l.wg.Go(func() {
		cred, ok := m.enroll(ctx, client)
		if !ok {
			return
		}
		s := syncer.New(syncer.Config{
			EdgeID: cred.EdgeID, Credential: func() string { return cred.Secret },
			Outbox: m.Outbox, Streams: m.Outbox.Streams, Router: rt, Client: client,
			MaxBatchRecords: m.Config.SyncBatch, Logger: log,
		})
		mqttHosts, mqttPort := m.mqttEndpoint()
		a := agent.New(agent.Config{
			Credential: cred, DataDir: m.Config.DataDir, Router: rt, Client: client,
			HeartbeatInterval: m.Config.HeartbeatInterval, Version: version, NodeREDURL: m.Config.NodeREDURL,
			Backlog: m.backlog, Logger: m.Logger.With(logKeyComponent, "agent"),
			MQTTCredentials: m.flowCredentials(), MQTTHosts: mqttHosts, MQTTPort: mqttPort,
		})
		l.mu.Lock()
		l.syncer, l.agent, l.cred = s, a, cred
		l.mu.Unlock()
		l.wg.Go(func() { a.Run(ctx) })
		s.Run(ctx)
	})
	return nil
}

// enroll loads the saved credential or enrolls, retrying while no hub
// answers. It gives up (logging why) on a refused token.
func (m *Main) enroll(ctx context.Context, client *http.Client) (agent.Credential, bool) {
	for {
		cred, err := agent.LoadOrEnroll(ctx, client, m.Config.DataDir, m.Config.Hubs, m.Config.Token.Reveal(), m.Config.Name, version)
		if err == nil {
			m.Logger.Info("edge identity", "edge_id", cred.EdgeID)
			return cred, true
		}
		if ctx.Err() != nil {
			return agent.Credential{}, false
		}
		if errors.Is(err, agent.ErrNotEnrolled) {
			m.Logger.Error("not syncing", logKeyError, err)
			return agent.Credential{}, false
		}
		m.Logger.Warn("enrollment failed; retrying", logKeyError, err)
		select {
		case <-ctx.Done():
			return agent.Credential{}, false
		case <-time.After(enrollRetry):
		}
	}
}

func (m *Main) backlog() map[string]*syncproto.StreamBacklog {
	ctx, cancel := context.WithTimeout(context.Background(), statsTimeout)
	defer cancel()
	st, err := m.Outbox.Stats(ctx)
	if err != nil {
		return nil
	}
	out := make(map[string]*syncproto.StreamBacklog, len(st))
	for k, v := range st {
		b := &syncproto.StreamBacklog{Depth: v.Depth, Bytes: v.Bytes, Evicted: v.Evicted}
		if !v.OldestArrived.IsZero() {
			b.OldestUnsyncedUnixNanos = v.OldestArrived.UnixNano()
		}
		out[k] = b
	}
	return out
}

// Syncer returns the running syncer, nil before enrollment or without hubs.
func (m *Main) Syncer() *syncer.Syncer {
	if m.link == nil {
		return nil
	}
	m.link.mu.Lock()
	defer m.link.mu.Unlock()
	return m.link.syncer
}

// EdgeID returns the enrolled edge id, "" before enrollment.
func (m *Main) EdgeID() string {
	if m.link == nil {
		return ""
	}
	m.link.mu.Lock()
	defer m.link.mu.Unlock()
	return m.link.cred.EdgeID
}

func (l *hubLink) stop() {
	l.cancel()
	l.wg.Wait()
}
