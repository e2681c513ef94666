package storetest

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/syncproto"
)

// BenchmarkIngestBatch ingests batches of size records of the vectors
// stream, each a dim-dimensional vector sent as its parts (what an edge
// sends, see store.Record.IsVectorRecord), into s, and reports records/s.
func BenchmarkIngestBatch(b *testing.B, s store.Store, size, dim int) {
	rng := rand.New(rand.NewPCG(1, 2))
	tmpl := batch("bench-edge", store.VectorsStream, 1, size)
	for i := range tmpl.Records {
		v := make([]float32, dim)
		for j := range v {
			v[j] = rng.Float32()
		}
		r := &tmpl.Records[i]
		r.Payload, r.Vector, r.VectorID, r.Metadata = nil, syncproto.PackFloat32(v), fmt.Sprintf("doc-%d", i), []byte(fmt.Sprintf(`{"chunk":%d}`, i))
		r.Checksum = r.Sum()
	}
	b.SetBytes(int64(size * 4 * dim))
	seq := int64(1)
	for b.Loop() {
		bt := tmpl
		bt.FirstSeq = seq
		bt.Records = make([]store.Record, size)
		copy(bt.Records, tmpl.Records)
		for i := range bt.Records {
			bt.Records[i].Seq = seq + int64(i)
		}
		wm, err := s.IngestBatch(b.Context(), bt)
		if err != nil {
			b.Fatal(err)
		}
		seq = wm + 1
	}
	b.ReportMetric(float64(seq-1)/b.Elapsed().Seconds(), "records/s")
}
