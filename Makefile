# RedForge Control Tower — `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
REDFORGE_CACHE ?= $(HOME)/.cache/redforge
export REDFORGE_CACHE
export REDFORGE_TESTENV ?= $(REDFORGE_CACHE)/run/testenv.env
TEST_TIMEOUT ?= 14m
PKGS ?= ./...

.PHONY: help nodered build console console-test run test test-env test-env-status test-env-down check fmt-check vet cross bench clean proto

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

run: console build nodered ## run a hub on embedded defaults with a demo instance (data in ./data, API on :3000)
	./bin/redforge-hub --data-dir ./data --node-red $(NODERED_DIR)/node_modules/node-red/red.js --demo

test-env: ## provision PostgreSQL, Redis, Mosquitto, dockerd, Node-RED, Chromium, qemu (idempotent)
	bash internal/testenv/provision.sh up

test-env-status: ## show the state of the test environment
	bash internal/testenv/provision.sh status

test-env-down: ## stop the shared test servers
	bash internal/testenv/provision.sh down

test: test-env console ## provision the test environment, build the console, then run every test against real components
	cd console && npm test
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

fmt-check: ## fail if gofmt would change a file
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>&1); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet every package
	$(GO) vet ./...

check: fmt-check vet test ## gofmt check, go vet and the tests

cross: ## build redforge-edge for linux/arm64 and linux/arm/v7 (static, CGO_ENABLED=0)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-edge-linux-arm64 ./cmd/edge
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/redforge-edge-linux-armv7 ./cmd/edge

bench: test-env ## run the benchmarks and print their figures
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 -timeout 30m ./...

.PHONY: bench-cluster
bench-cluster: test-env ## multi-hub figures only: leader failover (loopback, 80 ms RTT), writes/s and p99 through 3 hubs, edge hub switch
	$(GO) test -run '^$$' -bench 'BenchmarkCluster' -benchtime 1x -count=1 -timeout 10m ./cmd/hub

PROTOC_GEN_GO_VERSION ?= v1.36.12

proto: ## regenerate syncproto's Go code from sync.proto (protoc from Debian, protoc-gen-go from the module proxy)
	GOBIN=$(CURDIR)/bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	PATH=$(CURDIR)/bin:$$PATH protoc --proto_path=syncproto --go_out=syncproto --go_opt=paths=source_relative syncproto/sync.proto

clean: ## remove build output (not ./data)
	rm -rf bin
