// Package sqlq holds the SQL helpers both store implementations share: the
// JSON column scanner, and the WHERE clauses of the filtered queries for
// either placeholder style ("?" for SQLite, "$n" for PostgreSQL).
package sqlq

import (
	"strconv"
	"strings"
	"time"
)

// Query accumulates conditions and their arguments.
type Query struct {
	dollar bool
	conds  []string
	args   []any
}

// New returns a Query using "$n" placeholders if dollar, "?" otherwise.
func New(dollar bool) *Query { return &Query{dollar: dollar} }

// Arg appends v to the arguments and returns its placeholder.
func (q *Query) Arg(v any) string {
	q.args = append(q.args, v)
	if q.dollar {
		return "$" + strconv.Itoa(len(q.args))
	}
	return "?"
}

// Where adds the condition cond, in which each "?" is replaced by the
// placeholder of the matching element of args.
func (q *Query) Where(cond string, args ...any) {
	var b strings.Builder
	for _, a := range args {
		i := strings.IndexByte(cond, '?')
		b.WriteString(cond[:i])
		b.WriteString(q.Arg(a))
		cond = cond[i+1:]
	}
	b.WriteString(cond)
	q.conds = append(q.conds, b.String())
}

// Eq adds "col = v" unless v is empty.
func (q *Query) Eq(col, v string) {
	if v != "" {
		q.Where(col+" = ?", v)
	}
}

// Range adds "col >= start" and "col < end" for the non-zero bounds, each
// converted by conv to the column's representation.
func (q *Query) Range(col string, start, end time.Time, conv func(time.Time) any) {
	if !start.IsZero() {
		q.Where(col+" >= ?", conv(start))
	}
	if !end.IsZero() {
		q.Where(col+" < ?", conv(end))
	}
}

// SQL returns " WHERE c1 AND c2 …", or "" without conditions.
func (q *Query) SQL() string {
	if len(q.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(q.conds, " AND ")
}

// Args returns the arguments in placeholder order.
func (q *Query) Args() []any { return q.args }
