#!/bin/sh
# Installs what `make test` needs when it is missing: redis-server (the Redis
# backend's tests start their own on a free port). Debian/Ubuntu packages;
# run as root or with sudo available.
set -e
need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
[ -z "$need" ] && exit 0
echo "test-deps: installing$need" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
else
	echo "test-deps: please install:$need" >&2
	exit 1
fi
