package broker_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/redforge/controltower/edge/broker"
	"github.com/redforge/controltower/edge/outbox"
	"github.com/redforge/controltower/internal/testenv"
)

// TestDiskBudget fills a 64 KiB outbox budget: audit publishes are then
// refused with MQTT 5 reason 0x97 (quota exceeded) and no PUBACK for
// 3.1.1, and counted; vectors keep being accepted by evicting the oldest
// vectors (tombstoned, seq kept), counted in Stats; the budget holds.
func TestDiskBudget(t *testing.T) {
	const budget = 64 << 10
	o := outbox.New(filepath.Join(t.TempDir(), "outbox.db"))
	o.Budget = budget
	if err := o.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	b := MustBroker(t, broker.Config{Outbox: o})
	v5 := dialV5(t, b.Addr().String(), "v5-budget")
	vec := `{"id":"x","vector":[` + strings.Repeat("0.125,", 255) + `1],"metadata":{}}` // stored as ~1 KiB (256 float32s)
	const nvec = 100
	id := uint16(1)
	for range nvec { // ~100 KiB of vectors: past the budget, so the oldest are evicted
		if code := v5.publish(t, "redforge/v1/vectors", id, vec); code != packets.CodeSuccess.Code {
			t.Fatalf("vector %d refused with %#x; vectors must evict, not refuse", id, code)
		}
		id++
	}
	audit := `{"action":"a","resource_type":"r","resource_id":"` + strings.Repeat("z", 2000) + `","details":{}}`
	if code := v5.publish(t, "redforge/v1/audit", id, audit); code != packets.ErrQuotaExceeded.Code {
		t.Fatalf("audit on a full budget: reason %#x, want 0x97 quota exceeded", code)
	}
	// MQTT 3.1.1: no PUBACK at all (the client keeps the message and resends).
	c := MustPaho(t, b, "v311-budget")
	tok := c.Publish("redforge/v1/audit", 1, false, audit)
	if tok.WaitTimeout(500 * time.Millisecond) {
		t.Fatalf("3.1.1 audit publish on a full budget was acknowledged (err %v)", tok.Error())
	}
	testenv.WaitFor(t, 5*time.Second, "quota refusals counted", refusedIs(b, broker.ReasonQuota, 2))
	st, err := o.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, s := range st {
		total += s.Bytes
	}
	if total > budget {
		t.Fatalf("outbox holds %d payload bytes, budget %d", total, budget)
	}
	if st[outbox.StreamVectors].Evicted == 0 || st[outbox.StreamVectors].LastSeq != nvec || st[outbox.StreamAudit].LastSeq != 0 {
		t.Fatalf("stats %+v", st)
	}
	// The stream stays contiguous: evicted records keep their seq as a tombstone.
	recs, err := o.Pending(context.Background(), outbox.StreamVectors, 0, nvec)
	if err != nil || len(recs) != nvec {
		t.Fatalf("pending: %d, %v", len(recs), err)
	}
	for i, r := range recs {
		if r.Seq != int64(i+1) || r.Verify() != nil {
			t.Fatalf("record %d: seq %d, verify %v", i, r.Seq, r.Verify())
		}
		evicted := string(r.Payload) == string(outbox.Tombstone)
		if evicted != (int64(i) < st[outbox.StreamVectors].Evicted) {
			t.Fatalf("seq %d: evicted=%v, but eviction must be oldest first (%d evicted)", r.Seq, evicted, st[outbox.StreamVectors].Evicted)
		}
	}
	// After the hub acks (Ack), room comes back and audit is accepted again.
	if err := o.Ack(context.Background(), outbox.StreamVectors, nvec); err != nil {
		t.Fatal(err)
	}
	if code := v5.publish(t, "redforge/v1/audit", id+1, audit); code != packets.CodeSuccess.Code {
		t.Fatalf("audit after ack: %#x", code)
	}
	t.Logf("evicted %d of %d vectors to stay under %d bytes; %d audit publishes refused with quota exceeded",
		st[outbox.StreamVectors].Evicted, nvec, budget, b.Counts().Refused[broker.ReasonQuota])
}
