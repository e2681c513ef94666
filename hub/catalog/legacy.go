package catalog

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Settings keys under which older hubs kept what now has typed tables.
// Every restore moves such settings into their tables
// (upgradeLegacySettings), and a PutSetting or DeleteSetting of one of
// the session, spec, anchor or edge config keys, replayed from a Raft log
// an older hub wrote, changes the table instead (putLegacy, deleteLegacy).
const (
	// Format 1 (snapshots only).
	legacyHubPrefix  = "cluster.hub/"
	legacyMovePrefix = "regions.move/"
	legacyLivePrefix = "deploy/live/"
	// Format 2 and the logs of its hubs: hub/auth, hub/deploy, hub/audit,
	// hub/edgesync.
	legacySigningKey     = "auth/signing_key"
	legacyRetiredKey     = "auth/retired_key/"     // + kid
	legacyRefresh        = "auth/refresh/"         // + SHA-256 hex of the token
	legacyRevokedJTI     = "auth/revoked_jti/"     // + jti
	legacyRevokedSession = "auth/revoked_session/" // + session id
	legacyUserGeneration = "auth/user_generation/" // + user id
	legacySpec           = "deploy/spec/"          // + deployment id
	legacyAuditAnchor    = "audit/anchor"
	legacyEdgeConfig     = "edges/config/" // + edge id
	// Format 3 and the logs of its hubs: hub/deploy's kept green logs.
	legacyGreenLogs = "deploy/greenlogs/" // + deployment id
)

// upgradeLegacySettings moves the settings older hubs used into the typed
// tables, keeping their indexes: the hub directory, regional moves and
// live colors (format 1) into the hubs and moves tables and the
// instances' Live field; session state, deployment specs, the audit
// anchor and edge configs (format 2) into theirs. A row whose instance,
// edge or user is gone is dropped. It runs on every restore, so a
// snapshot of any format comes out without such settings.
func upgradeLegacySettings(w *write) error {
	if err := upgradeFormat2Settings(w); err != nil {
		return err
	}
	for _, st := range list[Setting](w.tx, nil, tableSettings, "id") {
		switch {
		case strings.HasPrefix(st.Key, legacyHubPrefix):
			h := &Hub{State: HubUp, Indexes: st.Indexes}
			if err := json.Unmarshal(st.Value, h); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if h.ID == "" {
				h.ID = strings.TrimPrefix(st.Key, legacyHubPrefix)
			}
			mustBeOK(w.tx.Insert(tableHubs, h))
		case strings.HasPrefix(st.Key, legacyMovePrefix):
			m := &Move{Indexes: st.Indexes}
			if err := json.Unmarshal(st.Value, m); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if checkMove(w, m) == nil {
				mustBeOK(w.tx.Insert(tableMoves, m))
			}
		case strings.HasPrefix(st.Key, legacyLivePrefix):
			var live string
			if err := json.Unmarshal(st.Value, &live); err != nil {
				return fmt.Errorf("setting %q: %v", st.Key, err)
			}
			if inst := first[Instance](w.tx, nil, tableInstances, "id", strings.TrimPrefix(st.Key, legacyLivePrefix)); inst != nil {
				c := inst.clone()
				c.Live = live
				mustBeOK(w.tx.Insert(tableInstances, c))
			}
		default:
			continue
		}
		mustBeOK(w.tx.Delete(tableSettings, &st))
	}
	return nil
}

// legacyRowOf is a format-2 setting decoded as the row that replaces it.
type legacyRowOf struct {
	table string
	row   interface {
		indexes() *Indexes
		primaryKey() string
	}
	check func(*write) error
}

// legacyRow decodes the setting key=val as the typed row that replaces it;
// ok is false for a key that is no such setting. The signing key and
// retired keys are handled by their callers (they merge into one table).
func legacyRow(w *write, key string, val json.RawMessage) (r legacyRowOf, ok bool, err error) {
	decode := func(v any) error {
		if err := json.Unmarshal(val, v); err != nil {
			return fmt.Errorf("setting %q: %v: %w", key, err, ErrInvalid)
		}
		return nil
	}
	switch {
	case strings.HasPrefix(key, legacyRefresh):
		t := &RefreshToken{}
		err = decode(t)
		t.Hash = strings.TrimPrefix(key, legacyRefresh)
		return legacyRowOf{tableRefreshTokens, t, func(w *write) error { return checkRefreshToken(w, t) }}, true, err
	case strings.HasPrefix(key, legacyRevokedJTI), strings.HasPrefix(key, legacyRevokedSession):
		table, prefix := tableRevokedTokens, legacyRevokedJTI
		if strings.HasPrefix(key, legacyRevokedSession) {
			table, prefix = tableRevokedSessions, legacyRevokedSession
		}
		rv := &Revocation{}
		err = decode(rv)
		rv.ID = strings.TrimPrefix(key, prefix)
		return legacyRowOf{table, rv, func(w *write) error { return checkRevocation(w, rv) }}, true, err
	case strings.HasPrefix(key, legacyUserGeneration):
		g := &SessionGeneration{}
		err = decode(g)
		g.UserID = strings.TrimPrefix(key, legacyUserGeneration)
		return legacyRowOf{tableSessionGenerations, g, func(w *write) error { return checkSessionGeneration(w, g) }}, true, err
	case strings.HasPrefix(key, legacySpec):
		d, err := legacySpecRow(w, strings.TrimPrefix(key, legacySpec), val)
		return legacyRowOf{tableDeploymentSpecs, d, func(w *write) error { return checkDeploymentSpec(w, d) }}, true, err
	case key == legacyAuditAnchor:
		a := &AuditAnchor{}
		err = decode(a)
		a.Chain = AuditChain
		return legacyRowOf{tableAuditAnchors, a, func(w *write) error { return checkAuditAnchor(w, a) }}, true, err
	case strings.HasPrefix(key, legacyEdgeConfig):
		c := &EdgeConfig{}
		err = decode(c)
		c.EdgeID = strings.TrimPrefix(key, legacyEdgeConfig)
		return legacyRowOf{tableEdgeConfigs, c, func(w *write) error { return checkEdgeConfig(w, c) }}, true, err
	case strings.HasPrefix(key, legacyGreenLogs):
		g := &GreenLogs{}
		err = decode(g)
		g.DeploymentID = strings.TrimPrefix(key, legacyGreenLogs)
		g.InstanceID = "" // the setting did not name it: its deployment's
		if dep := first[Deployment](w.tx, nil, tableDeployments, "id", g.DeploymentID); dep != nil {
			g.InstanceID = dep.InstanceID
		}
		return legacyRowOf{tableGreenLogs, g, func(w *write) error { return checkGreenLogs(w, g) }}, true, err
	}
	return legacyRowOf{}, false, nil
}

// legacySpecRow turns a deploy/spec/<id> value into a DeploymentSpec. The
// setting did not name the instance; hub/deploy named the green row
// "<instance>-<first 8 hex digits of the deployment id>", and the
// deployment row, when it exists, names it too.
func legacySpecRow(w *write, deploymentID string, val json.RawMessage) (*DeploymentSpec, error) {
	d := &DeploymentSpec{DeploymentID: deploymentID, Spec: json.RawMessage(strings.TrimSpace(string(val)))}
	if dep := first[Deployment](w.tx, nil, tableDeployments, "id", deploymentID); dep != nil {
		d.InstanceID = dep.InstanceID
		return d, nil
	}
	var spec struct {
		GreenID string `json:"green_id"`
	}
	if err := json.Unmarshal(val, &spec); err != nil {
		return d, fmt.Errorf("setting %q: %v: %w", legacySpec+deploymentID, err, ErrInvalid)
	}
	short := strings.ReplaceAll(deploymentID, "-", "")
	if len(short) >= 8 {
		d.InstanceID, _ = strings.CutSuffix(spec.GreenID, "-"+short[:8])
		if d.InstanceID == spec.GreenID {
			d.InstanceID = ""
		}
	}
	return d, nil
}

// legacyKeyRow decodes an auth/signing_key or auth/retired_key/<kid> value.
func legacyKeyRow(key string, val json.RawMessage) (*SigningKey, error) {
	var v struct {
		SigningKey
		Until time.Time `json:"until"`
	}
	if err := json.Unmarshal(val, &v); err != nil {
		return nil, fmt.Errorf("setting %q: %v: %w", key, err, ErrInvalid)
	}
	k := v.SigningKey
	k.Current, k.VerifyUntil, k.Indexes = key == legacySigningKey, v.Until, Indexes{}
	return &k, nil
}

// upgradeFormat2Settings moves the format-2 settings (above) into their
// tables. The signing key goes first, so that a retired key that is still
// current (an older hub stopped between the two writes of a rotation)
// merges into it. The current key's CreateIndex is the setting's
// ModifyIndex: the index an older hub's rotation compares with
// (putLegacySigningKey).
func upgradeFormat2Settings(w *write) error {
	settings := list[Setting](w.tx, nil, tableSettings, "id")
	if st := first[Setting](w.tx, nil, tableSettings, "id", legacySigningKey); st != nil {
		settings = append([]Setting{*st}, settings...)
	}
	for _, st := range settings {
		if first[Setting](w.tx, nil, tableSettings, "id", st.Key) == nil {
			continue // the signing key, met again
		}
		if err := upgradeSetting(w, st); err != nil {
			return err
		}
	}
	return nil
}

func upgradeSetting(w *write, st Setting) error {
	if st.Key == legacySigningKey || strings.HasPrefix(st.Key, legacyRetiredKey) {
		k, err := legacyKeyRow(st.Key, st.Value)
		if err != nil {
			return err
		}
		k.Indexes = st.Indexes
		if k.Current {
			k.CreateIndex = st.ModifyIndex
		} else if cur := first[SigningKey](w.tx, nil, tableSigningKeys, "id", k.ID); cur != nil {
			c := cur.clone() // a rotation the older hub did not finish
			c.Key, c.Sealed, c.RetiredAt, c.VerifyUntil = k.Key, k.Sealed, k.RetiredAt, k.VerifyUntil
			c.ModifyIndex = max(c.ModifyIndex, st.ModifyIndex)
			k = c
		}
		return upgradeInsert(w, st, tableSigningKeys, k, func(w *write) error { return checkSigningKey(w, k) })
	}
	r, ok, err := legacyRow(w, st.Key, st.Value)
	if !ok || err != nil {
		return err
	}
	*r.row.indexes() = st.Indexes
	return upgradeInsert(w, st, r.table, r.row, r.check)
}

// upgradeInsert inserts row in place of the setting st, or drops both when
// the row refers to a row that is gone.
func upgradeInsert(w *write, st Setting, table string, row interface{ indexes() *Indexes }, check func(*write) error) error {
	switch err := check(w); {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return fmt.Errorf("setting %q: %w", st.Key, err)
	default:
		mustBeOK(w.tx.Insert(table, row))
		if ix := row.indexes().ModifyIndex; ix > indexOf(w.tx, table) {
			setIndex(w.tx, table, ix)
		}
	}
	mustBeOK(w.tx.Delete(tableSettings, &st))
	return nil
}

// isLegacyKey reports whether a setting key names state that has a table
// now: a PutSetting or DeleteSetting of it goes to the table.
func isLegacyKey(key string) bool {
	for _, p := range []string{legacyRetiredKey, legacyRefresh, legacyRevokedJTI, legacyRevokedSession,
		legacyUserGeneration, legacySpec, legacyEdgeConfig, legacyGreenLogs} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return key == legacySigningKey || key == legacyAuditAnchor
}

// putLegacy applies a PutSetting of a legacy key, replayed from a log an
// older hub wrote, to the key's table as the older hub applied it to the
// setting: the same IfIndex checks against the same indexes (the row
// written by a put has the put's index, as the setting had), the same
// rows in the end. The result is the typed row.
func putLegacy(w *write, b putBody[Setting]) (any, error) {
	key := b.Row.Key
	if key == legacySigningKey || strings.HasPrefix(key, legacyRetiredKey) {
		k, err := legacyKeyRow(key, b.Row.Value)
		if err != nil {
			return nil, err
		}
		if k.Current {
			return putLegacySigningKey(w, k, b.IfIndex)
		}
		return putLegacyRetiredKey(w, k)
	}
	r, _, err := legacyRow(w, key, b.Row.Value)
	if err != nil {
		return nil, err
	}
	switch row := r.row.(type) {
	case *RefreshToken:
		return applyPutRefreshToken(w, putBody[RefreshToken]{Row: *row, IfIndex: b.IfIndex})
	case *DeploymentSpec:
		return applyPutDeploymentSpec(w, putBody[DeploymentSpec]{Row: *row, IfIndex: b.IfIndex})
	case *AuditAnchor:
		return applyPutAuditAnchor(w, putBody[AuditAnchor]{Row: *row, IfIndex: b.IfIndex})
	case *EdgeConfig:
		return applyPutEdgeConfig(w, putBody[EdgeConfig]{Row: *row, IfIndex: b.IfIndex})
	case *GreenLogs:
		return applyPutGreenLogs(w, putBody[GreenLogs]{Row: *row, IfIndex: b.IfIndex})
	case *Revocation:
		if err := checkIfIndex(first[Revocation](w.tx, nil, r.table, "id", row.ID), b.IfIndex); err != nil {
			return nil, fmt.Errorf("put setting %q: %w", key, err)
		}
		return nil, putRevocation(w, r.table, *row)
	case *SessionGeneration:
		old := first[SessionGeneration](w.tx, nil, tableSessionGenerations, "id", row.UserID)
		if err := checkIfIndex(old, b.IfIndex); err != nil {
			return nil, fmt.Errorf("put setting %q: %w", key, err)
		}
		if err := checkSessionGeneration(w, row); err != nil {
			return nil, err
		}
		return insert(w, tableSessionGenerations, row, old)
	}
	return nil, fmt.Errorf("put setting %q: not a legacy key: %w", key, ErrInvalid)
}

// putLegacySigningKey installs k as the current key. The IfIndex of an
// older hub's put is the ModifyIndex of the auth/signing_key setting it
// read: the index at which the current key was installed, its CreateIndex.
// The key it replaces stays, retired, if a put of auth/retired_key/<kid>
// retired it; otherwise it is gone, as the setting's old value was.
func putLegacySigningKey(w *write, k *SigningKey, ifIndex *uint64) (any, error) {
	cur := currentKey(w.tx, nil)
	switch {
	case ifIndex == nil:
	case *ifIndex == 0 && cur != nil:
		return nil, fmt.Errorf("put setting %q: key %q is current: %w", legacySigningKey, cur.ID, ErrConflict)
	case *ifIndex != 0 && (cur == nil || cur.CreateIndex != *ifIndex):
		return nil, fmt.Errorf("put setting %q: expected index %d: %w", legacySigningKey, *ifIndex, ErrConflict)
	}
	if cur != nil {
		c := cur.clone()
		c.Current = false
		if c.VerifyUntil.IsZero() || c.ID == k.ID {
			w.remove(tableSigningKeys, cur)
		} else {
			mustBeOK(w.tx.Insert(tableSigningKeys, c)) // indexes kept: not a change of the retired key
		}
	}
	if old := first[SigningKey](w.tx, nil, tableSigningKeys, "id", k.ID); old != nil {
		w.remove(tableSigningKeys, old)
	}
	return installKey(w, k)
}

// putLegacyRetiredKey records a retired key, as the older hub wrote it
// (sealed anew); when it is still the current key (its replacement comes
// in the next command), it stays current.
func putLegacyRetiredKey(w *write, k *SigningKey) (any, error) {
	old := first[SigningKey](w.tx, nil, tableSigningKeys, "id", k.ID)
	k.Current = old != nil && old.Current
	if err := checkSigningKey(w, k); err != nil {
		return nil, err
	}
	return insert(w, tableSigningKeys, k, old)
}

// deleteLegacy applies a DeleteSetting of a legacy key (older hubs' Sweep
// deleted expired session state so) to the key's table. A missing row is
// not an error: the tables' cascades delete some rows (the generation of
// a deleted user) before the older hub's log deletes the setting.
func deleteLegacy(w *write, key string) (any, error) {
	table, obj := legacyTarget(w, key)
	if obj == nil {
		return nil, nil
	}
	if k, ok := obj.(*SigningKey); ok && k.Current && key != legacySigningKey {
		c := k.clone() // a retired key that is still current: no longer retired
		c.RetiredAt, c.VerifyUntil = time.Time{}, time.Time{}
		_, err := insert(w, tableSigningKeys, c, k)
		return nil, err
	}
	w.remove(table, obj)
	return nil, nil
}

// legacyTarget returns the table and the stored row a legacy key names,
// or a nil row.
func legacyTarget(w *write, key string) (string, any) {
	switch key {
	case legacySigningKey:
		if k := currentKey(w.tx, nil); k != nil {
			return tableSigningKeys, k
		}
		return tableSigningKeys, nil
	case legacyAuditAnchor:
		obj, err := w.tx.First(tableAuditAnchors, "id", AuditChain)
		mustBeOK(err)
		return tableAuditAnchors, obj
	}
	for _, m := range []struct{ prefix, table string }{
		{legacyRetiredKey, tableSigningKeys}, {legacyRefresh, tableRefreshTokens},
		{legacyRevokedJTI, tableRevokedTokens}, {legacyRevokedSession, tableRevokedSessions},
		{legacyUserGeneration, tableSessionGenerations}, {legacySpec, tableDeploymentSpecs},
		{legacyEdgeConfig, tableEdgeConfigs}, {legacyGreenLogs, tableGreenLogs},
	} {
		if id, ok := strings.CutPrefix(key, m.prefix); ok {
			obj, err := w.tx.First(m.table, "id", id)
			mustBeOK(err)
			return m.table, obj
		}
	}
	return "", nil
}
