#!/usr/bin/env bash
# build-local-image.sh builds the local Node-RED Docker image without any
# image registry: it assembles a root filesystem from this machine's node
# binary (with every shared library ldd lists, and the dynamic loader) and an
# npm-installed Node-RED, then `docker import`s it.
#
#   DOCKER_HOST=unix:///… bash packaging/nodered/build-local-image.sh NODE_RED_PREFIX [IMAGE]
#
# NODE_RED_PREFIX is an `npm install --prefix` directory holding node-red
# (and, from make nodered / provision.sh, @redforge/node-red-context-redis,
# the Redis context store, and @redforge/node-red-runtime, the runtime
# plugin: the image carries the whole prefix).
# The image carries the label redforge.recipe=<hash of this script, the node
# binary and the Node-RED lockfile>; when an image with that label exists the
# build is skipped. A new or rebuilt image is verified by running it with host
# networking on a free port until GET / answers. The last line printed is a
# one-line summary.
#
# The container runs as uid 1000 (node-red), user dir /data, port 1880 unless
# the PORT environment variable or a `--port N` argument says otherwise.
set -Eeuo pipefail

NR_PREFIX=${1:?usage: build-local-image.sh NODE_RED_PREFIX [IMAGE]}
IMAGE=${2:-redforge/node-red:4.1-local}
NODE=$(readlink -f "$(command -v node)")
LABEL=redforge.recipe

die() {
	echo "build-local-image: $*" >&2
	exit 1
}

[[ -f $NR_PREFIX/node_modules/node-red/red.js ]] || die "no node-red in $NR_PREFIX"
docker version >/dev/null 2>&1 || die "docker does not answer at ${DOCKER_HOST:-default socket}"

nr_version=$(node -p "require('$NR_PREFIX/node_modules/node-red/package.json').version")
recipe_hash=$(
	{
		cat "${BASH_SOURCE[0]}"
		echo "$NODE $("$NODE" --version)"
		stat -c '%s %Y' "$NODE"
		cat "$NR_PREFIX/package-lock.json" 2>/dev/null || echo "$nr_version"
		# Local packages (the Redis context store, the runtime plugin) change
		# without a lockfile change.
		find "$NR_PREFIX"/node_modules/@redforge -type f \( -name '*.js' -o -name '*.html' -o -name package.json \) \
			-not -path '*/@redforge/*/node_modules/*' 2>/dev/null | LC_ALL=C sort | xargs -r cat || true
	} | sha256sum | cut -c1-16
)

have=$(docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
if [[ $have == "$recipe_hash" ]]; then
	echo "$IMAGE node-red $nr_version, recipe $recipe_hash (reused)"
	exit 0
fi

# Imported under a recipe tag first; tagged $IMAGE only once verified.
candidate=${IMAGE%:*}:recipe-$recipe_hash
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/redforge-nr-rootfs.XXXXXX")
chmod 0755 "$rootfs"
verify_name=redforge-image-verify-$$
cleanup() {
	rm -rf "$rootfs"
	docker rm -f "$verify_name" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# copy_file copies $1 (following symlinks) to the same path inside the rootfs.
copy_file() {
	install -D -m "$(stat -L -c '%a' "$1")" "$1" "$rootfs$1"
}

# The node binary and every library it loads, plus the dynamic loader.
install -D -m 0755 "$NODE" "$rootfs/usr/local/bin/node"
ldd "$NODE" | awk '/=> \//{print $3} /^[ \t]*\//{print $1}' | sort -u >"$rootfs/.libs"
[[ -s $rootfs/.libs ]] || die "ldd $NODE listed no libraries"
while read -r lib; do
	copy_file "$lib"
	real=$(readlink -f "$lib")
	[[ $real == "$lib" ]] || copy_file "$real"
done <"$rootfs/.libs"
rm "$rootfs/.libs"

# Users, name service, temp and data directories, CA certificates.
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/data" "$rootfs/usr/src/node-red"
cat >"$rootfs/etc/passwd" <<-'EOF'
	root:x:0:0:root:/root:/sbin/nologin
	node-red:x:1000:1000:Node-RED:/data:/sbin/nologin
	nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
EOF
cat >"$rootfs/etc/group" <<-'EOF'
	root:x:0:
	node-red:x:1000:
	nogroup:x:65534:
EOF
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
chmod 1777 "$rootfs/tmp"
chown 1000:1000 "$rootfs/data"
if [[ -d /etc/ssl/certs ]]; then
	mkdir -p "$rootfs/etc/ssl"
	cp -rL /etc/ssl/certs "$rootfs/etc/ssl/certs"
fi

# Node-RED itself, as installed by npm.
cp -a "$NR_PREFIX/." "$rootfs/usr/src/node-red/"

# Prove the rootfs is complete before importing it: run node from it.
if command -v chroot >/dev/null; then
	chroot "$rootfs" /usr/local/bin/node -e 'require("/usr/src/node-red/node_modules/node-red/package.json")' ||
		die "node does not run inside the assembled root filesystem"
fi

tar -C "$rootfs" --numeric-owner -c . | docker import \
	--change 'USER 1000' \
	--change 'WORKDIR /usr/src/node-red' \
	--change 'ENV NODE_PATH=/usr/src/node-red/node_modules' \
	--change 'ENV HOME=/data' \
	--change 'ENTRYPOINT ["/usr/local/bin/node","/usr/src/node-red/node_modules/node-red/red.js","--userDir","/data"]' \
	--change 'EXPOSE 1880' \
	--change "LABEL $LABEL=$recipe_hash org.nodered.version=$nr_version" \
	- "$candidate" >/dev/null

# Verify: run it with host networking on a free port until GET / answers.
port=$(node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
docker run -d --name "$verify_name" --network host -e "PORT=$port" \
	--label redforge.test=image-verify "$candidate" >/dev/null
deadline=$((SECONDS + 90))
until node -e '
	require("http").get(process.argv[1], r => process.exit(r.statusCode === 200 ? 0 : 1))
		.on("error", () => process.exit(1));' "http://127.0.0.1:$port/"; do
	if [[ $(docker inspect -f '{{.State.Running}}' "$verify_name") != true ]]; then
		docker logs "$verify_name" 2>&1 | tail -20 >&2
		die "the Node-RED container exited before answering on port $port"
	fi
	if ((SECONDS >= deadline)); then
		docker logs "$verify_name" 2>&1 | tail -20 >&2
		die "the Node-RED container did not answer GET / on port $port within 90 s"
	fi
	sleep 0.3
done
# Only a verified image gets the name tests use; older recipes' tags go.
docker tag "$candidate" "$IMAGE"
docker image ls --format '{{.Repository}}:{{.Tag}}' "${IMAGE%:*}" | grep ":recipe-" |
	grep -vx "$candidate" | xargs -r docker rmi >/dev/null 2>&1 || true
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "$IMAGE node-red $nr_version, recipe $recipe_hash (built, $((size / 1048576)) MiB, verified on port $port)"
