#!/usr/bin/env bash
# provision.sh builds and starts the real components that the project's tests
# use (see internal/testenv): Debian packages, a shared PostgreSQL 15 server, a
# private dockerd, Node-RED 4.1 from npm and the local Node-RED Docker image.
# It writes $REDFORGE_CACHE/run/testenv.env for the Go helpers to read.
#
#   bash internal/testenv/provision.sh [up|status|down]
#
# Idempotent: a warm machine reuses everything and finishes in seconds.
# Locations: cache ${REDFORGE_CACHE:-$HOME/.cache/redforge}, run dir $CACHE/run.
set -Eeuo pipefail

CACHE=${REDFORGE_CACHE:-$HOME/.cache/redforge}
RUN=$CACHE/run
TEST_TMP=${REDFORGE_TEST_TMP:-/var/tmp/redforge-tests} # make test's TMPDIR (step_tmpfs): outside $HOME, so that the test servers' and runtimes' own users reach it
PG_PORT=${REDFORGE_TEST_PG_PORT:-55432}
PG_BIN=/usr/lib/postgresql/15/bin
PG_DATA=$RUN/pg
PG_SOCK=$RUN/pgsock
DOCKER_SOCK=$RUN/docker.sock
DOCKER_HOST_URL=unix://$DOCKER_SOCK
DOCKER_PID=$RUN/docker.pid
NR_DIR=$CACHE/node-red
NR_IMAGE=redforge/node-red:4.1-local
ENV_FILE=$RUN/testenv.env
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
IMAGE_RECIPE=$REPO/packaging/nodered/build-local-image.sh

DEB_PACKAGES=(postgresql-15 redis-server redis-sentinel mosquitto docker.io qemu-user-static
	protobuf-compiler chromium iproute2 ca-certificates prometheus prometheus-alertmanager git
	patroni etcd-server etcd-client pgbouncer haproxy)

STEP=setup
say() { printf '%s\n' "$*"; }
# show_log prints the last $2 lines of log file $1 to stderr, if it exists.
show_log() { [[ -f $1 ]] && tail -n "${2:-20}" "$1" >&2 || true; }
fail() {
	printf 'provision: step %s failed: %s\n' "$STEP" "$*" >&2
	exit 1
}
on_err() {
	local rc=$?
	printf 'provision: step %s failed (exit %d at line %d: %s)\n' \
		"$STEP" "$rc" "${BASH_LINENO[0]}" "$BASH_COMMAND" >&2
	exit "$rc"
}
trap on_err ERR

# pkg_installed reports whether a Debian package is fully installed.
pkg_installed() {
	[[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt_get runs apt-get, waiting for the dpkg lock when another install runs.
apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -y -q \
		-o DPkg::Lock::Timeout=600 -o Acquire::Retries=3 "$@"
}

step_packages() {
	STEP=packages
	local missing=() p
	for p in "${DEB_PACKAGES[@]}"; do
		pkg_installed "$p" || missing+=("$p")
	done
	command -v node >/dev/null || missing+=(nodejs npm)
	if ((${#missing[@]} == 0)); then
		say "packages: all ${#DEB_PACKAGES[@]} present"
		return
	fi
	say "packages: installing ${missing[*]}"
	# The lists lock is not covered by DPkg::Lock::Timeout on every apt: retry.
	local try
	for try in $(seq 1 40); do
		apt_get update >"$CACHE/apt.log" 2>&1 && break
		grep -qi 'could not get lock' "$CACHE/apt.log" && ((try < 40)) || {
			show_log "$CACHE/apt.log" 20
			fail "apt-get update (log $CACHE/apt.log)"
		}
		say "packages: apt is busy (another install?), waiting"
		sleep 15
	done
	apt_get install "${missing[@]}" >>"$CACHE/apt.log" 2>&1 ||
		{ show_log "$CACHE/apt.log" 20; fail "apt-get install ${missing[*]} (log $CACHE/apt.log)"; }
	for p in "${DEB_PACKAGES[@]}"; do
		pkg_installed "$p" || fail "package $p still not installed after apt-get install"
	done
	# Tests start their own etcd, PgBouncer and HAProxy (testenv.StartPGHA);
	# the system services the packages install would hold their ports.
	if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
		systemctl disable --now etcd pgbouncer haproxy >/dev/null 2>&1 || true
	fi
	say "packages: installed ${missing[*]}"
}

# allow_traverse lets the postgres user reach $1 by adding o+x to every
# ancestor directory it cannot enter (e.g. /root is 0700 on Debian).
allow_traverse() {
	local d="" part parts
	IFS=/ read -ra parts <<<"${1#/}"
	for part in "${parts[@]::${#parts[@]}-1}"; do
		d=$d/$part
		if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
			chmod o+x "$d"
			say "postgres: note: chmod o+x $d so the postgres user can reach $1"
		fi
	done
}

not_alive() { ! alive "$1"; }

pg_ready() {
	"$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2
}

pg_write_conf() {
	cat >"$PG_DATA/redforge.conf" <<-EOF
		# Written by internal/testenv/provision.sh on every start: a test server.
		listen_addresses = '127.0.0.1'
		port = $PG_PORT
		unix_socket_directories = '$PG_SOCK'
		max_connections = 300
		fsync = off
		synchronous_commit = off
		full_page_writes = off
		log_min_messages = warning
	EOF
	cat >"$PG_DATA/pg_hba.conf" <<-EOF
		# TYPE  DATABASE  USER  ADDRESS        METHOD
		local   all       all                  trust
		host    all       all   127.0.0.1/32   trust
	EOF
	chown postgres: "$PG_DATA/redforge.conf" "$PG_DATA/pg_hba.conf"
}

step_postgres() {
	STEP=postgres
	[[ -x $PG_BIN/postgres ]] || fail "$PG_BIN/postgres not found (package postgresql-15)"
	if pg_ready; then
		say "postgres: running on 127.0.0.1:$PG_PORT (reused)"
		return
	fi
	local how=started
	mkdir -p "$PG_DATA" "$PG_SOCK"
	chown postgres: "$PG_DATA" "$PG_SOCK"
	chmod 700 "$PG_DATA"
	allow_traverse "$PG_DATA"
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 \
			--locale=C --auth=trust >"$RUN/initdb.log" 2>&1 ||
			{ show_log "$RUN/initdb.log" 20; fail "initdb $PG_DATA (log $RUN/initdb.log)"; }
		echo "include_if_exists = 'redforge.conf'" >>"$PG_DATA/postgresql.conf"
		how="initialized, started"
	fi
	pg_write_conf
	touch "$RUN/postgres.log"
	chown postgres: "$RUN/postgres.log"
	# A server of ours on another port (REDFORGE_TEST_PG_PORT changed): restart it.
	if runuser -u postgres -- "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; then
		runuser -u postgres -- "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null
		how="restarted"
	fi
	runuser -u postgres -- "$PG_BIN/pg_ctl" start -D "$PG_DATA" -w -t 60 \
		-l "$RUN/postgres.log" >"$RUN/pg_ctl.log" 2>&1 9>&- ||
		{ show_log "$RUN/pg_ctl.log" 5; show_log "$RUN/postgres.log" 20; fail "pg_ctl start (log $RUN/postgres.log)"; }
	pg_ready || fail "postgres started but pg_isready fails on 127.0.0.1:$PG_PORT"
	say "postgres: running on 127.0.0.1:$PG_PORT ($how)"
}

docker_ok() {
	docker -H "$DOCKER_HOST_URL" info >/dev/null 2>&1
}

# alive reports whether process $1 exists and is not a zombie (a daemon
# started by an earlier run is reparented and may not be reaped at once).
alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n $state && $state != Z && $state != X ]]
}

docker_pid() {
	local pid
	[[ -s $DOCKER_PID ]] || return 1
	pid=$(<"$DOCKER_PID")
	alive "$pid" || return 1
	[[ $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] || return 1 # a reused pid
	echo "$pid"
}

# wait_until polls "$@" every 0.2 s until it succeeds or $1 seconds pass.
wait_until() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		((SECONDS < deadline)) || return 1
		sleep 0.2
	done
}

# DOCKER_CPU_SHARES is the CPU weight of the containers' parent cgroup
# (cgroup v1, cgroupfs driver). By default the whole /docker group weighs
# as much as one busy process of the host: on a machine loaded by tests (a
# load of 10 on 2 cores happens here) all containers together get a tenth
# of a core and Node-RED in a container answers seconds late, while the
# process driver's Node-RED competes as a process of its own. 8192 makes
# the containers weigh like eight busy processes.
DOCKER_CPU_SHARES=8192

# docker_cpu_weight sets DOCKER_CPU_SHARES on /sys/fs/cgroup/cpu/docker
# where that exists or can be made and is writable; elsewhere it does
# nothing.
docker_cpu_weight() {
	local g=/sys/fs/cgroup/cpu/docker
	[[ -d /sys/fs/cgroup/cpu ]] || return 0
	mkdir -p "$g" 2>/dev/null || return 0
	if [[ -w $g/cpu.shares ]] && echo "$DOCKER_CPU_SHARES" 2>/dev/null >"$g/cpu.shares"; then
		say "dockerd: containers' CPU weight $(cat "$g/cpu.shares") ($g/cpu.shares)"
	fi
	return 0
}

step_docker() {
	STEP=dockerd
	command -v dockerd >/dev/null || fail "dockerd not found (package docker.io)"
	command -v docker >/dev/null || fail "docker CLI not found (package docker.io)"
	if docker_pid >/dev/null; then
		# Ours is alive: it may still be starting.
		if wait_until 30 docker_ok; then
			say "dockerd: running at $DOCKER_HOST_URL (reused)"
			docker_cpu_weight
			return
		fi
		fail "dockerd pid $(docker_pid) is alive but does not answer at $DOCKER_HOST_URL; see $RUN/dockerd.log or run '$0 down'"
	fi
	rm -f "$DOCKER_PID" "$DOCKER_SOCK"
	mkdir -p "$CACHE/docker" "$RUN/dockerx"
	setsid nohup dockerd --host "$DOCKER_HOST_URL" --data-root "$CACHE/docker" \
		--exec-root "$RUN/dockerx" --pidfile "$DOCKER_PID" \
		--bridge=none --iptables=false >"$RUN/dockerd.log" 2>&1 </dev/null 9>&- &
	local pid=$!
	local deadline=$((SECONDS + 60))
	until docker_ok; do
		if ! alive "$pid"; then
			show_log "$RUN/dockerd.log" 15
			fail "dockerd exited during start-up: $(grep -E 'level=(fatal|error)' "$RUN/dockerd.log" | tail -1 || true)"
		fi
		if ((SECONDS >= deadline)); then
			show_log "$RUN/dockerd.log" 15
			fail "dockerd did not answer at $DOCKER_HOST_URL within 60 s (log $RUN/dockerd.log)"
		fi
		sleep 0.2
	done
	say "dockerd: running at $DOCKER_HOST_URL (started, $(docker -H "$DOCKER_HOST_URL" version -f '{{.Server.Version}}'))"
	docker_cpu_weight
}

nodered_version() {
	local pj=$NR_DIR/node_modules/node-red/package.json
	[[ -s $pj ]] || return 1
	node -p "require('$pj').version" 2>/dev/null
}

step_nodered() {
	STEP=node-red
	command -v node >/dev/null || fail "node not found (Node.js >= 18 is needed)"
	local nodever major v
	nodever=$(node --version)
	major=${nodever#v}
	major=${major%%.*}
	((major >= 18)) || fail "node $nodever is too old: Node-RED 4.1 needs Node.js >= 18"
	v=$(nodered_version || true)
	if [[ $v == 4.1.* ]]; then
		say "node-red: $v in $NR_DIR (reused, node $nodever)"
		return
	fi
	command -v npm >/dev/null || fail "npm not found"
	mkdir -p "$NR_DIR"
	npm install --prefix "$NR_DIR" node-red@4.1 --no-audit --no-fund --loglevel=error \
		>"$CACHE/npm.log" 2>&1 ||
		{ show_log "$CACHE/npm.log" 20; fail "npm install node-red@4.1 (log $CACHE/npm.log)"; }
	v=$(nodered_version || true)
	[[ $v == 4.1.* ]] || fail "npm installed node-red '$v', want 4.1.x"
	say "node-red: $v in $NR_DIR (installed, node $nodever)"
}

# step_context_redis installs packaging/nodered/context-redis (the Redis
# context store the hub configures for instances) beside Node-RED, as a
# copy (--install-links), so the local image carries it; reused while the
# installed files equal the repo's.
step_context_redis() {
	STEP=context-redis
	local src=$REPO/packaging/nodered/context-redis
	local dst=$NR_DIR/node_modules/@redforge/node-red-context-redis
	if cmp -s "$src/index.js" "$dst/index.js" && cmp -s "$src/package.json" "$dst/package.json" &&
		[[ -f $NR_DIR/node_modules/redis/package.json ]]; then
		say "context-redis: in $NR_DIR (reused)"
		return
	fi
	npm install --prefix "$NR_DIR" --install-links "$src" --no-audit --no-fund --loglevel=error \
		>"$CACHE/npm-context-redis.log" 2>&1 ||
		{ show_log "$CACHE/npm-context-redis.log" 20; fail "npm install $src (log $CACHE/npm-context-redis.log)"; }
	cmp -s "$src/index.js" "$dst/index.js" || fail "npm did not install $src into $dst"
	say "context-redis: in $NR_DIR (installed)"
}

# step_runtime_package installs packaging/nodered/runtime (the RedForge
# runtime package: the runtime plugin — the control contract for any flow,
# editor deploy reports — and the workflow timer and LLM usage nodes of
# issue 17) beside Node-RED, as a copy (--install-links), so every runtime
# (and the local image) has it; reused while the installed files equal the
# repo's.
step_runtime_package() {
	STEP=runtime-package
	local src=$REPO/packaging/nodered/runtime
	local dst=$NR_DIR/node_modules/@redforge/node-red-runtime
	[[ -f $src/package.json ]] || { say "runtime-package: none in the repo"; return; }
	if [[ -d $dst ]] && diff -rq -x node_modules "$src" "$dst" >/dev/null 2>&1; then
		say "runtime-package: in $NR_DIR (reused)"
		return
	fi
	# npm keeps a local package of the same version as it is: remove it first.
	rm -rf "$dst"
	npm install --prefix "$NR_DIR" --install-links "$src" --no-audit --no-fund --loglevel=error \
		>"$CACHE/npm-runtime-package.log" 2>&1 ||
		{ show_log "$CACHE/npm-runtime-package.log" 20; fail "npm install $src (log $CACHE/npm-runtime-package.log)"; }
	diff -rq -x node_modules "$src" "$dst" >/dev/null || fail "npm did not install $src into $dst"
	say "runtime-package: in $NR_DIR (installed)"
}

step_image() {
	STEP=node-red-image
	[[ -f $IMAGE_RECIPE ]] || fail "$IMAGE_RECIPE is missing"
	local out
	out=$(DOCKER_HOST=$DOCKER_HOST_URL bash "$IMAGE_RECIPE" "$NR_DIR" "$NR_IMAGE" 2>&1) ||
		{ printf '%s\n' "$out" | tail -20 >&2; fail "build-local-image.sh"; }
	say "image: $(printf '%s\n' "$out" | tail -1)"
}

step_tools() {
	STEP=tools
	local b
	for b in /usr/bin/chromium /usr/bin/qemu-aarch64-static /usr/bin/qemu-arm-static \
		/usr/bin/redis-server /usr/bin/redis-sentinel /usr/sbin/mosquitto /usr/bin/protoc /usr/bin/prometheus /usr/bin/promtool \
		/usr/bin/prometheus-alertmanager; do
		[[ -x $b ]] || fail "$b is missing"
	done
	say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
	say "qemu: $(/usr/bin/qemu-aarch64-static --version | head -1 | sed 's/ version / /'), arm: $(/usr/bin/qemu-arm-static --version | head -1 | awk '{print $3}')"
	local redis mosq
	redis=$(/usr/bin/redis-server --version | awk '{print $3}')
	mosq=$({ /usr/sbin/mosquitto -h 2>/dev/null || true; } | awk 'NR==1{print $3}')
	say "redis: ${redis#v=}, mosquitto: $mosq, protoc: $(/usr/bin/protoc --version | awk '{print $2}')"
	say "prometheus: $(/usr/bin/prometheus --version 2>&1 | awk 'NR==1{print $3}'), alertmanager: $(/usr/bin/prometheus-alertmanager --version 2>&1 | awk 'NR==1{print $3}')"
}

# SeaweedFS (the S3-compatible server of the backup tests) is built from
# its Go module at a pinned version; its go.mod has replace directives, so
# `go install mod@version` refuses it and it is built inside the module.
WEED_MODULE=github.com/seaweedfs/seaweedfs
WEED_VERSION=v0.0.0-20261109003541-7506e5f91cd6
WEED_BIN=$CACHE/bin/weed-$WEED_VERSION

step_weed() {
	STEP=seaweedfs
	if [[ -x $WEED_BIN ]]; then
		say "seaweedfs: $WEED_BIN (reused)"
		return
	fi
	command -v go >/dev/null || fail "go not found (needed to build SeaweedFS)"
	local dir
	dir=$(go mod download -json "$WEED_MODULE@$WEED_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || fail "go mod download $WEED_MODULE@$WEED_VERSION gave no directory"
	mkdir -p "$CACHE/bin"
	(cd "$dir" && go build -o "$WEED_BIN.tmp" ./weed) >"$CACHE/weed-build.log" 2>&1 ||
		{ show_log "$CACHE/weed-build.log" 20; fail "go build $WEED_MODULE/weed (log $CACHE/weed-build.log)"; }
	mv "$WEED_BIN.tmp" "$WEED_BIN"
	say "seaweedfs: built $WEED_BIN"
}

step_envfile() {
	STEP=env-file
	local tmp=$ENV_FILE.tmp.$$
	cat >"$tmp" <<-EOF
		# Written by internal/testenv/provision.sh; read by internal/testenv.
		REDFORGE_TEST_PG_DSN=postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable
		REDFORGE_TEST_DOCKER_HOST=$DOCKER_HOST_URL
		REDFORGE_TEST_NODERED_DIR=$NR_DIR
		REDFORGE_TEST_NODERED_IMAGE=$NR_IMAGE
		REDFORGE_TEST_NODE=$(command -v node)
		REDFORGE_TEST_REDIS_SERVER=/usr/bin/redis-server
		REDFORGE_TEST_REDIS_SENTINEL=/usr/bin/redis-sentinel
		REDFORGE_TEST_MOSQUITTO=/usr/sbin/mosquitto
		REDFORGE_TEST_CHROMIUM=/usr/bin/chromium
		REDFORGE_TEST_QEMU_AARCH64=/usr/bin/qemu-aarch64-static
		REDFORGE_TEST_QEMU_ARM=/usr/bin/qemu-arm-static
		REDFORGE_TEST_PROTOC=/usr/bin/protoc
		REDFORGE_TEST_PROMETHEUS=/usr/bin/prometheus
		REDFORGE_TEST_PROMTOOL=/usr/bin/promtool
		REDFORGE_TEST_ALERTMANAGER=/usr/bin/prometheus-alertmanager
		REDFORGE_TEST_PG_BIN=$PG_BIN
		REDFORGE_TEST_WEED=$WEED_BIN
	EOF
	mv "$tmp" "$ENV_FILE"
	say "env: $ENV_FILE"
}

# lock serialises concurrent runs (several engineers or test jobs at once).
# Daemons are started with fd 9 closed so they do not keep holding the lock.
lock() {
	mkdir -p "$RUN"
	exec 9>"$CACHE/provision.lock"
	flock -w 900 9 || fail "another provision.sh holds $CACHE/provision.lock"
}

# step_tmpfs mounts a tmpfs at $TEST_TMP for `make test`'s TMPDIR (not
# GOTMPDIR, so t.TempDir() stays on disk, see the Makefile): the hubs,
# edges and servers the tests start fsync their data on every commit, and
# on a slow disk that, not the code under test, paced the suite. A process
# killed by a test loses nothing more on tmpfs than on a disk (the page
# cache survives it); only power loss would differ, and no test can cut
# the power. Entries left for more than a day (a run that
# was itself killed) are removed. The benchmarks keep the real disk.
step_tmpfs() {
	STEP=tmpfs
	mkdir -p "$TEST_TMP"
	if ! mountpoint -q "$TEST_TMP"; then
		mount -t tmpfs -o size=12g,mode=1777 redforge-test-tmp "$TEST_TMP" || fail "mount a tmpfs at $TEST_TMP"
	fi
	find "$TEST_TMP" -mindepth 1 -maxdepth 1 -mmin +1440 -exec rm -rf {} + 2>/dev/null || true
	say "tmpfs: $TEST_TMP"
}

cmd_up() {
	local t0
	t0=$(date +%s.%N)
	[[ $(id -u) == 0 ]] || { STEP=setup; fail "run as root (apt-get, runuser, dockerd)"; }
	lock
	step_packages
	step_postgres
	step_docker
	step_nodered
	step_context_redis
	step_runtime_package
	step_image
	step_tools
	step_weed
	step_tmpfs
	step_envfile
	STEP=done
	say "testenv: up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}') s"
}

cmd_status() {
	STEP=status
	if pg_ready; then
		say "postgres: running on 127.0.0.1:$PG_PORT"
	elif [[ -s $PG_DATA/PG_VERSION ]]; then
		say "postgres: stopped (data in $PG_DATA)"
	else
		say "postgres: not initialized"
	fi
	if docker_ok; then
		say "dockerd: running at $DOCKER_HOST_URL (pid $(docker_pid || echo '?'))"
	else
		say "dockerd: not running"
	fi
	local v
	v=$(nodered_version || true)
	say "node-red: ${v:-not installed} in $NR_DIR"
	if docker_ok && docker -H "$DOCKER_HOST_URL" image inspect "$NR_IMAGE" >/dev/null 2>&1; then
		say "image: $NR_IMAGE present (recipe $(docker -H "$DOCKER_HOST_URL" image inspect -f '{{index .Config.Labels "redforge.recipe"}}' "$NR_IMAGE"))"
	else
		say "image: $NR_IMAGE not available"
	fi
	local b
	for b in /usr/bin/chromium /usr/bin/qemu-aarch64-static /usr/bin/qemu-arm-static /usr/bin/protoc \
		/usr/bin/redis-server /usr/bin/redis-sentinel /usr/sbin/mosquitto; do
		if [[ -x $b ]]; then say "$(basename "$b"): present"; else say "$(basename "$b"): missing"; fi
	done
	if [[ -s $ENV_FILE ]]; then say "env: $ENV_FILE"; else say "env: $ENV_FILE missing"; fi
}

# unmount_under unmounts what a stopped dockerd left mounted at or below $1
# (network namespaces, overlay layers), deepest first.
unmount_under() {
	local m
	awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

cmd_down() {
	lock
	STEP=down-postgres
	if [[ -s $PG_DATA/PG_VERSION ]] &&
		runuser -u postgres -- "$PG_BIN/pg_ctl" status -D "$PG_DATA" >/dev/null 2>&1; then
		runuser -u postgres -- "$PG_BIN/pg_ctl" stop -D "$PG_DATA" -m fast -w >/dev/null
		say "postgres: stopped"
	else
		say "postgres: not running"
	fi
	STEP=down-dockerd
	local pid
	if pid=$(docker_pid); then
		kill -TERM "$pid"
		wait_until 30 not_alive "$pid" || { kill -KILL "$pid" 2>/dev/null || true; }
		say "dockerd: stopped (pid $pid)"
	else
		say "dockerd: not running"
	fi
	unmount_under "$RUN/dockerx"
	unmount_under "$CACHE/docker"
	rm -f "$DOCKER_SOCK"
}

case ${1:-up} in
up) cmd_up ;;
status) cmd_status ;;
down) cmd_down ;;
*)
	echo "usage: $0 [up|status|down]" >&2
	exit 2
	;;
esac
