package hatest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/redforge/controltower/hub"
	"github.com/redforge/controltower/hub/store"
	"github.com/redforge/controltower/internal/edgecheck"
	"github.com/redforge/controltower/internal/testenv"
)

// healthWatch polls a hub's /api/health until stopped and keeps what the
// store component reported, in order, without repeats.
type healthWatch struct {
	mu   sync.Mutex
	seen []string // "200 ok", "200 degraded: reason", "503 fail: reason", "503 ok (X failed: reason)"
	stop chan struct{}
	done chan struct{}
}

func watchHealth(th *testHub) *healthWatch {
	w := &healthWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			code, h, err := th.health()
			if err != nil {
				continue
			}
			s := h.Components["store"]
			entry := s.Status
			if s.Error != "" {
				entry += ": " + s.Error
			}
			entry = fmt.Sprintf("%d %s", code, entry)
			for _, f := range h.Failed {
				if f != "store" {
					entry += fmt.Sprintf(" (%s failed: %s)", f, h.Components[f].Error)
				}
			}
			w.mu.Lock()
			if n := len(w.seen); n == 0 || !sameKind(w.seen[n-1], entry) {
				w.seen = append(w.seen, entry)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func sameKind(a, b string) bool {
	ka, _, _ := strings.Cut(a, ":")
	kb, _, _ := strings.Cut(b, ":")
	return ka == kb
}

func (w *healthWatch) end() []string {
	close(w.stop)
	<-w.done
	return w.seen
}

// TestEdgeSyncThroughPrimaryKill: a real redforge-edge syncs records
// (REDFORGE_PGHA_RECORDS, default 100 000, over 2 QoS 1 publishers) to a hub
// whose store is a 2-node Patroni cluster in synchronous mode, reached by
// a multi-host DSN. Once a quarter is in the database, the primary's
// postmaster and Patroni are SIGKILLed. Every PUBACKed record must then be
// in the database exactly once (edgecheck.Verify); the hub must have
// recorded the write outage (controltower_store_write_outages_total and
// its length), and /api/health must have shown the store degraded with a
// reason, never failed, and ok again.
func TestEdgeSyncThroughPrimaryKill(t *testing.T) {
	t.Parallel()
	n := envInt("REDFORGE_PGHA_RECORDS", 100000)
	c := testenv.StartPGHA(t, testenv.PGHAOptions{})
	c.CreateDatabase("hub")
	th := startHub(t, c.DSN("hub"))
	e := startEdge(t, th)
	watch := watchHealth(th)

	var mu sync.Mutex
	var acked []edgecheck.Published
	var pubErr error
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			got, err := edgecheck.Publish(e.MQTT, fmt.Sprint("pub-", p), p*n/2, (p+1)*n/2, 32)
			mu.Lock()
			acked = append(acked, got...)
			if err != nil && pubErr == nil {
				pubErr = err
			}
			mu.Unlock()
		})
	}
	synced := func() int64 {
		wm, err := th.Store.Watermarks(context.Background(), e.edgeID)
		if err != nil {
			return -1
		}
		var total int64
		for _, w := range wm {
			total += w.Count
		}
		return total
	}
	testenv.WaitFor(t, 120*time.Second, "a quarter of the records in the database", func() error {
		if s := synced(); s < int64(n/4) {
			return fmt.Errorf("%d synced", s)
		}
		return nil
	})
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	killedAt := synced()
	start := time.Now()
	c.Kill(leader)
	wg.Wait()
	if pubErr != nil {
		t.Fatalf("a publisher failed (the edge broker must ack every record while the hub's database fails over): %v", pubErr)
	}
	testenv.WaitFor(t, 180*time.Second, "the edge outbox to drain", func() error {
		if d, err := e.depth(); err != nil || d != 0 {
			return fmt.Errorf("depth %v (%v)", d, err)
		}
		return nil
	})
	took := time.Since(start)
	testenv.WaitFor(t, 30*time.Second, "the store healthy again", func() error {
		code, h, err := th.health()
		if err != nil || code != 200 || h.Components["store"].Status != "ok" {
			return fmt.Errorf("%d %+v %v", code, h.Components["store"], err)
		}
		return nil
	})
	seen := watch.end()
	outages, _ := metric(th.url, "controltower_store_write_outages_total")
	outageSum, _ := metric(th.url, "controltower_store_write_outage_seconds_sum")
	if outages < 1 || outageSum <= 0 {
		t.Errorf("write outage not recorded: controltower_store_write_outages_total %v, seconds %v", outages, outageSum)
	}
	if !strings.Contains(th.logs.String(), "store write outage over") {
		t.Errorf("the hub logged no end of the write outage")
	}
	total, _ := edgecheck.Verify(t, th.Store, e.edgeID, acked, false)
	var degraded bool
	for _, s := range seen {
		if strings.HasPrefix(s, "200 degraded: ") && len(s) > len("200 degraded: ") {
			degraded = true
		}
		if code, status, _ := strings.Cut(s, " "); code != "200" || strings.HasPrefix(status, "fail") {
			t.Errorf("health showed the store failed during the failover: %v", seen)
		}
	}
	if !degraded {
		t.Errorf("health never showed the store degraded with a reason: %v", seen)
	}
	t.Logf("%d records PUBACKed, %d in the database exactly once; primary %s SIGKILLed at %d synced; write outage seen by the hub %.2fs (%v outages); all synced %.1fs after the kill; health %v",
		len(acked), total, leader.Name, killedAt, outageSum, outages, took.Seconds(), seen)
}

// TestSwitchoverDuringAPIWrites: 4 clients POST AI decisions (unique
// prompts) to a hub through PgBouncer (transaction pooling) in front of
// HAProxy and a 2-node Patroni cluster while `patronictl switchover`
// moves the primary: no request fails, and each decision is stored once.
func TestSwitchoverDuringAPIWrites(t *testing.T) {
	t.Parallel()
	c := testenv.StartPGHA(t, testenv.PGHAOptions{PgBouncer: true})
	c.CreateDatabase("hub")
	dsn := "postgres://postgres@" + c.PgBouncer + "/hub?sslmode=disable&default_query_exec_mode=exec"
	th := startHub(t, dsn)
	ws := startWriters(4, func(w, i int) error {
		code, body := th.do(t, "POST", "/api/audit/ai_decision", th.token, map[string]any{
			"instance_id": "i1", "flow_name": "f", "model": "m", "prompt": fmt.Sprintf("w%d-%d", w, i), "response": "r"})
		if code != 201 {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
	ws.waitOK(t, 30*time.Second, "writes before the switchover", 50)
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	var cand string
	for _, n := range c.Nodes {
		if n != leader {
			cand = n.Name
		}
	}
	before := ws.ok.Load()
	if out, err := c.Patronictl(leader, "switchover", "--leader", leader.Name, "--candidate", cand, "--force", c.Scope); err != nil {
		t.Fatalf("patronictl switchover: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 60*time.Second, "the candidate leads", func() error {
		l, err := c.Leader()
		if err != nil || l.Name != cand {
			return fmt.Errorf("leader %v (%v)", l, err)
		}
		return nil
	})
	ws.waitOK(t, 60*time.Second, "200 writes after the switchover", before+200)
	ws.stop()
	if n := ws.failed.Load(); n > 0 {
		t.Fatalf("%d of %d requests failed through the switchover; first: %v", n, n+ws.ok.Load(), ws.first.Load())
	}
	seen := map[string]int{}
	var total int
	for off := 0; ; off += store.MaxLimit {
		ds, err := th.Store.ListAIDecisions(context.Background(), store.AIDecisionFilter{Limit: store.MaxLimit, Offset: off})
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range ds {
			seen[d.Prompt]++
		}
		total += len(ds)
		if len(ds) < store.MaxLimit {
			break
		}
	}
	for p, k := range seen {
		if k != 1 {
			t.Errorf("decision %s stored %d times", p, k)
		}
	}
	if int64(total) != ws.ok.Load() {
		t.Fatalf("%d requests succeeded, %d decisions stored", ws.ok.Load(), total)
	}
	outage, _ := metric(th.url, "controltower_store_write_outage_seconds_sum")
	t.Logf("switchover %s → %s under 4 writers: %d requests, 0 failed, each decision stored once; write outage %.2fs", leader.Name, cand, ws.ok.Load(), outage)
}

// TestAllHostsDown: a hub whose store lists three PostgreSQL hosts, none
// up, fails to start promptly with one line naming every host tried and
// no password.
func TestAllHostsDown(t *testing.T) {
	t.Parallel()
	var hosts []string
	for range 3 {
		hosts = append(hosts, fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)))
	}
	dsn := "postgres://hub:s3cret-pw@" + strings.Join(hosts, ",") + "/hub?sslmode=disable&target_session_attrs=read-write&connect_timeout=2"
	cfg := hub.DefaultConfig()
	cfg.Listen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.RaftListen = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	cfg.MQTTListen = "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.Store = dsn
	cfg.AdminPassword = adminPassword
	h := hub.New(cfg, "test", slogTo(&testenv.Buffer{}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	err := h.Open(ctx)
	if err == nil {
		h.Close()
		t.Fatal("the hub started with every PostgreSQL host down")
	}
	msg := err.Error()
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "\n") {
		t.Fatalf("error %q: want one line without the password", msg)
	}
	for _, hp := range hosts {
		if strings.Count(msg, hp) < 1 {
			t.Errorf("error %q does not name host %s", msg, hp)
		}
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("failing took %v", took)
	}
	t.Logf("%s", msg)
}

// TestReadReplicaLag: a hub with --store-replicas reads the audit listing
// from the replica. With the replica's WAL replay paused
// (pg_wal_replay_pause), a decision written to the primary is missing from
// the stale listing, whose answer carries X-Redforge-Stale-Ms with the
// growing lag, while ?consistent=1 sees it; the lag is exported as
// controltower_store_replica_lag_seconds; after pg_wal_replay_resume the
// stale listing catches up.
func TestReadReplicaLag(t *testing.T) {
	t.Parallel()
	c := testenv.StartPGHA(t, testenv.PGHAOptions{})
	c.CreateDatabase("hub")
	leader, err := c.Leader()
	if err != nil {
		t.Fatal(err)
	}
	var rep *testenv.PatroniNode
	for _, n := range c.Nodes {
		if n != leader {
			rep = n
		}
	}
	repDSN := "postgres://postgres@" + rep.Addr() + "/hub?sslmode=disable"
	th := startHub(t, c.DSN("hub"), func(cfg *hub.Config) { cfg.StoreReplicas = repDSN })
	post := func(prompt string) {
		t.Helper()
		if code, body := th.do(t, "POST", "/api/audit/ai_decision", th.token, map[string]any{
			"instance_id": "i1", "flow_name": "f", "model": "m", "prompt": prompt, "response": "r"}); code != 201 {
			t.Fatalf("post decision: %d %s", code, body)
		}
	}
	list := func(consistent bool) (bool, string, string) {
		path := "/api/audit/ai_decisions?limit=1000"
		if consistent {
			path += "&consistent=1"
		}
		req, _ := http.NewRequest("GET", th.url+path, nil)
		req.Header.Set("Authorization", "Bearer "+th.token)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("list: %d %s", resp.StatusCode, b)
		}
		return strings.Contains(string(b), `"latest-write"`), resp.Header.Get("X-Redforge-Stale-Ms"), string(b)
	}
	post("before-pause")
	testenv.WaitFor(t, 30*time.Second, "the replica to serve the first write", func() error {
		_, _, body := list(false)
		if !strings.Contains(body, "before-pause") {
			return fmt.Errorf("not yet: %.200s", body)
		}
		return nil
	})
	// Patroni resumes a paused replay (PostgreSQL 14+) unless the cluster
	// is in maintenance mode.
	if out, err := c.Patronictl(leader, "pause", "--wait", c.Scope); err != nil {
		t.Fatalf("patronictl pause: %v\n%s", err, out)
	}
	if err := pgExec(repDSN, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	post("latest-write")
	var staleMs int64
	testenv.WaitFor(t, 30*time.Second, "a stale answer carrying the lag", func() error {
		has, hdr, _ := list(false)
		if has {
			lag, _ := metric(th.url, "controltower_store_replica_lag_seconds{")
			var n int
			var paused bool
			var recv, replay string
			ctx := context.Background()
			conn, err := pgx.Connect(ctx, repDSN)
			if err == nil {
				err = conn.QueryRow(ctx, "SELECT (SELECT count(*) FROM ai_decisions WHERE prompt = 'latest-write'), pg_is_wal_replay_paused(), pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text").Scan(&n, &paused, &recv, &replay)
				conn.Close(ctx)
			}
			return fmt.Errorf("the paused replica has the latest write: the read went to the primary (header %q, lag metric %v; replica has %d, paused %v, %s %s %v)", hdr, lag, n, paused, recv, replay, err)
		}
		ms, err := strconv.ParseInt(hdr, 10, 64)
		if err != nil || ms < 500 {
			return fmt.Errorf("X-Redforge-Stale-Ms %q", hdr)
		}
		staleMs = ms
		return nil
	})
	if has, _, _ := list(true); !has {
		t.Fatal("?consistent=1 does not see the latest write")
	}
	lag, err := metric(th.url, "controltower_store_replica_lag_seconds{")
	if err != nil || lag < 0.5 {
		t.Fatalf("controltower_store_replica_lag_seconds = %v (%v), want the injected lag", lag, err)
	}
	if err := pgExec(repDSN, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Patronictl(leader, "resume", "--wait", c.Scope); err != nil {
		t.Fatalf("patronictl resume: %v\n%s", err, out)
	}
	testenv.WaitFor(t, 30*time.Second, "the replica to catch up", func() error {
		if has, _, _ := list(false); !has {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	t.Logf("replica %s paused: stale answer %d ms behind, lag metric %.2fs; ?consistent=1 fresh", rep.Name, staleMs, lag)
}

// pgExec runs one statement on dsn.
func pgExec(dsn, sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}
