/*
 * Thousands of seeded random operations (struct and generic writes, raw SQL,
 * deletes, random transactions, some rolled back) against an in-memory
 * model of rows and versions. The change feed is replayed in small pages
 * into a second database with verso_apply_*, every so often and at the end;
 * both databases must equal the model, versions included.
 */
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
#include "verso/advanced.h"

enum { MAXID = 400, OPS = 6000 };

typedef struct mrow {
    bool live;
    int64_t version;
    int64_t qty;
    bool has_name;
    char name[16];
} mrow;

typedef struct model {
    mrow rows[MAXID + 1];
    int64_t head;
} model;

static model m, saved;
static unsigned rng;

static unsigned rnd(unsigned n)
{
    rng = rng * 1103515245u + 12345u;
    return (rng >> 8) % n;
}

static verso_db *open_db(const char *tag, bool items)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = items ? tabs : NULL;
    o.ntables = items ? 1 : 0;
    if (verso_db_open(&db, orm_tmp_path(tag), &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

static int64_t pick_live(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int64_t id = 1 + rnd(MAXID);
        if (m.rows[id].live)
            return id;
    }
    return 0;
}

static int64_t pick_free(void)
{
    for (int tries = 0; tries < 50; tries++) {
        int64_t id = 1 + rnd(MAXID);
        if (!m.rows[id].live)
            return id;
    }
    return 0;
}

static void set_row(int64_t id, int64_t qty, const char *name)
{
    mrow *r = &m.rows[id];
    char copy[16];
    snprintf(copy, sizeof copy, "%s", name ? name : ""); /* name may be r->name */
    r->live = true;
    r->version = ++m.head;
    r->qty = qty;
    r->has_name = name != NULL;
    memcpy(r->name, copy, sizeof copy);
}

static void op_insert(verso_db *db)
{
    int64_t id = pick_free();
    if (!id)
        return;
    char name[16];
    snprintf(name, sizeof name, "n%u", rnd(1000));
    orm_item it = {.id = id, .qty = rnd(100), .name = rnd(4) ? name : NULL, .price_null = true};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    set_row(id, it.qty, it.name);
    assert_int_equal(it.version, m.head);
}

static void op_update(verso_db *db)
{
    int64_t id = pick_live();
    if (!id)
        return;
    orm_item it = {0};
    assert_int_equal(verso_record_get(&it, db, &orm_item_def, id), 0);
    const char *q[] = {"qty"};
    uint64_t mask = 0;
    if (rnd(2))
        assert_int_equal(verso_record_mask(&mask, &orm_item_def, q, 1), 0);
    it.qty = rnd(100);
    assert_int_equal(verso_record_update(db, &orm_item_def, &it, mask), 0);
    set_row(id, it.qty, it.name);
    assert_int_equal(it.version, m.head);
    verso_record_clear(&orm_item_def, &it);
}

static void op_delete(verso_db *db)
{
    int64_t id = pick_live();
    if (!id)
        return;
    if (rnd(2))
        assert_int_equal(verso_record_delete(db, &orm_item_def, id), 0);
    else
        assert_int_equal(verso_row_delete(db, "item", id, m.rows[id].version), 0);
    m.rows[id].live = false;
    m.head++;
}

static void op_generic_update(verso_db *db)
{
    int64_t id = pick_live();
    if (!id)
        return;
    const char *cols[] = {"qty", "name"};
    verso_value vals[] = {VERSO_VALUE_INT(rnd(100)), VERSO_VALUE_NULL};
    int64_t ver;
    if (rnd(3) == 0) {
        assert_int_equal(
            verso_row_update(&ver, db, "item", id, cols, vals, 2, m.rows[id].version + 1),
            VERSO_ECONFLICT);
        return;
    }
    assert_int_equal(verso_row_update(&ver, db, "item", id, cols, vals, 2, m.rows[id].version), 0);
    set_row(id, vals[0].u.i, NULL);
    assert_int_equal(ver, m.head);
}

static void op_raw(verso_db *db)
{
    char sql[160];
    int64_t id;
    switch (rnd(3)) {
    case 0:
        if (!(id = pick_live()))
            return;
        snprintf(sql, sizeof sql, "UPDATE item SET qty = qty + 1 WHERE id = %lld", (long long)id);
        assert_int_equal(verso_db_exec(db, sql), 0);
        set_row(id, m.rows[id].qty + 1, m.rows[id].has_name ? m.rows[id].name : NULL);
        break;
    case 1:
        if (!(id = pick_live()))
            return;
        snprintf(sql, sizeof sql, "DELETE FROM item WHERE id = %lld", (long long)id);
        assert_int_equal(verso_db_exec(db, sql), 0);
        m.rows[id].live = false;
        m.head++;
        break;
    default:
        if (!(id = pick_free()))
            return;
        snprintf(sql, sizeof sql, "INSERT INTO item(id, name, qty) VALUES (%lld, 'raw', 5)",
                 (long long)id);
        assert_int_equal(verso_db_exec(db, sql), 0);
        set_row(id, 5, "raw");
        break;
    }
}

static void op_failing(verso_db *db)
{
    int64_t id = pick_live();
    if (!id)
        return;
    orm_item dup = {.id = id, .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &dup), VERSO_ECONSTRAINT);
}

static void (*const ops[])(verso_db *) = {op_insert,         op_insert, op_insert,
                                          op_update,         op_update, op_delete,
                                          op_generic_update, op_raw,    op_failing};

/* Pulls everything new from src into dst in pages of 1..16 changes. */
static void replicate(verso_db *dst, verso_db *src, int64_t *cursor)
{
    bool more = true;
    while (more) {
        verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
        verso_feed *f;
        const verso_feed_entry *e;
        fo.since = *cursor;
        fo.limit = 1 + rnd(16);
        assert_int_equal(verso_feed_open(&f, src, &fo), 0);
        assert_int_equal(verso_apply_begin(dst, false), 0);
        while (verso_feed_next(&e, f) == 1) {
            const verso_table *dt = verso_db_table(dst, e->table_name);
            if (!dt || !verso_table_is_replicated(dt)) {
                verso_column cols[64];
                for (size_t i = 0; i < verso_table_ncolumns(e->table); i++)
                    cols[i] = *verso_table_column_at(e->table, i);
                assert_int_equal(
                    verso_apply_table(dst, e->table_name, cols, verso_table_ncolumns(e->table)), 0);
            }
            if (e->deleted) {
                assert_int_equal(verso_apply_delete(dst, e->table_name, e->id, e->version), 0);
            } else {
                const char *names[64];
                for (size_t i = 0; i < e->ncolumns; i++)
                    names[i] = verso_table_column_at(e->table, i)->name;
                assert_int_equal(
                    verso_apply_upsert(dst, e->table_name, names, e->values, e->ncolumns), 0);
            }
        }
        more = verso_feed_more(f);
        *cursor = verso_feed_cursor(f);
        assert_int_equal(verso_apply_commit(dst, verso_feed_identity(f), *cursor), 0);
        verso_feed_close(f);
    }
}

/* db holds exactly the model's live rows, with the model's versions and values. */
static void check_model(verso_db *db)
{
    verso_query q = VERSO_QUERY_INIT;
    verso_iter *it;
    const char *cols[] = {"id", "version", "qty", "name"};
    int64_t live = 0, seen = 0;
    q.table = "item";
    q.columns = cols;
    q.ncolumns = 4;
    for (int64_t id = 1; id <= MAXID; id++)
        live += m.rows[id].live;
    assert_int_equal(verso_query_open(&it, db, &q), 0);
    while (verso_iter_next(it) == 1) {
        verso_value v[4];
        for (size_t i = 0; i < 4; i++)
            assert_int_equal(verso_iter_value(&v[i], it, i), 0);
        assert_true(v[0].u.i >= 1 && v[0].u.i <= MAXID);
        const mrow *r = &m.rows[v[0].u.i];
        assert_true(r->live);
        assert_int_equal(v[1].u.i, r->version);
        assert_int_equal(v[2].u.i, r->qty);
        if (r->has_name) {
            assert_int_equal(v[3].type, VERSO_TEXT);
            assert_int_equal(v[3].u.b.n, strlen(r->name));
            assert_memory_equal(v[3].u.b.p, r->name, v[3].u.b.n);
        } else {
            assert_int_equal(v[3].type, VERSO_NULL);
        }
        seen++;
    }
    verso_iter_close(it);
    assert_int_equal(seen, live);
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.head, m.head);
}

/* Same change stream (rows and tombstones, with versions) on both. */
static void check_same_feed(verso_db *a, verso_db *b)
{
    verso_feed *fa, *fb;
    const verso_feed_entry *ea, *eb;
    int n = 0;
    assert_int_equal(verso_feed_open(&fa, a, NULL), 0);
    assert_int_equal(verso_feed_open(&fb, b, NULL), 0);
    for (;;) {
        int ra = verso_feed_next(&ea, fa), rb = verso_feed_next(&eb, fb);
        assert_int_equal(ra, rb);
        if (ra != 1)
            break;
        assert_int_equal(ea->version, eb->version);
        assert_int_equal(ea->id, eb->id);
        assert_int_equal(ea->deleted, eb->deleted);
        n++;
    }
    assert_true(n > 0);
    verso_feed_close(fa);
    verso_feed_close(fb);
}

static void run(unsigned seed)
{
    verso_db *db = open_db("rand", true), *slave = open_db("rslave", false);
    int64_t cursor = 0;
    memset(&m, 0, sizeof m);
    rng = seed;
    int done = 0;
    while (done < OPS) {
        bool txn = rnd(3) != 0;
        if (txn) {
            saved = m;
            assert_int_equal(verso_db_begin(db), 0);
        }
        int n = txn ? 1 + (int)rnd(30) : 1;
        for (int i = 0; i < n; i++, done++)
            ops[rnd(sizeof ops / sizeof ops[0])](db);
        if (txn && rnd(5) == 0) {
            assert_int_equal(verso_db_rollback(db), 0);
            m = saved;
        } else if (txn) {
            assert_int_equal(verso_db_commit(db), 0);
        }
        if (rnd(40) == 0) {
            replicate(slave, db, &cursor);
            check_model(slave);
        }
    }
    check_model(db);
    replicate(slave, db, &cursor);
    check_model(slave);
    assert_int_equal(cursor, m.head);
    check_same_feed(db, slave);
    verso_db_close(db);
    verso_db_close(slave);
}

static void test_random_ops_seed_1(void **state)
{
    (void)state;
    run(1);
}

static void test_random_ops_seed_2(void **state)
{
    (void)state;
    run(20261121);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_ops_seed_1),
        cmocka_unit_test(test_random_ops_seed_2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
