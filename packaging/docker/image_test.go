package docker

import (
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redforge/controltower/internal/testenv"
)

// Image tests. No image registry is reachable here, so the golang and node
// base images of the build stages cannot be pulled and those stages are
// not built by the tests (make image builds the whole Dockerfile where a
// registry is reachable). What is built, on the test dockerd: each
// Dockerfile's runtime stage, taken verbatim from the Dockerfile, on a
// root filesystem made by the same rootfs.sh from static binaries built
// here with the build stage's flags. That stage needs no base image (FROM
// scratch), so nothing but COPY --from=build changes.

// runtimeStage returns the Dockerfile's last stage with its COPY from the
// build stage reading the build context instead.
func runtimeStage(t *testing.T, dockerfile string) string {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	i := strings.LastIndex(text, "\nFROM scratch AS runtime")
	if i < 0 {
		t.Fatalf("%s has no 'FROM scratch AS runtime' stage", dockerfile)
	}
	stage := text[i+1:]
	n := strings.Count(stage, "COPY --from=build ")
	stage = strings.ReplaceAll(stage, "COPY --from=build /rootfs/", "COPY rootfs/")
	stage = strings.ReplaceAll(stage, "COPY --from=build --chown=65532:65532 /rootfs/", "COPY --chown=65532:65532 rootfs/")
	if n == 0 || strings.Contains(stage, "--from=build") {
		t.Fatalf("%s: runtime stage copies from the build stage in a way this test does not know", dockerfile)
	}
	return stage
}

// goBuild builds pkg statically for linux/goarch (GOARM goarm) as the
// Dockerfiles do.
func goBuild(t *testing.T, out, pkg, goarch, goarm string) string {
	t.Helper()
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=imagetest", "-o", out, pkg)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOARM="+goarm)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// buildContext lays out a build context: rootfs/ by rootfs.sh, and the
// runtime stage of dockerfile as Dockerfile.
func buildContext(t *testing.T, dockerfile, dataDir string, bins ...string) string {
	t.Helper()
	ctx := t.TempDir()
	args := append([]string{"rootfs.sh", filepath.Join(ctx, "rootfs"), dataDir}, bins...)
	if b, err := exec.Command("sh", args...).CombinedOutput(); err != nil {
		t.Fatalf("rootfs.sh: %v\n%s", err, b)
	}
	if err := os.WriteFile(filepath.Join(ctx, "Dockerfile"), []byte(runtimeStage(t, dockerfile)), 0o644); err != nil {
		t.Fatal(err)
	}
	return ctx
}

type dockerCLI struct {
	t    *testing.T
	host string
}

func (d dockerCLI) run(args ...string) string {
	d.t.Helper()
	cmd := exec.Command("docker", args...)
	// The classic builder: the test dockerd has no buildx plugin here.
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+d.host, "DOCKER_BUILDKIT=0")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		d.t.Fatalf("docker %s: %v\n%s%s", strings.Join(args, " "), err, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

// start runs a detached container (docker run -d args...), removed with
// its volumes at cleanup, and returns its id.
func (d dockerCLI) start(args ...string) string {
	d.t.Helper()
	id := d.run(append([]string{"run", "-d"}, args...)...)
	d.atCleanup("rm", "-f", "-v", id)
	return id
}

// atCleanup runs docker args when the test ends, ignoring its outcome
// (the dockerd may already be gone).
func (d dockerCLI) atCleanup(args ...string) {
	d.t.Cleanup(func() { _ = exec.Command("docker", append([]string{"-H", d.host}, args...)...).Run() })
}

// build builds ctx as tag (removed at cleanup) and returns its inspect.
func (d dockerCLI) build(ctx, tag string, extra ...string) imageInspect {
	d.t.Helper()
	d.run(append(append([]string{"build", "-q", "-t", tag}, extra...), ctx)...)
	d.atCleanup("rmi", "-f", tag)
	var ii []imageInspect
	if err := json.Unmarshal([]byte(d.run("image", "inspect", tag)), &ii); err != nil || len(ii) != 1 {
		d.t.Fatalf("inspect %s: %v", tag, err)
	}
	return ii[0]
}

type imageInspect struct {
	Architecture string
	Variant      string
	Config       struct {
		User        string
		Entrypoint  []string
		Healthcheck *struct{ Test []string }
	}
}

func mustDocker(t *testing.T) dockerCLI {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("no docker CLI (Debian package docker.io)")
	}
	return dockerCLI{t: t, host: testenv.Docker(t)}
}

func tag(t *testing.T, repo string) string {
	_, v := testenv.TestLabel(t)
	return repo + ":test-" + strings.ToLower(strings.NewReplacer("/", "-", ".", "-", "~", "-").Replace(v))
}

// socketGID returns the group owning the Docker socket behind host.
func socketGID(t *testing.T, host string) (string, uint32) {
	t.Helper()
	path := strings.TrimPrefix(host, "unix://")
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return path, st.Gid
}

// processUID returns the real uid of the container's main process.
func processUID(t *testing.T, d dockerCLI, id string) string {
	t.Helper()
	pid := d.run("inspect", "-f", "{{.State.Pid}}", id)
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
			return f[1]
		}
	}
	t.Fatal("no Uid in /proc/" + pid + "/status")
	return ""
}

// TestHubImage builds the hub image's runtime stage and runs it as the
// Compose file does (docker fleet driver through the mounted socket, the
// socket's group added): it must answer /api/health, become healthy by
// its own HEALTHCHECK (towerctl health), and run as uid 65532.
func TestHubImage(t *testing.T) {
	d := mustDocker(t)
	bins := t.TempDir()
	ctx := buildContext(t, "hub.Dockerfile", "/var/lib/redforge",
		goBuild(t, filepath.Join(bins, "redforge-hub"), "./cmd/hub", "amd64", ""),
		goBuild(t, filepath.Join(bins, "towerctl"), "./cmd/towerctl", "amd64", ""))
	img := tag(t, "redforge/hub")
	ii := d.build(ctx, img)
	if ii.Config.User != "65532:65532" || ii.Config.Healthcheck == nil || len(ii.Config.Entrypoint) == 0 {
		t.Fatalf("image config: %+v", ii.Config)
	}

	port, raft, mqtt := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	sock, gid := socketGID(t, d.host)
	key, value := testenv.TestLabel(t)
	id := d.start("--label", key+"="+value, "--network", "host",
		"--group-add", fmt.Sprint(gid), "-v", sock+":/var/run/docker.sock",
		"--health-interval", "2s", // the image's own check, run sooner than its 15 s
		"-e", fmt.Sprintf("REDFORGE_LISTEN=127.0.0.1:%d", port),
		"-e", fmt.Sprintf("REDFORGE_HUB=http://127.0.0.1:%d", port),
		"-e", fmt.Sprintf("REDFORGE_RAFT_LISTEN=127.0.0.1:%d", raft),
		"-e", fmt.Sprintf("REDFORGE_MQTT_LISTEN=127.0.0.1:%d", mqtt),
		"-e", "REDFORGE_DRIVER=docker", "-e", "REDFORGE_ADMIN_PASSWORD=image-test-admin-pw",
		img)
	logs := func() string {
		out, _ := exec.Command("docker", "-H", d.host, "logs", id).CombinedOutput()
		return string(out)
	}
	client := &http.Client{Timeout: 5 * time.Second}
	testenv.WaitFor(t, 90*time.Second, "GET /api/health of the hub container", func() error {
		if st := d.run("inspect", "-f", "{{.State.Status}}", id); st != "running" {
			t.Fatalf("hub container %s:\n%s", st, logs())
		}
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/api/health", port))
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	testenv.WaitFor(t, 60*time.Second, "the container's HEALTHCHECK reports healthy", func() error {
		if st := d.run("inspect", "-f", "{{.State.Health.Status}}", id); st != "healthy" {
			return fmt.Errorf("health %s", st)
		}
		return nil
	})
	if uid := processUID(t, d, id); uid != "65532" {
		t.Errorf("hub runs as uid %s, want 65532", uid)
	}
	if !strings.Contains(logs(), "driver=docker") {
		t.Errorf("hub did not use the docker driver through the socket:\n%s", logs())
	}
}

// TestEdgeImage builds the edge image's runtime stage for amd64 and runs
// it (GET /healthz, uid 65532), then for arm64 and arm/v7 from the
// cross-built static binaries: those images are built and inspected but
// not run (this kernel has no binfmt_misc to run foreign images; the
// binaries themselves run under qemu-user in cmd/edge's cross test).
func TestEdgeImage(t *testing.T) {
	d := mustDocker(t)
	for _, p := range []struct{ goarch, goarm, platform string }{
		{"amd64", "", "linux/amd64"}, {"arm64", "", "linux/arm64"}, {"arm", "7", "linux/arm/v7"},
	} {
		t.Run(p.platform, func(t *testing.T) {
			bin := goBuild(t, filepath.Join(t.TempDir(), "redforge-edge"), "./cmd/edge", p.goarch, p.goarm)
			assertStaticELF(t, bin)
			ctx := buildContext(t, "edge.Dockerfile", "/data", bin)
			img := tag(t, "redforge/edge")
			ii := d.build(ctx, img, "--platform", p.platform)
			wantArch, wantVariant, _ := strings.Cut(strings.TrimPrefix(p.platform, "linux/"), "/")
			if ii.Architecture != wantArch || (wantVariant != "" && ii.Variant != wantVariant) || ii.Config.User != "65532:65532" {
				t.Fatalf("image %s: arch %s/%s user %q", img, ii.Architecture, ii.Variant, ii.Config.User)
			}
			if p.goarch != "amd64" {
				return
			}
			port := testenv.FreePort(t)
			key, value := testenv.TestLabel(t)
			id := d.start("--label", key+"="+value, "--network", "host",
				"-e", fmt.Sprintf("REDFORGE_EDGE_LISTEN=127.0.0.1:%d", port),
				"-e", fmt.Sprintf("REDFORGE_EDGE_MQTT_LISTEN=127.0.0.1:%d", testenv.FreePort(t)), img)
			client := &http.Client{Timeout: 5 * time.Second}
			testenv.WaitFor(t, 60*time.Second, "GET /healthz of the edge container", func() error {
				if st := d.run("inspect", "-f", "{{.State.Status}}", id); st != "running" {
					out, _ := exec.Command("docker", "-H", d.host, "logs", id).CombinedOutput()
					t.Fatalf("edge container %s:\n%s", st, out)
				}
				resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
				if err != nil {
					return err
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
			if uid := processUID(t, d, id); uid != "65532" {
				t.Errorf("edge runs as uid %s, want 65532", uid)
			}
		})
	}
}

// assertStaticELF fails unless bin has no program interpreter: it runs on
// an empty base.
func assertStaticELF(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatalf("%s is dynamically linked", bin)
		}
	}
}
