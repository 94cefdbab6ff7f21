/* The change feed: paging through thousands of changes with small limits
 * never skips or repeats; table filters; snapshots; pruning and the horizon. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/orm_support.h"
#include "verso/advanced.h"
#include "verso/orm.h"
#include <sqlite3.h>

typedef struct other {
    int64_t id, version;
    int64_t n;
} other;
static const verso_field other_fields[] = {VERSO_FIELD_ID_OF(other, id),
                                           VERSO_FIELD_VERSION_OF(other, version),
                                           VERSO_FIELD(other, n, VERSO_INT64, 0)};
static const verso_table_def other_def = VERSO_TABLE_DEF("other", other, other_fields);

static verso_db *open_two(const char *path)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def, &other_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 2;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

/* A mixed history over two tables; returns the head. */
static int64_t history(verso_db *db, unsigned seed, int n)
{
    srand(seed);
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < n; i++) {
        int r = rand() % 10;
        if (r < 4) {
            orm_item it = {.qty = i};
            assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
        } else if (r < 7) {
            other o = {.n = i};
            assert_int_equal(verso_record_insert(db, &other_def, &o), 0);
        } else if (r < 9) {
            const char *t = r == 7 ? "item" : "other";
            char sql[128];
            snprintf(sql, sizeof sql, "UPDATE %s SET %s = %d WHERE id = %d", t,
                     r == 7 ? "qty" : "n", i, 1 + rand() % (i + 1));
            assert_int_equal(verso_db_exec(db, sql), 0);
        } else {
            char sql[128];
            snprintf(sql, sizeof sql, "DELETE FROM %s WHERE id = %d", rand() % 2 ? "item" : "other",
                     1 + rand() % (i + 1));
            assert_int_equal(verso_db_exec(db, sql), 0);
        }
    }
    assert_int_equal(verso_db_commit(db), 0);
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    return info.head;
}

typedef struct key {
    char table[8];
    int64_t id, version;
    bool deleted;
} key;

static void key_of(key *k, const verso_feed_entry *e)
{
    snprintf(k->table, sizeof k->table, "%s", e->table_name);
    k->id = e->id;
    k->version = e->version;
    k->deleted = e->deleted;
}

static size_t read_all(key *out, size_t max, verso_db *db, int64_t since, int64_t limit,
                       const char *const *tables, size_t ntables, int *pages)
{
    size_t n = 0;
    *pages = 0;
    for (;;) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f;
        const verso_feed_entry *e;
        fo.since = since;
        fo.limit = limit;
        fo.tables = tables;
        fo.ntables = ntables;
        assert_int_equal(verso_feed_open(&f, db, &fo), 0);
        int64_t got = 0;
        while (verso_feed_next(&e, f) == 1) {
            assert_true(n < max);
            key_of(&out[n], e);
            assert_true(e->version > since);
            assert_true(e->version <= verso_feed_head(f));
            n++;
            got++;
        }
        assert_true(limit <= 0 || got <= limit);
        bool more = verso_feed_more(f);
        int64_t cursor = verso_feed_cursor(f);
        assert_true(cursor >= since || cursor == verso_feed_head(f));
        if (more)
            assert_int_equal(got, limit);
        verso_feed_close(f);
        (*pages)++;
        since = cursor;
        if (!more)
            return n;
    }
}

static void test_paging_never_skips_or_repeats(void **state)
{
    (void)state;
    verso_db *db = open_two(orm_tmp_path("feed"));
    int64_t head = history(db, 7, 3000);
    static key all[4000], paged[4000];
    int pages;
    size_t nall = read_all(all, 4000, db, 0, 0, NULL, 0, &pages);
    assert_int_equal(pages, 1);
    assert_true(nall > 1500);
    for (size_t i = 1; i < nall; i++)
        assert_true(all[i].version > all[i - 1].version);
    assert_int_equal(all[nall - 1].version <= head, 1);

    const int64_t limits[] = {1, 2, 3, 7, 64, 1000};
    for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
        size_t n = read_all(paged, 4000, db, 0, limits[l], NULL, 0, &pages);
        assert_int_equal(n, nall);
        assert_memory_equal(paged, all, nall * sizeof *all);
        assert_true(pages >= (int)(nall / (size_t)limits[l]));
    }

    /* one table: the same stream filtered */
    const char *only[] = {"other", "other"}; /* named twice: read once */
    size_t n = read_all(paged, 4000, db, 0, 5, only, 2, &pages);
    size_t k = 0;
    for (size_t i = 0; i < nall; i++) {
        if (strcmp(all[i].table, "other") != 0)
            continue;
        assert_true(k < n);
        assert_memory_equal(&paged[k], &all[i], sizeof *all);
        k++;
    }
    assert_int_equal(k, n);

    /* since in the middle */
    int64_t mid = all[nall / 2].version;
    n = read_all(paged, 4000, db, mid, 3, NULL, 0, &pages);
    assert_int_equal(n, nall - nall / 2 - 1);

    const char *bad[] = {"nope"};
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    fo.tables = bad;
    fo.ntables = 1;
    assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_ENOTFOUND);
    assert_null(f);
    verso_db_close(db);
}

static void test_snapshot_is_stable(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("snap"));
    verso_db *r = open_two(path), *w = open_two(path);
    history(w, 3, 100);
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    const verso_feed_entry *e;
    fo.limit = 10;
    assert_int_equal(verso_feed_open(&f, r, &fo), 0);
    int64_t head = verso_feed_head(f);
    assert_int_equal(verso_feed_next(&e, f), 1);
    /* a commit on another handle during the read is not seen by it */
    history(w, 4, 50);
    int n = 1;
    while (verso_feed_next(&e, f) == 1) {
        assert_true(e->version <= head);
        n++;
    }
    assert_int_equal(n, 10);
    assert_true(verso_feed_more(f));
    verso_feed_close(f);

    /* the feed refuses to run inside a write transaction */
    assert_int_equal(verso_db_begin(r), 0);
    assert_int_equal(verso_feed_open(&f, r, NULL), VERSO_ESTATE);
    assert_int_equal(verso_db_rollback(r), 0);
    verso_db_close(r);
    verso_db_close(w);
}

static void test_prune_and_horizon(void **state)
{
    (void)state;
    verso_db *db = open_two(orm_tmp_path("prune"));
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < 20; i++) {
        orm_item it = {.qty = i};
        assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(verso_db_exec(db, "DELETE FROM item WHERE id <= 10"), 0); /* versions 21..30 */
    int64_t h;
    assert_int_equal(verso_db_prune_version(&h, db, 25), 0);
    assert_int_equal(h, 25);
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.horizon, 25);

    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    const verso_feed_entry *e;
    fo.since = 24;
    assert_int_equal(verso_feed_open(&f, db, &fo), VERSO_EHORIZON);
    assert_non_null(strstr(verso_db_errmsg(db), "25"));
    fo.since = 25;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    int n = 0;
    while (verso_feed_next(&e, f) == 1) {
        assert_true(e->deleted);
        assert_true(e->version > 25);
        n++;
    }
    assert_int_equal(n, 5);
    verso_feed_close(f);
    /* since 0 is a full read: deletions before the horizon do not matter to it */
    fo.since = 0;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    n = 0;
    while (verso_feed_next(&e, f) == 1)
        n++;
    assert_int_equal(n, 10 + 5);
    verso_feed_close(f);

    /* the horizon never moves back; pruning beyond the head is clamped */
    assert_int_equal(verso_db_prune_version(&h, db, 3), 0);
    assert_int_equal(h, 25);
    assert_int_equal(verso_db_prune_version(&h, db, 1000), 0);
    assert_int_equal(h, 30);

    /* by age: a fresh tombstone is kept with a long max age, pruned with 0 */
    assert_int_equal(verso_db_exec(db, "DELETE FROM item WHERE id = 11"), 0);
    assert_int_equal(verso_db_prune_age(&h, db, 3600 * 1000), 0);
    assert_int_equal(h, 30);
    assert_int_equal(verso_db_exec(db, "UPDATE _verso_tombstones SET at = at - 10000"), 0);
    assert_int_equal(verso_db_prune_age(&h, db, 5000), 0);
    assert_int_equal(h, 31);
    assert_int_equal(verso_db_prune_age(&h, db, -1), VERSO_EINVAL);
    verso_db_close(db);
}

/* Every entry of one read of all tables since `since`, filtered or not, blobs inline or not. */
static size_t read_once(key *out, size_t max, verso_db *db, const char *const *tables, size_t nt,
                        int64_t blob_inline, int *long_blobs)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    const verso_feed_entry *e;
    size_t n = 0;
    fo.tables = tables;
    fo.ntables = nt;
    fo.blob_inline = blob_inline;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    while (verso_feed_next(&e, f) == 1) {
        assert_true(n < max);
        key_of(&out[n], e);
        for (size_t c = 0; c < e->ncolumns; c++)
            if (e->values[c].type == VERSO_BLOB && !e->values[c].u.b.p && e->values[c].u.b.n == 100)
                ++*long_blobs; /* a long blob read as its length only */
        n++;
    }
    verso_feed_close(f);
    return n;
}

static int statements_of(verso_db *db)
{
    int n = 0;
    for (sqlite3_stmt *st = sqlite3_next_stmt(verso_db_sqlite(db), NULL); st;
         st = sqlite3_next_stmt(verso_db_sqlite(db), st))
        n++;
    return n;
}

/*
 * A feed keeps its statements on the handle for the next one (a master reads once per commit,
 * and preparing cost more than the read). Two feeds open at once, filters that change the
 * deletion log's statement, blob masks, and a table altered under the handle must all read as
 * a fresh statement would; and statements must not pile up.
 */
static void test_kept_statements(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("kept"));
    verso_db *db = open_two(path);
    history(db, 11, 400);
    assert_int_equal(verso_db_exec(db, "UPDATE item SET data = randomblob(100) WHERE id = "
                                       "(SELECT min(id) FROM item)"),
                     0);
    static key all[600], got[600], again[600];
    int longs = 0;
    size_t nall = read_once(all, 600, db, NULL, 0, 0, &longs);
    assert_int_equal(longs, 0);
    assert_true(nall > 200);

    /* two at once on one handle: the second shares the first's snapshot, prepares its own */
    verso_feed *f1, *f2;
    const verso_feed_entry *e1, *e2;
    assert_int_equal(verso_feed_open(&f1, db, NULL), 0);
    assert_int_equal(verso_feed_open(&f2, db, NULL), 0);
    size_t k = 0;
    for (;; k++) {
        int r1 = verso_feed_next(&e1, f1), r2 = verso_feed_next(&e2, f2);
        assert_int_equal(r1, r2);
        if (r1 != 1)
            break;
        assert_true(k < nall);
        assert_int_equal(e1->version, all[k].version);
        assert_int_equal(e2->version, all[k].version);
        assert_int_equal(e1->id, e2->id);
    }
    assert_int_equal(k, nall);
    verso_feed_close(f2);
    verso_feed_close(f1);

    /* filters and masks in turn: each read as the first one */
    const char *only[] = {"other"};
    size_t nother = 0;
    for (size_t i = 0; i < nall; i++)
        nother += strcmp(all[i].table, "other") == 0;
    int base = statements_of(db);
    for (int round = 0; round < 50; round++) {
        longs = 0;
        size_t n = read_once(got, 600, db, round % 3 == 1 ? only : NULL, round % 3 == 1,
                             round % 2 ? 16 : 0, &longs);
        assert_int_equal(longs, round % 3 != 1 && round % 2); /* the item's blob, when masked */
        if (round % 3 == 1) {
            assert_int_equal(n, nother);
            for (size_t i = 0; i < n; i++)
                assert_string_equal(got[i].table, "other");
        } else {
            assert_int_equal(n, nall);
            assert_memory_equal(got, all, nall * sizeof *all);
        }
    }
    /* kept: one per table and mask, one deletion-log statement; nothing piles up */
    assert_true(statements_of(db) <= base + 6);

    /* a column added by another handle: the next read has it, with its value */
    verso_db *w = open_two(path);
    assert_int_equal(verso_db_exec(w, "ALTER TABLE other ADD COLUMN extra TEXT DEFAULT 'x'"), 0);
    assert_int_equal(verso_db_exec(w, "UPDATE other SET extra = 'new' WHERE id = (SELECT max(id) "
                                      "FROM other)"),
                     0);
    verso_db_close(w);
    verso_feed *f;
    const verso_feed_entry *e;
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    fo.tables = only;
    fo.ntables = 1;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    int seen_new = 0, n = 0;
    while (verso_feed_next(&e, f) == 1) {
        if (e->deleted)
            continue;
        assert_int_equal(e->ncolumns, 4);
        for (size_t c = 0; c < e->ncolumns; c++)
            if (e->values[c].type == VERSO_TEXT && e->values[c].u.b.n == 3 &&
                memcmp(e->values[c].u.b.p, "new", 3) == 0)
                seen_new++;
        n++;
    }
    verso_feed_close(f);
    assert_int_equal(seen_new, 1);
    assert_true(n >= 1);
    size_t m = read_once(again, 600, db, NULL, 0, 0, &longs);
    assert_true(m >= nall - 1); /* the updated row moved to the head */
    verso_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paging_never_skips_or_repeats),
        cmocka_unit_test(test_snapshot_is_stable),
        cmocka_unit_test(test_prune_and_horizon),
        cmocka_unit_test(test_kept_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
