package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redforge/controltower/hub/catalog"
)

// Configuration export and import: users (with their password hashes,
// never a password), roles, API tokens' metadata (with the token's hash,
// a SHA-256 of a random secret: no more sensitive than a bcrypt hash, and
// what keeps scripts' tokens working after an import), regions and
// instances' placement rules, as one JSON document. Import previews its
// changes (Plan) and applies only what differs (ApplyPlan), so it is
// idempotent. Alert rules join as another section when hub/alert keeps
// them in the catalog (see ConfigDoc.AlertRules).

// ConfigFormat is the version of the configuration document.
const ConfigFormat = 1

// ConfigDoc is an exported configuration.
type ConfigDoc struct {
	Format     int               `json:"format"`
	ExportedAt time.Time         `json:"exported_at"`
	HubVersion string            `json:"hub_version,omitempty"`
	Users      []ConfigUser      `json:"users"`
	Roles      []ConfigRole      `json:"roles"`
	Tokens     []ConfigToken     `json:"api_tokens"`
	Regions    []ConfigRegion    `json:"regions"`
	Placement  []ConfigPlacement `json:"placement"`
	AlertRules []ConfigAlertRule `json:"alert_rules"`
}

// ConfigAlertRule is an alert rule (hub/alert), matched by name on import.
type ConfigAlertRule struct {
	ID          string                 `json:"id"`
	Name        string                 `json:"name"`
	Description string                 `json:"description,omitempty"`
	Metric      string                 `json:"metric"`
	Match       map[string]string      `json:"match,omitempty"`
	Condition   string                 `json:"condition"`
	Threshold   float64                `json:"threshold"`
	For         time.Duration          `json:"for"`
	Severity    string                 `json:"severity"`
	Channels    []catalog.AlertChannel `json:"channels"`
	Disabled    bool                   `json:"disabled,omitempty"`
}

// ConfigUser is a user with its password hash.
type ConfigUser struct {
	ID           string       `json:"id"`
	Username     string       `json:"username"`
	Email        string       `json:"email,omitempty"`
	PasswordHash string       `json:"password_hash"`
	Role         catalog.Role `json:"role"`
	Disabled     bool         `json:"disabled,omitempty"`
}

// ConfigRole is a role and what it may do (the matrix is the hub's; an
// import checks the roles exist and changes none).
type ConfigRole struct {
	Name        catalog.Role `json:"name"`
	Permissions []string     `json:"permissions"`
}

// ConfigToken is an API token's metadata.
type ConfigToken struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	Hash      string       `json:"hash"`
	Scope     string       `json:"scope,omitempty"`
	Role      catalog.Role `json:"role"`
	Instance  string       `json:"instance,omitempty"` // instance name, for instance-scoped tokens
	CreatedBy string       `json:"created_by,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
	ExpiresAt time.Time    `json:"expires_at,omitzero"`
	Revoked   bool         `json:"revoked,omitempty"`
	RevokedAt time.Time    `json:"revoked_at,omitzero"`
}

// ConfigRegion is a region of the topology.
type ConfigRegion struct {
	Name string   `json:"name"`
	Hubs []string `json:"hubs,omitempty"`
}

// ConfigPlacement is an instance's placement rule.
type ConfigPlacement struct {
	Instance  string            `json:"instance"` // name
	Region    string            `json:"region,omitempty"`
	Placement catalog.Placement `json:"placement,omitempty"`
}

// ConfigCatalog is what export and import read.
type ConfigCatalog interface {
	Users() []catalog.User
	User(id string) (catalog.User, error)
	UserByName(name string) (catalog.User, error)
	APITokens() []catalog.APIToken
	APIToken(id string) (catalog.APIToken, error)
	Regions() []catalog.Region
	Instances() []catalog.Instance
	Instance(id string) (catalog.Instance, error)
	InstanceByName(name string) (catalog.Instance, error)
	AlertRules() []catalog.AlertRule
}

// ExportConfig returns the catalog's configuration; perms lists each
// role's permissions (auth's matrix).
func ExportConfig(cat ConfigCatalog, perms map[catalog.Role][]string, version string, now time.Time) ConfigDoc {
	d := ConfigDoc{Format: ConfigFormat, ExportedAt: now.UTC(), HubVersion: version,
		Users: []ConfigUser{}, Roles: []ConfigRole{}, Tokens: []ConfigToken{}, Regions: []ConfigRegion{}, Placement: []ConfigPlacement{},
		AlertRules: []ConfigAlertRule{}}
	for _, r := range cat.AlertRules() {
		d.AlertRules = append(d.AlertRules, ConfigAlertRule{ID: r.ID, Name: r.Name, Description: r.Description, Metric: r.Metric,
			Match: r.Match, Condition: r.Condition, Threshold: r.Threshold, For: r.For, Severity: r.Severity, Channels: r.Channels, Disabled: r.Disabled})
	}
	for _, u := range cat.Users() {
		d.Users = append(d.Users, ConfigUser{ID: u.ID, Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash, Role: u.Role, Disabled: u.Disabled})
	}
	for _, r := range []catalog.Role{catalog.RoleAdmin, catalog.RoleOperator, catalog.RoleViewer} {
		d.Roles = append(d.Roles, ConfigRole{Name: r, Permissions: perms[r]})
	}
	names := map[string]string{}
	for _, inst := range cat.Instances() {
		names[inst.ID] = inst.Name
		if strings.Contains(inst.Name, ".") {
			continue // a deployment's color row
		}
		d.Placement = append(d.Placement, ConfigPlacement{Instance: inst.Name, Region: inst.Region, Placement: inst.Placement})
	}
	for _, t := range cat.APITokens() {
		d.Tokens = append(d.Tokens, ConfigToken{ID: t.ID, Name: t.Name, Hash: t.Hash, Scope: t.Scope, Role: t.Role, Instance: names[t.InstanceID],
			CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, RevokedAt: t.RevokedAt})
	}
	for _, r := range cat.Regions() {
		d.Regions = append(d.Regions, ConfigRegion{Name: r.Name, Hubs: r.Hubs})
	}
	return d
}

// Change is one planned change of an import.
type Change struct {
	Kind   string `json:"kind"`   // user, api_token, region, placement
	Key    string `json:"key"`    // username, token id, region or instance name
	Action string `json:"action"` // create, update, unchanged, skip
	Reason string `json:"reason,omitempty"`
	cmd    catalog.Command
}

// Plan compares doc with the catalog and returns what an import would
// do, every item in order; newID gives an id to a user whose exported id
// is another user's here. A document of another format, or with a role
// this hub lacks, is an error naming it.
func Plan(cat ConfigCatalog, doc ConfigDoc, newID func() string) ([]Change, error) {
	if doc.Format != ConfigFormat {
		return nil, fmt.Errorf("format %d: this hub imports format %d", doc.Format, ConfigFormat)
	}
	roles := []catalog.Role{catalog.RoleAdmin, catalog.RoleOperator, catalog.RoleViewer}
	for _, r := range doc.Roles {
		if !slices.Contains(roles, r.Name) {
			return nil, fmt.Errorf("roles: %q is not a role of this hub (%v)", r.Name, roles)
		}
	}
	var out []Change
	userIDs := map[string]string{} // exported user id → id here
	for _, u := range doc.Users {
		c, id, err := planUser(cat, u, roles, newID)
		if err != nil {
			return nil, err
		}
		userIDs[u.ID] = id
		out = append(out, c)
	}
	for _, t := range doc.Tokens {
		out = append(out, planToken(cat, t, userIDs))
	}
	for _, r := range doc.Regions {
		out = append(out, planRegion(cat, r))
	}
	for _, p := range doc.Placement {
		out = append(out, planPlacement(cat, p))
	}
	for _, r := range doc.AlertRules {
		c, err := planAlertRule(cat, r, newID)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

func planAlertRule(cat ConfigCatalog, r ConfigAlertRule, newID func() string) (Change, error) {
	c := Change{Kind: "alert_rule", Key: r.Name}
	if r.Name == "" || r.Metric == "" || r.Condition == "" || r.Severity == "" {
		return c, fmt.Errorf("alert_rules: %q needs a name, metric, condition and severity", r.Name)
	}
	now := time.Now().UTC()
	row := catalog.AlertRule{ID: r.ID, Name: r.Name, Description: r.Description, Metric: r.Metric, Match: r.Match, Condition: r.Condition,
		Threshold: r.Threshold, For: r.For, Severity: r.Severity, Channels: r.Channels, Disabled: r.Disabled, CreatedAt: now, UpdatedAt: now}
	for _, have := range cat.AlertRules() {
		if have.Name != r.Name {
			continue
		}
		same := ConfigAlertRule{ID: r.ID, Name: have.Name, Description: have.Description, Metric: have.Metric, Match: have.Match,
			Condition: have.Condition, Threshold: have.Threshold, For: have.For, Severity: have.Severity, Channels: have.Channels, Disabled: have.Disabled}
		a, _ := json.Marshal(same)
		b, _ := json.Marshal(r)
		if bytes.Equal(a, b) {
			c.Action = "unchanged"
			return c, nil
		}
		row.ID, row.CreatedBy, row.CreatedAt, row.Indexes = have.ID, have.CreatedBy, have.CreatedAt, have.Indexes
		c.Action, c.cmd = "update", catalog.PutAlertRule(row, catalog.IfIndex(have.ModifyIndex))
		return c, nil
	}
	for _, have := range cat.AlertRules() {
		if have.ID == row.ID || row.ID == "" {
			row.ID = newID()
			break
		}
	}
	c.Action, c.cmd = "create", catalog.PutAlertRule(row, catalog.IfIndex(0))
	return c, nil
}

func planUser(cat ConfigCatalog, u ConfigUser, roles []catalog.Role, newID func() string) (Change, string, error) {
	c := Change{Kind: "user", Key: u.Username}
	if u.Username == "" || u.ID == "" || !strings.HasPrefix(u.PasswordHash, "$2") {
		return c, "", fmt.Errorf("users: %q needs an id, a username and a bcrypt password_hash (never a password)", u.Username)
	}
	if !slices.Contains(roles, u.Role) {
		return c, "", fmt.Errorf("users: %s has role %q, not one of %v", u.Username, u.Role, roles)
	}
	now := time.Now().UTC()
	have, err := cat.UserByName(u.Username)
	if err == nil {
		if have.Email == u.Email && have.PasswordHash == u.PasswordHash && have.Role == u.Role && have.Disabled == u.Disabled {
			c.Action = "unchanged"
			return c, have.ID, nil
		}
		have.Email, have.PasswordHash, have.Role, have.Disabled, have.UpdatedAt = u.Email, u.PasswordHash, u.Role, u.Disabled, now
		c.Action, c.cmd = "update", catalog.PutUser(have, catalog.IfIndex(have.ModifyIndex))
		return c, have.ID, nil
	}
	id := u.ID
	if _, err := cat.User(id); err == nil {
		id = newID()
		c.Reason = "id " + u.ID + " is another user's here; given id " + id
	}
	c.Action = "create"
	c.cmd = catalog.PutUser(catalog.User{ID: id, Username: u.Username, Email: u.Email, PasswordHash: u.PasswordHash, Role: u.Role,
		Disabled: u.Disabled, CreatedAt: now, UpdatedAt: now}, catalog.IfIndex(0))
	return c, id, nil
}

func planToken(cat ConfigCatalog, t ConfigToken, userIDs map[string]string) Change {
	c := Change{Kind: "api_token", Key: t.ID}
	row := catalog.APIToken{ID: t.ID, Name: t.Name, Hash: t.Hash, Scope: t.Scope, Role: t.Role, CreatedAt: t.CreatedAt,
		ExpiresAt: t.ExpiresAt, Revoked: t.Revoked, RevokedAt: t.RevokedAt}
	if t.CreatedBy != "" {
		id, ok := userIDs[t.CreatedBy]
		if !ok || id == "" {
			c.Action, c.Reason = "skip", "its creator is not in the document"
			return c
		}
		row.CreatedBy = id
	}
	if t.Instance != "" {
		inst, err := cat.InstanceByName(t.Instance)
		if err != nil {
			c.Action, c.Reason = "skip", "instance "+t.Instance+" does not exist here"
			return c
		}
		row.InstanceID = inst.ID
	}
	have, err := cat.APIToken(t.ID)
	if err != nil {
		c.Action, c.cmd = "create", catalog.PutAPIToken(row, catalog.IfIndex(0))
		return c
	}
	row.Indexes = have.Indexes
	if have.Name == row.Name && have.Hash == row.Hash && have.Scope == row.Scope && have.Role == row.Role && have.InstanceID == row.InstanceID &&
		have.CreatedBy == row.CreatedBy && have.ExpiresAt.Equal(row.ExpiresAt) && have.Revoked == row.Revoked {
		c.Action = "unchanged"
		return c
	}
	c.Action, c.cmd = "update", catalog.PutAPIToken(row, catalog.IfIndex(have.ModifyIndex))
	return c
}

func planRegion(cat ConfigCatalog, r ConfigRegion) Change {
	c := Change{Kind: "region", Key: r.Name}
	for _, have := range cat.Regions() {
		if have.Name == r.Name {
			if slices.Equal(have.Hubs, r.Hubs) {
				c.Action = "unchanged"
				return c
			}
			have.Hubs = r.Hubs
			c.Action, c.cmd = "update", catalog.PutRegion(have, catalog.IfIndex(have.ModifyIndex))
			return c
		}
	}
	c.Action, c.cmd = "create", catalog.PutRegion(catalog.Region{Name: r.Name, Hubs: r.Hubs}, catalog.IfIndex(0))
	return c
}

func planPlacement(cat ConfigCatalog, p ConfigPlacement) Change {
	c := Change{Kind: "placement", Key: p.Instance}
	inst, err := cat.InstanceByName(p.Instance)
	if err != nil {
		c.Action, c.Reason = "skip", "instance "+p.Instance+" does not exist here"
		return c
	}
	if inst.Region == p.Region && inst.Placement == p.Placement {
		c.Action = "unchanged"
		return c
	}
	inst.Region, inst.Placement = p.Region, p.Placement
	c.Action, c.cmd = "update", catalog.UpsertInstance(inst, catalog.IfIndex(inst.ModifyIndex))
	return c
}

// Applier applies catalog commands (through Raft).
type Applier interface {
	Apply(ctx context.Context, cmd catalog.Command) (any, error)
}

// ApplyPlan applies the creates and updates of a plan, in order, and
// returns the first error naming the item.
func ApplyPlan(ctx context.Context, a Applier, plan []Change) error {
	for _, c := range plan {
		if c.Action != "create" && c.Action != "update" {
			continue
		}
		if _, err := a.Apply(ctx, c.cmd); err != nil {
			return fmt.Errorf("%s %s: %w", c.Kind, c.Key, err)
		}
	}
	return nil
}
