package sqlq

import (
	"reflect"
	"testing"
	"time"
)

func TestQuery(t *testing.T) {
	t0 := time.Unix(10, 0)
	id := func(t time.Time) any { return t.Unix() }
	for _, dollar := range []bool{false, true} {
		q := New(dollar)
		q.Eq("a", "x")
		q.Eq("b", "") // skipped
		q.Range("time", t0, time.Time{}, id)
		q.Where("c BETWEEN ? AND ?", 1, 2)
		lim := q.Arg(5)
		want := " WHERE a = ? AND time >= ? AND c BETWEEN ? AND ?"
		wantLim := "?"
		if dollar {
			want, wantLim = " WHERE a = $1 AND time >= $2 AND c BETWEEN $3 AND $4", "$5"
		}
		if q.SQL() != want || lim != wantLim {
			t.Fatalf("dollar=%v: %q %q, want %q %q", dollar, q.SQL(), lim, want, wantLim)
		}
		if !reflect.DeepEqual(q.Args(), []any{"x", int64(10), 1, 2, 5}) {
			t.Fatalf("args %v", q.Args())
		}
	}
	if New(true).SQL() != "" {
		t.Fatal("empty query has a WHERE")
	}
}
