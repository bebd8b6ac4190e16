#!/bin/sh
# Builds the switchboard container image without pulling any base image:
# the binary is built here with the same flags as the Dockerfile's builder
# stage (static, pure Go, -tags goolm), this machine's CA bundle is copied
# next to it, and the Dockerfile's final stage (everything from its
# "FROM scratch" on, unchanged) is built from that.
#
#   contrib/docker/build-local.sh [TAG]     (default TAG: switchboard:local)
#
# Environment: VERSION (what `switchboard version` prints), CA_BUNDLE (the
# PEM bundle to ship, default /etc/ssl/certs/ca-certificates.crt), DOCKER
# (the docker client, default docker).
set -eu
cd "$(dirname "$0")/../.."
tag=${1:-switchboard:local}
ca=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
docker=${DOCKER:-docker}
[ -r "$ca" ] || { echo "build-local.sh: no CA bundle at $ca (set CA_BUNDLE)" >&2; exit 1; }

ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT INT TERM
root=$ctx/rootfs
mkdir -p "$root/usr/local/bin" "$root/etc/ssl/certs" "$root/tmp" "$ctx/userfs/data"
CGO_ENABLED=0 go build -tags goolm -trimpath \
	-ldflags "-s -w ${VERSION:+-X main.Version=$VERSION}" \
	-o "$root/usr/local/bin/switchboard" ./cmd/switchboard
cp "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "$root/usr/local/bin/switchboard"
chmod 0644 "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"
chmod 0700 "$ctx/userfs/data"

# A stand-in "builder" stage holding the trees prepared above, then the
# Dockerfile's own final stage.
{
	printf 'FROM scratch AS builder\nCOPY rootfs/ /rootfs/\nCOPY userfs/ /userfs/\n\n'
	sed -n '/^FROM scratch$/,$p' Dockerfile
} >"$ctx/Dockerfile"
grep -q '^FROM scratch$' "$ctx/Dockerfile" || { echo "build-local.sh: no 'FROM scratch' stage in Dockerfile" >&2; exit 1; }
"$docker" build -t "$tag" "$ctx"
