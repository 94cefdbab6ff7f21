#!/bin/sh
# Runs one libFuzzer harness of tests/fuzz for SECONDS seconds:
#   scripts/fuzz.sh TARGET SECONDS     (TARGET: json_values, ...)
# Builds build-fuzz/ with clang (-DVERSO_FUZZ=ON), starts from the seed
# corpus tests/fuzz/corpus/TARGET and the dictionary tests/fuzz/*.dict, and
# keeps what it finds in build-fuzz/corpus/TARGET. A crash or a broken
# property leaves its input in build-fuzz/ and exits non-zero.
set -eu
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET SECONDS}
seconds=${2:-60}
JOBS=$(nproc 2>/dev/null || echo 2)
CC=clang cmake -S . -B build-fuzz -DVERSO_FUZZ=ON -DVERSO_BUILD_TESTS=OFF \
    -DVERSO_BUILD_BENCH=OFF -DVERSO_BUILD_SAMPLES=OFF -DVERSO_BUILD_CLI=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j "$JOBS" --target "fuzz_$target" >/dev/null
work="build-fuzz/corpus/$target"
mkdir -p "$work"
dict=""
[ -f "tests/fuzz/$target.dict" ] && dict="-dict=tests/fuzz/$target.dict"
[ -z "$dict" ] && [ -f tests/fuzz/json.dict ] && dict="-dict=tests/fuzz/json.dict"
# shellcheck disable=SC2086
UBSAN_OPTIONS=halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
    "build-fuzz/fuzz/fuzz_$target" -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/ $dict "$work" "tests/fuzz/corpus/$target"
