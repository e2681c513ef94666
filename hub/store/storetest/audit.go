package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/redforge/controltower/hub/store"
)

func runAudit(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("AppendSetsChainFields", func(t *testing.T) { testAuditAppend(t, open(t)) })
	t.Run("FailedAppendWritesNothing", func(t *testing.T) { testAuditInvalid(t, open(t)) })
	t.Run("ConcurrentAppendsFormOneChain", func(t *testing.T) { testAuditConcurrent(t, open(t)) })
	t.Run("BatchAppendsInOrder", func(t *testing.T) { testAuditBatchOrder(t, open(t)) })
	t.Run("ConcurrentBatchesFormOneChain", func(t *testing.T) { testAuditBatchConcurrent(t, open(t)) })
	t.Run("FailedBatchWritesNothing", func(t *testing.T) { testAuditBatchFails(t, open(t)) })
	t.Run("DetailsKeptByteForByte", func(t *testing.T) { testAuditDetails(t, open(t)) })
	t.Run("ListFiltersAndPages", func(t *testing.T) { testAuditList(t, open(t)) })
	t.Run("IterateStreamsInIDOrder", func(t *testing.T) { testAuditIterate(t, open(t)) })
	t.Run("InvalidFilters", func(t *testing.T) { testAuditBadFilters(t, open(t)) })
}

func auditRecord(i int, tm time.Time) store.AuditRecord {
	return store.AuditRecord{
		Time:         tm,
		UserID:       fmt.Sprintf("u%d", i%3),
		Username:     fmt.Sprintf("user %d", i%3),
		Action:       []string{"INSTANCE_CREATED", "DEPLOYMENT_STARTED"}[i%2],
		ResourceType: []string{"instance", "deployment", "user"}[i%3],
		ResourceID:   fmt.Sprintf("r%d", i),
		Details:      json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)),
		IP:           "192.0.2.7",
		UserAgent:    "towerctl/1.0",
	}
}

func mustAppendAudit(t *testing.T, s store.Store, r store.AuditRecord) store.AuditRecord {
	t.Helper()
	if err := s.AppendAudit(t.Context(), &r, Hash); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	return r
}

func mustListAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	recs, err := s.ListAudit(t.Context(), f)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", f, err)
	}
	return recs
}

func mustIterateAudit(t *testing.T, s store.Store, f store.AuditFilter) []store.AuditRecord {
	t.Helper()
	var recs []store.AuditRecord
	if err := s.IterateAudit(t.Context(), f, func(r store.AuditRecord) error {
		recs = append(recs, r)
		return nil
	}); err != nil {
		t.Fatalf("IterateAudit(%+v): %v", f, err)
	}
	return recs
}

func testAuditAppend(t *testing.T, s store.Store) {
	in := auditRecord(1, t0.Add(789*time.Nanosecond))
	first := mustAppendAudit(t, s, in)
	want := in
	want.ID, want.PrevHash, want.Time = 1, "", store.NormalizeTime(in.Time)
	c := want
	want.Hash = Hash(&c)
	equal(t, "first record after AppendAudit", first, want)
	if first.Time.Location() != time.UTC {
		t.Fatalf("record time in %v, want UTC", first.Time.Location())
	}

	before := store.NormalizeTime(time.Now())
	second := mustAppendAudit(t, s, store.AuditRecord{Action: "LOGIN"}) // zero time: the store's clock
	after := time.Now()
	if second.ID != 2 || second.PrevHash != first.Hash || second.Time.Before(before) || second.Time.After(after) {
		t.Fatalf("second record = %+v; want ID 2, prev_hash %s, a time between %v and %v", second, first.Hash, before, after)
	}
	for _, w := range []store.AuditRecord{first, second} {
		got, err := s.GetAudit(t.Context(), w.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "GetAudit", got, w)
	}
	if _, err := s.GetAudit(t.Context(), 3); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("GetAudit(3) = %v, want ErrNotFound", err)
	}
	if err := VerifyChain(mustIterateAudit(t, s, store.AuditFilter{})); err != nil {
		t.Fatal(err)
	}
}

func testAuditInvalid(t *testing.T, s store.Store) {
	ok := auditRecord(1, t0)
	cases := []struct {
		field  string
		mutate func(*store.AuditRecord)
		hash   func(*store.AuditRecord) string
	}{
		{"action", func(r *store.AuditRecord) { r.Action = "" }, Hash},
		{"details", func(r *store.AuditRecord) { r.Details = json.RawMessage(`{"a":`) }, Hash},
		{"username", func(r *store.AuditRecord) { r.Username = "a\x00b" }, Hash},
		{"user_agent", func(r *store.AuditRecord) { r.UserAgent = "\xff\xfe" }, Hash},
		{"time", func(r *store.AuditRecord) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) }, Hash},
		{"hash", func(*store.AuditRecord) {}, nil},
		{"hash", func(*store.AuditRecord) {}, func(*store.AuditRecord) string { return "" }},
	}
	for _, c := range cases {
		r := ok
		c.mutate(&r)
		before := r
		err := s.AppendAudit(t.Context(), &r, c.hash)
		wantInvalid(t, err, c.field)
		equal(t, "record after a failed append", r, before)
	}
	if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != 0 {
		t.Fatalf("failed appends wrote %d records", len(got))
	}
	if r := mustAppendAudit(t, s, ok); r.ID != 1 || r.PrevHash != "" {
		t.Fatalf("first good append after failures: ID %d prev %q, want 1 and empty", r.ID, r.PrevHash)
	}
}

func testAuditConcurrent(t *testing.T, s store.Store) {
	const workers, each = 8, 50
	var wg sync.WaitGroup
	got := make([][]store.AuditRecord, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				r := auditRecord(w*each+i, t0.Add(time.Duration(i)*time.Millisecond))
				r.UserID = fmt.Sprintf("worker%d", w)
				if err := s.AppendAudit(context.Background(), &r, Hash); err != nil {
					errs <- fmt.Errorf("worker %d append %d: %w", w, i, err)
					return
				}
				got[w] = append(got[w], r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := mustIterateAudit(t, s, store.AuditFilter{})
	if len(all) != workers*each {
		t.Fatalf("chain has %d records, want %d", len(all), workers*each)
	}
	if err := VerifyChain(all); err != nil {
		t.Fatal(err)
	}
	for w, recs := range got {
		for i, r := range recs {
			equal(t, "record as returned to its appender vs as stored", all[r.ID-1], r)
			if i > 0 && r.ID <= recs[i-1].ID {
				t.Fatalf("worker %d: IDs not increasing: %d after %d", w, r.ID, recs[i-1].ID)
			}
		}
	}
}

func testAuditDetails(t *testing.T, s store.Store) {
	for _, d := range []string{
		"{\"z\": 1,   \"a\" : [1, 2.50, 1e3],\n\"u\":\"\\u00e9\\ud83d\\ude00 é\"}",
		`null`, `"text"`, `[]`, `{"k":"\u0000"}`,
	} {
		r := mustAppendAudit(t, s, store.AuditRecord{Action: "X", Details: json.RawMessage(d)})
		got, err := s.GetAudit(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if string(got.Details) != d {
			t.Fatalf("details %q came back as %q", d, got.Details)
		}
	}
	r := mustAppendAudit(t, s, store.AuditRecord{Action: "X", Details: json.RawMessage{}})
	if got, _ := s.GetAudit(t.Context(), r.ID); got.Details != nil || r.Details != nil {
		t.Fatalf("empty details: stored %q, record %q; want nil for both", got.Details, r.Details)
	}
	if err := VerifyChain(mustIterateAudit(t, s, store.AuditFilter{})); err != nil {
		t.Fatal(err)
	}
}

// seedAudit appends n records a second apart from t0 and returns them.
func seedAudit(t *testing.T, s store.Store, n int) []store.AuditRecord {
	t.Helper()
	var recs []store.AuditRecord
	for i := range n {
		recs = append(recs, mustAppendAudit(t, s, auditRecord(i, t0.Add(time.Duration(i)*time.Second))))
	}
	return recs
}

// pick returns recs matching keep, newest first.
func pick(recs []store.AuditRecord, keep func(store.AuditRecord) bool) []store.AuditRecord {
	var out []store.AuditRecord
	for i := len(recs) - 1; i >= 0; i-- {
		if keep(recs[i]) {
			out = append(out, recs[i])
		}
	}
	return out
}

func testAuditList(t *testing.T, s store.Store) {
	recs := seedAudit(t, s, 12)
	all := func(store.AuditRecord) bool { return true }
	cases := []struct {
		name string
		f    store.AuditFilter
		keep func(store.AuditRecord) bool
	}{
		{"all", store.AuditFilter{}, all},
		{"user", store.AuditFilter{UserID: "u1"}, func(r store.AuditRecord) bool { return r.UserID == "u1" }},
		{"action", store.AuditFilter{Action: "DEPLOYMENT_STARTED"}, func(r store.AuditRecord) bool { return r.Action == "DEPLOYMENT_STARTED" }},
		{"resource type", store.AuditFilter{ResourceType: "user"}, func(r store.AuditRecord) bool { return r.ResourceType == "user" }},
		{"user and action", store.AuditFilter{UserID: "u0", Action: "INSTANCE_CREATED"},
			func(r store.AuditRecord) bool { return r.UserID == "u0" && r.Action == "INSTANCE_CREATED" }},
		{"start inclusive, end exclusive", store.AuditFilter{Start: recs[3].Time, End: recs[7].Time},
			func(r store.AuditRecord) bool { return r.ID >= 4 && r.ID < 8 }},
		{"start only", store.AuditFilter{Start: recs[10].Time}, func(r store.AuditRecord) bool { return r.ID >= 11 }},
		{"end only", store.AuditFilter{End: recs[1].Time}, func(r store.AuditRecord) bool { return r.ID < 2 }},
		{"no match", store.AuditFilter{UserID: "nobody"}, func(store.AuditRecord) bool { return false }},
	}
	for _, c := range cases {
		got := mustListAudit(t, s, c.f)
		want := pick(recs, c.keep)
		if len(want) == 0 && len(got) == 0 {
			continue
		}
		equal(t, c.name, got, want)
	}

	// Pages of 5 cover every record once, newest first.
	var paged []store.AuditRecord
	for off := 0; ; off += 5 {
		page := mustListAudit(t, s, store.AuditFilter{Limit: 5, Offset: off})
		if len(page) > 5 {
			t.Fatalf("page of %d records with limit 5", len(page))
		}
		if len(page) == 0 {
			break
		}
		paged = append(paged, page...)
	}
	equal(t, "pages", paged, pick(recs, all))

	// Limit 0 means DefaultLimit.
	seedAudit(t, s, store.DefaultLimit+1-len(recs))
	if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != store.DefaultLimit || got[0].ID != store.DefaultLimit+1 {
		t.Fatalf("default limit: got %d records from ID %d, want %d from ID %d", len(got), got[0].ID, store.DefaultLimit, store.DefaultLimit+1)
	}
}

func testAuditIterate(t *testing.T, s store.Store) {
	n := store.DefaultLimit + 5
	recs := seedAudit(t, s, n)
	equal(t, "iterate all (no default limit)", mustIterateAudit(t, s, store.AuditFilter{}), recs)
	equal(t, "iterate with user filter, limit and offset",
		mustIterateAudit(t, s, store.AuditFilter{UserID: "u2", Limit: 3, Offset: 1}),
		[]store.AuditRecord{recs[5], recs[8], recs[11]})

	stop := errors.New("stop")
	calls := 0
	err := s.IterateAudit(t.Context(), store.AuditFilter{}, func(store.AuditRecord) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Fatalf("IterateAudit returned %v after %d calls; want the callback's error after 3", err, calls)
	}

	// The callback may read from the store while iterating.
	err = s.IterateAudit(t.Context(), store.AuditFilter{Limit: 2}, func(r store.AuditRecord) error {
		_, err := s.GetAudit(t.Context(), r.ID)
		return err
	})
	if err != nil {
		t.Fatalf("read inside IterateAudit: %v", err)
	}
}

func testAuditBadFilters(t *testing.T, s store.Store) {
	for _, c := range []struct {
		field string
		f     store.AuditFilter
	}{
		{"limit", store.AuditFilter{Limit: -1}},
		{"limit", store.AuditFilter{Limit: store.MaxLimit + 1}},
		{"offset", store.AuditFilter{Offset: -1}},
		{"end", store.AuditFilter{Start: t0, End: t0.Add(-time.Second)}},
	} {
		_, err := s.ListAudit(t.Context(), c.f)
		wantInvalid(t, err, c.field)
		wantInvalid(t, s.IterateAudit(t.Context(), c.f, func(store.AuditRecord) error { return nil }), c.field)
	}
}

// recPtrs returns pointers to copies of recs.
func recPtrs(recs []store.AuditRecord) []*store.AuditRecord {
	out := make([]*store.AuditRecord, len(recs))
	for i := range recs {
		r := recs[i]
		out[i] = &r
	}
	return out
}

func testAuditBatchOrder(t *testing.T, s store.Store) {
	first := mustAppendAudit(t, s, auditRecord(0, t0))
	in := make([]store.AuditRecord, 5)
	for i := range in {
		in[i] = auditRecord(i+1, t0.Add(time.Duration(5-i)*time.Second)) // times need not rise with IDs
	}
	in[3].Time = time.Time{} // the store's clock
	in[4].Details = nil
	batch := recPtrs(in)
	if err := s.AppendAuditBatch(t.Context(), batch, Hash); err != nil {
		t.Fatalf("AppendAuditBatch: %v", err)
	}
	prev := first.Hash
	for i, r := range batch {
		if r.ID != int64(i+2) || r.PrevHash != prev || r.ResourceID != in[i].ResourceID {
			t.Fatalf("batch record %d: ID %d prev %q resource %q; want ID %d, prev %q, resource %q (slice order)",
				i, r.ID, r.PrevHash, r.ResourceID, i+2, prev, in[i].ResourceID)
		}
		if r.Time.IsZero() || r.Time.Location() != time.UTC {
			t.Fatalf("batch record %d: time %v, want a UTC time", i, r.Time)
		}
		prev = r.Hash
		got, err := s.GetAudit(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "batch record as returned vs as stored", got, *r)
	}
	after := mustAppendAudit(t, s, auditRecord(9, t0))
	if after.ID != 7 || after.PrevHash != batch[4].Hash {
		t.Fatalf("append after the batch: ID %d prev %q; want 7 linked to the batch's last record", after.ID, after.PrevHash)
	}
	if err := VerifyChain(mustIterateAudit(t, s, store.AuditFilter{})); err != nil {
		t.Fatal(err)
	}
}

func testAuditBatchConcurrent(t *testing.T, s store.Store) {
	const workers, rounds = 6, 12
	var wg sync.WaitGroup
	got := make([][][]*store.AuditRecord, workers)
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				n := 1 + (w+i)%7 // batches of 1 to 7 records
				recs := make([]store.AuditRecord, n)
				for j := range recs {
					recs[j] = auditRecord(w*1000+i*10+j, t0)
					recs[j].UserID = fmt.Sprintf("worker%d", w)
				}
				batch := recPtrs(recs)
				var err error
				if n == 1 {
					err = s.AppendAudit(context.Background(), batch[0], Hash)
				} else {
					err = s.AppendAuditBatch(context.Background(), batch, Hash)
				}
				if err != nil {
					errs <- fmt.Errorf("worker %d batch %d: %w", w, i, err)
					return
				}
				got[w] = append(got[w], batch)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := mustIterateAudit(t, s, store.AuditFilter{})
	if err := VerifyChain(all); err != nil {
		t.Fatal(err)
	}
	total := 0
	for w, batches := range got {
		for _, batch := range batches {
			for j, r := range batch {
				if r.ID != batch[0].ID+int64(j) {
					t.Fatalf("worker %d: batch not contiguous: record %d has ID %d after %d", w, j, r.ID, batch[0].ID)
				}
				equal(t, "record as returned to its appender vs as stored", all[r.ID-1], *r)
				total++
			}
		}
	}
	if len(all) != total {
		t.Fatalf("chain has %d records, the appenders got %d", len(all), total)
	}
}

func testAuditBatchFails(t *testing.T, s store.Store) {
	good := func() []store.AuditRecord {
		return []store.AuditRecord{auditRecord(1, t0), auditRecord(2, t0), auditRecord(3, t0)}
	}
	check := func(what string, batch []*store.AuditRecord, before []store.AuditRecord) {
		t.Helper()
		for i, r := range batch {
			if r != nil {
				equal(t, fmt.Sprintf("%s: record %d after the failed batch", what, i), *r, before[i])
			}
		}
		if got := mustListAudit(t, s, store.AuditFilter{}); len(got) != 0 {
			t.Fatalf("%s: a failed batch wrote %d records", what, len(got))
		}
	}
	cases := []struct {
		name   string
		mutate func([]*store.AuditRecord) []*store.AuditRecord
		hash   func(*store.AuditRecord) string
		field  string
	}{
		{"bad record", func(b []*store.AuditRecord) []*store.AuditRecord { b[2].Action = ""; return b }, Hash, "records[2].action"},
		{"nil record", func(b []*store.AuditRecord) []*store.AuditRecord { b[1] = nil; return b }, Hash, "records[1]"},
		{"empty", func([]*store.AuditRecord) []*store.AuditRecord { return nil }, Hash, "records"},
		{"too many", func(b []*store.AuditRecord) []*store.AuditRecord {
			return append(b, recPtrs(make([]store.AuditRecord, store.MaxAuditBatch))...)
		}, Hash, "records"},
		{"no hash", func(b []*store.AuditRecord) []*store.AuditRecord { return b }, nil, "hash"},
		// The third record fails inside the transaction, after two were
		// chained: the transaction rolls back.
		{"hash fails on the third", func(b []*store.AuditRecord) []*store.AuditRecord { return b },
			func(r *store.AuditRecord) string {
				if r.ID == 3 {
					return ""
				}
				return Hash(r)
			}, "records[2].hash"},
		{"hash fails on a batch of one", func(b []*store.AuditRecord) []*store.AuditRecord { return b[:1] },
			func(*store.AuditRecord) string { return "" }, "records[0].hash"},
	}
	for _, c := range cases {
		recs := good()
		batch := c.mutate(recPtrs(recs))
		before := make([]store.AuditRecord, len(batch))
		for i, r := range batch {
			if r != nil {
				before[i] = *r
			}
		}
		err := s.AppendAuditBatch(t.Context(), batch, c.hash)
		wantInvalid(t, err, c.field)
		check(c.name, batch, before)
	}
	ctx, cancel := contextCanceled(t)
	defer cancel()
	recs := good()
	batch := recPtrs(recs)
	if err := s.AppendAuditBatch(ctx, batch, Hash); err == nil {
		t.Fatal("AppendAuditBatch with a canceled context succeeded")
	}
	check("canceled", batch, recs)

	batch = recPtrs(good())
	if err := s.AppendAuditBatch(t.Context(), batch, Hash); err != nil {
		t.Fatal(err)
	}
	if batch[0].ID != 1 || batch[0].PrevHash != "" || batch[2].ID != 3 {
		t.Fatalf("first good batch after failures: IDs %d..%d prev %q; want 1..3 and empty", batch[0].ID, batch[2].ID, batch[0].PrevHash)
	}
	if err := VerifyChain(mustIterateAudit(t, s, store.AuditFilter{})); err != nil {
		t.Fatal(err)
	}
}
