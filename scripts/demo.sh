#!/bin/sh
# Sets up, builds and runs the verso demo: a master and a live slave on
# embedded SQLite files in a temporary directory; writes go through the
# master's REST API and the slave follows over a WebSocket. Exits by itself.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS" >/dev/null
if [ -x build/samples/demo ]; then
    exec build/samples/demo "$@"
fi
exec build/samples/orm_basics "$@"
