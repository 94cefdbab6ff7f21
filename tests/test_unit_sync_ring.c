/*
 * The master's ring of encoded segments (sync/ring.c): contiguous
 * segments found by their start, evicted oldest first by count and by
 * bytes, numbered so that a slave part-way through one knows when it went.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "orm/alloc.h"
#include "sync/ring.h"

/* A segment of n messages of len bytes each. */
static verso__ring_msg *msgs_of(size_t n, size_t len, int64_t from, int64_t to)
{
    verso__ring_msg *m = verso__calloc(n, sizeof(*m));

    assert_non_null(m);
    for (size_t i = 0; i < n; i++) {
        assert_non_null(m[i].data = verso__calloc(1, len));
        m[i].len = len;
        m[i].more = i + 1 < n;
        m[i].to = i + 1 < n ? from + 1 + (int64_t)i : to;
    }
    return m;
}

static void add(verso__ring *r, int64_t from, int64_t to, size_t n, size_t len)
{
    assert_int_equal(verso__ring_add(r, from, to, msgs_of(n, len, from, to), n), 0);
}

static void test_find(void **state)
{
    verso__ring r;

    (void)state;
    assert_int_equal(verso__ring_init(&r, 8, 1 << 20), 0);
    assert_null(verso__ring_at(&r, 0));
    add(&r, 10, 20, 2, 100);
    add(&r, 20, 25, 1, 100);
    add(&r, 25, 40, 3, 100);
    assert_int_equal(r.end, 40);
    assert_int_equal(verso__ring_at(&r, 10)->to, 20);
    assert_int_equal(verso__ring_at(&r, 20)->to, 25);
    assert_int_equal(verso__ring_at(&r, 25)->nmsgs, 3);
    assert_null(verso__ring_at(&r, 21)); /* not a boundary */
    assert_null(verso__ring_at(&r, 40)); /* the end: nothing after it yet */
    assert_null(verso__ring_at(&r, 5));
    assert_int_equal(verso__ring_seq(&r, verso__ring_at(&r, 20)->seq)->from, 20);
    /* not contiguous, empty, or going back: refused, the ring unchanged */
    assert_int_equal(verso__ring_add(&r, 41, 50, msgs_of(1, 10, 41, 50), 1), VERSO_EINVAL);
    assert_int_equal(verso__ring_add(&r, 40, 40, msgs_of(1, 10, 40, 40), 1), VERSO_EINVAL);
    assert_int_equal(r.n, 3);
    verso__ring_clear(&r);
    assert_int_equal(r.end, -1);
    assert_null(verso__ring_at(&r, 10));
    add(&r, 100, 101, 1, 10); /* after a clear it restarts anywhere */
    assert_int_equal(verso__ring_at(&r, 100)->to, 101);
    verso__ring_free(&r);
}

static void test_evict(void **state)
{
    verso__ring r;
    uint64_t first;

    (void)state;
    assert_int_equal(verso__ring_init(&r, 4, 1000), 0);
    for (int i = 0; i < 6; i++) /* by count: the last 4 stay */
        add(&r, i * 10, i * 10 + 10, 1, 10);
    assert_int_equal(r.n, 4);
    assert_null(verso__ring_at(&r, 10));
    assert_non_null(verso__ring_at(&r, 20));
    first = verso__ring_at(&r, 20)->seq;
    assert_null(verso__ring_seq(&r, first - 1)); /* a slave part-way through it learns it went */
    add(&r, 60, 70, 2, 400);                     /* by bytes: 800 + 3 x 10 fit, not a fourth */
    assert_int_equal(r.n, 4);
    assert_null(verso__ring_at(&r, 20));
    assert_true(r.bytes <= 1000);
    add(&r, 70, 80, 1, 5000); /* larger than the bound alone: kept, alone */
    assert_int_equal(r.n, 1);
    assert_int_equal(verso__ring_at(&r, 70)->bytes, 5000);
    assert_int_equal(r.bytes, 5000);
    add(&r, 80, 90, 1, 10);
    assert_int_equal(r.n, 1);
    assert_null(verso__ring_at(&r, 70));
    verso__ring_free(&r);
}

/* A segment naming blob versions to fetch is given only while it is the newest. */
static void test_fetches_only_newest(void **state)
{
    verso__ring r;
    verso__ring_msg *m;

    (void)state;
    assert_int_equal(verso__ring_init(&r, 8, 1 << 20), 0);
    add(&r, 10, 20, 1, 10);
    m = msgs_of(2, 10, 20, 30);
    m[1].fetches = true; /* any one of its messages */
    assert_int_equal(verso__ring_add(&r, 20, 30, m, 2), 0);
    assert_true(verso__ring_at(&r, 20)->fetches);
    assert_non_null(verso__ring_at(&r, 20)); /* the newest: the versions it names are current */
    add(&r, 30, 31, 1, 10);
    assert_null(verso__ring_at(&r, 20)); /* a later commit may have changed them */
    assert_non_null(verso__ring_at(&r, 10));
    assert_non_null(verso__ring_at(&r, 30));
    assert_false(verso__ring_at(&r, 30)->fetches);
    verso__ring_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_evict),
        cmocka_unit_test(test_fetches_only_newest),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
