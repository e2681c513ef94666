package sqlstore

import (
	"reflect"
	"testing"
	"time"
)

func TestRebindDollar(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT a FROM t WHERE a = ? AND b < ? LIMIT ?":   "SELECT a FROM t WHERE a = $1 AND b < $2 LIMIT $3",
		"WHERE r.edge_id = ?1 AND ?2 = 'vectors' AND ?12": "WHERE r.edge_id = $1 AND $2 = 'vectors' AND $12",
		"SELECT 1":              "SELECT 1",
		"VALUES (?, ?), (?, ?)": "VALUES ($1, $2), ($3, $4)",
		"UPDATE t SET seq = ?3 WHERE a = ?1 AND b = ?2": "UPDATE t SET seq = $3 WHERE a = $1 AND b = $2",
	} {
		if got := RebindDollar(in); got != want {
			t.Errorf("RebindDollar(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWhere(t *testing.T) {
	t0 := time.Unix(10, 0)
	var w where
	w.eq("a", "x")
	w.eq("b", "") // skipped
	w.timeRange("time", t0, time.Time{}, func(t time.Time) any { return t.Unix() })
	w.add("c BETWEEN ? AND ?", 1, 2)
	if got := w.sql(); got != " WHERE a = ? AND time >= ? AND c BETWEEN ? AND ?" {
		t.Fatalf("sql %q", got)
	}
	if !reflect.DeepEqual(w.args, []any{"x", int64(10), 1, 2}) {
		t.Fatalf("args %v", w.args)
	}
	if (&where{}).sql() != "" {
		t.Fatal("empty where has a WHERE")
	}
	if got := placeholders(2, 3); got != "(?, ?, ?), (?, ?, ?)" {
		t.Fatalf("placeholders %q", got)
	}
}
