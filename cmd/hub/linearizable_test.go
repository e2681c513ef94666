package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/redforge/controltower/internal/testenv"
)

// regInput is one operation on a register: an instance's env var V.
type regInput struct {
	key   int
	write bool
	value string
}

// registerModel is a set of independent registers, one per key.
var registerModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[int][]porcupine.Operation{}
		for _, op := range h {
			k := op.Input.(regInput).key
			by[k] = append(by[k], op)
		}
		var out [][]porcupine.Operation
		for _, ops := range by {
			out = append(out, ops)
		}
		return out
	},
	Init: func() any { return "init" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(regInput)
		if in.write {
			return true, in.value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(regInput)
		if in.write {
			return fmt.Sprintf("put(k%d, %s)", in.key, in.value)
		}
		return fmt.Sprintf("get(k%d) -> %v", in.key, output)
	},
}

// TestLinearizable: concurrent clients write (PATCH env through any hub,
// forwarded to the leader) and read (?consistent=1 through any hub) three
// registers while the leader is SIGKILLed and restarted and a follower's
// links are cut and restored; porcupine finds the history linearizable.
// Writes whose outcome is unknown (transport error, 503 outcome_unknown or
// shutting_down) stay in the history with an open end; refused ones (409,
// 429, 503 not applied) and failed reads are left out.
func TestLinearizable(t *testing.T) {
	hubs, token := startCluster(t, clusterOpts{heartbeat: 500 * time.Millisecond, deadAfter: time.Minute})
	ids := make([]string, 10)
	for k := range ids {
		code, b, _, err := hubs[0].do("POST", "/api/instances", token, map[string]any{"name": fmt.Sprint("lin-", k), "desired_state": "stopped", "env": map[string]string{"V": "init"}})
		if err != nil || code != 201 {
			t.Fatalf("create: %d %s %v", code, b, err)
		}
		var inst struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(b, &inst)
		ids[k] = inst.ID
	}
	const clients = 6
	tokens := make([]string, clients)
	for c := range tokens {
		user := fmt.Sprint("lin-client-", c)
		if code, b, _, err := hubs[0].do("POST", "/api/users", token, map[string]string{"username": user, "password": "password-of-" + user, "role": "OPERATOR"}); err != nil || code != 201 {
			t.Fatalf("create user: %d %s %v", code, b, err)
		}
	}
	for c := range tokens { // logins spread over the hubs (per-address login limit)
		user := fmt.Sprint("lin-client-", c)
		testenv.WaitFor(t, 10*time.Second, "login "+user, func() error {
			code, b, _, err := hubs[c%3].do("POST", "/api/auth/login", "", map[string]string{"username": user, "password": "password-of-" + user})
			if err != nil || code != 200 {
				return fmt.Errorf("%d %s %v", code, b, err)
			}
			var out struct {
				AccessToken string `json:"access_token"`
			}
			_ = json.Unmarshal(b, &out)
			tokens[c] = out.AccessToken
			return nil
		})
	}

	var (
		mu        sync.Mutex
		history   []porcupine.Operation
		stop      atomic.Bool
		live      = make([]atomic.Bool, len(hubs))
		refused   atomic.Int64
		unknown   atomic.Int64
		t0        = time.Now()
		ts        = func() int64 { return time.Since(t0).Nanoseconds() }
		wg        sync.WaitGroup
		nemesisOK = make(chan struct{})
		reasons   = map[string]int{}
	)
	for i := range live {
		live[i].Store(true)
	}
	record := func(op porcupine.Operation) {
		mu.Lock()
		history = append(history, op)
		mu.Unlock()
	}
	for c := range clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(c), 42))
			for seq := 0; !stop.Load(); seq++ {
				hi := rng.IntN(len(hubs))
				if !live[hi].Load() {
					continue
				}
				h, k := hubs[hi], rng.IntN(len(ids))
				if rng.IntN(2) == 0 {
					v := fmt.Sprintf("c%d-%d", c, seq)
					call := ts()
					code, b, _, err := h.do("PATCH", "/api/instances/"+ids[k], tokens[c], map[string]any{"env": map[string]string{"V": v}})
					ret := ts()
					switch {
					case err == nil && code == 200:
					case err != nil || (code == 503 && (strings.Contains(string(b), "outcome_unknown") || strings.Contains(string(b), "shutting_down"))) || code >= 500 && code != 503:
						ret = math.MaxInt64 // may or may not have applied
						unknown.Add(1)
						why := fmt.Sprint(code, " ", err)
						if len(b) > 0 {
							why = fmt.Sprintf("%d %.120s", code, b)
						}
						mu.Lock()
						reasons[why]++
						mu.Unlock()
						// Back off: hammering a leader that just died only piles
						// up writes of unknown outcome, which make the check
						// exponential without testing anything more.
						time.Sleep(500 * time.Millisecond)
					default:
						refused.Add(1)
						mu.Lock()
						reasons[fmt.Sprintf("refused %d %.80s", code, b)]++
						mu.Unlock()
						continue
					}
					record(porcupine.Operation{ClientId: c, Input: regInput{key: k, write: true, value: v}, Call: call, Output: "", Return: ret})
					continue
				}
				call := ts()
				code, b, _, err := h.do("GET", "/api/instances/"+ids[k]+"?consistent=1", tokens[c], nil)
				ret := ts()
				if err != nil || code != 200 {
					refused.Add(1)
					mu.Lock()
					reasons[fmt.Sprintf("read %d %.80s %v", code, b, err)]++
					mu.Unlock()
					continue
				}
				var inst struct {
					Env map[string]string `json:"env"`
				}
				if err := json.Unmarshal(b, &inst); err != nil {
					t.Errorf("decode read: %v", err)
					continue
				}
				record(porcupine.Operation{ClientId: c, Input: regInput{key: k}, Call: call, Output: inst.Env["V"], Return: ret})
			}
		})
	}
	// Nemesis: kill the leader, bring it back, cut a follower, heal.
	go func() {
		defer close(nemesisOK)
		time.Sleep(3 * time.Second)
		leader, rest := leaderOf(t, hubs, token)
		li := indexOf(hubs, leader)
		live[li].Store(false)
		leader.kill()
		t.Logf("nemesis: SIGKILLed leader %s at %s", leader.id, time.Since(t0).Round(time.Millisecond))
		time.Sleep(4 * time.Second)
		leader.start()
		live[li].Store(true)
		t.Logf("nemesis: restarted %s at %s", leader.id, time.Since(t0).Round(time.Millisecond))
		time.Sleep(3 * time.Second)
		cut := rest[0]
		cut.raftLink.Cut()
		cut.apiLink.Cut()
		t.Logf("nemesis: cut %s at %s", cut.id, time.Since(t0).Round(time.Millisecond))
		time.Sleep(5 * time.Second)
		cut.raftLink.Restore()
		cut.apiLink.Restore()
		t.Logf("nemesis: healed %s at %s", cut.id, time.Since(t0).Round(time.Millisecond))
		time.Sleep(3 * time.Second)
	}()
	<-nemesisOK
	testenv.WaitFor(t, 60*time.Second, "1000 operations", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(history) < 1000 {
			return fmt.Errorf("%d operations", len(history))
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()
	for why, n := range reasons {
		t.Logf("%5d × %s", n, why)
	}
	res, info := porcupine.CheckOperationsVerbose(registerModel, history, 60*time.Second)
	t.Logf("linearizability over %d operations (%d with unknown outcome; %d refused, left out) in %s: %s",
		len(history), unknown.Load(), refused.Load(), time.Since(t0).Round(time.Millisecond), res)
	if res != porcupine.Ok {
		path := t.TempDir() + "/history.html"
		_ = porcupine.VisualizePath(registerModel, info, path)
		t.Fatalf("history is %s (visualization: %s)", res, path)
	}
}

func indexOf(hubs []*hubProc, h *hubProc) int {
	for i, x := range hubs {
		if x == h {
			return i
		}
	}
	return -1
}

// TestRegisterModelCatchesStaleRead: the model is not vacuous: a read that
// misses a write completed before it began is a violation.
func TestRegisterModelCatchesStaleRead(t *testing.T) {
	h := []porcupine.Operation{
		{ClientId: 0, Input: regInput{key: 0, write: true, value: "a"}, Call: 0, Output: "", Return: 10},
		{ClientId: 1, Input: regInput{key: 0}, Call: 20, Output: "init", Return: 30},
	}
	if res := porcupine.CheckOperationsTimeout(registerModel, h, time.Second); res != porcupine.Illegal {
		t.Fatalf("stale read judged %s, want Illegal", res)
	}
	h[1].Call = 5 // concurrent with the write: either order is fine
	if res := porcupine.CheckOperationsTimeout(registerModel, h, time.Second); res != porcupine.Ok {
		t.Fatalf("concurrent read judged %s, want Ok", res)
	}
}
