package sqlite_test

import (
	"testing"

	"github.com/redforge/controltower/hub/store/storetest"
)

func BenchmarkIngestBatch(b *testing.B) {
	storetest.BenchmarkIngestBatch(b, MustOpen(b), 1000, 768)
}
