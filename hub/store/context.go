package store

import (
	"context"
	"time"
)

// staleKey marks a context whose reads may be served by a read replica.
type staleKey struct{}

// WithStaleReads returns ctx marked so that the store may serve its reads
// from a read replica (history, metrics, audit listing, analytics: reads
// that tolerate a little staleness). served, if not nil, is called before
// a read served by a replica returns, with how far that replica lagged
// behind the primary when last measured. A store without replicas reads
// the primary and never calls it.
func WithStaleReads(ctx context.Context, served func(lag time.Duration)) context.Context {
	if served == nil {
		served = func(time.Duration) {}
	}
	return context.WithValue(ctx, staleKey{}, served)
}

// StaleReads reports whether ctx allows reads from a replica, and the
// function to call when one serves a read.
func StaleReads(ctx context.Context) (served func(lag time.Duration), ok bool) {
	served, ok = ctx.Value(staleKey{}).(func(time.Duration))
	return served, ok
}
