/* Replication apply: versions preserved, tombstones with master versions,
 * cursor stored with the data, reset, read-only replicas, cascades. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/orm_support.h"
#include "verso/orm.h"

static verso_db *open_db(const char *tag, bool items)
{
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = items ? tabs : NULL;
    o.ntables = items ? 1 : 0;
    if (verso_db_open(&db, orm_tmp_path(tag), &o) != 0)
        fail_msg("open: %s", verso_open_errmsg());
    return db;
}

/* Copies every change of src since *cursor into dst, in pages of `page`. */
static int replicate_reset(verso_db *dst, verso_db *src, int64_t *cursor, int64_t page, bool reset)
{
    int pages = 0;
    for (;;) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f;
        const verso_feed_entry *e;
        fo.since = *cursor;
        fo.limit = page;
        assert_int_equal(verso_feed_open(&f, src, &fo), 0);
        assert_int_equal(verso_apply_begin(dst, reset && pages == 0), 0);
        while (verso_feed_next(&e, f) == 1) {
            const verso_table *t = e->table;
            if (getenv("ORM_DEBUG"))
                fprintf(stderr, "  entry %lld id %lld del %d\n", (long long)e->version,
                        (long long)e->id, e->deleted);
            if (!verso_db_table(dst, e->table_name) ||
                !verso_table_is_replicated(verso_db_table(dst, e->table_name))) {
                verso_column cols[64];
                for (size_t i = 0; i < verso_table_ncolumns(t); i++)
                    cols[i] = *verso_table_column_at(t, i);
                assert_int_equal(
                    verso_apply_table(dst, e->table_name, cols, verso_table_ncolumns(t)), 0);
            }
            if (e->deleted) {
                assert_int_equal(verso_apply_delete(dst, e->table_name, e->id, e->version), 0);
            } else {
                const char *names[64];
                for (size_t i = 0; i < e->ncolumns; i++)
                    names[i] = verso_table_column_at(t, i)->name;
                assert_int_equal(
                    verso_apply_upsert(dst, e->table_name, names, e->values, e->ncolumns), 0);
            }
        }
        bool more = verso_feed_more(f);
        *cursor = verso_feed_cursor(f);
        if (getenv("ORM_DEBUG"))
            fprintf(stderr, "page since %lld -> cursor %lld more %d head %lld\n",
                    (long long)fo.since, (long long)*cursor, more, (long long)verso_feed_head(f));
        assert_int_equal(verso_apply_commit(dst, verso_feed_identity(f), *cursor), 0);
        verso_feed_close(f);
        pages++;
        if (!more)
            return pages;
    }
}

static int replicate(verso_db *dst, verso_db *src, int64_t *cursor, int64_t page)
{
    return replicate_reset(dst, src, cursor, page, false);
}

/* Both databases hold the same rows with the same versions. */
static void assert_same(verso_db *a, verso_db *b)
{
    verso_feed *fa, *fb;
    const verso_feed_entry *ea, *eb;
    assert_int_equal(verso_feed_open(&fa, a, NULL), 0);
    assert_int_equal(verso_feed_open(&fb, b, NULL), 0);
    for (;;) {
        int ra = verso_feed_next(&ea, fa), rb = verso_feed_next(&eb, fb);
        if (getenv("ORM_DEBUG"))
            fprintf(stderr, "%d %lld %d | %d %lld %d\n", ra, ra == 1 ? (long long)ea->version : 0LL,
                    ra == 1 ? ea->deleted : 0, rb, rb == 1 ? (long long)eb->version : 0LL,
                    rb == 1 ? eb->deleted : 0);
        assert_int_equal(ra, rb);
        if (ra != 1)
            break;
        assert_int_equal(ea->version, eb->version);
        assert_int_equal(ea->id, eb->id);
        assert_int_equal(ea->deleted, eb->deleted);
        assert_string_equal(ea->table_name, eb->table_name);
        assert_int_equal(ea->ncolumns, eb->ncolumns);
        for (size_t i = 0; i < ea->ncolumns; i++) {
            assert_int_equal(ea->values[i].type, eb->values[i].type);
            if (ea->values[i].type == VERSO_TEXT || ea->values[i].type == VERSO_BLOB ||
                ea->values[i].type == VERSO_UUID) {
                assert_int_equal(ea->values[i].u.b.n, eb->values[i].u.b.n);
                assert_memory_equal(ea->values[i].u.b.p, eb->values[i].u.b.p, ea->values[i].u.b.n);
            } else if (ea->values[i].type != VERSO_NULL) {
                assert_memory_equal(&ea->values[i].u, &eb->values[i].u, sizeof(int64_t));
            }
        }
    }
    assert_int_equal(verso_feed_head(fa), verso_feed_head(fb));
    verso_feed_close(fa);
    verso_feed_close(fb);
}

static void make_history(verso_db *m)
{
    assert_int_equal(verso_begin(m), 0);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        orm_item it = {.name = name, .qty = i, .price = i * 0.5, .price_null = i % 4 == 0};
        unsigned char b[2] = {(unsigned char)i, 0};
        it.data = (verso_blob){b, sizeof b};
        assert_int_equal(verso_insert(m, &orm_item_def, &it), 0);
    }
    assert_int_equal(verso_commit(m), 0);
    assert_int_equal(verso_exec(m, "UPDATE item SET qty = qty * 2 WHERE id % 3 = 0"), 0);
    assert_int_equal(verso_exec(m, "DELETE FROM item WHERE id % 5 = 0"), 0);
}

static void test_apply_preserves_versions(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", false);
    int64_t cursor = 0;
    make_history(m);
    assert_true(replicate(s, m, &cursor, 7) > 3);
    assert_same(m, s);

    verso_cursor c;
    assert_int_equal(verso_cursor_get(&c, s), 0);
    assert_string_equal(c.master, verso_db_identity(m));
    assert_int_equal(c.version, cursor);
    verso_info mi, si;
    assert_int_equal(verso_db_info(&mi, m), 0);
    assert_int_equal(verso_db_info(&si, s), 0);
    assert_int_equal(si.head, mi.head); /* the slave's head is its cursor */
    assert_string_not_equal(si.identity, mi.identity);

    /* more changes, incremental */
    assert_int_equal(verso_exec(m, "DELETE FROM item WHERE id = 1; UPDATE item SET name = 'z'"
                                   " WHERE id = 2"),
                     0);
    replicate(s, m, &cursor, 3);
    assert_same(m, s);
    verso_db_close(m);
    verso_db_close(s);
}

static void test_replicated_tables_are_read_only(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", true);
    int64_t cursor = 0;
    make_history(m);
    replicate(s, m, &cursor, 100);
    assert_true(verso_table_is_replicated(verso_db_table(s, "item")));
    orm_item it = {.qty = 1};
    assert_int_equal(verso_insert(s, &orm_item_def, &it), VERSO_EREADONLY);
    const char *cols[] = {"qty"};
    verso_value v = VERSO_VALUE_INT(1);
    assert_int_equal(verso_row_insert(NULL, NULL, s, "item", cols, &v, 1), VERSO_EREADONLY);
    assert_int_equal(verso_row_update(NULL, s, "item", 2, cols, &v, 1, 0), VERSO_EREADONLY);
    assert_int_equal(verso_row_delete(s, "item", 2, 0), VERSO_EREADONLY);
    assert_int_equal(verso_delete(s, &orm_item_def, 2), VERSO_EREADONLY);
    /* reads through the struct API still work */
    orm_item got = {0};
    assert_int_equal(verso_get(&got, s, &orm_item_def, 2), 0);
    verso_record_clear(&orm_item_def, &got);
    verso_db_close(m);
    verso_db_close(s);
}

static void test_abort_keeps_cursor_and_data(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", false);
    int64_t cursor = 0;
    make_history(m);
    replicate(s, m, &cursor, 1000);
    verso_info before;
    assert_int_equal(verso_db_info(&before, s), 0);
    assert_int_equal(verso_apply_begin(s, false), 0);
    const char *cols[] = {"id", "version", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(500), VERSO_VALUE_INT(cursor + 1), VERSO_VALUE_INT(1)};
    assert_int_equal(verso_apply_upsert(s, "item", cols, vals, 3), 0);
    assert_int_equal(verso_apply_delete(s, "item", 2, cursor + 2), 0);
    /* versions must increase */
    assert_int_equal(verso_apply_delete(s, "item", 3, cursor + 2), VERSO_EINVAL);
    assert_int_equal(verso_apply_abort(s), 0);
    verso_info after;
    verso_cursor c;
    assert_int_equal(verso_db_info(&after, s), 0);
    assert_int_equal(after.head, before.head);
    assert_int_equal(verso_cursor_get(&c, s), 0);
    assert_int_equal(c.version, cursor);
    assert_same(m, s);
    assert_int_equal(verso_apply_commit(s, "x", 1), VERSO_ESTATE);
    verso_db_close(m);
    verso_db_close(s);
}

static void test_delete_of_unknown_row_keeps_tombstone(void **state)
{
    (void)state;
    verso_db *s = open_db("slave", false);
    verso_column cols[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                           {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                           {"label", VERSO_TEXT, 0}};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "thing", cols, 3), 0);
    assert_int_equal(verso_apply_delete(s, "thing", 77, 10), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 12), 0);
    verso_feed *f;
    const verso_feed_entry *e;
    assert_int_equal(verso_feed_open(&f, s, NULL), 0);
    assert_int_equal(verso_feed_next(&e, f), 1);
    assert_true(e->deleted);
    assert_int_equal(e->id, 77);
    assert_int_equal(e->version, 10);
    assert_int_equal(verso_feed_next(&e, f), 0);
    assert_int_equal(verso_feed_cursor(f), 12);
    verso_feed_close(f);

    /* schema mismatch is reported per column */
    verso_column other[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                            {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                            {"label", VERSO_INT64, 0}};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "thing", other, 3), VERSO_ESCHEMA);
    assert_non_null(strstr(verso_errmsg(s), "label"));
    /* a new master column is added */
    verso_column more[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                           {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                           {"label", VERSO_TEXT, 0},
                           {"extra", VERSO_DOUBLE, 0}};
    assert_int_equal(verso_apply_table(s, "thing", more, 4), 0);
    assert_int_equal(verso_table_column_index(verso_db_table(s, "thing"), "extra"), 3);
    assert_int_equal(verso_apply_abort(s), 0);
    verso_db_close(s);
}

static void test_reset_and_cascade(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", false), *s2 = open_db("s2", false);
    int64_t cursor = 0, cursor2 = 0;
    make_history(m);
    replicate(s, m, &cursor, 9);
    assert_same(m, s);
    replicate(s2, s, &cursor2, 4); /* cascade: s serves s2 with the master's versions */
    assert_same(m, s2);

    char old_identity[37];
    snprintf(old_identity, sizeof old_identity, "%s", verso_db_identity(s));
    /* a recreated master: full resynchronisation */
    verso_db *m2 = open_db("master2", true);
    orm_item it = {.name = "fresh", .qty = 1};
    assert_int_equal(verso_insert(m2, &orm_item_def, &it), 0);
    cursor = 0;
    replicate_reset(s, m2, &cursor, 1, true);
    assert_same(m2, s);
    /* the reset slave is a new database to its own slaves */
    assert_string_not_equal(verso_db_identity(s), old_identity);
    verso_db_close(m);
    verso_db_close(m2);
    verso_db_close(s);
    verso_db_close(s2);
}

/* During a reset, readers of the slave keep seeing the old rows until the commit. */
static void test_reset_is_atomic_for_readers(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", false);
    int64_t cursor = 0, before, during, after;
    make_history(m);
    replicate(s, m, &cursor, 100);
    verso_db *r = NULL;
    assert_int_equal(verso_db_open(&r, verso_db_path(s), NULL), 0);
    assert_int_equal(verso_count(&before, r, "item", NULL, 0), 0);
    assert_true(before > 0);
    assert_int_equal(verso_apply_begin(s, true), 0);
    const char *cols[] = {"id", "version", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(1), VERSO_VALUE_INT(5)};
    assert_int_equal(verso_apply_upsert(s, "item", cols, vals, 3), 0);
    assert_int_equal(verso_count(&during, r, "item", NULL, 0), 0);
    assert_int_equal(during, before);
    assert_int_equal(verso_apply_commit(s, verso_db_identity(m), 1), 0);
    assert_int_equal(verso_count(&after, r, "item", NULL, 0), 0);
    assert_int_equal(after, 1);
    verso_info info;
    assert_int_equal(verso_db_info(&info, r), 0);
    assert_int_equal(info.head, 1);
    assert_int_equal(info.horizon, 0);
    verso_db_close(r);
    verso_db_close(m);
    verso_db_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply_preserves_versions),
        cmocka_unit_test(test_replicated_tables_are_read_only),
        cmocka_unit_test(test_abort_keeps_cursor_and_data),
        cmocka_unit_test(test_delete_of_unknown_row_keeps_tombstone),
        cmocka_unit_test(test_reset_and_cascade),
        cmocka_unit_test(test_reset_is_atomic_for_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
