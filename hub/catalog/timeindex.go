package catalog

import (
	"encoding/binary"
	"fmt"
	"time"

	memdb "github.com/hashicorp/go-memdb"
)

// timeIndex indexes rows by a time, in time order, so that the rows before
// a time are a range scan (the reaping of expired rows) rather than a scan
// of the whole table.
type timeIndex struct {
	of func(obj any) time.Time
}

// timeKey encodes t so that byte order is time order: seconds since the
// epoch with the sign bit flipped, then nanoseconds, both big-endian.
func timeKey(t time.Time) []byte {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return b
}

// FromObject implements memdb.SingleIndexer.
func (ix timeIndex) FromObject(obj any) (bool, []byte, error) {
	return true, timeKey(ix.of(obj)), nil
}

// FromArgs implements memdb.Indexer: one time.Time.
func (ix timeIndex) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("time index: want one argument, got %d", len(args))
	}
	t, ok := args[0].(time.Time)
	if !ok {
		return nil, fmt.Errorf("time index: argument is a %T, not a time.Time", args[0])
	}
	return timeKey(t), nil
}

// timeIndexSchema is a non-unique index on a time.
func timeIndexSchema(name string, of func(obj any) time.Time) *memdb.IndexSchema {
	return &memdb.IndexSchema{Name: name, Indexer: timeIndex{of: of}}
}

// before returns copies of the rows of table whose time (in the named
// time index, read from a row by of) is before at, in time order.
func before[T any, P row[T]](tx *memdb.Txn, table, index string, at time.Time, of func(P) time.Time) []T {
	it, err := tx.LowerBound(table, index, time.Time{})
	mustBeOK(err)
	var out []T
	for obj := it.Next(); obj != nil; obj = it.Next() {
		r := obj.(P)
		if !of(r).Before(at) {
			break
		}
		out = append(out, *r.clone())
	}
	return out
}
