// Package docker holds the Dockerfiles of the hub and the edge, the
// rootfs.sh their build stages run, and the tests that lint them and build
// and run their runtime stages on the test dockerd.
package docker

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// parseDockerfile parses path with BuildKit's own Dockerfile parser and
// its linter (the rules of `docker build --check` that run at parse time:
// stage and keyword casing, deprecated instructions, empty continuations
// …), failing the test on any parse warning or lint finding.
func parseDockerfile(t *testing.T, path string) []instructions.Stage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := parser.Parse(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, w := range res.Warnings {
		t.Errorf("%s:%d: %s", path, w.Location.Start.Line, w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("%s:%d: %s: %s", path, line, rule, msg)
	}})
	stages, _, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return stages
}

// pinnedImage matches a base image with a version tag (not latest), or a
// build argument that names one.
var pinnedImage = regexp.MustCompile(`^(scratch|\$\{[A-Z_]+\}|[a-z0-9./-]+:[0-9][A-Za-z0-9._-]*)$`)

// TestDockerfilesLint checks both Dockerfiles with BuildKit's parser and
// linter, then the house rules: pinned bases, COPY --from naming an
// earlier stage, a final stage FROM scratch that runs as uid 65532 with
// exec-form ENTRYPOINT, and for the hub a Node stage that builds the
// console, the console copied into the Go build, and a HEALTHCHECK.
func TestDockerfilesLint(t *testing.T) {
	for _, name := range []string{"hub.Dockerfile", "edge.Dockerfile"} {
		t.Run(name, func(t *testing.T) {
			stages := parseDockerfile(t, name)
			var seen []string
			for _, s := range stages {
				if !pinnedImage.MatchString(s.BaseName) {
					t.Errorf("stage %s: base %q is not pinned to a version", s.Name, s.BaseName)
				}
				for _, c := range s.Commands {
					if cp, ok := c.(*instructions.CopyCommand); ok && cp.From != "" && !slices.Contains(seen, cp.From) {
						t.Errorf("stage %s: COPY --from=%s names no earlier stage", s.Name, cp.From)
					}
				}
				seen = append(seen, s.Name)
			}
			final := stages[len(stages)-1]
			if final.BaseName != "scratch" {
				t.Errorf("final stage FROM %s, want scratch (a static binary needs no base)", final.BaseName)
			}
			var user string
			var entry *instructions.EntrypointCommand
			var health *instructions.HealthCheckCommand
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.EntrypointCommand:
					entry = c
				case *instructions.HealthCheckCommand:
					health = c
				}
			}
			if user != "65532:65532" {
				t.Errorf("final stage USER %q, want 65532:65532 (non-root)", user)
			}
			if entry == nil || entry.PrependShell {
				t.Errorf("final stage needs an exec-form ENTRYPOINT (no shell in scratch)")
			}
			if name != "hub.Dockerfile" {
				return
			}
			if health == nil || len(health.Health.Test) == 0 || health.Health.Test[0] != "CMD" {
				t.Errorf("hub: no exec-form HEALTHCHECK")
			} else if !slices.Contains(health.Health.Test, "health") {
				t.Errorf("hub: HEALTHCHECK %v does not run towerctl health (GET /api/health)", health.Health.Test)
			}
			text, _ := os.ReadFile(name)
			for _, want := range []string{"FROM ${NODE_IMAGE} AS console", "RUN npm ci", "RUN npm run build", "COPY --from=console /src/console/dist/ console/dist/"} {
				if !strings.Contains(string(text), want) {
					t.Errorf("hub: no %q: the console must be built in a Node stage and embedded", want)
				}
			}
		})
	}
}

// TestPGHADockerfileLint lints the image of docker-compose.yml's "ha"
// profile (Debian's Patroni, PostgreSQL 15, etcd, PgBouncer): it parses
// without warnings, its base is pinned and it does not run as root.
func TestPGHADockerfileLint(t *testing.T) {
	stages := parseDockerfile(t, "pgha.Dockerfile")
	final := stages[len(stages)-1]
	if !pinnedImage.MatchString(final.BaseName) {
		t.Errorf("base %q is not pinned to a version", final.BaseName)
	}
	var user string
	for _, c := range final.Commands {
		if u, ok := c.(*instructions.UserCommand); ok {
			user = u.User
		}
	}
	if user == "" || user == "root" || user == "0" {
		t.Errorf("USER %q: Patroni, etcd and PgBouncer must not run as root", user)
	}
}
