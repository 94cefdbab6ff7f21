#!/usr/bin/env bash
# verso replication against PostgreSQL 15 logical replication, measured the
# same way in one run (tests/bench/vs_pg_bench.c; definitions and figures in
# docs/perf-pgbench.md). Starts two PostgreSQL clusters (publisher with
# wal_level=logical and synchronous_commit=on, subscriber with
# synchronous_commit=off) on free ports of 127.0.0.1 in a temporary
# directory, as the current user or, for root, as `postgres`; builds the
# driver and `verso`; prints "name value" lines; removes everything at exit.
#
# usage: scripts/bench_vs_pg.sh [--install] [--rounds N] [--rows N] [--seconds S]
#        [--lag-seconds S] [--parts bootstrap,lag,sustained]
#   --install  apt-get install PostgreSQL 15 and libpq when missing
#   BUILD=dir selects the build directory (default build); KEEP_TMP=1 keeps
#   the temporary directory (cluster logs) instead of removing it
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PGBIN=/usr/lib/postgresql/15/bin
ROUNDS=3 ROWS=1000000 SECONDS_=10 LAG_SECONDS=5 PARTS=bootstrap,lag,sustained INSTALL=0

usage() {
    sed -n 's/^# \{0,1\}//;10,14p' "$0" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case $1 in
    --install) INSTALL=1; shift; continue ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --rows) ROWS=${2:?}; shift 2 ;;
    --seconds) SECONDS_=${2:?}; shift 2 ;;
    --lag-seconds) LAG_SECONDS=${2:?}; shift 2 ;;
    --parts) PARTS=${2:?}; shift 2 ;;
    *) usage ;;
    esac
done
for n in "$ROUNDS" "$ROWS" "$SECONDS_" "$LAG_SECONDS"; do
    case $n in '' | *[!0-9]*) usage ;; esac
done

if [ "$INSTALL" = 1 ] && { [ ! -x "$PGBIN/initdb" ] || ! pkg-config --exists libpq; }; then
    SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y postgresql-15 postgresql-client-15 libpq-dev
fi
if [ ! -x "$PGBIN/initdb" ] || ! pkg-config --exists libpq; then
    echo "bench_vs_pg.sh: needs PostgreSQL 15 ($PGBIN) and libpq-dev; run with --install" >&2
    exit 1
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVERSO_BUILD_BENCH=ON \
    -DVERSO_BENCH_PG=ON >/dev/null
cmake --build "$BUILD" -j2 --target vs_pg_bench verso_cli >/dev/null

TMP=$(mktemp -d "${TMPDIR:-/tmp}/verso-vs-pg.XXXXXX")
AS=()
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$TMP"
    AS=(runuser -u postgres --)
fi
STARTED=()

cleanup() {
    local rc=$?
    if [ -n "${DRIVER:-}" ]; then
        kill "$DRIVER" 2>/dev/null || true
        wait "$DRIVER" 2>/dev/null || true
    fi
    for d in "${STARTED[@]}"; do
        "${AS[@]}" "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    done
    if [ -n "${KEEP_TMP:-}" ]; then echo "bench_vs_pg.sh: kept $TMP" >&2; else rm -rf "$TMP"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A port of 127.0.0.1 nothing listens on.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$((20000 + RANDOM % 30000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

# cluster NAME SYNCHRONOUS_COMMIT -> its port on stdout
cluster() {
    local d=$TMP/$1 port
    "${AS[@]}" "$PGBIN/initdb" -D "$d" -U postgres --auth=trust -E UTF8 --no-sync >"$TMP/$1-initdb.log" 2>&1
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        cat >>"$d/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$TMP'
wal_level = logical
synchronous_commit = $2
fsync = on
max_wal_senders = 10
max_replication_slots = 10
max_logical_replication_workers = 8
max_worker_processes = 16
# the launcher starts at most one worker per this interval (default 5 s):
# a subscription created soon after another would wait for it
wal_retrieve_retry_interval = 100ms
log_line_prefix = '%m [%p] '
EOF
        if "${AS[@]}" "$PGBIN/pg_ctl" -D "$d" -l "$TMP/$1.log" -w -t 60 start >/dev/null; then
            "$PGBIN/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres \
                -c "CREATE DATABASE bench" >/dev/null
            echo "$port"
            return 0
        fi
    done
    echo "bench_vs_pg.sh: could not start the $1 cluster (see $TMP/$1.log)" >&2
    cat "$TMP/$1.log" >&2 || true
    return 1
}

STARTED+=("$TMP/pub" "$TMP/sub") # stopping one that never started is harmless
PUB_PORT=$(cluster pub on)
SUB_PORT=$(cluster sub off)
mkdir -p "$TMP/verso"

# bounded: setup, then per round 4 sustained runs (+ drains) and the rest
LIMIT=$((600 + ROUNDS * (8 * SECONDS_ + 4 * LAG_SECONDS + 300)))
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);" \
    "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), verso $(git rev-parse --short HEAD)"
# in the background, so that a signal to this script runs the cleanup at once
timeout --signal=TERM --kill-after=10 "$LIMIT" "$BUILD/bench/vs_pg_bench" \
    --pub "host=127.0.0.1 port=$PUB_PORT user=postgres dbname=bench" \
    --sub "host=127.0.0.1 port=$SUB_PORT user=postgres dbname=bench" \
    --verso "$BUILD/verso" --dir "$TMP/verso" \
    --rounds "$ROUNDS" --rows "$ROWS" --seconds "$SECONDS_" --lag-seconds "$LAG_SECONDS" \
    --parts "$PARTS" &
DRIVER=$!
wait "$DRIVER"
