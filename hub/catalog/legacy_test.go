package catalog

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// legacyFixture is testdata/legacy-fixture.json: what the generator (see
// testdata/README.md) knew of the state it wrote with the code of the hubs
// that kept session state, deployment specs, the audit anchor and edge
// configs in settings.
type legacyFixture struct {
	Now        time.Time `json:"now"`
	BobID      string    `json:"bob_id"`
	CarolID    string    `json:"carol_id"`
	Deployment string    `json:"deployment"`
	Instance   string    `json:"instance"`
	Edge       string    `json:"edge"`
	LastIndex  uint64    `json:"last_index"`
	Settings   []Setting `json:"settings_now"`
}

func readLegacyFixture(tb testing.TB) legacyFixture {
	tb.Helper()
	b, err := os.ReadFile("testdata/legacy-fixture.json")
	if err != nil {
		tb.Fatal(err)
	}
	var f legacyFixture
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	return f
}

// replayLegacyLog applies testdata/legacy-log.jsonl, the commands the
// older hub committed, as hub/cluster's FSM would: decode, then apply at
// the entry's index. Every entry must decode and apply as it did then.
func replayLegacyLog(tb testing.TB) *State {
	tb.Helper()
	f, err := os.Open("testdata/legacy-log.jsonl")
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	s := NewState()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Index   uint64 `json:"index"`
			Command string `json:"command"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			tb.Fatal(err)
		}
		raw, err := base64.StdEncoding.DecodeString(e.Command)
		if err != nil {
			tb.Fatal(err)
		}
		cmd, err := DecodeCommand(raw)
		if err != nil {
			tb.Fatalf("entry %d does not decode: %v", e.Index, err)
		}
		if _, err := s.Apply(e.Index, cmd); err != nil {
			// The older hub refused none of them either (the generator
			// failed on any error).
			tb.Fatalf("entry %d (%s %s): %v", e.Index, cmd.Type, cmd.Payload, err)
		}
	}
	if err := sc.Err(); err != nil {
		tb.Fatal(err)
	}
	return s
}

func restoreLegacySnapshot(tb testing.TB) *State {
	tb.Helper()
	b, err := os.ReadFile("testdata/snapshot-v2-legacy.bin")
	if err != nil {
		tb.Fatal(err)
	}
	s := NewState()
	if err := s.Restore(bytes.NewReader(b)); err != nil {
		tb.Fatalf("restore the format-2 snapshot: %v", err)
	}
	return s
}

// onceSettingsRows returns the rows of the tables that replaced settings,
// without their indexes (a replay and a restore record different create
// indexes for a key that was current, then retired).
func onceSettingsRows(s *State) map[string]string {
	out := map[string]string{}
	tx := s.read(nil)
	for _, table := range []string{tableSigningKeys, tableRefreshTokens, tableRevokedTokens, tableRevokedSessions,
		tableSessionGenerations, tableDeploymentSpecs, tableAuditAnchors, tableEdgeConfigs, tableSettings} {
		it, err := tx.Get(table, "id")
		mustBeOK(err)
		var rows []string
		for obj := it.Next(); obj != nil; obj = it.Next() {
			v := reflect.ValueOf(obj).Elem()
			c := reflect.New(v.Type()).Elem()
			c.Set(v)
			c.FieldByName("Indexes").Set(reflect.Zero(reflect.TypeOf(Indexes{})))
			b, _ := json.Marshal(c.Interface())
			rows = append(rows, string(b))
		}
		out[table] = strings.Join(rows, "\n")
	}
	return out
}

// checkLegacyUpgrade asserts that the state an older hub left in settings
// is in the typed tables, and no setting of it is left.
func checkLegacyUpgrade(t *testing.T, s *State, f legacyFixture) {
	t.Helper()
	if got := s.Settings(); len(got) != 1 || got[0].Key != "ui/banner" {
		t.Fatalf("settings after the upgrade: %+v, want only ui/banner", got)
	}
	var oldKey struct {
		ID     string `json:"kid"`
		Sealed string `json:"sealed"`
	}
	var retired struct {
		ID    string    `json:"kid"`
		Until time.Time `json:"until"`
	}
	for _, st := range f.Settings {
		switch {
		case st.Key == legacySigningKey:
			json.Unmarshal(st.Value, &oldKey)
		case strings.HasPrefix(st.Key, legacyRetiredKey):
			json.Unmarshal(st.Value, &retired)
		}
	}
	cur, err := s.SigningKey()
	if err != nil || cur.ID != oldKey.ID || cur.Sealed != oldKey.Sealed || len(cur.Key) != 0 {
		t.Fatalf("current signing key %+v (%v), want kid %s, sealed as it was", cur, err, oldKey.ID)
	}
	ret, err := s.SigningKeyByID(retired.ID)
	if err != nil || ret.Current || !ret.VerifyUntil.Equal(retired.Until) || ret.Sealed == "" {
		t.Fatalf("retired key %+v (%v), want kid %s until %s", ret, err, retired.ID, retired.Until)
	}
	if n := len(s.RefreshTokens()); n != 4 {
		t.Fatalf("%d refresh tokens, want 4 (alice's used and current ones, her second session, bob's)", n)
	}
	for _, st := range f.Settings {
		if hash, ok := strings.CutPrefix(st.Key, legacyRefresh); ok {
			if rt, err := s.RefreshToken(hash); err != nil || rt.UserID == "" || rt.ExpiresAt.IsZero() {
				t.Fatalf("refresh token %s: %+v, %v", hash, rt, err)
			}
		}
		if jti, ok := strings.CutPrefix(st.Key, legacyRevokedJTI); ok {
			if r, err := s.TokenRevoked(jti); err != nil || r.Reason != "logout" {
				t.Fatalf("revoked token %s: %+v, %v", jti, r, err)
			}
		}
		if sid, ok := strings.CutPrefix(st.Key, legacyRevokedSession); ok {
			if r, err := s.SessionRevoked(sid); err != nil || r.Until.IsZero() {
				t.Fatalf("revoked session %s: %+v, %v", sid, r, err)
			}
		}
	}
	if g := s.SessionGeneration(f.BobID); g.Generation != 1 {
		t.Fatalf("bob's session generation %+v, want 1", g)
	}
	if g := s.SessionGeneration(f.CarolID); g.Generation != 0 {
		t.Fatalf("carol's generation (deleted user, swept) %+v, want none", g)
	}
	spec, err := s.DeploymentSpec(f.Deployment)
	var sp struct {
		GreenRev string `json:"green_rev"`
	}
	if err != nil || spec.InstanceID != f.Instance || json.Unmarshal(spec.Spec, &sp) != nil || sp.GreenRev != "rev-2" {
		t.Fatalf("deployment spec %+v, %v", spec, err)
	}
	if a, err := s.AuditAnchor(AuditChain); err != nil || a.RecordID != 12 || a.Hash != "bb12" {
		t.Fatalf("audit anchor %+v, %v", a, err)
	}
	c, err := s.EdgeConfig(f.Edge)
	if err != nil || c.Version != 2 || c.UpdatedBy != "alice" || !json.Valid(c.Flows) || string(c.Settings) != `{"flowFilePretty":true}` {
		t.Fatalf("edge config %+v, %v", c, err)
	}
}

// TestLegacyLogReplay: a Raft log an older hub wrote, with PutSetting and
// DeleteSetting of the keys that now have tables, replays into the tables
// (a hub upgraded mid-log keeps its signing key, sessions and specs).
func TestLegacyLogReplay(t *testing.T) {
	f := readLegacyFixture(t)
	s := replayLegacyLog(t)
	if s.Index() != f.LastIndex {
		t.Fatalf("index %d after the replay, want %d", s.Index(), f.LastIndex)
	}
	checkLegacyUpgrade(t, s, f)
}

// TestLegacySnapshotRestore: a format-2 snapshot with those settings
// restores into the tables, as the replay of its log does.
func TestLegacySnapshotRestore(t *testing.T) {
	f := readLegacyFixture(t)
	s := restoreLegacySnapshot(t)
	checkLegacyUpgrade(t, s, f)
	if got, want := onceSettingsRows(s), onceSettingsRows(replayLegacyLog(t)); !reflect.DeepEqual(got, want) {
		for table := range want {
			if got[table] != want[table] {
				t.Errorf("%s after restore:\n%s\nafter replay:\n%s", table, got[table], want[table])
			}
		}
	}
	for _, table := range []string{tableSigningKeys, tableRefreshTokens, tableDeploymentSpecs, tableEdgeConfigs} {
		if s.TableIndex(table) == 0 {
			t.Errorf("TableIndex(%s) = 0 after the upgrade", table)
		}
	}
	// The new format round-trips.
	s2 := NewState()
	if err := s2.Restore(bytes.NewReader(persist(t, s))); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, s2, s)
}

// TestLegacyLogAfterRestore: a hub restored from the snapshot and then fed
// the log of an older hub applies a rotation by that hub's rule: the put
// of auth/signing_key with the IfIndex it read (the setting's modify
// index) wins, a stale one loses.
func TestLegacyLogAfterRestore(t *testing.T) {
	f := readLegacyFixture(t)
	for _, st := range f.Settings {
		if st.Key != legacySigningKey {
			continue
		}
		for _, tc := range []struct {
			ifIndex uint64
			want    error
		}{{st.ModifyIndex - 1, ErrConflict}, {0, ErrConflict}, {st.ModifyIndex, nil}} {
			s := restoreLegacySnapshot(t)
			k := map[string]any{"kid": "k-next", "sealed": "sealed-next", "created_at": f.Now}
			_, err := s.Apply(f.LastIndex+1, PutSetting(legacySigningKey, k, IfIndex(tc.ifIndex)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("legacy rotation with IfIndex(%d): %v, want %v", tc.ifIndex, err, tc.want)
			}
			cur, _ := s.SigningKey()
			if tc.want == nil && cur.ID != "k-next" {
				t.Fatalf("current key %s after the legacy rotation", cur.ID)
			}
			if tc.want == nil && len(s.SigningKeys()) != 2 { // the replaced key was never retired: gone, as then
				t.Fatalf("keys after the legacy rotation: %+v", s.SigningKeys())
			}
		}
		return
	}
	t.Fatal("no signing key in the fixture")
}

// TestLegacyDeletes: DeleteSetting of a legacy key deletes the row; a
// missing one is no error (a cascade may have deleted it first).
func TestLegacyDeletes(t *testing.T) {
	f := readLegacyFixture(t)
	s := restoreLegacySnapshot(t)
	i := f.LastIndex
	for _, st := range f.Settings {
		if st.Key == "ui/banner" {
			continue
		}
		i++
		if _, err := s.Apply(i, DeleteSetting(st.Key)); err != nil {
			t.Fatalf("delete %s: %v", st.Key, err)
		}
		i++
		if _, err := s.Apply(i, DeleteSetting(st.Key)); err != nil {
			t.Fatalf("delete %s again: %v", st.Key, err)
		}
	}
	for table, rows := range onceSettingsRows(s) {
		if table != tableSettings && rows != "" {
			t.Errorf("%s after deleting every legacy setting: %s", table, rows)
		}
	}
}
