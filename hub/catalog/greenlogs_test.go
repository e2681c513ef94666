package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// format3WithSettings returns s's snapshot as a format-3 hub wrote it:
// no green_logs table, with the given settings rows (in key order,
// between "banner" and "retention_days") at index ix.
func format3WithSettings(t *testing.T, s *State, ix uint64, settings map[string]string) []byte {
	t.Helper()
	var out []string
	rows := 0
	lines := strings.Split(strings.TrimSpace(gunzipBody(t, persist(t, s))), "\n")
	var meta snapshotMeta
	if err := json.Unmarshal([]byte(lines[0]), &meta); err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, tb := range meta.Tables {
		if tb != tableGreenLogs {
			tables = append(tables, tb)
		}
	}
	meta.Tables = tables
	hdr, _ := json.Marshal(meta)
	out = append(out, string(hdr))
	inserted := false
	for _, l := range lines[1 : len(lines)-1] {
		if strings.Contains(l, tableGreenLogs) {
			continue // its rows and its index row
		}
		if !inserted && strings.HasPrefix(l, `{"table":"settings"`) {
			for _, key := range []string{"deploy/greenlogs/d-1", "deploy/greenlogs/d-gone"} {
				row, _ := json.Marshal(Setting{Key: key, Value: json.RawMessage(settings[key]), Indexes: Indexes{CreateIndex: ix, ModifyIndex: ix}})
				line, _ := json.Marshal(snapshotLine{Table: tableSettings, Row: row})
				out = append(out, string(line))
				rows++
			}
			inserted = true
		}
		out = append(out, l)
		rows++
	}
	out = append(out, `{"end":true,"rows":`+itoa(rows)+`}`)
	return encodeRaw(t, 3, strings.Join(out, "\n")+"\n")
}

// TestGreenLogsSurviveSnapshots: the kept logs of a failed green are in
// the snapshot and come back from it.
func TestGreenLogsSurviveSnapshots(t *testing.T) {
	a := fixture(t)
	want, err := a.s.GreenLogs("d-1")
	if err != nil || len(want.Replicas) != 2 || want.Replicas[0].Lines[1] != "Error: bad option --x" {
		t.Fatalf("green logs in the fixture: %+v %v", want, err)
	}
	s := NewState()
	if err := s.Restore(bytes.NewReader(persist(t, a.s))); err != nil {
		t.Fatal(err)
	}
	got, err := s.GreenLogs("d-1")
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after restore: %+v %v, want %+v", got, err, want)
	}
	if _, err := s.GreenLogs("d-2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted green logs after restore: %v", err)
	}
}

// TestLegacyGreenLogs: the logs a format-3 hub kept in the setting
// deploy/greenlogs/<deployment> move into the green_logs table at
// restore (those of a deployment that is gone are dropped), and a
// PutSetting or DeleteSetting of such a key replayed from its log
// changes the table; no such setting is left.
func TestLegacyGreenLogs(t *testing.T) {
	a := fixture(t)
	a.must(DeleteGreenLogs("d-1"))
	const v1 = `{"deployment_id":"d-1","green":"orders.green-d1","at":"2026-01-02T03:04:05Z","replicas":[{"replica":0,"hub":"hub-a","lines":["boom"]}]}`
	snap := format3WithSettings(t, a.s, 5, map[string]string{
		"deploy/greenlogs/d-1":    v1,
		"deploy/greenlogs/d-gone": `{"deployment_id":"d-gone","green":"x","at":"2026-01-02T03:04:05Z","replicas":[]}`,
	})
	s := NewState()
	if err := s.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	g, err := s.GreenLogs("d-1")
	if err != nil || g.InstanceID != "i-1" || g.Green != "orders.green-d1" || len(g.Replicas) != 1 || g.Replicas[0].Lines[0] != "boom" || g.ModifyIndex != 5 {
		t.Fatalf("green logs from the format-3 setting: %+v %v", g, err)
	}
	if _, err := s.GreenLogs("d-gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("green logs of a missing deployment: %v", err)
	}
	noSettings := func(when string) {
		t.Helper()
		for _, st := range s.Settings() {
			if strings.HasPrefix(st.Key, legacyGreenLogs) {
				t.Fatalf("%s: setting %s left", when, st.Key)
			}
		}
	}
	noSettings("after restore")

	i := s.Index()
	i++
	if _, err := s.Apply(i, PutSetting("deploy/greenlogs/d-2", json.RawMessage(`{"deployment_id":"d-2","green":"billing.g","at":"2026-01-02T03:04:05Z","replicas":[]}`))); err != nil {
		t.Fatal(err)
	}
	if g, err := s.GreenLogs("d-2"); err != nil || g.InstanceID != "i-2" || g.Green != "billing.g" {
		t.Fatalf("green logs from a replayed PutSetting: %+v %v", g, err)
	}
	noSettings("after a replayed put")
	i++
	if _, err := s.Apply(i, DeleteSetting("deploy/greenlogs/d-1")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GreenLogs("d-1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("green logs after a replayed DeleteSetting: %v", err)
	}
}
