#!/bin/sh
# Installs the Debian 12 packages verso needs to build, test and benchmark.
# Runs apt-get only when something is missing; uses sudo when not root.
set -eu
PKGS="build-essential cmake pkg-config libsqlite3-dev sqlite3 libwebsockets-dev libcjson-dev \
uuid-dev libcmocka-dev libcurl4-openssl-dev libssl-dev openssl curl wrk \
nats-server libnats-dev"
# The fuzzers (scripts/fuzz.sh) need clang and its libFuzzer runtime; without
# them everything else still builds and the test script says it skipped them.
FUZZ_PKGS="clang libclang-rt-14-dev"
# promtool (Debian's prometheus package) checks the /_metrics page in
# tests/test_operate.c; without it that check says it skipped.
OPT_PKGS="prometheus"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
fuzz_missing=""
for p in $FUZZ_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        fuzz_missing="$fuzz_missing $p"
done
opt_missing=""
for p in $OPT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
        opt_missing="$opt_missing $p"
done
[ -z "$missing" ] && [ -z "$fuzz_missing" ] && [ -z "$opt_missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
if [ -n "$missing" ]; then
    echo "setup: installing$missing" >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
if [ -n "$fuzz_missing" ]; then
    echo "setup: installing$fuzz_missing (for the fuzzers)" >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $fuzz_missing ||
        echo "setup: could not install$fuzz_missing: the fuzzers will be skipped" >&2
fi
if [ -n "$opt_missing" ]; then
    echo "setup: installing$opt_missing (promtool, for the metrics check)" >&2
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $opt_missing ||
        echo "setup: could not install$opt_missing: the promtool check will be skipped" >&2
fi
