package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/apiclient"
	"github.com/redforge/controltower/internal/benchinfo"
)

// Helpers of the load and scale benchmarks (issue 20 item 4): many
// principals, many source addresses, and the figures' header.

// loadAvg is the 1, 5 and 15 minute load average, for the figures: the
// machine is shared, so a figure means little without it.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// benchHeader prints the machine, the commit and the load average once per
// benchmark.
func benchHeader(b *testing.B, what string) {
	b.Helper()
	fmt.Printf("%s: %s; load average %s\n", what, benchinfo.This(), loadAvg())
}

// envInts reads a comma-separated list of positive integers from the
// environment variable name, or returns def.
func envInts(b *testing.B, name string, def ...int) []int {
	b.Helper()
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want positive integers separated by commas", name, v)
		}
		out = append(out, n)
	}
	return out
}

// raiseOpenFilesForBench lifts this process's open-file limit to n, or
// as near as its hard limit allows (a hard limit can only be raised with
// CAP_SYS_RESOURCE), and returns the soft limit now in force. Hub
// processes the benchmark starts inherit it.
func raiseOpenFilesForBench(b *testing.B, n uint64) uint64 {
	b.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= n {
		return lim.Cur
	}
	want := syscall.Rlimit{Cur: n, Max: max(lim.Max, n)}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
		want = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			b.Fatal(err)
		}
	}
	return want.Cur
}

// loopbackSource is the i-th extra source address on the loopback
// (127.0.0.10, .11, …): every 127/8 address is local on Linux, so a
// client bound to one reaches a hub on 127.0.0.1 with its own ephemeral
// port range and its own per-address login limit.
func loopbackSource(i int) string { return fmt.Sprintf("127.0.%d.%d", 1+i/200, 10+i%200) }

// dialerFrom is a net.Dialer whose connections come from src.
func dialerFrom(src string) *net.Dialer {
	return &net.Dialer{Timeout: 15 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
}

// httpClientFrom is an HTTP client whose connections come from src.
func httpClientFrom(src string) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = dialerFrom(src).DialContext
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// loginsPerSource stays under the hub's per-address login limit
// (api.LoginAttemptsPerMinute = 10).
const loginsPerSource = 8

// benchUsers creates n users with role on the hub at api (as the admin)
// and logs each in, loginsPerSource per source address from src(k), and
// returns their access tokens. The hub limits requests per principal
// (api.RoleRequestsPerMinute), so a load of many requests a second is
// spread over many users, as it would be in production.
func benchUsers(b *testing.B, api, adminToken string, n int, role string, src func(k int) string) []string {
	b.Helper()
	post := func(path string, body any) error {
		h := &hubProc{api: api}
		code, out, _, err := h.do("POST", path, adminToken, body)
		if err != nil || code != http.StatusCreated {
			return fmt.Errorf("POST %s: %d %s %v", path, code, out, err)
		}
		return nil
	}
	tokens := make([]string, n)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			user := fmt.Sprintf("load-%d", i)
			pw := "password-of-" + user
			err := post("/api/users", map[string]string{"username": user, "password": pw, "role": role})
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				tokens[i], err = apiclient.Login(ctx, httpClientFrom(src(i/loginsPerSource)), api, user, pw)
				cancel()
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		b.Fatalf("%d of %d users not ready, first: %v", len(errs), n, errs[0])
	}
	return tokens
}

// rssOf is a process's resident set in bytes (0 when unknown).
func rssOf(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// openFiles counts a process's open file descriptors.
func openFiles(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}

// removeInstancesAtEnd deletes every instance of hub h when the benchmark
// ends, before the hub stops (cleanups run last-registered first, so call
// it after starting the hub), and waits until their runtimes have exited:
// process-driver runtimes outlive their hub by design (a restarted hub
// adopts them), and a benchmark must not leave dozens of Node-RED
// processes behind on a shared machine. Runtimes still there after two
// minutes are killed.
func removeInstancesAtEnd(b *testing.B, h *hubProc, token string) {
	b.Cleanup(func() {
		code, body, _, err := h.do("GET", "/api/instances", token, nil)
		if err != nil || code != http.StatusOK {
			b.Logf("list instances to remove: %d %v", code, err)
			return
		}
		var list struct {
			Instances []struct {
				ID   string `json:"id"`
				Name string `json:"name"`
			} `json:"instances"`
		}
		_ = json.Unmarshal(body, &list)
		var ids []string
		for _, in := range list.Instances {
			ids = append(ids, in.ID)
			_, _, _, _ = h.do("DELETE", "/api/instances/"+in.Name, token, nil)
		}
		if len(ids) == 0 {
			return
		}
		deadline := time.Now().Add(2 * time.Minute)
		for {
			left := runtimesOf(ids)
			if len(left) == 0 {
				return
			}
			if time.Now().After(deadline) {
				for _, pid := range left {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
				b.Logf("killed %d runtimes left after their instances were deleted", len(left))
				return
			}
			time.Sleep(500 * time.Millisecond) // polling /proc for exits, with a deadline
		}
	})
}

// runtimesOf lists the pids of processes whose command line names one of
// the instance ids (a runtime's --userDir, or its title, holds its id).
func runtimesOf(ids []string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		for _, id := range ids {
			if strings.Contains(string(cmd), "redforge-runtimes/") && strings.Contains(string(cmd), "/"+id) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
