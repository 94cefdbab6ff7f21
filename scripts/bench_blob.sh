#!/bin/sh
# scripts/bench_blob.sh [BUILD_DIR] [ROUNDS] [SIZES_MIB...]
#
# The raw blob routes of `verso serve` on loopback: for each size, the time
# of a raw PUT and a raw GET (curl, to and from files), and the growth of
# the server's peak RSS (VmHWM) over each; then, as the baseline, the same
# value as JSON (GET /files/1: base64 in the row's object). One fresh server
# per size, ROUNDS rounds each (medians printed). Needs curl, sqlite3.
set -eu
build=${1:-build}
rounds=${2:-3}
shift 2 2>/dev/null || shift $#
sizes=${*:-64 256}
verso=$(cd "$build" && pwd)/verso
tmp=$(mktemp -d)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
pid=

hwm() { sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

printf 'max-body 1073741824\n' > "$tmp/verso.conf"
for mib in $sizes; do
    rm -f "$tmp/b.db"*
    sqlite3 "$tmp/b.db" "CREATE TABLE files(id INTEGER PRIMARY KEY, version INTEGER, name TEXT, data BLOB);
                         INSERT INTO files(id, name) VALUES (1, 'one');"
    "$verso" track "$tmp/b.db" files > /dev/null
    head -c $((mib * 1048576)) /dev/urandom > "$tmp/in.bin"
    rm -f "$tmp/url"
    "$verso" serve "$tmp/b.db" --port 0 --quiet --config "$tmp/verso.conf" > "$tmp/url" &
    pid=$!
    while ! [ -s "$tmp/url" ]; do sleep 0.05; done # the first line is the URL
    url=$(sed 's:/*$::' "$tmp/url")
    base=$(hwm)
    : > "$tmp/put"; : > "$tmp/get"; : > "$tmp/json"
    for r in $(seq "$rounds"); do
        curl -s -o /dev/null -w '%{time_total}\n' -X PUT --data-binary @"$tmp/in.bin" \
            "$url/files/1/data" >> "$tmp/put"
        after_put=$(hwm)
        curl -s -o "$tmp/out.bin" -w '%{time_total}\n' "$url/files/1/data" >> "$tmp/get"
        after_get=$(hwm)
        cmp -s "$tmp/in.bin" "$tmp/out.bin" || { echo "GET returned other bytes" >&2; exit 1; }
    done
    for r in $(seq "$rounds"); do
        curl -s -o /dev/null -w '%{time_total}\n' "$url/files/1" >> "$tmp/json"
    done
    after_json=$(hwm)
    put=$(median < "$tmp/put"); get=$(median < "$tmp/get"); json=$(median < "$tmp/json")
    awk -v m="$mib" -v p="$put" -v g="$get" -v j="$json" -v b="$base" -v ap="$after_put" \
        -v ag="$after_get" -v aj="$after_json" 'BEGIN {
        printf "%d MiB: raw PUT %.0f MB/s, raw GET %.0f MB/s, JSON GET (base64) %.0f MB/s of value\n",
               m, m * 1.048576 / p, m * 1.048576 / g, m * 1.048576 / j
        printf "        VmHWM %d kB at start; +%d kB after the PUTs, +%d kB after the GETs, +%d kB after the JSON GETs\n",
               b, ap - b, ag - b, aj - b }'
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
done
