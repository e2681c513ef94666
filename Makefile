# RedForge Control Tower — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
REDFORGE_CACHE ?= $(HOME)/.cache/redforge
export REDFORGE_CACHE
export REDFORGE_TESTENV ?= $(REDFORGE_CACHE)/run/testenv.env
# A package may take most of the run (hub, the integration tests against real
# Node-RED, dockerd, PostgreSQL and Redis); the whole of make test stays
# under 20 minutes on 2 cores.
TEST_TIMEOUT ?= 18m
PKGS ?= ./...
TEST_LOG ?= $(CURDIR)/.cache/test.log
# TMPDIR is a tmpfs that test-env mounts (provision.sh step_tmpfs):
# os.MkdirTemp dirs and the TMPDIR of the hubs, edges and servers the tests
# start go there. GOTMPDIR keeps the go command's build dirs on disk, and
# with them t.TempDir(), which follows GOTMPDIR (a test's data dir there
# may be renamed into /var/lib/redforge-runtimes, TestOwnUIDForOlderInstances).
TEST_TMP ?= /var/tmp/redforge-tests
TEST_ENV_VARS = TMPDIR=$(TEST_TMP) GOTMPDIR=$${GOTMPDIR:-/tmp} REDFORGE_TEST_TMP=$(TEST_TMP)

.PHONY: help nodered build console console-test run test test-env test-env-status test-env-down check fmt-check vet cross bench clean proto dashboards

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: ## build redforge-hub, redforge-edge and towerctl into bin/
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-hub ./cmd/hub
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-edge ./cmd/edge
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/towerctl ./cmd/towerctl

console: ## build the web console into console/dist (embedded by the next go build)
	cd console && npm ci --no-audit --no-fund && npm run build

console-test: console ## the console's unit tests (vitest) and browser tests (playwright-core + Debian chromium)
	cd console && npm test
	$(GO) test -count=1 -timeout 10m ./hub/consoletest

NODERED_DIR := $(REDFORGE_CACHE)/node-red

nodered: ## install Node-RED 4.1 from npm, the Redis context store and the RedForge runtime plugin into the cache (for the process driver)
	@if ! grep -qs '"version": "4\.1\.' $(NODERED_DIR)/node_modules/node-red/package.json; then \
		echo "installing Node-RED 4.1 into $(NODERED_DIR)"; \
		npm install --prefix $(NODERED_DIR) node-red@4.1 --no-audit --no-fund --loglevel=error; fi
	@if ! cmp -s packaging/nodered/context-redis/index.js $(NODERED_DIR)/node_modules/@redforge/node-red-context-redis/index.js || \
		! cmp -s packaging/nodered/context-redis/package.json $(NODERED_DIR)/node_modules/@redforge/node-red-context-redis/package.json; then \
		echo "installing the Redis context store into $(NODERED_DIR)"; \
		npm install --prefix $(NODERED_DIR) --install-links ./packaging/nodered/context-redis --no-audit --no-fund --loglevel=error; fi
	@if ! diff -rq -x node_modules packaging/nodered/runtime $(NODERED_DIR)/node_modules/@redforge/node-red-runtime >/dev/null 2>&1; then \
		echo "installing the RedForge runtime plugin into $(NODERED_DIR)"; \
		rm -rf $(NODERED_DIR)/node_modules/@redforge/node-red-runtime; \
		npm install --prefix $(NODERED_DIR) --install-links ./packaging/nodered/runtime --no-audit --no-fund --loglevel=error; fi

run: console build nodered ## run a hub on embedded defaults with a demo instance (data in ./data, plain HTTP API on 127.0.0.1:3000)
	./bin/redforge-hub --listen 127.0.0.1:3000 --data-dir ./data --node-red $(NODERED_DIR)/node_modules/node-red/red.js --demo

test-env: ## provision PostgreSQL, Redis, Mosquitto, dockerd, Node-RED, Chromium, qemu, the tests' tmpfs (idempotent)
	REDFORGE_TEST_TMP=$(TEST_TMP) bash internal/testenv/provision.sh up

test-env-status: ## show the state of the test environment
	bash internal/testenv/provision.sh status

test-env-down: ## stop the shared test servers
	bash internal/testenv/provision.sh down

test: test-env console ## provision the test environment, build the console, then run every test against real components
	cd console && npm test
	@mkdir -p $(dir $(TEST_LOG))
	set -o pipefail; $(TEST_ENV_VARS) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS) 2>&1 | tee $(TEST_LOG) || { bash internal/testenv/failsummary.sh $(TEST_LOG); exit 1; }
	cd packaging && $(TEST_ENV_VARS) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet every package (the packaging module too)
	$(GO) vet ./...
	cd packaging && $(GO) vet ./...

check: fmt-check vet lint test ## gofmt check, go vet, staticcheck and the tests

cross: ## build redforge-edge for linux/arm64 and linux/arm/v7 (static, CGO_ENABLED=0)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-edge-linux-arm64 ./cmd/edge
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-edge-linux-armv7 ./cmd/edge

EDGE_BENCHES := IngestQoS1|VectorDrain|PeerMosquittoBridge
BENCH_RUNS ?= 3

bench: bench-edge bench-load bench-sentinel bench-pgha ## run the benchmarks and print their figures
	$(GO) test -run '^$$' -bench . -skip '$(EDGE_BENCHES)|$(LOAD_BENCHES)|$(SENTINEL_BENCHES)|$(PGHA_BENCHES)' -benchtime 1x -count=1 -timeout 30m ./...

SENTINEL_BENCHES := RedisFailoverOutage|HoldPushWait

.PHONY: bench-sentinel
bench-sentinel: test-env ## Redis behind Sentinel (issue 21): the hub's coordination outage on a master SIGKILL beside Sentinel's own failover time (medians of 3 kills), hold pushes with WAIT 1 against none; in bench-results/sentinel.txt
	@mkdir -p bench-results
	$(GO) test -p 1 -run '^$$' -bench '$(SENTINEL_BENCHES)' -benchtime 1x -count=1 -timeout 10m ./hub/redisha | grep -v '^redis: ' | tee bench-results/sentinel.txt

PGHA_BENCHES := PrimaryKillOutage|PgBouncerIngest|AsyncLossWindow

.PHONY: bench-pgha
bench-pgha: test-env ## highly available PostgreSQL (issue 21): hub write outage on a primary SIGKILL beside Patroni's failover time, edge batch ingest through PgBouncer as a share of direct, acknowledged writes lost by asynchronous replication over 0-50 ms links (and 0 by synchronous_mode, with its write latency); medians of 3, in bench-results/pgha.txt
	@mkdir -p bench-results
	$(GO) test -p 1 -run '^$$' -bench '$(PGHA_BENCHES)' -benchtime 1x -count=1 -timeout 20m ./hub/store/postgres/hatest | tee bench-results/pgha.txt

LOAD_BENCHES := APILoad|WebSocketFanout|FleetLoad

.PHONY: bench-load
bench-load: test-env ## load and scale (issue 20): API mixed load on 1 and 3 hubs (vegeta), 10k/50k WebSocket clients, 100 blue-green deployments and 1,000 concurrent workflows through the proxy; sizes via REDFORGE_BENCH_* (cmd/hub/*load*_bench_test.go)
	@mkdir -p bench-results
	$(GO) test -p 1 -run '^$$' -bench '$(LOAD_BENCHES)' -benchtime 1x -count=1 -timeout 120m ./cmd/hub | tee bench-results/load.txt

.PHONY: bench-edge
bench-edge: test-env ## edge ingest, drain (and, as a diagnostic, the drain's hub path alone) and end to end, 3 runs each (BENCH_RUNS): medians of their ratios to same-run references, in bench-results/edge.md
	@mkdir -p bench-results
	$(GO) test -p 1 -run '^$$' -bench '$(EDGE_BENCHES)' -benchtime 1x -count=$(BENCH_RUNS) -timeout 90m ./edge/broker ./hub/edgesync | tee bench-results/edge-raw.txt
	$(GO) run ./internal/benchinfo/report < bench-results/edge-raw.txt > bench-results/edge.md
	@cat bench-results/edge.md

.PHONY: bench-cluster
bench-cluster: test-env ## multi-hub figures only: leader failover (loopback, 80 ms RTT), writes/s and p99 through 3 hubs, edge hub switch
	$(GO) test -run '^$$' -bench 'BenchmarkCluster' -benchtime 1x -count=1 -timeout 10m ./cmd/hub

.PHONY: bench-backup
bench-backup: test-env ## backup figures only: backup and restore time and archive size (1,000 instances, 1M audit records, 1M vectors) on SQLite and PostgreSQL beside pg_dump/pg_restore
	$(GO) test -run '^$$' -bench 'BenchmarkBackupRestore' -benchtime 1x -count=1 -timeout 30m ./hub/backup

PROTOC_GEN_GO_VERSION ?= v1.36.12

proto: ## regenerate syncproto's Go code from sync.proto (protoc from Debian, protoc-gen-go from the module proxy)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH=$(CURDIR)/bin:$$PATH protoc --proto_path=syncproto --go_out=syncproto --go_opt=paths=source_relative syncproto/sync.proto

dashboards: ## regenerate the Grafana dashboards (packaging/grafana/dashboards/*.json) with Grafana's Go SDK
	cd packaging && $(GO) run ./cmd/dashboards -out grafana

clean: ## remove build output (not ./data)
	rm -rf bin

# --- packages (issue 20) -------------------------------------------------

IMAGE_TAG ?= $(VERSION)
EDGE_PLATFORMS ?= linux/amd64,linux/arm64,linux/arm/v7
DIST ?= dist

.PHONY: image release kube-schemas lint audit-console vulncheck

image: ## build the hub image (console in a Node stage) and the edge image (buildx: three platforms) from packaging/docker/
	docker build -f packaging/docker/hub.Dockerfile --build-arg VERSION=$(VERSION) -t redforge/hub:$(IMAGE_TAG) -t redforge/hub:local .
	@if docker buildx version >/dev/null 2>&1; then \
		echo "edge: docker buildx for $(EDGE_PLATFORMS) into $(DIST)/redforge-edge-image.oci.tar, and linux/amd64 into the local store"; \
		mkdir -p $(DIST); \
		docker buildx build -f packaging/docker/edge.Dockerfile --platform $(EDGE_PLATFORMS) --build-arg VERSION=$(VERSION) \
			-t redforge/edge:$(IMAGE_TAG) --output type=oci,dest=$(DIST)/redforge-edge-image.oci.tar . && \
		docker buildx build -f packaging/docker/edge.Dockerfile --platform linux/amd64 --build-arg VERSION=$(VERSION) \
			-t redforge/edge:$(IMAGE_TAG) -t redforge/edge:local --load . ; \
	else \
		echo "edge: no docker buildx: linux/amd64 only with the classic builder (see packaging/docker/edge.Dockerfile for arm64 and armv7)"; \
		docker build -f packaging/docker/edge.Dockerfile --build-arg VERSION=$(VERSION) -t redforge/edge:$(IMAGE_TAG) -t redforge/edge:local . ; \
	fi

# name:GOOS/GOARCH[/GOARM] for every binary of a release
RELEASE_TARGETS ?= hub:linux/amd64 hub:linux/arm64 \
	edge:linux/amd64 edge:linux/arm64 edge:linux/arm/7 \
	towerctl:linux/amd64 towerctl:linux/arm64 towerctl:darwin/amd64 towerctl:darwin/arm64

release: console ## every binary for every target (static, CGO_ENABLED=0) with SHA256SUMS in dist/
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for t in $(RELEASE_TARGETS); do \
		name=$${t%%:*}; plat=$${t#*:}; os=$${plat%%/*}; rest=$${plat#*/}; arch=$${rest%%/*}; arm=""; \
		case $$rest in */*) arm=$${rest#*/};; esac; \
		out=$(DIST)/$$( [ $$name = towerctl ] || echo redforge-)$$name-$$os-$$arch$${arm:+v$$arm}; \
		echo "  $$out"; \
		CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch GOARM=$$arm $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$out ./cmd/$$name; \
	done
	cd $(DIST) && sha256sum redforge-* towerctl-* > SHA256SUMS && cat SHA256SUMS

K8S_VERSION ?= v1.37.2

kube-schemas: ## regenerate packaging/k8s/testdata/schemas from Kubernetes' swagger.json (k8s.io/kubernetes from the Go module proxy)
	dir=$$(cd / && $(GO) mod download -json k8s.io/kubernetes@$(K8S_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); \
	cd packaging && $(GO) run ./k8s/schemagen -swagger $$dir/api/openapi-spec/swagger.json -out k8s/testdata/schemas -version $(K8S_VERSION)

STATICCHECK_VERSION ?= v0.8.2

lint: ## staticcheck with the checks staticcheck.conf lists and explains (from the Go module proxy)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	cd packaging && $(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

audit-console: ## npm audit of the console's production dependencies: fails on a high or critical advisory
	@cd console && out=$$(npm audit --omit=dev --audit-level=high --json 2>/dev/null); rc=$$?; \
	if [ $$rc -eq 0 ]; then echo "npm audit: no high or critical advisory in the console's production dependencies"; \
	elif printf '%s' "$$out" | grep -q '"vulnerabilities"'; then npm audit --omit=dev --audit-level=high; exit 1; \
	else echo "npm audit: NOT CHECKED: the registry answers no advisories here ($$(printf '%s' "$$out" | grep -m1 -o '"message": "[^"]*"'))"; fi

VULN_VERSION ?= v1.9.0
# The Go vulnerability database as the Go team publishes it in the module
# golang.org/x/vulndb (data/osv), fetched through the Go module proxy and
# indexed locally, so govulncheck needs no other network. VULNDB_VERSION=latest
# takes the newest.
VULNDB_VERSION ?= v0.0.0-20261105234957-e22db6528018
VULNDB_DIR ?= $(REDFORGE_CACHE)/vulndb

vulncheck: ## govulncheck against the Go vulnerability database (golang.org/x/vulndb from the module proxy, indexed offline)
	@set -e; dir=$$(cd / && $(GO) mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/.*"Dir": "\(.*\)",/\1/p'); \
	ver=$$(basename $$dir); \
	if [ "$$(cat $(VULNDB_DIR)/.source 2>/dev/null)" != "$$ver" ]; then \
		echo "indexing $$ver into $(VULNDB_DIR)"; rm -rf $(VULNDB_DIR); \
		$(GO) run golang.org/x/vulndb/cmd/indexdb@$(VULNDB_VERSION) -vulns $$dir/data/osv -out $(VULNDB_DIR); \
		echo $$ver > $(VULNDB_DIR)/.source; fi; \
	echo "govulncheck $(VULN_VERSION) against $$ver"; \
	$(GO) run golang.org/x/vuln/cmd/govulncheck@$(VULN_VERSION) -db file://$(VULNDB_DIR) ./...
