package hub

import (
	"context"
	"errors"
	"fmt"

	"github.com/redforge/controltower/hub/catalog"
	"github.com/redforge/controltower/hub/fleet"
	"github.com/redforge/controltower/hub/nodes"
)

// Environment variables the hub gives every Node-RED runtime on top of its
// catalog env (fleet.Deps.Decorate). The blue and green runtimes of one
// logical instance get the same values: they act as that instance.
const (
	// EnvHubURL is the hub API's URL as the runtime reaches it.
	EnvHubURL = "REDFORGE_HUB_URL"
	// EnvToken is the logical instance's hub-managed, instance-scoped API
	// token: it may post AI decisions and workflow checkpoints for its
	// instance and nothing else.
	EnvToken = "REDFORGE_TOKEN"
	// EnvInstanceID is the logical instance's id (checkpoints are kept
	// under it).
	EnvInstanceID = "REDFORGE_INSTANCE_ID"
)

// Environment the RedForge runtime plugin (packaging/nodered/runtime)
// reads to speak the control contract on the hub bus; the row id and the
// editor key are fleet.EnvRowID and fleet.EnvEditorKey (settings.js reads
// those).
const (
	// EnvRow is the catalog row's name: the prefix of its control topics.
	EnvRow = "REDFORGE_ROW"
	// EnvBusURL is the hub bus as the runtime reaches it (mqtt://host:port).
	EnvBusURL = "REDFORGE_BUS_URL"
	// EnvBusPassword is the row's own bus password (its username is the
	// row id). The row's flows already hold it in their hub broker node.
	EnvBusPassword = "REDFORGE_BUS_PASSWORD"
)

// Node-RED context in Redis (packaging/nodered/context-redis).
const (
	// ContextStoreName is the contextStorage store the hub adds when its
	// coordination is Redis; the default store stays Node-RED's memory.
	ContextStoreName = "redis"
	// ContextModule is the npm package of the Redis context store, installed
	// beside Node-RED (make nodered, internal/testenv/provision.sh) and in
	// the local Node-RED image.
	ContextModule = "@redforge/node-red-context-redis"
)

// ContextPrefix is the Redis key prefix of a logical instance's Node-RED
// context: shared by its blue and green runtimes, distinct per instance.
func ContextPrefix(logicalID string) string { return "redforge:ctx:" + logicalID + ":" }

// decorateInstance adds the hub URL, the logical instance's API token and
// id to a runtime's environment and, with Redis coordination, a "redis"
// context store in that Redis keyed by the logical instance.
func (h *Hub) decorateInstance(ctx context.Context, inst catalog.Instance, spec *fleet.Spec) error {
	logical, err := h.Instances.Logical(inst)
	if err != nil {
		return err
	}
	// Open starts the fleet before the HTTP listener (whose port may be
	// chosen by the system): wait for it rather than give an instance a
	// URL that will change.
	select {
	case <-h.apiReadyCh():
	case <-ctx.Done():
		return fmt.Errorf("waiting for the hub API to listen: %w", ctx.Err())
	}
	creds, err := h.Instances.RuntimeCredentials(ctx, inst)
	if err != nil {
		return err
	}
	// Secret env reaches the runtime like env; the API never shows it.
	secretEnv, err := h.Instances.OpenSecretEnv(logical.ID, inst.SecretEnv)
	if err != nil {
		return err
	}
	for k, v := range secretEnv {
		spec.Env[k] = v
	}
	spec.Env[EnvHubURL], spec.Env[EnvToken], spec.Env[EnvInstanceID] = h.runtimeAPIURL(), creds.Token, logical.ID
	spec.Env[EnvRow], spec.Env[fleet.EnvRowID] = inst.Name, inst.ID
	if addr := h.runtimeBrokerAddr(); addr != "" {
		spec.Env[EnvBusURL], spec.Env[EnvBusPassword] = "mqtt://"+addr, creds.MQTTPassword
	}
	if key, err := h.Auth.EditorPublicKey(); err == nil {
		spec.Env[fleet.EnvEditorKey] = key
	} else {
		return fmt.Errorf("editor key: %w", err)
	}
	if len(inst.Nodes) > 0 {
		dir, err := h.Nodes.Prepare(inst.Nodes)
		if errors.Is(err, nodes.ErrNotReady) {
			return fmt.Errorf("%w: installing node packages: %v", fleet.ErrNotReady, err)
		}
		if err != nil {
			return err
		}
		spec.NodesDir = dir
		for _, p := range inst.Nodes {
			spec.Nodes = append(spec.Nodes, p.Name+"@"+p.Version)
		}
	}
	if h.Config.Redis == "" {
		return nil
	}
	extra := make(map[string]any, len(spec.ExtraSettings)+1)
	for k, v := range spec.ExtraSettings {
		extra[k] = v
	}
	extra["contextStorage"] = map[string]any{
		"default": map[string]any{"module": "memory"},
		ContextStoreName: map[string]any{"module": ContextModule,
			"config": map[string]any{"url": h.Config.Redis, "prefix": ContextPrefix(logical.ID)}},
	}
	spec.ExtraSettings = extra
	return nil
}

// runtimeAPIURL is the hub API's URL as this hub's runtimes reach it: the
// local listener, on loopback when it listens on every interface.
func (h *Hub) runtimeAPIURL() string { return h.apiURL }

// apiReadyCh is closed once the HTTP listener is bound and apiURL set.
func (h *Hub) apiReadyCh() chan struct{} {
	h.apiOnce.Do(func() { h.apiReady = make(chan struct{}) })
	return h.apiReady
}
