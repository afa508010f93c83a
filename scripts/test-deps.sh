#!/bin/sh
# Installs what `make test` needs when it is missing, from Debian/Ubuntu
# packages, saying what and why before it does (with sudo when not root).
# The tests start their own instances of these programs on free loopback
# ports, so a system service a package starts on install is stopped and
# disabled again. Node.js and python3 are used when present.
#
# One line per need: the command that shows it is installed (or several,
# separated by |), the package(s) that provide it, the system services
# they start (or -), and why the tests need it.
set -e
need=""
why=""
services=""
want() {
	for c in $(echo "$1" | tr '|' ' '); do
		command -v "$c" >/dev/null 2>&1 && return 0
	done
	need="$need $2"
	why="$why
  $2: $4"
	[ "$3" = - ] || services="$services $3"
}
want redis-server redis-server redis-server "the Redis queue backend's tests start their own redis-server"
want redis-cli redis-tools - "redis-cli --cluster create builds the Redis Cluster of the failover test"
want redis-sentinel redis-sentinel redis-sentinel "the Sentinel failover test starts its own sentinels"
want doveadm "dovecot-imapd dovecot-pop3d" dovecot "the IMAP and POP3 servers are tested against Debian's dovecot"
want "postfix|/usr/sbin/postfix" postfix postfix "the relay's smarthost test starts its own Postfix on a free loopback port"
want rspamd rspamd rspamd "the spam check's tests start their own rspamd"
want "chromium|chromium-browser" chromium - "the dashboard is tested in a headless browser (or set MAILHOOK_CHROMIUM)"

[ -z "$need" ] && exit 0
echo "test-deps: the tests need these Debian packages, which are missing:$why" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if ! command -v apt-get >/dev/null 2>&1; then
	echo "test-deps: no apt-get here; please install:$need" >&2
	echo "test-deps: (without them those tests skip, saying why; MAILHOOK_REQUIRE_ALL=1 makes them fail)" >&2
	exit 1
fi
echo "test-deps: running: ${SUDO:+$SUDO }apt-get update && ${SUDO:+$SUDO }apt-get install -y --no-install-recommends$need" >&2
$SUDO apt-get -o DPkg::Lock::Timeout=900 update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends $need
for s in $services; do
	echo "test-deps: stopping and disabling the $s system service (the tests start their own)" >&2
	if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
		$SUDO systemctl disable --now "$s" || true
	else
		$SUDO service "$s" stop >/dev/null 2>&1 || true
		$SUDO update-rc.d "$s" disable >/dev/null 2>&1 || true
	fi
done
