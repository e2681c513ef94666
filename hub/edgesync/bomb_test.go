package edgesync_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/redforge/controltower/hub/edgesync"
	"github.com/redforge/controltower/internal/testenv"
	"github.com/redforge/controltower/syncproto"
)

// bombMemoryBound is what eight concurrent zstd bombs may add to the
// hub's memory (the Go runtime's total mapped memory, which only grows,
// so it records the peak): DefaultMaxDecodes decodes of at most
// syncproto.MaxWindowBytes + 1.5 × DefaultMaxDecodedBytes each, with the
// collector's headroom over that. Before decodes were streamed and
// bounded, the same eight bombs took the hub from 47 MB to 3.2 GB.
const bombMemoryBound = 320 << 20

// TestZstdBombMemoryBounded sends eight concurrent bodies of 1 GiB of
// zeros, zstd-compressed to a few KiB each, from an enrolled edge to a real
// in-process hub: each is refused with 413, the hub's memory grows by less
// than bombMemoryBound while they are decoded and falls back once they are
// refused, and the edge's next real batch is taken.
func TestZstdBombMemoryBounded(t *testing.T) {
	th := startHub(t, testenv.Postgres(t))
	e, code := enrollHTTP(t, th, th.token(t))
	if code != http.StatusCreated {
		t.Fatalf("enroll: %d", code)
	}
	var bomb bytes.Buffer
	enc, _ := zstd.NewWriter(&bomb)
	zero := make([]byte, 1<<20)
	for range 1024 {
		enc.Write(zero)
	}
	enc.Close()
	url := th.URL() + "/api/sync/batches"

	runtime.GC()
	base := memSample()
	peak := newPeakSampler()
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Go(func() {
			codes[i], _ = call(t, http.MethodPost, url, e.Cred, syncproto.ContentTypeBatchZstd, bomb.Bytes())
		})
	}
	wg.Wait()
	top := peak.stop()
	for i, c := range codes {
		if c != http.StatusRequestEntityTooLarge {
			t.Errorf("bomb %d: status %d, want 413", i, c)
		}
	}
	grew := top.total - base.total
	t.Logf("8 bombs of %d bytes (1 GiB each decompressed): hub memory %d MiB → peak %d MiB (+%d MiB), live heap peak +%d MiB",
		bomb.Len(), base.total>>20, top.total>>20, grew>>20, (top.heap-base.heap)>>20)
	if grew > bombMemoryBound {
		t.Fatalf("the hub's memory grew by %d MiB decoding 8 bombs, want under %d MiB", grew>>20, bombMemoryBound>>20)
	}
	runtime.GC()
	if after := memSample(); after.heap > base.heap+64<<20 {
		t.Errorf("after the bombs the live heap is %d MiB, %d MiB above where it started", after.heap>>20, (after.heap-base.heap)>>20)
	}
	body, _ := syncproto.EncodeBatch(batchOf(e.ID, "audit", 1, `{"a":1}`))
	if code, resp := call(t, http.MethodPost, url, e.Cred, syncproto.ContentTypeBatchZstd, body); code != 200 || ackOf(t, resp).GetDurableWatermark() != 1 {
		t.Fatalf("a real batch after the bombs: %d", code)
	}
}

type memStat struct{ total, heap uint64 }

var memMetrics = []string{"/memory/classes/total:bytes", "/memory/classes/heap/objects:bytes"}

// memSample reads the runtime's total mapped memory and its heap objects
// (live and not yet swept) without stopping the world.
func memSample() memStat {
	s := make([]metrics.Sample, len(memMetrics))
	for i, n := range memMetrics {
		s[i].Name = n
	}
	metrics.Read(s)
	return memStat{s[0].Value.Uint64(), s[1].Value.Uint64()}
}

// peakSampler records the highest memSample until stop.
type peakSampler struct {
	done chan struct{}
	out  chan memStat
}

func newPeakSampler() *peakSampler {
	p := &peakSampler{done: make(chan struct{}), out: make(chan memStat, 1)}
	go func() {
		var top memStat
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			m := memSample()
			top.total, top.heap = max(top.total, m.total), max(top.heap, m.heap)
			select {
			case <-p.done:
				p.out <- top
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *peakSampler) stop() memStat {
	close(p.done)
	return <-p.out
}

// TestBatchAdmission: an edge with more batches in progress than
// MaxBatchesPerEdge waits its turn and, after AdmitWait, is told it is
// busy (*BusyError, scope "edge", which the API answers 429 with a
// Retry-After); another edge is not held up by it.
func TestBatchAdmission(t *testing.T) {
	s := edgesync.New(edgesync.Config{MaxBatchesPerEdge: 1, MaxDecodes: 4, AdmitWait: 50 * time.Millisecond})
	body, _ := syncproto.EncodeBatch(batchOf("e1", "audit", 1, `{"a":1}`))
	// A body that never ends holds e1's only slot.
	pr, pw := io.Pipe()
	held := make(chan error, 1)
	go func() {
		_, err := s.ReadBatch(context.Background(), "e1", syncproto.ContentTypeBatchZstd, pr, -1)
		held <- err
	}()
	testenv.WaitFor(t, 5*time.Second, "e1's slot to be taken", func() error {
		_, err := s.ReadBatch(context.Background(), "e1", syncproto.ContentTypeBatchZstd, bytes.NewReader(body), int64(len(body)))
		var be *edgesync.BusyError
		if !errors.As(err, &be) || be.Scope != "edge" || be.RetryAfter <= 0 {
			return fmt.Errorf("second batch of e1: %v, want a busy edge", err)
		}
		return nil
	})
	if b, err := s.ReadBatch(context.Background(), "e2", syncproto.ContentTypeBatchZstd, bytes.NewReader(body), int64(len(body))); err != nil || len(b.Records) != 1 {
		t.Fatalf("e2 while e1 is busy: %v", err)
	}
	pw.Write(body)
	pw.Close()
	if err := <-held; err != nil {
		t.Fatalf("the held batch: %v", err)
	}
	if _, err := s.ReadBatch(context.Background(), "e1", syncproto.ContentTypeBatchZstd, bytes.NewReader(body), int64(len(body))); err != nil {
		t.Fatalf("e1 after its slot was freed: %v", err)
	}
}
