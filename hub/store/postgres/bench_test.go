package postgres_test

import (
	"testing"

	"github.com/redforge/controltower/hub/store/storetest"
)

func BenchmarkIngestBatch(b *testing.B) {
	storetest.BenchmarkIngestBatch(b, MustOpen(b, nil), 1000, 768)
}
