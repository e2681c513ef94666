package nodered

import (
	"errors"
	"strings"
	"testing"
)

func TestValidateFlows(t *testing.T) {
	good := `[{"id":"t1","type":"tab"},{"id":"a","type":"inject","z":"t1","wires":[["b"]]},{"id":"b","type":"debug","z":"t1","wires":[]}]`
	if nodes, err := ValidateFlows([]byte(good)); err != nil || len(nodes) != 3 {
		t.Fatalf("valid flows refused: %v", err)
	}
	cases := []struct{ doc, want string }{
		{``, "must be a JSON array"},
		{`{"id":"a"}`, "must be a JSON array"},
		{`[1]`, "flows[0]: is not a JSON object"},
		{`[{"type":"tab"}]`, "flows[0]: has no id"},
		{`[{"id":"a"}]`, `node "a"): has no type`},
		{`[{"id":"a","type":"x"},{"id":"a","type":"y"}]`, `flows[1] (node "a"): duplicates the id of flows[0]`},
		{`[{"id":"a","type":"x","wires":[["zz"]]}]`, `is wired to unknown node "zz"`},
		{`[{"id":"a","type":"x","wires":"b"}]`, "wires must be a list"},
		{`[{"id":"a","type":"x","z":"nope"}]`, `tab "nope"`},
		{`[{"id":5,"type":"x"}]`, "wrong type"},
		{`[{"id":"a","type":"x"}`, "not valid JSON"},
	}
	for _, c := range cases {
		_, err := ValidateFlows([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrInvalidFlows) {
			t.Errorf("ValidateFlows(%s) = %v, want error containing %q", c.doc, err, c.want)
		}
	}
}

func FuzzValidateFlows(f *testing.F) {
	f.Add([]byte(`[{"id":"a","type":"x","wires":[["a"]]}]`))
	f.Add([]byte(`[{"id":"t","type":"tab"},{"id":"n","type":"debug","z":"t"}]`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		nodes, err := ValidateFlows(doc)
		if err == nil && nodes == nil {
			t.Fatal("nil nodes without error")
		}
	})
}

func TestDiffFlows(t *testing.T) {
	from := []byte(`[{"id":"t","type":"tab","label":"Main"},{"id":"a","type":"inject","z":"t","name":"tick","x":1},
		{"id":"b","type":"debug","z":"t","x":2},{"id":"c","type":"function","z":"t","func":"return msg;","x":3}]`)
	to := []byte(`[{"id":"t","type":"tab","label":"Main"},{"id":"a","type":"inject","z":"t","name":"tick","x":1},
		{"id":"c","type":"function","z":"t","func":"return null;","x":30},{"id":"d","type":"change","z":"t","name":"set it"}]`)
	d, err := DiffFlows(from, to)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Added) != 1 || d.Added[0].ID != "d" || d.Added[0].Type != "change" || d.Added[0].Name != "set it" {
		t.Errorf("added %+v", d.Added)
	}
	if len(d.Changed) != 1 || d.Changed[0].ID != "c" || strings.Join(d.Changed[0].Fields, ",") != "func,x" {
		t.Errorf("changed %+v", d.Changed)
	}
	if len(d.Removed) != 1 || d.Removed[0].ID != "b" || d.Removed[0].Type != "debug" {
		t.Errorf("removed %+v", d.Removed)
	}
	if _, err := DiffFlows([]byte(`{}`), to); !errors.Is(err, ErrInvalidFlows) {
		t.Errorf("not an array: %v", err)
	}
}

// FuzzDiffFlows: any two documents are diffed or refused, never a panic.
func FuzzDiffFlows(f *testing.F) {
	f.Add([]byte(`[{"id":"a","type":"inject"}]`), []byte(`[{"id":"a","type":"inject","x":1},{"id":"b","type":"debug"}]`))
	f.Add([]byte(`[]`), []byte(`{}`))
	f.Add([]byte(`[{"id":1}]`), []byte(`[null]`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		d, err := DiffFlows(a, b)
		if err == nil && (d.Added == nil || d.Changed == nil || d.Removed == nil) {
			t.Fatal("nil lists")
		}
	})
}
