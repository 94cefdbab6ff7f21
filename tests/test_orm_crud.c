/* CRUD on struct tables and generic rows, queries, keyset pagination, errors. */
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

static verso_db *open_items(void)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    int rc = verso_db_open(&db, orm_tmp_path("crud"), &o, open_why, sizeof(open_why));
    if (rc != 0)
        fail_msg("open: %s", open_why);
    return db;
}

static void test_insert_get_roundtrip(void **state)
{
    (void)state;
    verso_db *db = open_items();
    unsigned char bytes[3] = {0, 0xff, 7};
    orm_item it = {
        .name = "widget", .price = 2.5, .qty = 7, .active = true, .data = {bytes, sizeof bytes}};
    for (int i = 0; i < 16; i++)
        it.uid.bytes[i] = (unsigned char)(i * 17);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    assert_true(it.id > 0);
    assert_true(it.version > 0);

    orm_item got = {0};
    assert_int_equal(verso_record_get(&got, db, &orm_item_def, it.id), 0);
    assert_int_equal(got.id, it.id);
    assert_int_equal(got.version, it.version);
    assert_string_equal(got.name, "widget");
    assert_true(got.price == 2.5);
    assert_false(got.price_null);
    assert_int_equal(got.qty, 7);
    assert_true(got.active);
    assert_int_equal(got.data.size, 3);
    assert_memory_equal(got.data.data, bytes, 3);
    assert_memory_equal(got.uid.bytes, it.uid.bytes, 16);
    verso_record_clear(&orm_item_def, &got);
    assert_null(got.name);
    assert_null(got.data.data);

    orm_item missing = {0};
    assert_int_equal(verso_record_get(&missing, db, &orm_item_def, 999), VERSO_ENOTFOUND);
    verso_db_close(db);
}

static void test_nulls_and_explicit_id(void **state)
{
    (void)state;
    verso_db *db = open_items();
    orm_item it = {.id = 42, .price_null = true, .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    assert_int_equal(it.id, 42);
    orm_item got = {0};
    assert_int_equal(verso_record_get(&got, db, &orm_item_def, 42), 0);
    assert_null(got.name);
    assert_true(got.price_null);
    assert_null(got.data.data);
    /* duplicate id: constraint, and nothing changes */
    orm_item dup = {.id = 42, .qty = 2};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &dup), VERSO_ECONSTRAINT);
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.head, it.version);
    verso_record_clear(&orm_item_def, &got);
    verso_db_close(db);
}

static void test_update_mask_and_versions(void **state)
{
    (void)state;
    verso_db *db = open_items();
    orm_item it = {.name = "a", .price = 1, .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    int64_t v1 = it.version;
    it.name = "b";
    it.qty = 99;
    const char *names[] = {"qty"};
    uint64_t mask;
    assert_int_equal(verso_record_mask(&mask, &orm_item_def, names, 1), 0);
    assert_int_equal(verso_record_update(db, &orm_item_def, &it, mask), 0);
    assert_true(it.version > v1);
    orm_item got = {0};
    assert_int_equal(verso_record_get(&got, db, &orm_item_def, it.id), 0);
    assert_string_equal(got.name, "a"); /* not in the mask */
    assert_int_equal(got.qty, 99);
    assert_int_equal(got.version, it.version);
    verso_record_clear(&orm_item_def, &got);

    assert_int_equal(verso_record_update(db, &orm_item_def, &it, 0), 0);
    assert_int_equal(verso_record_get(&got, db, &orm_item_def, it.id), 0);
    assert_string_equal(got.name, "b");
    verso_record_clear(&orm_item_def, &got);

    const char *bad[] = {"nope"};
    assert_int_equal(verso_record_mask(&mask, &orm_item_def, bad, 1), VERSO_EINVAL);
    orm_item ghost = {.id = 12345, .qty = 1};
    assert_int_equal(verso_record_update(db, &orm_item_def, &ghost, 0), VERSO_ENOTFOUND);
    verso_db_close(db);
}

static void test_delete_leaves_tombstone(void **state)
{
    (void)state;
    verso_db *db = open_items();
    orm_item it = {.name = "x", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, it.id), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, it.id), VERSO_ENOTFOUND);
    verso_feed *f;
    const verso_feed_entry *e;
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    assert_int_equal(verso_feed_next(&e, f), 1);
    assert_true(e->deleted);
    assert_int_equal(e->id, it.id);
    assert_int_equal(e->version, it.version + 1);
    assert_string_equal(e->table_name, "item");
    assert_int_equal(verso_feed_next(&e, f), 0);
    assert_int_equal(verso_feed_cursor(f), it.version + 1);
    verso_feed_close(f);
    verso_db_close(db);
}

static void test_generic_rows_and_errors(void **state)
{
    (void)state;
    verso_db *db = open_items();
    const char *cols[] = {"name", "qty", "active"};
    verso_value vals[] = {VERSO_VALUE_TEXT("gen"), VERSO_VALUE_INT(5), VERSO_VALUE_BOOL(1)};
    int64_t id, ver, ver2;
    assert_int_equal(verso_row_insert(&id, &ver, db, "item", cols, vals, 3), 0);
    assert_true(id > 0 && ver > 0);

    assert_int_equal(verso_row_insert(NULL, NULL, db, "nosuch", cols, vals, 3), VERSO_ENOTFOUND);
    const char *badc[] = {"bogus"};
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", badc, vals, 1), VERSO_EINVAL);
    assert_non_null(strstr(verso_db_errmsg(db), "bogus"));
    /* as in SQLite, any storage class goes into any column, but the id takes an integer */
    const char *qtyc[] = {"qty"};
    verso_value txt = VERSO_VALUE_TEXT("seven");
    int64_t tid;
    assert_int_equal(verso_row_insert(&tid, NULL, db, "item", qtyc, &txt, 1), 0);
    assert_int_equal(verso_row_delete(db, "item", tid, 0), 0);
    const char *idc[] = {"id"};
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", idc, &txt, 1), VERSO_ETYPE);
    assert_non_null(strstr(verso_db_errmsg(db), "id"));
    const char *verc[] = {"version"};
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", verc, vals + 1, 1), VERSO_EINVAL);
    const char *uidc[] = {"uid"};
    verso_value baduuid = VERSO_VALUE_TEXT("not-a-uuid");
    baduuid.type = VERSO_UUID; /* typed as a uuid: it must be one */
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", uidc, &baduuid, 1), VERSO_ETYPE);
    verso_value nullqty = VERSO_VALUE_NULL;
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", qtyc, &nullqty, 1),
                     VERSO_ECONSTRAINT);

    verso_value nq = VERSO_VALUE_INT(6);
    assert_int_equal(verso_row_update(&ver2, db, "item", id, qtyc, &nq, 1, ver + 100),
                     VERSO_ECONFLICT);
    assert_int_equal(verso_row_update(&ver2, db, "item", id, qtyc, &nq, 1, ver), 0);
    assert_true(ver2 > ver);
    assert_int_equal(verso_row_update(&ver2, db, "item", 9999, qtyc, &nq, 1, 0), VERSO_ENOTFOUND);
    assert_int_equal(verso_row_delete(db, "item", id, ver), VERSO_ECONFLICT);
    assert_int_equal(verso_row_delete(db, "item", id, ver2), 0);
    assert_int_equal(verso_row_delete(db, "item", id, 0), VERSO_ENOTFOUND);

    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.head, ver2 + 1); /* failed writes used no version */
    verso_db_close(db);
}

static void fill(verso_db *db, int n)
{
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "n%02d", i % 7);
        orm_item it = {.name = (i % 5 == 0) ? NULL : name, .qty = i % 4, .price = i};
        it.price_null = i % 3 == 0;
        assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
}

static void test_query_conditions(void **state)
{
    (void)state;
    verso_db *db = open_items();
    fill(db, 50);
    int64_t n;
    verso_cond c[2] = {{.column = "qty", .op = VERSO_EQ, .value = VERSO_VALUE_INT(2)}};
    assert_int_equal(verso_query_count(&n, db, "item", c, 1), 0);
    assert_int_equal(n, 12);
    c[1] = (verso_cond){.column = "name", .op = VERSO_IS_NULL};
    assert_int_equal(verso_query_count(&n, db, "item", c, 2), 0);
    assert_int_equal(n, 2); /* i in {10, 30} */
    verso_value in[] = {VERSO_VALUE_INT(1), VERSO_VALUE_INT(3)};
    verso_cond ci = {.column = "qty", .op = VERSO_IN, .list = in, .nlist = 2};
    assert_int_equal(verso_query_count(&n, db, "item", &ci, 1), 0);
    assert_int_equal(n, 25);
    verso_cond cl = {.column = "name", .op = VERSO_LIKE, .value = VERSO_VALUE_TEXT("n0%")};
    assert_int_equal(verso_query_count(&n, db, "item", &cl, 1), 0);
    assert_int_equal(n, 40);
    verso_cond bad = {.column = "nope", .op = VERSO_EQ, .value = VERSO_VALUE_INT(1)};
    assert_int_equal(verso_query_count(&n, db, "item", &bad, 1), VERSO_EINVAL);
    assert_non_null(strstr(verso_db_errmsg(db), "nope"));
    assert_int_equal(verso_query_count(&n, db, "zzz", NULL, 0), VERSO_ENOTFOUND);

    verso_query q = VERSO_QUERY_INIT;
    verso_order o = {"price", true};
    const char *sel[] = {"id", "price"};
    q.table = "item";
    q.order = &o;
    q.norder = 1;
    q.columns = sel;
    q.ncolumns = 2;
    q.limit = 3;
    verso_iter *it;
    assert_int_equal(verso_query_open(&it, db, &q), 0);
    assert_int_equal(verso_iter_ncolumns(it), 2);
    assert_string_equal(verso_iter_column_name(it, 1), "price");
    double expect[] = {49, 47, 46}; /* 48 has a NULL price */
    for (int i = 0; i < 3; i++) {
        verso_value v;
        assert_int_equal(verso_iter_next(it), 1);
        assert_int_equal(verso_iter_value(&v, it, 1), 0);
        assert_int_equal(v.type, VERSO_DOUBLE);
        assert_true(v.u.d == expect[i]);
    }
    assert_int_equal(verso_iter_next(it), 0);
    verso_iter_close(it);
    verso_db_close(db);
}

/* Pages through all rows with keyset pagination and checks the order is the
 * same as one unpaged query, with every combination of directions. */
static void keyset_walk(verso_db *db, const verso_order *order, size_t norder)
{
    verso_query q = VERSO_QUERY_INIT;
    q.table = "item";
    q.order = order;
    q.norder = norder;
    int64_t all[200];
    size_t nall = 0;
    verso_iter *it;
    assert_int_equal(verso_query_open(&it, db, &q), 0);
    while (verso_iter_next(it) == 1) {
        verso_value v;
        verso_iter_value(&v, it, 0);
        all[nall++] = v.u.i;
    }
    verso_iter_close(it);

    verso_value after[3];
    char text[3][64];
    size_t seen = 0;
    q.limit = 4;
    q.after = NULL;
    q.nafter = 0;
    for (;;) {
        int got = 0;
        assert_int_equal(verso_query_open(&it, db, &q), 0);
        while (verso_iter_next(it) == 1) {
            verso_value v;
            verso_iter_value(&v, it, 0);
            assert_true(seen < nall);
            assert_int_equal(v.u.i, all[seen]);
            seen++;
            got++;
            for (size_t k = 0; k < norder; k++) {
                int ci = -1;
                for (size_t c = 0; c < verso_iter_ncolumns(it); c++)
                    if (strcmp(verso_iter_column_name(it, c), order[k].column) == 0)
                        ci = (int)c;
                verso_iter_value(&after[k], it, (size_t)ci);
                if (after[k].type == VERSO_TEXT) {
                    memcpy(text[k], after[k].u.b.p, after[k].u.b.n);
                    text[k][after[k].u.b.n] = '\0';
                    after[k].u.b.p = text[k];
                }
            }
            after[norder] = v;
        }
        verso_iter_close(it);
        if (!got)
            break;
        q.after = after;
        q.nafter = norder + 1;
    }
    assert_int_equal(seen, nall);
}

static void test_keyset_pagination(void **state)
{
    (void)state;
    verso_db *db = open_items();
    fill(db, 60);
    for (int a = 0; a < 2; a++) {
        for (int b = 0; b < 2; b++) {
            verso_order o[2] = {{"name", a}, {"price", b}};
            keyset_walk(db, o, 2);
            keyset_walk(db, o, 1);
            keyset_walk(db, o + 1, 1);
        }
    }
    keyset_walk(db, NULL, 0);
    verso_db_close(db);
}

static void test_iter_record(void **state)
{
    (void)state;
    verso_db *db = open_items();
    fill(db, 10);
    verso_query q = VERSO_QUERY_INIT;
    q.table = "item";
    verso_iter *it;
    int n = 0;
    assert_int_equal(verso_query_open(&it, db, &q), 0);
    while (verso_iter_next(it) == 1) {
        orm_item rec = {0};
        assert_int_equal(verso_iter_record(&rec, it, &orm_item_def), 0);
        assert_int_equal(rec.qty, n % 4);
        verso_record_clear(&orm_item_def, &rec);
        n++;
    }
    assert_int_equal(n, 10);
    verso_iter_close(it);
    verso_db_close(db);
}

typedef struct tag {
    int64_t id, version;
    char *label;
} tag;
static const verso_field tag_fields[] = {
    VERSO_FIELD_ID_OF(tag, id), VERSO_FIELD_VERSION_OF(tag, version),
    VERSO_FIELD(tag, label, VERSO_TEXT, VERSO_FIELD_UNIQUE | VERSO_FIELD_NOTNULL)};
static const verso_table_def tag_def = VERSO_TABLE_DEF("tag", tag, tag_fields);

static void test_unique_and_not_null(void **state)
{
    (void)state;
    const verso_table_def *tabs[] = {&tag_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    assert_int_equal(verso_db_open(&db, orm_tmp_path("tag"), &o, NULL, 0), 0);
    tag a = {.label = "red"}, b = {.label = "red"}, c = {.label = NULL};
    assert_int_equal(verso_record_insert(db, &tag_def, &a), 0);
    assert_int_equal(verso_record_insert(db, &tag_def, &b), VERSO_ECONSTRAINT);
    assert_int_equal(verso_record_insert(db, &tag_def, &c), VERSO_ECONSTRAINT);
    tag d = {.label = "blue"};
    assert_int_equal(verso_record_insert(db, &tag_def, &d), 0);
    d.label = "red";
    assert_int_equal(verso_record_update(db, &tag_def, &d, 0), VERSO_ECONSTRAINT);
    assert_int_equal(d.version, a.version + 1); /* unchanged by the failed update */
    orm_item it = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), VERSO_EINVAL); /* not declared */
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.head, d.version);
    verso_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_insert_get_roundtrip),
        cmocka_unit_test(test_nulls_and_explicit_id),
        cmocka_unit_test(test_update_mask_and_versions),
        cmocka_unit_test(test_delete_leaves_tombstone),
        cmocka_unit_test(test_generic_rows_and_errors),
        cmocka_unit_test(test_query_conditions),
        cmocka_unit_test(test_keyset_pagination),
        cmocka_unit_test(test_iter_record),
        cmocka_unit_test(test_unique_and_not_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
