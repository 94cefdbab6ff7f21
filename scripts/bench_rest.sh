#!/bin/sh
# Builds and runs the REST benchmark: `GET /items/<id>` and `POST /items` of
# the verso server against a bare libwebsockets server answering a fixed
# ~200-byte body, measured with wrk in the same run. Prints "name value"
# lines (medians of the rounds; ratio_get_vs_bare goal >= 0.5).
# usage: scripts/bench_rest.sh [--duration S] [--rounds N] [--rows N]
#        BUILD=dir selects the build directory (default build).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
if ! command -v wrk >/dev/null 2>&1; then
    echo "bench_rest.sh: wrk is required (apt-get install wrk)" >&2
    exit 1
fi
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j2 --target rest_bench bare_lws_server >/dev/null
exec "$BUILD/bench/rest_bench" "$@"
