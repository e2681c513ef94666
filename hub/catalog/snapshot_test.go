package catalog

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestSnapshotRoundTrip: a restored catalog equals the original in every
// table, including every row's indexes and the index table, and keeps
// working (unique indexes rebuilt, Apply continues after Index()).
func TestSnapshotRoundTrip(t *testing.T) {
	a := fixture(t)
	snap := persist(t, a.s)

	restored := NewState()
	restored.Apply(1, PutSetting("overwritten", true))
	if err := restored.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	assertSameState(t, restored, a.s)
	if restored.Index() != a.s.Index() {
		t.Fatalf("Index() = %d, want %d", restored.Index(), a.s.Index())
	}
	for _, table := range tableOrder[:len(tableOrder)-1] {
		if got, want := restored.TableIndex(table), a.s.TableIndex(table); got != want || want == 0 {
			t.Errorf("TableIndex(%s) = %d, want %d (non-zero)", table, got, want)
		}
	}
	if again := persist(t, restored); !bytes.Equal(again, snap) {
		t.Fatal("re-persisting the restored state gives different bytes")
	}

	r := &applier{tb: t, s: restored, index: restored.Index()}
	r.fails(UpsertInstance(Instance{ID: "i-9", Name: "ORDERS"}), ErrConflict)
	r.fails(PutAPIToken(APIToken{ID: "t-9", Hash: "h2"}), ErrConflict)
	r.must(UpsertInstance(Instance{ID: "i-9", Name: "new"}))
}

func TestSnapshotOfEmptyState(t *testing.T) {
	s := NewState()
	if err := s.Restore(bytes.NewReader(persist(t, NewState()))); err != nil {
		t.Fatal(err)
	}
	assertSameState(t, s, NewState())
}

// TestSnapshotIsPointInTime: writes after Snapshot() are not in it.
func TestSnapshotIsPointInTime(t *testing.T) {
	a := fixture(t)
	want := persist(t, a.s)
	snap := a.s.Snapshot()
	a.must(UpsertInstance(Instance{ID: "i-9", Name: "later"}))
	a.must(DeleteUser("u-1"))
	var buf bytes.Buffer
	if err := snap.Persist(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatal("snapshot includes writes made after it was taken")
	}
	if snap.Index() != a.index-2 {
		t.Fatalf("snapshot Index() = %d, want %d", snap.Index(), a.index-2)
	}
}

// TestRestoreRefuses: an unreadable or inconsistent snapshot is refused
// with a clear error and the state is left exactly as it was.
func TestRestoreRefuses(t *testing.T) {
	good := persist(t, fixture(t).s)
	body := gunzipBody(t, good)
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	meta, rows, end := lines[0], lines[1:len(lines)-1], lines[len(lines)-1]
	edit := func(fn func(rows []string) []string) []byte {
		rs := fn(append([]string(nil), rows...))
		return encodeRaw(t, snapshotVersion, meta+"\n"+strings.Join(rs, "\n")+"\n"+`{"end":true,"rows":`+itoa(len(rs))+"}\n")
	}
	replaceIn := func(table, old, new string) func([]string) []string {
		return func(rs []string) []string {
			for i, r := range rs {
				if strings.Contains(r, `"table":"`+table+`"`) && strings.Contains(r, old) {
					rs[i] = strings.Replace(r, old, new, 1)
					return rs
				}
			}
			t.Fatalf("no %s row with %s", table, old)
			return nil
		}
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)-12] ^= 0xff // inside the gzip body / CRC

	cases := []struct {
		name string
		in   []byte
		want error
		msg  string
	}{
		{"empty", nil, ErrCorruptSnapshot, "reading header"},
		{"bad magic", append([]byte("NOTASNAP"), good[8:]...), ErrCorruptSnapshot, "bad magic"},
		{"newer version", encodeRaw(t, snapshotVersion+1, body), ErrSnapshotVersion, "newer than this hub supports"},
		{"version 0", encodeRaw(t, 0, body), ErrCorruptSnapshot, "format version 0"},
		{"not gzip", append(bytes.Clone(good[:10]), "plain text"...), ErrCorruptSnapshot, "gzip"},
		{"truncated", good[:len(good)/2], ErrCorruptSnapshot, ""},
		{"truncated before end line", encodeRaw(t, snapshotVersion, meta+"\n"+strings.Join(rows, "\n")+"\n"), ErrCorruptSnapshot, "EOF"},
		{"flipped byte", flipped, ErrCorruptSnapshot, ""},
		{"trailing garbage", append(bytes.Clone(good), "junk"...), ErrCorruptSnapshot, ""},
		{"data after end line", encodeRaw(t, snapshotVersion, body+`{"table":"regions"}`+"\n"), ErrCorruptSnapshot, "after the end line"},
		{"row count", encodeRaw(t, snapshotVersion, meta+"\n"+strings.Join(rows[1:], "\n")+"\n"+end+"\n"), ErrCorruptSnapshot, "end line counts"},
		{"unknown table", edit(func(rs []string) []string { return append([]string{`{"table":"widgets","row":{}}`}, rs...) }), ErrCorruptSnapshot, "unknown table"},
		{"unknown field", edit(replaceIn(tableUsers, `"id":"u-1"`, `"id":"u-1","shoe_size":9`)), ErrCorruptSnapshot, "unknown field"},
		{"duplicate username", edit(replaceIn(tableUsers, `"username":"viewer"`, `"username":"ADMIN"`)), ErrConflict, "already used"},
		{"duplicate key", edit(replaceIn(tableUsers, `"id":"u-2"`, `"id":"u-1"`)), ErrCorruptSnapshot, "duplicate key"},
		{"dangling deployment", edit(replaceIn(tableDeployments, `"instance_id":"i-2"`, `"instance_id":"i-7"`)), ErrNotFound, "i-7"},
		{"tables out of order", edit(func(rs []string) []string { return append(rs[1:], rs[0]) }), ErrCorruptSnapshot, "out of order"},
		{"index after last applied", edit(replaceIn(tableSettings, `"modify_index":`, `"modify_index":9999`)), ErrCorruptSnapshot, "out of range"},
		{"index table disagrees", encodeRaw(t, snapshotVersion, strings.Replace(body, `{"index":`, `{"index":1`, 1)), ErrCorruptSnapshot, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := fixture(t)
			a.must(PutSetting("marker", "before restore"))
			before := dump(a.s)
			err := a.s.Restore(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("Restore: %v; want %v mentioning %q", err, tc.want, tc.msg)
			}
			if tc.want != ErrSnapshotVersion && !errors.Is(err, ErrCorruptSnapshot) {
				t.Fatalf("Restore: %v does not wrap ErrCorruptSnapshot", err)
			}
			if !reflect.DeepEqual(dump(a.s), before) {
				t.Fatal("a refused restore changed the state")
			}
		})
	}
}

func gunzipBody(t *testing.T, snap []byte) string {
	t.Helper()
	gz, err := gzip.NewReader(bytes.NewReader(snap[10:]))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(gz); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

func encodeRaw(t *testing.T, version uint16, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteString(snapshotMagic)
	binary.Write(&buf, binary.BigEndian, version)
	gz := gzip.NewWriter(&buf)
	gz.Write([]byte(body))
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

func TestSnapshotIsCompact(t *testing.T) {
	a := newApplier(t)
	for i := range 500 {
		id := "i-" + itoa(i)
		a.must(UpsertInstance(Instance{ID: id, Name: "name-" + id, Region: "eu-west", Driver: "docker", Image: "nodered/node-red:4.1", Env: map[string]string{"TZ": "UTC"}, Resources: Resources{CPU: 1, MemoryMB: 512}}))
	}
	snap := persist(t, a.s)
	raw := len(gunzipBody(t, snap))
	if len(snap)*4 > raw {
		t.Fatalf("snapshot is %d bytes for %d bytes of JSON; want at least 4x smaller", len(snap), raw)
	}
	t.Logf("500 instances: %d bytes of JSON, %d bytes gzipped", raw, len(snap))
}
