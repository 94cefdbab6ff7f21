#!/bin/sh
# Installs the Debian 12 packages verso needs to build, test and benchmark.
# Runs apt-get only when something is missing; uses sudo when not root.
set -eu
PKGS="build-essential cmake pkg-config libsqlite3-dev sqlite3 libwebsockets-dev libcjson-dev \
uuid-dev libcmocka-dev libcurl4-openssl-dev libssl-dev openssl curl wrk"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "setup: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
