#!/bin/sh
# Sets up, builds and runs the test suite three times: a normal build, an
# AddressSanitizer + UBSan build, and a ThreadSanitizer build over the
# threaded units (the REST server and replication: test_rest_*, test_sync_*);
# then a 20 s smoke of each libFuzzer harness of tests/fuzz when clang is
# installed (VERSO_FUZZ_SECONDS changes it).
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
JOBS=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure -j "$JOBS")
cmake -S . -B build-asan -DVERSO_SANITIZE=ON -DVERSO_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build-asan -j "$JOBS"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --output-on-failure -j "$JOBS")

# Any ThreadSanitizer report fails: the process stops at the first one
# (exit code 66), and since masters and `verso replicate` run as child
# processes whose output a test may discard, every report also goes to a
# file under build-tsan/tsan-reports; one file there fails the stage.
cmake -S . -B build-tsan -DVERSO_SANITIZE=thread -DVERSO_BUILD_BENCH=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-tsan -j "$JOBS"
reports="$PWD/build-tsan/tsan-reports"
supp="$PWD/tests/tsan.supp"
rm -rf "$reports"
mkdir -p "$reports"
rc=0
(cd build-tsan &&
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
suppressions=$supp log_path=$reports/report" \
    ctest --output-on-failure -j "$JOBS" -R 'test_rest|test_sync|test_dir|test_nats') || rc=$?
for f in "$reports"/report*; do
    [ -e "$f" ] || continue
    echo "ThreadSanitizer: $f" >&2
    cat "$f" >&2
    rc=1
done
[ "$rc" -eq 0 ] || exit "$rc"

# A short smoke of every libFuzzer harness (scripts/fuzz.sh runs one longer).
if command -v clang >/dev/null 2>&1 &&
    printf 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' |
    clang -x c -fsanitize=fuzzer -o /dev/null - >/dev/null 2>&1; then
    for h in tests/fuzz/fuzz_*.c; do
        t=$(basename "$h" .c)
        t=${t#fuzz_}
        echo "fuzz: $t for ${VERSO_FUZZ_SECONDS:-20} s" >&2
        mkdir -p build-fuzz
        ./scripts/fuzz.sh "$t" "${VERSO_FUZZ_SECONDS:-20}" >build-fuzz/"$t".log 2>&1 || {
            tail -40 build-fuzz/"$t".log >&2
            exit 1
        }
    done
else
    echo "fuzz: skipped: clang with libFuzzer is not installed (scripts/setup.sh installs it)" >&2
fi
exit 0
