package broker_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
)

// BenchmarkIngestQoS1 measures durable QoS 1 ingest on the edge: 4 paho
// publishers send 1 KiB JSON payloads (REDFORGE_BENCH_INGEST records in
// all, default 100000) keeping a sliding window of unacknowledged
// publishes each, once with 256 and once with 1024 in flight (QoS 1 puts
// no bound on it in 3.1.1; MQTT 5's default Receive Maximum is 65,535);
// every PUBACK comes after the record's SQLite (WAL, synchronous=FULL)
// commit. It prints records/s and records per commit for each window.
func BenchmarkIngestQoS1(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("REDFORGE_BENCH_INGEST")); err == nil && v > 0 {
		n = v
	}
	for _, window := range []int{256, 1024} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) { benchIngest(b, n, window) })
	}
}

func benchIngest(b *testing.B, n, window int) {
	for b.Loop() {
		o := outbox.New(filepath.Join(b.TempDir(), "outbox.db"))
		if err := o.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		br := broker.New(broker.Config{Listen: "127.0.0.1:0", Outbox: o, Auth: broker.NewAuth(testUsers, testAdmin, nil)})
		if err := br.Open(context.Background()); err != nil {
			b.Fatal(err)
		}
		payload := `{"name":"m","value":1,"labels":{"pad":"` + strings.Repeat("x", 1024-40) + `"}}`
		start := time.Now()
		var wg sync.WaitGroup
		var mu sync.Mutex
		acked := 0
		for p := range 4 {
			wg.Go(func() {
				c := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + br.Addr().String()).
					SetClientID(fmt.Sprintf("bench-%d", p)).SetAutoReconnect(false).SetMaxResumePubInFlight(64).
					SetUsername(testUser).SetPassword(testPassword))
				if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Error(tok.Error())
					return
				}
				defer c.Disconnect(0)
				toks := make([]paho.Token, 0, n/4)
				ok := 0
				for range n / 4 {
					if len(toks) >= window {
						if t := toks[len(toks)-window]; t.WaitTimeout(30*time.Second) && t.Error() == nil {
							ok++
						}
					}
					toks = append(toks, c.Publish("redforge/v1/metrics", 1, false, payload))
				}
				for _, t := range toks[max(0, len(toks)-window):] {
					if t.WaitTimeout(30*time.Second) && t.Error() == nil {
						ok++
					}
				}
				mu.Lock()
				acked += ok
				mu.Unlock()
			})
		}
		wg.Wait()
		el := time.Since(start)
		st, _ := o.Stats(context.Background())
		commits := o.Commits()
		br.Close()
		o.Close()
		if acked != n || st[outbox.StreamMetrics].Depth != int64(n) {
			b.Fatalf("%d PUBACKed, %d stored, want %d", acked, st[outbox.StreamMetrics].Depth, n)
		}
		rate := float64(n) / el.Seconds()
		b.ReportMetric(rate, "records/s")
		fmt.Printf("edge ingest: %d x 1 KiB QoS 1 records from 4 publishers, %d in flight each, PUBACK after commit: %s, %.0f records/s, %.1f MB/s, %.0f records per commit\n",
			n, window, el.Round(time.Millisecond), rate, rate*1024/1e6, float64(n)/float64(max(commits, 1)))
	}
}
