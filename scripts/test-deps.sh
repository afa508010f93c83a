#!/bin/sh
# Installs what `make test` needs when it is missing, from Debian/Ubuntu
# packages: redis-server (the Redis backend's tests start their own),
# redis-tools (redis-cli --cluster create builds the tests' Redis Cluster),
# redis-sentinel (the Sentinel failover test; its system service is
# stopped and disabled: tests start their own sentinels on free ports),
# dovecot (the IMAP differential test runs Debian's dovecot beside ours),
# chromium (the dashboard is tested in a real headless browser), postfix
# (the relay's smarthost test starts its own Postfix on a free loopback
# port; the system service is stopped and disabled after install), rspamd
# (the spam check's tests start their own). Run as
# root or with sudo available. Node.js and python3 are used when present.
set -e
need=""
command -v redis-server >/dev/null 2>&1 || need="$need redis-server"
command -v redis-cli >/dev/null 2>&1 || need="$need redis-tools"
command -v redis-sentinel >/dev/null 2>&1 || need="$need redis-sentinel"
command -v doveadm >/dev/null 2>&1 || need="$need dovecot-imapd dovecot-pop3d"
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || need="$need postfix"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need="$need chromium"
command -v rspamd >/dev/null 2>&1 || need="$need rspamd"
[ -z "$need" ] && exit 0
echo "test-deps: installing$need" >&2
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
if command -v apt-get >/dev/null 2>&1; then
	$SUDO apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
	case "$need" in *postfix*)
		# Tests start their own Postfix; the system one must not hold port 25.
		$SUDO systemctl disable --now postfix >/dev/null 2>&1 || $SUDO service postfix stop >/dev/null 2>&1 || true
		$SUDO update-rc.d postfix disable >/dev/null 2>&1 || true ;;
	esac
	# The tests start their own rspamd on a free loopback port; the
	# package's system service is not wanted.
	case "$need" in *rspamd*)
		$SUDO systemctl disable rspamd >/dev/null 2>&1 || true
		$SUDO systemctl stop rspamd >/dev/null 2>&1 || $SUDO service rspamd stop >/dev/null 2>&1 || true ;;
	esac
	case "$need" in *redis-sentinel*)
		# Tests start their own sentinels on free ports.
		$SUDO systemctl disable --now redis-sentinel >/dev/null 2>&1 || $SUDO service redis-sentinel stop >/dev/null 2>&1 || true
		$SUDO update-rc.d redis-sentinel disable >/dev/null 2>&1 || true
	esac
else
	echo "test-deps: please install:$need" >&2
	exit 1
fi
