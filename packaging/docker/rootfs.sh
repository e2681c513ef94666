#!/bin/sh
# rootfs.sh OUT DATA_DIR BINARY... lays out the root filesystem of a
# redforge image on an empty base in OUT/base: the static binaries in
# /usr/local/bin, CA certificates, /etc/passwd and /etc/group with the
# non-root user redforge (uid and gid 65532, home DATA_DIR) and a /tmp;
# and OUT/data, the empty data dir, which the Dockerfile copies to DATA_DIR
# with --chown (COPY makes everything else root-owned).
# The Dockerfiles run it in their build stage; the image test runs the same
# script on binaries built on the host (packaging/docker/image_test.go).
set -eu
out=$1
data=$2
shift 2
mkdir -p "$out/data"
out=$out/base
mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/tmp"
for bin in "$@"; do
	cp "$bin" "$out/usr/local/bin/"
	chmod 0755 "$out/usr/local/bin/$(basename "$bin")"
done
cp /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0:root:/root:/sbin/nologin\nredforge:x:65532:65532:redforge:%s:/sbin/nologin\n' "$data" >"$out/etc/passwd"
printf 'root:x:0:\nredforge:x:65532:\n' >"$out/etc/group"
chmod 1777 "$out/tmp"
