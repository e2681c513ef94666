package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

const (
	// TestLabelKey is the label that marks a container as belonging to a test.
	TestLabelKey  = "redforge.test"
	dockerTimeout = 30 * time.Second
	maxLabelName  = 80
)

// Docker returns the DOCKER_HOST of the shared test dockerd (unix://…) after
// checking that it answers /_ping. tb.Cleanup removes, with force, every
// container labelled with this test's TestLabel. It fails the test when
// dockerd is not available.
func Docker(tb testing.TB) string {
	tb.Helper()
	host := mustLookup(tb, "dockerd", keyDockerHost)
	cli, err := newDockerClient(host)
	if err != nil {
		unavailable(tb, "dockerd", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		unavailable(tb, "dockerd", fmt.Errorf("ping %s: %w", host, err))
	}
	key, value := TestLabel(tb)
	tb.Cleanup(func() {
		if err := removeLabelled(host, key, value); err != nil {
			tb.Errorf("testenv: remove containers labelled %s=%s: %v", key, value, err)
		}
	})
	return host
}

// TestLabel returns the label key and value that a test puts on the
// containers it creates so that Docker's cleanup removes them. The value is
// derived from tb.Name() plus a token unique to this test process, so equal
// test names in packages tested in parallel do not collide.
func TestLabel(tb testing.TB) (key, value string) {
	tb.Helper()
	name := labelUnsafe.ReplaceAllString(tb.Name(), "_")
	if len(name) > maxLabelName {
		sum := sha256.Sum256([]byte(tb.Name()))
		name = name[:maxLabelName] + "~" + hex.EncodeToString(sum[:4])
	}
	return TestLabelKey, name + "." + processToken()
}

var labelUnsafe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

var processToken = sync.OnceValue(func() string {
	return fmt.Sprintf("%d-%s", os.Getpid(), randomHex(3))
})

// NodeREDImage returns the name of the local Node-RED 4.1 image after
// checking that it exists in the test dockerd. Containers made from it run
// Node-RED with user dir /data as uid 1000 and listen on $PORT (default
// 1880); tests run them with host networking, each on its own port. It fails
// the test when dockerd or the image is not available.
func NodeREDImage(tb testing.TB) string {
	tb.Helper()
	host := Docker(tb)
	image := mustLookup(tb, "node-red image", keyNodeREDImage)
	cli, err := newDockerClient(host)
	if err != nil {
		unavailable(tb, "node-red image", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	if _, err := cli.ImageInspect(ctx, image); err != nil {
		unavailable(tb, "node-red image", err)
	}
	return image
}

func newDockerClient(host string) (*client.Client, error) {
	return client.NewClientWithOpts(client.WithHost(host), client.WithAPIVersionNegotiation())
}

// removeLabelled force-removes every container, running or not, with the label.
func removeLabelled(host, key, value string) error {
	cli, err := newDockerClient(host)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	list, err := cli.ContainerList(ctx, container.ListOptions{
		All:     true,
		Filters: filters.NewArgs(filters.Arg("label", key+"="+value)),
	})
	if err != nil {
		return err
	}
	for _, c := range list {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		if err != nil && !cerrdefs.IsNotFound(err) {
			return fmt.Errorf("remove %s: %w", c.ID[:12], err)
		}
	}
	return nil
}
