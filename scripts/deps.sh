#!/bin/sh
# deps.sh - make sure the Debian packages a build needs are installed.
#
# Usage: scripts/deps.sh [build|test|fuzz]...
# Installs what is missing with apt-get when run as root (running
# 'apt-get update' once first, since a fresh machine has no package lists);
# otherwise prints the exact apt-get line and exits 1.
set -eu

pkgs="pkg-config libevent-dev liburing-dev liblmdb-dev libzstd-dev libxxhash-dev libinih-dev libjansson-dev libhiredis-dev libssl-dev"
for what in "$@"; do
	case "$what" in
	build) ;;
	test) pkgs="$pkgs libcmocka-dev python3 redis-server redis-tools openssl" ;;
	fuzz) pkgs="$pkgs clang" ;;
	*) echo "deps.sh: unknown set '$what'" >&2; exit 2 ;;
	esac
done

missing=""
for p in $pkgs; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	case "$st" in
	*"install ok installed"*) ;;
	*) missing="$missing $p" ;;
	esac
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "kvstore needs these Debian packages:$missing" >&2
	echo "install them with:  sudo apt-get update && sudo apt-get install -y$missing" >&2
	exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists: update when an install cannot
# find a package, then try once more.
if ! apt-get install -y -q --no-install-recommends $missing >/dev/null 2>&1; then
	apt-get update -q >/dev/null
	apt-get install -y -q --no-install-recommends $missing
fi
