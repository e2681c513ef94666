package testenv_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/redforge/controltower/internal/testenv"
)

func TestPostgres(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn1, dsn2 := testenv.Postgres(t), testenv.Postgres(t)
	if dsn1 == dsn2 {
		t.Fatalf("two calls returned the same database %s", dsn1)
	}
	names := map[string]bool{}
	for _, dsn := range []string{dsn1, dsn2} {
		if !strings.HasPrefix(dsn, "postgres://") || !strings.Contains(dsn, "sslmode=disable") {
			t.Errorf("DSN %q: want postgres://…?sslmode=disable", dsn)
		}
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatalf("connect %s: %v", dsn, err)
		}
		var one int
		var db string
		if err := conn.QueryRow(ctx, "SELECT 1, current_database()").Scan(&one, &db); err != nil {
			t.Fatalf("SELECT 1 on %s: %v", dsn, err)
		}
		conn.Close(ctx)
		if one != 1 || !strings.HasPrefix(db, "t_") {
			t.Errorf("SELECT 1, current_database() = %d, %q; want 1, t_…", one, db)
		}
		names[db] = true
	}
	if len(names) != 2 {
		t.Errorf("both DSNs reach the same database: %v", names)
	}
}

func TestPostgresDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var name string
	t.Run("create", func(t *testing.T) {
		conn, err := pgx.Connect(ctx, testenv.Postgres(t))
		if err != nil {
			t.Fatal(err)
		}
		// An open connection must not stop the drop (WITH (FORCE)).
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
	})
	conn, err := pgx.Connect(ctx, testenv.PostgresAdminDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test's cleanup", name)
	}
}

func TestRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := testenv.Redis(t)
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", url, err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING: %v", err)
	}
	if err := rdb.Set(ctx, "greeting", "hello", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := rdb.Get(ctx, "greeting").Result()
	if err != nil || got != "hello" {
		t.Fatalf("GET = %q, %v; want hello", got, err)
	}
	if other := testenv.Redis(t); other == url {
		t.Errorf("two calls returned the same server %s", url)
	}
}

func TestMosquitto(t *testing.T) {
	t.Parallel()
	broker := testenv.Mosquitto(t)
	connect := func(id string) mqtt.Client {
		opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
			SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect %s to %s: %v", id, broker, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	sub, pub := connect("sub"), connect("pub")
	got := make(chan mqtt.Message, 1)
	tok := sub.Subscribe("redforge/test", 1, func(_ mqtt.Client, m mqtt.Message) { got <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	tok = pub.Publish("redforge/test", 1, false, "hello")
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish QoS 1: %v", tok.Error())
	}
	select {
	case m := <-got:
		if string(m.Payload()) != "hello" || m.Qos() != 1 {
			t.Errorf("received %q at QoS %d; want hello at QoS 1", m.Payload(), m.Qos())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscriber received nothing within 10 s")
	}
}

func TestDockerRunsNodeREDImage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	host := testenv.Docker(t)
	image := testenv.NodeREDImage(t)
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	key, value := testenv.TestLabel(t)
	port := testenv.FreePort(t)
	created, err := cli.ContainerCreate(ctx,
		&container.Config{
			Image:  image,
			Env:    []string{"PORT=" + strconv.Itoa(port)},
			Labels: map[string]string{key: value},
		},
		&container.HostConfig{NetworkMode: "host"}, nil, nil, "")
	if err != nil {
		t.Fatalf("create container: %v", err)
	}
	if err := cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start container: %v", err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	testenv.WaitFor(t, 60*time.Second, "Node-RED container on "+url, func() error {
		if info, err := cli.ContainerInspect(ctx, created.ID); err == nil && !info.State.Running {
			return fmt.Errorf("container exited with %d", info.State.ExitCode)
		}
		return get(url)
	})

	// What Docker's cleanup does for every test: remove labelled containers.
	if err := cli.ContainerRemove(ctx, created.ID, container.RemoveOptions{Force: true}); err != nil {
		t.Fatalf("remove container: %v", err)
	}
	left, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", key+"="+value)),
	})
	if err != nil || len(left) != 0 {
		t.Fatalf("containers left after remove: %d, %v", len(left), err)
	}
}

func TestDockerCleanupRemovesLabelledContainers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var host, key, value string
	t.Run("leak", func(t *testing.T) {
		host = testenv.Docker(t)
		image := testenv.NodeREDImage(t)
		key, value = testenv.TestLabel(t)
		cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		// Created, never started, never removed by the test itself.
		_, err = cli.ContainerCreate(ctx, &container.Config{Image: image, Labels: map[string]string{key: value}},
			&container.HostConfig{NetworkMode: "host"}, nil, nil, "")
		if err != nil {
			t.Fatalf("create container: %v", err)
		}
	})
	cli, err := client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	left, err := cli.ContainerList(ctx, container.ListOptions{
		All: true, Filters: filters.NewArgs(filters.Arg("label", key+"="+value)),
	})
	if err != nil || len(left) != 0 {
		t.Fatalf("containers labelled %s=%s left after cleanup: %d, %v", key, value, len(left), err)
	}
}

func TestNodeRED(t *testing.T) {
	t.Parallel()
	nr := testenv.NodeRED(t)
	resp, err := http.Get(nr.URL + "/settings")
	if err != nil {
		t.Fatalf("GET /settings: %v", err)
	}
	defer resp.Body.Close()
	var settings struct {
		Version      string `json:"version"`
		HTTPNodeRoot string `json:"httpNodeRoot"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&settings); err != nil {
		t.Fatalf("GET /settings: %s, body is not JSON: %v", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(settings.Version, "4.1.") {
		t.Errorf("GET /settings = %s, version %q; want 200 and 4.1.x", resp.Status, settings.Version)
	}
	if nr.Port == 0 || !strings.HasSuffix(nr.URL, ":"+strconv.Itoa(nr.Port)) || nr.UserDir == "" {
		t.Errorf("NodeREDProc = %+v", nr)
	}
}

func TestNodeREDPaths(t *testing.T) {
	t.Parallel()
	in := testenv.NodeREDPaths(t)
	out, err := exec.Command(in.Node, "-p", "require(process.argv[1]).version",
		in.Dir+"/node_modules/node-red/package.json").CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "4.1.") {
		t.Fatalf("node-red version = %q, %v; want 4.1.x", out, err)
	}
}

func TestTools(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, path, want string }{
		{"chromium", testenv.Chromium(t), "Chromium 1"},
		{"qemu arm64", testenv.Qemu(t, "arm64"), "qemu-aarch64 version"},
		{"qemu arm", testenv.Qemu(t, "arm"), "qemu-arm version"},
		{"protoc", testenv.Protoc(t), "libprotoc 3."},
	} {
		// Debian's chromium launcher may print a shell warning first; find the line.
		out, err := exec.Command(tc.path, "--version").Output()
		i := strings.Index(string(out), tc.want)
		if err != nil || i < 0 {
			t.Errorf("%s: %s --version = %q, %v; want a line with %q", tc.name, tc.path, out, err, tc.want)
			continue
		}
		t.Logf("%s: %s", tc.name, strings.SplitN(string(out[i:]), "\n", 2)[0])
	}
}

func TestChromiumRendersHeadless(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Chromium(t), "--headless", "--no-sandbox", "--disable-gpu",
		"--user-data-dir="+t.TempDir(), "--dump-dom", "data:text/html,<p id=x>redforge</p>")
	out, err := cmd.Output()
	if err != nil || !strings.Contains(string(out), `<p id="x">redforge</p>`) {
		t.Fatalf("chromium --headless --dump-dom = %q, %v", out, err)
	}
}

func TestQemuUnknownArchFails(t *testing.T) {
	t.Parallel()
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Qemu(rec, "riscv64")
	}()
	<-done
	if !strings.Contains(rec.msg, "riscv64") {
		t.Errorf("Qemu(riscv64) failed with %q; want a message naming riscv64", rec.msg)
	}
}

func TestWaitForPollsUntilReady(t *testing.T) {
	t.Parallel()
	calls := 0
	start := time.Now()
	testenv.WaitFor(t, 5*time.Second, "third call", func() error {
		calls++
		if calls < 3 {
			return fmt.Errorf("call %d", calls)
		}
		return nil
	})
	if calls != 3 {
		t.Errorf("cond called %d times; want 3", calls)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("three polls took %v; want the 20 ms start of the backoff", d)
	}
}

func TestFreePort(t *testing.T) {
	t.Parallel()
	if p := testenv.FreePort(t); p <= 0 || p > 65535 {
		t.Fatalf("FreePort = %d", p)
	}
}

func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the goroutine, as the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestMissingComponentFailsWithHint(t *testing.T) {
	t.Setenv("REDFORGE_TESTENV", t.TempDir()+"/missing.env")
	t.Setenv("REDFORGE_TEST_REDIS_SERVER", "")
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		testenv.Redis(rec)
	}()
	<-done
	if !strings.Contains(rec.msg, "testenv: redis-server is not available") ||
		!strings.Contains(rec.msg, "run `make test-env`") {
		t.Errorf("Redis without an env file failed with %q; want the make test-env hint", rec.msg)
	}
}
