package migrate

import (
	"errors"
	"testing"
	"testing/fstest"

	"github.com/redforge/controltower/hub/store"
)

func TestLoadOrdersAndChecks(t *testing.T) {
	ok := fstest.MapFS{
		"m/0002_more.sql": {Data: []byte("B")},
		"m/0001_init.sql": {Data: []byte("A")},
	}
	ms, err := Load(ok, "m")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 || ms[0].SQL != "A" || ms[1].Version != 2 {
		t.Fatalf("got %+v", ms)
	}

	for name, fsys := range map[string]fstest.MapFS{
		"gap":      {"m/0001_a.sql": {}, "m/0003_c.sql": {}},
		"dup":      {"m/0001_a.sql": {}, "m/0001_b.sql": {}},
		"bad name": {"m/0001_a.sql": {}, "m/2_b.sql": {}},
		"no 1":     {"m/0002_b.sql": {}},
		"empty":    {"m/.keep": {}},
	} {
		if _, err := Load(fsys, "m"); err == nil {
			t.Errorf("%s: Load succeeded", name)
		}
	}
}

func TestPending(t *testing.T) {
	ms := []Migration{{Version: 1}, {Version: 2}, {Version: 3}}
	for cur, want := range map[int]int{0: 3, 1: 2, 3: 0} {
		p, err := Pending(ms, cur)
		if err != nil || len(p) != want {
			t.Errorf("Pending(%d) = %d, %v; want %d", cur, len(p), err, want)
		}
		if len(p) > 0 && p[0].Version != cur+1 {
			t.Errorf("Pending(%d) starts at %d", cur, p[0].Version)
		}
	}
	if _, err := Pending(ms, 4); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Pending(4) = %v, want ErrSchemaTooNew", err)
	}
}
