package sqlstore

import (
	"strconv"
	"strings"
	"time"
)

// where accumulates the conditions of a filtered query and their
// arguments, with "?" placeholders (rebound with the query).
type where struct {
	conds []string
	args  []any
}

// add adds cond, whose "?"s take args in order.
func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

// eq adds "col = v" unless v is empty.
func (w *where) eq(col, v string) {
	if v != "" {
		w.add(col+" = ?", v)
	}
}

// timeRange adds "col >= start" and "col < end" for the non-zero bounds,
// each converted by conv to the column's stored form.
func (w *where) timeRange(col string, start, end time.Time, conv func(time.Time) any) {
	if !start.IsZero() {
		w.add(col+" >= ?", conv(start))
	}
	if !end.IsZero() {
		w.add(col+" < ?", conv(end))
	}
}

// sql returns " WHERE c1 AND c2 …", or "" without conditions.
func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// RebindDollar rewrites "?N" to "$N" and each bare "?" to "$k", k
// counting from 1: PostgreSQL's placeholders from SQLite's. A query uses
// one form or the other. There is no "?" anywhere else in the store's
// queries.
func RebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	k := 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		if c != '?' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('$')
		j := i + 1
		for j < len(query) && query[j] >= '0' && query[j] <= '9' {
			j++
		}
		if j > i+1 {
			b.WriteString(query[i+1 : j])
			i = j - 1
			continue
		}
		k++
		b.WriteString(strconv.Itoa(k))
	}
	return b.String()
}

// placeholders returns "(?, ?, …), (…)…": rows groups of n.
func placeholders(rows, n int) string {
	group := "(" + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(group+", ", rows), ", ")
}
