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
#include "verso/advanced.h"

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
    assert_int_equal(verso_db_begin(m), 0);
    for (int i = 0; i < 40; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%d", i);
        orm_item it = {.name = name, .qty = i, .price = i * 0.5, .price_null = i % 4 == 0};
        unsigned char b[2] = {(unsigned char)i, 0};
        it.data = (verso_blob){b, sizeof b};
        assert_int_equal(verso_record_insert(m, &orm_item_def, &it), 0);
    }
    assert_int_equal(verso_db_commit(m), 0);
    assert_int_equal(verso_db_exec(m, "UPDATE item SET qty = qty * 2 WHERE id % 3 = 0"), 0);
    assert_int_equal(verso_db_exec(m, "DELETE FROM item WHERE id % 5 = 0"), 0);
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
    assert_int_equal(verso_db_cursor(&c, s), 0);
    assert_string_equal(c.master, verso_db_identity(m));
    assert_int_equal(c.version, cursor);
    verso_info mi, si;
    assert_int_equal(verso_db_info(&mi, m), 0);
    assert_int_equal(verso_db_info(&si, s), 0);
    assert_int_equal(si.head, mi.head); /* the slave's head is its cursor */
    assert_string_not_equal(si.identity, mi.identity);

    /* more changes, incremental */
    assert_int_equal(verso_db_exec(m, "DELETE FROM item WHERE id = 1; UPDATE item SET name = 'z'"
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
    assert_int_equal(verso_record_insert(s, &orm_item_def, &it), VERSO_EREADONLY);
    const char *cols[] = {"qty"};
    verso_value v = VERSO_VALUE_INT(1);
    assert_int_equal(verso_row_insert(NULL, NULL, s, "item", cols, &v, 1), VERSO_EREADONLY);
    assert_int_equal(verso_row_update(NULL, s, "item", 2, cols, &v, 1, 0), VERSO_EREADONLY);
    assert_int_equal(verso_row_delete(s, "item", 2, 0), VERSO_EREADONLY);
    assert_int_equal(verso_record_delete(s, &orm_item_def, 2), VERSO_EREADONLY);
    /* reads through the struct API still work */
    orm_item got = {0};
    assert_int_equal(verso_record_get(&got, s, &orm_item_def, 2), 0);
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
    assert_int_equal(verso_db_cursor(&c, s), 0);
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

    /* schema mismatch is reported per column (the table has a row) */
    verso_column other[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                            {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                            {"label", VERSO_INT64, 0}};
    const char *names[] = {"id", "version", "label"};
    verso_value row[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(13), VERSO_VALUE_TEXT("x")};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_upsert(s, "thing", names, row, 3), 0);
    assert_int_equal(verso_apply_table(s, "thing", other, 3), VERSO_ESCHEMA);
    assert_non_null(strstr(verso_db_errmsg(s), "label"));
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
    assert_int_equal(verso_record_insert(m2, &orm_item_def, &it), 0);
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
    assert_int_equal(verso_db_open(&r, verso_db_path(s), NULL, NULL, 0), 0);
    assert_int_equal(verso_query_count(&before, r, "item", NULL, 0), 0);
    assert_true(before > 0);
    assert_int_equal(verso_apply_begin(s, true), 0);
    const char *cols[] = {"id", "version", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(1), VERSO_VALUE_INT(5)};
    assert_int_equal(verso_apply_upsert(s, "item", cols, vals, 3), 0);
    assert_int_equal(verso_query_count(&during, r, "item", NULL, 0), 0);
    assert_int_equal(during, before);
    assert_int_equal(verso_apply_commit(s, verso_db_identity(m), 1), 0);
    assert_int_equal(verso_query_count(&after, r, "item", NULL, 0), 0);
    assert_int_equal(after, 1);
    verso_info info;
    assert_int_equal(verso_db_info(&info, r), 0);
    assert_int_equal(info.head, 1);
    assert_int_equal(info.horizon, 0);
    verso_db_close(r);
    verso_db_close(m);
    verso_db_close(s);
}

/* ---- the local table against the master's columns ---- */

typedef struct product {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
    char *note;
} product;

/* The master's product table: name NOT NULL, price text, qty nullable. */
static const verso_column master_product[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                                              {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                                              {"name", VERSO_TEXT, VERSO_FIELD_NOTNULL},
                                              {"price", VERSO_TEXT, 0},
                                              {"qty", VERSO_INT64, 0}};

static verso_db *open_with(const char *tag, const verso_table_def *def)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, orm_tmp_path(tag), &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

/* verso_apply_table's error on db for the master's product columns (the
 * apply transaction is abandoned); "" when it succeeds. */
static const char *product_mismatch(verso_db *db)
{
    static char msg[600];
    assert_int_equal(verso_apply_begin(db, false), 0);
    int rc = verso_apply_table(db, "product", master_product, 5);
    snprintf(msg, sizeof msg, "%s", rc == 0 ? "" : verso_db_errmsg(db));
    if (rc != 0)
        assert_int_equal(rc, VERSO_ESCHEMA);
    assert_int_equal(verso_apply_abort(db), 0);
    assert_int_equal(verso_db_refresh_schema(db), 0);
    assert_false(verso_table_is_replicated(verso_db_table(db, "product")));
    return msg;
}

/* NOT NULL is compared both ways, next to the type of another column. */
static void test_apply_table_names_not_null_differences(void **state)
{
    (void)state;
    static const verso_field fields[] = {
        VERSO_FIELD_ID_OF(product, id),
        VERSO_FIELD_VERSION_OF(product, version),
        VERSO_FIELD(product, name, VERSO_TEXT, 0),
        VERSO_FIELD(product, price, VERSO_DOUBLE, 0),
        VERSO_FIELD(product, qty, VERSO_INT64, VERSO_FIELD_NOTNULL),
    };
    static const verso_table_def def = VERSO_TABLE_DEF("product", product, fields);
    verso_db *s = open_with("notnull", &def);
    assert_string_equal(product_mismatch(s),
                        "table product: column name: NOT NULL on the master, nullable here; "
                        "column price: text on the master, double here; "
                        "column qty: nullable on the master, NOT NULL here");
    verso_db_close(s);
}

/* A column of the local struct the master lacks is a difference, nullable
 * or not (a NOT NULL one would make every upsert fail). */
static void test_apply_table_names_local_extra_columns(void **state)
{
    (void)state;
    static const verso_field nullable[] = {
        VERSO_FIELD_ID_OF(product, id),
        VERSO_FIELD_VERSION_OF(product, version),
        VERSO_FIELD(product, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
        VERSO_FIELD(product, price, VERSO_TEXT, 0),
        VERSO_FIELD(product, qty, VERSO_INT64, 0),
        VERSO_FIELD(product, note, VERSO_TEXT, 0),
    };
    static const verso_field notnull[] = {
        VERSO_FIELD_ID_OF(product, id),
        VERSO_FIELD_VERSION_OF(product, version),
        VERSO_FIELD(product, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
        VERSO_FIELD(product, note, VERSO_TEXT, VERSO_FIELD_NOTNULL),
        VERSO_FIELD(product, price, VERSO_TEXT, 0),
        VERSO_FIELD(product, qty, VERSO_INT64, 0),
    };
    static const verso_table_def def1 = VERSO_TABLE_DEF("product", product, nullable);
    static const verso_table_def def2 = VERSO_TABLE_DEF("product", product, notnull);
    verso_db *s = open_with("extra1", &def1);
    assert_string_equal(product_mismatch(s),
                        "table product: column note exists here but not on the master");
    verso_db_close(s);
    s = open_with("extra2", &def2);
    assert_string_equal(product_mismatch(s),
                        "table product: column note exists here but not on the master");
    verso_db_close(s);
}

/* Key columns: a local id or version under another name is named too (the
 * table holds a row: it is not made again). */
static void test_apply_table_names_key_differences(void **state)
{
    (void)state;
    verso_db *s = open_db("keys", false);
    verso_column local[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                            {"rev", VERSO_INT64, VERSO_FIELD_VERSION},
                            {"name", VERSO_TEXT, VERSO_FIELD_NOTNULL},
                            {"price", VERSO_TEXT, 0},
                            {"qty", VERSO_INT64, 0}};
    const char *names[] = {"id", "rev", "name"};
    verso_value row[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(1), VERSO_VALUE_TEXT("a")};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", local, 5), 0);
    assert_int_equal(verso_apply_upsert(s, "product", names, row, 3), 0);
    assert_int_equal(verso_apply_table(s, "product", master_product, 5), VERSO_ESCHEMA);
    assert_string_equal(verso_db_errmsg(s), "table product: column version: the version on the "
                                            "master, missing here; column rev exists here but not "
                                            "on the master");
    assert_int_equal(verso_apply_abort(s), 0);
    verso_db_close(s);
}

/* A replica without a C declaration follows a master recreated with
 * another schema through a reset: emptied, it is made again from the
 * master's columns; its tombstones of the old master are gone too. */
static void test_reset_rebuilds_undeclared_replica(void **state)
{
    (void)state;
    verso_db *s = open_db("rebuild", false);
    const char *names[] = {"id", "version", "name", "price", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(4), VERSO_VALUE_INT(1), VERSO_VALUE_TEXT("a"),
                          VERSO_VALUE_TEXT("1.5"), VERSO_VALUE_INT(2)};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", master_product, 5), 0);
    assert_int_equal(verso_apply_upsert(s, "product", names, vals, 5), 0);
    assert_int_equal(verso_apply_delete(s, "product", 9, 2), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 2), 0);

    verso_column recreated[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                                {"rev", VERSO_INT64, VERSO_FIELD_VERSION},
                                {"name", VERSO_TEXT, 0},
                                {"price", VERSO_DOUBLE, VERSO_FIELD_NOTNULL}};
    /* with its row, a difference is an error */
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", recreated, 4), VERSO_ESCHEMA);
    assert_int_equal(verso_apply_abort(s), 0);
    assert_int_equal(verso_db_refresh_schema(s), 0);

    assert_int_equal(verso_apply_begin(s, true), 0);
    assert_int_equal(verso_apply_table(s, "product", recreated, 4), 0);
    const char *names2[] = {"id", "rev", "name", "price"};
    verso_value vals2[] = {VERSO_VALUE_INT(7), VERSO_VALUE_INT(1), VERSO_VALUE_NULL,
                           VERSO_VALUE_DOUBLE(2.5)};
    assert_int_equal(verso_apply_upsert(s, "product", names2, vals2, 4), 0);
    assert_int_equal(verso_apply_commit(s, "66666666-2222-3333-4444-555555555555", 1), 0);
    const verso_table *t = verso_db_table(s, "product");
    assert_true(verso_table_is_replicated(t));
    assert_int_equal(verso_table_ncolumns(t), 4);
    assert_string_equal(verso_table_column_at(t, verso_table_version_index(t))->name, "rev");
    assert_int_equal(verso_table_column_at(t, 3)->type, VERSO_DOUBLE);
    assert_true(verso_table_column_at(t, 3)->flags & VERSO_FIELD_NOTNULL);
    verso_feed *f;
    const verso_feed_entry *e;
    assert_int_equal(verso_feed_open(&f, s, NULL), 0);
    assert_int_equal(verso_feed_next(&e, f), 1);
    assert_false(e->deleted);
    assert_int_equal(e->id, 7);
    assert_int_equal(e->version, 1);
    assert_int_equal(verso_feed_next(&e, f), 0);
    verso_feed_close(f);
    verso_db_close(s);
}

/* A table made from the master's columns has its NOT NULL columns, and so
 * does a NOT NULL column the master adds later (existing rows get the
 * value the ORM's migration gives the master's rows). */
static void test_apply_table_keeps_not_null(void **state)
{
    (void)state;
    verso_db *s = open_db("replica_nn", false);
    const char *names[] = {"id", "version", "name", "price", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(4), VERSO_VALUE_INT(1), VERSO_VALUE_TEXT("a"),
                          VERSO_VALUE_TEXT("1.5"), VERSO_VALUE_INT(2)};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", master_product, 5), 0);
    assert_int_equal(verso_apply_upsert(s, "product", names, vals, 5), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 1), 0);
    const verso_table *t = verso_db_table(s, "product");
    assert_true(verso_table_column_at(t, 2)->flags & VERSO_FIELD_NOTNULL);
    assert_false(verso_table_column_at(t, 4)->flags & VERSO_FIELD_NOTNULL);

    verso_column grown[6];
    memcpy(grown, master_product, sizeof master_product);
    grown[5] = (verso_column){"stock", VERSO_INT64, VERSO_FIELD_NOTNULL};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", master_product, 5), 0); /* same: no error */
    assert_int_equal(verso_apply_table(s, "product", grown, 6), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 1), 0);
    t = verso_db_table(s, "product");
    assert_int_equal(verso_table_column_index(t, "stock"), 5);
    assert_true(verso_table_column_at(t, 5)->flags & VERSO_FIELD_NOTNULL);
    int64_t n = -1;
    verso_cond zero = {.column = "stock", .op = VERSO_EQ, .value = VERSO_VALUE_INT(0)};
    assert_int_equal(verso_query_count(&n, s, "product", &zero, 1), 0);
    assert_int_equal(n, 1);
    verso_db_close(s);
}

/* A local struct without a master column follows the master: the column is
 * added; the struct API ignores it. */
static void test_apply_table_adds_columns_to_declared_table(void **state)
{
    (void)state;
    static const verso_field fields[] = {
        VERSO_FIELD_ID_OF(product, id),
        VERSO_FIELD_VERSION_OF(product, version),
        VERSO_FIELD(product, name, VERSO_TEXT, VERSO_FIELD_NOTNULL),
    };
    static const verso_table_def def = VERSO_TABLE_DEF("product", product, fields);
    verso_db *s = open_with("declared_add", &def);
    const char *names[] = {"id", "version", "name", "price", "qty"};
    verso_value vals[] = {VERSO_VALUE_INT(4), VERSO_VALUE_INT(3), VERSO_VALUE_TEXT("a"),
                          VERSO_VALUE_TEXT("1.5"), VERSO_VALUE_INT(2)};
    assert_int_equal(verso_apply_begin(s, false), 0);
    assert_int_equal(verso_apply_table(s, "product", master_product, 5), 0);
    assert_int_equal(verso_apply_upsert(s, "product", names, vals, 5), 0);
    assert_int_equal(verso_apply_commit(s, "11111111-2222-3333-4444-555555555555", 3), 0);
    assert_int_equal(verso_table_ncolumns(verso_db_table(s, "product")), 5);
    product p = {0};
    assert_int_equal(verso_record_get(&p, s, &def, 4), 0);
    assert_string_equal(p.name, "a");
    assert_int_equal(p.version, 3);
    verso_record_clear(&def, &p);
    verso_db_close(s);
}

/* Rows and tombstones written in a declared table before it is first
 * replicated do not survive the first apply; readers see them until the
 * commit; the slave ends equal to the master. */
static void test_first_apply_clears_local_rows(void **state)
{
    (void)state;
    for (int reset = 0; reset < 2; reset++) {
        verso_db *m = open_db("master", true), *s = open_db("slave", true);
        int64_t cursor = 0, n = 0;
        make_history(m);
        for (int i = 0; i < 60; i++) {
            orm_item it = {.name = "local", .qty = 1000 + i};
            assert_int_equal(verso_record_insert(s, &orm_item_def, &it), 0);
        }
        assert_int_equal(verso_db_exec(s, "DELETE FROM item WHERE id > 45"), 0);
        char old_identity[37];
        snprintf(old_identity, sizeof old_identity, "%s", verso_db_identity(s));

        verso_db *r = NULL;
        assert_int_equal(verso_db_open(&r, verso_db_path(s), NULL, NULL, 0), 0);
        assert_int_equal(verso_apply_begin(s, reset), 0);
        verso_column cols[64];
        const verso_table *mt = verso_db_table(m, "item");
        for (size_t i = 0; i < verso_table_ncolumns(mt); i++)
            cols[i] = *verso_table_column_at(mt, i);
        assert_int_equal(verso_apply_table(s, "item", cols, verso_table_ncolumns(mt)), 0);
        assert_int_equal(verso_query_count(&n, r, "item", NULL, 0), 0);
        assert_int_equal(n, 45); /* the old state until the commit */
        assert_int_equal(verso_apply_abort(s), 0);
        verso_db_close(r);

        replicate_reset(s, m, &cursor, 8, reset);
        assert_same(m, s);
        /* its own slaves must notice: the history they may have copied is gone */
        assert_string_not_equal(verso_db_identity(s), old_identity);
        verso_db_close(m);
        verso_db_close(s);
    }
}

/* A slave whose declared table is empty keeps its identity. */
static void test_first_apply_of_empty_table_keeps_identity(void **state)
{
    (void)state;
    verso_db *m = open_db("master", true), *s = open_db("slave", true);
    int64_t cursor = 0;
    char identity[37];
    snprintf(identity, sizeof identity, "%s", verso_db_identity(s));
    make_history(m);
    replicate(s, m, &cursor, 100);
    assert_same(m, s);
    assert_string_equal(verso_db_identity(s), identity);
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
        cmocka_unit_test(test_apply_table_names_not_null_differences),
        cmocka_unit_test(test_apply_table_names_local_extra_columns),
        cmocka_unit_test(test_apply_table_names_key_differences),
        cmocka_unit_test(test_apply_table_keeps_not_null),
        cmocka_unit_test(test_reset_rebuilds_undeclared_replica),
        cmocka_unit_test(test_apply_table_adds_columns_to_declared_table),
        cmocka_unit_test(test_first_apply_clears_local_rows),
        cmocka_unit_test(test_first_apply_of_empty_table_keeps_identity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
