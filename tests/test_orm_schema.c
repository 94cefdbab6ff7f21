/* Table descriptions, migrations, tracking plain tables, the runtime schema. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/orm_support.h"
#include "verso/orm.h"

typedef struct rec {
    int64_t id;
    int64_t ver;
    char *name;
    int64_t n;
    double d;
    bool b;
    bool d_null;
} rec;

static void expect_bad(const verso_field *fields, size_t n, const char *tname, const char *needle)
{
    verso_table_def def = {tname, sizeof(rec), fields, n};
    char why[256];
    assert_int_equal(verso_table_def_check(&def, why, sizeof why), VERSO_ESCHEMA);
    if (!strstr(why, needle))
        fail_msg("reason \"%s\" does not mention \"%s\"", why, needle);
}

static void test_descriptor_errors(void **state)
{
    char open_why[256] = "";
    (void)state;
    verso_field ok[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_VERSION_OF(rec, ver),
                        VERSO_FIELD(rec, name, VERSO_TEXT, 0)};
    verso_table_def good = {"good", sizeof(rec), ok, 3};
    char why[256];
    assert_int_equal(verso_table_def_check(&good, why, sizeof why), 0);

    expect_bad(ok, 3, "bad name", "table name");
    expect_bad(ok, 3, "_hidden", "table name");
    expect_bad(ok, 3, "sqlite_x", "table name");
    expect_bad(ok, 0, "t", "no fields");

    verso_field noid[] = {VERSO_FIELD_VERSION_OF(rec, ver), VERSO_FIELD(rec, n, VERSO_INT64, 0)};
    expect_bad(noid, 2, "t", "0 id fields");
    verso_field twoid[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_ID_OF(rec, n),
                           VERSO_FIELD_VERSION_OF(rec, ver)};
    expect_bad(twoid, 3, "t", "2 id fields");
    verso_field nover[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD(rec, n, VERSO_INT64, 0)};
    expect_bad(nover, 2, "t", "0 version fields");
    verso_field dup[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_VERSION_OF(rec, ver),
                         VERSO_FIELD(rec, n, VERSO_INT64, 0), VERSO_FIELD(rec, n, VERSO_INT64, 0)};
    expect_bad(dup, 4, "t", "duplicate column n");
    verso_field size[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_VERSION_OF(rec, ver),
                          VERSO_FIELD(rec, b, VERSO_INT64, 0)};
    expect_bad(size, 3, "t", "member size");
    verso_field badcol[] = {VERSO_FIELD_ID_OF(rec, id),
                            VERSO_FIELD_VERSION_OF(rec, ver),
                            {"no-dash", VERSO_INT64, offsetof(rec, n), 8, 0, -1}};
    expect_bad(badcol, 3, "t", "no-dash");
    verso_field off[] = {VERSO_FIELD_ID_OF(rec, id),
                         VERSO_FIELD_VERSION_OF(rec, ver),
                         {"far", VERSO_INT64, sizeof(rec), 8, 0, -1}};
    expect_bad(off, 3, "t", "outside");
    verso_field idtype[] = {{"id", VERSO_DOUBLE, offsetof(rec, d), 8, VERSO_FIELD_ID, -1},
                            VERSO_FIELD_VERSION_OF(rec, ver)};
    expect_bad(idtype, 2, "t", "VERSO_INT64");
    verso_field flags[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_VERSION_OF(rec, ver),
                           VERSO_FIELD(rec, n, VERSO_INT64, 0x100)};
    expect_bad(flags, 3, "t", "unknown flags");
    verso_field anyt[] = {VERSO_FIELD_ID_OF(rec, id), VERSO_FIELD_VERSION_OF(rec, ver),
                          VERSO_FIELD(rec, n, VERSO_ANY, 0)};
    expect_bad(anyt, 3, "t", "not a column type");
    assert_int_equal(verso_table_def_check(NULL, why, sizeof why), VERSO_ESCHEMA);

    /* open refuses a bad description with the same reason */
    verso_table_def bad = {"t", sizeof(rec), dup, 4};
    const verso_table_def *tabs[] = {&bad};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    assert_int_equal(verso_db_open(&db, orm_tmp_path("schema"), &o, open_why, sizeof(open_why)),
                     VERSO_ESCHEMA);
    assert_null(db);
    assert_non_null(strstr(open_why, "duplicate column n"));
}

/* Version 1 of a struct, then version 2 with more fields. */
typedef struct v1 {
    int64_t id, version;
    char *name;
} v1;
typedef struct v2 {
    int64_t id, version;
    char *name;
    int64_t qty;
    double price;
    bool price_null;
} v2;
static const verso_field v1_fields[] = {VERSO_FIELD_ID_OF(v1, id),
                                        VERSO_FIELD_VERSION_OF(v1, version),
                                        VERSO_FIELD(v1, name, VERSO_TEXT, 0)};
static const verso_field v2_fields[] = {
    VERSO_FIELD_ID_OF(v2, id), VERSO_FIELD_VERSION_OF(v2, version),
    VERSO_FIELD(v2, name, VERSO_TEXT, 0),
    VERSO_FIELD(v2, qty, VERSO_INT64, VERSO_FIELD_NOTNULL | VERSO_FIELD_INDEX),
    VERSO_FIELD_NULLABLE(v2, price, VERSO_DOUBLE, 0, price_null)};
static const verso_table_def v1_def = VERSO_TABLE_DEF("thing", v1, v1_fields);
static const verso_table_def v2_def = VERSO_TABLE_DEF("thing", v2, v2_fields);

static verso_db *open_with(const char *path, const verso_table_def *def)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = def ? 1 : 0;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

static void test_migration_adds_columns(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("migrate"));
    verso_db *db = open_with(path, &v1_def);
    char identity[37];
    snprintf(identity, sizeof identity, "%s", verso_db_identity(db));
    v1 a = {.name = "old"};
    assert_int_equal(verso_record_insert(db, &v1_def, &a), 0);
    assert_int_equal(verso_table_ncolumns(verso_db_table(db, "thing")), 3);
    verso_db_close(db);

    db = open_with(path, &v2_def);
    const verso_table *t = verso_db_table(db, "thing");
    assert_int_equal(verso_table_ncolumns(t), 5);
    int qi = verso_table_column_index(t, "qty");
    assert_true(qi >= 0);
    assert_int_equal(verso_table_column_at(t, (size_t)qi)->type, VERSO_INT64);
    assert_true(verso_table_column_at(t, (size_t)qi)->flags & VERSO_FIELD_NOTNULL);
    assert_int_equal(verso_table_column_at(t, (size_t)verso_table_column_index(t, "price"))->type,
                     VERSO_DOUBLE);
    assert_string_equal(verso_db_identity(db), identity); /* same database */
    v2 got = {0};
    assert_int_equal(verso_record_get(&got, db, &v2_def, a.id), 0);
    assert_string_equal(got.name, "old");
    assert_int_equal(got.qty, 0);
    assert_true(got.price_null);
    assert_int_equal(got.version, a.version); /* migration does not touch versions */
    verso_record_clear(&v2_def, &got);
    v2 b = {.name = "new", .qty = 3, .price = 1.5};
    assert_int_equal(verso_record_insert(db, &v2_def, &b), 0);
    assert_int_equal(b.version, a.version + 1);
    verso_db_close(db);

    /* reopening with the old struct still works: extra columns are left alone */
    db = open_with(path, &v1_def);
    v1 c = {0};
    assert_int_equal(verso_record_get(&c, db, &v1_def, b.id), 0);
    assert_string_equal(c.name, "new");
    verso_record_clear(&v1_def, &c);
    verso_db_close(db);
}

static void test_incompatible_column_is_refused(void **state)
{
    char open_why[256] = "";
    (void)state;
    const char *path = orm_tmp_path("incompat");
    sqlite3 *sq;
    assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(sq, "CREATE TABLE thing(id INTEGER PRIMARY KEY, name BLOB)", NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(sq);
    const verso_table_def *tabs[] = {&v1_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    assert_int_equal(verso_db_open(&db, path, &o, open_why, sizeof(open_why)), VERSO_ESCHEMA);
    assert_non_null(strstr(open_why, "name"));
}

static void test_track_plain_table(void **state)
{
    (void)state;
    const char *path = orm_tmp_path("track");
    sqlite3 *sq;
    assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
    assert_int_equal(sqlite3_exec(sq,
                                  "CREATE TABLE plain(pid INTEGER PRIMARY KEY, label VARCHAR(20),"
                                  " amount NUMERIC, flag BOOLEAN, stuff, u UUID TEXT);"
                                  "INSERT INTO plain(label) VALUES ('a'), ('b'), ('c');"
                                  "CREATE TABLE nopk(x TEXT);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(sq);
    verso_db *db = open_with(path, NULL);
    assert_int_equal(verso_db_track(db, "missing", NULL), VERSO_ENOTFOUND);
    assert_int_equal(verso_db_track(db, "nopk", NULL), VERSO_ESCHEMA);
    assert_int_equal(verso_db_track(db, "bad name", NULL), VERSO_ESCHEMA);
    assert_int_equal(verso_db_track(db, "plain", "rv"), 0);
    assert_int_equal(verso_db_track(db, "plain", "rv"), 0); /* idempotent */
    const verso_table *t = verso_db_table(db, "plain");
    assert_non_null(t);
    assert_int_equal(verso_table_ncolumns(t), 7);
    assert_string_equal(verso_table_column_at(t, (size_t)verso_table_id_index(t))->name, "pid");
    assert_string_equal(verso_table_column_at(t, (size_t)verso_table_version_index(t))->name, "rv");
    static const struct {
        const char *col;
        verso_type type;
    } types[] = {{"label", VERSO_TEXT},
                 {"amount", VERSO_ANY},
                 {"flag", VERSO_BOOL},
                 {"stuff", VERSO_ANY},
                 {"u", VERSO_UUID}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        assert_int_equal(
            verso_table_column_at(t, (size_t)verso_table_column_index(t, types[i].col))->type,
            types[i].type);
    /* existing rows got one version each */
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_int_equal(info.head, 3);
    int64_t n;
    verso_cond c = {.column = "rv", .op = VERSO_IS_NULL};
    assert_int_equal(verso_query_count(&n, db, "plain", &c, 1), 0);
    assert_int_equal(n, 0);
    verso_db_close(db);
}

static void test_schema_refresh_sees_other_handle(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("refresh"));
    verso_db *a = open_with(path, NULL), *b = open_with(path, NULL);
    assert_int_equal(verso_db_ntables(b), 0);
    assert_int_equal(verso_db_exec(a, "CREATE TABLE late(id INTEGER PRIMARY KEY, x TEXT)"), 0);
    assert_int_equal(verso_db_track(a, "late", NULL), 0);
    /* generic calls on b notice the new table by themselves */
    const char *cols[] = {"x"};
    verso_value v = VERSO_VALUE_TEXT("hi");
    assert_int_equal(verso_row_insert(NULL, NULL, b, "late", cols, &v, 1), 0);
    assert_int_equal(verso_db_ntables(b), 1);
    assert_int_equal(verso_db_refresh_schema(b), 0);
    assert_non_null(verso_db_table(b, "late"));
    assert_null(verso_db_table(b, "nope"));
    assert_null(verso_db_table_at(b, 5));
    verso_db_close(a);
    verso_db_close(b);
}

static void test_readonly_open(void **state)
{
    char open_why[256] = "";
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("ro"));
    verso_db *w = open_with(path, &v1_def);
    v1 a = {.name = "x"};
    assert_int_equal(verso_record_insert(w, &v1_def, &a), 0);
    verso_db_close(w);

    const verso_table_def *tabs[] = {&v1_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    o.readonly = true;
    assert_int_equal(verso_db_open(&db, path, &o, NULL, 0), 0);
    v1 got = {0};
    assert_int_equal(verso_record_get(&got, db, &v1_def, a.id), 0);
    assert_string_equal(got.name, "x");
    verso_record_clear(&v1_def, &got);
    v1 b = {.name = "y"};
    assert_true(verso_record_insert(db, &v1_def, &b) < 0);
    verso_db_close(db);

    o.readonly = false;
    o.must_exist = true;
    assert_true(verso_db_open(&db, orm_tmp_path("nonexistent"), &o, open_why, sizeof(open_why)) <
                0);
    assert_null(db);
    assert_true(strlen(open_why) > 0);
}

static void other_exec(const char *path, const char *sql)
{
    sqlite3 *sq = NULL;
    assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
    assert_int_equal(sqlite3_exec(sq, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(sq);
}

/* A reload keeps the object of a table that did not change (nothing is
 * allocated again), and fixtures reload only when the file's schema changed. */
static void test_reload_keeps_unchanged_tables(void **state)
{
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("reload"));
    verso_db *db = open_with(path, &v1_def);
    const verso_table *t = verso_db_table(db, "thing");
    assert_non_null(t);
    for (int i = 0; i < 3; i++)
        assert_int_equal(verso_db_refresh_schema(db), 0);
    assert_ptr_equal(verso_db_table(db, "thing"), t);

    static const char fixture[] =
        "{\"verso\":1,\"tables\":{\"thing\":[{\"id\":1,\"name\":\"a\"}]}}";
    assert_int_equal(verso_fixture_load(db, fixture, strlen(fixture)), 0);
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_fixture_dump(&b, db, "nothing"), VERSO_ENOTFOUND);
    assert_int_equal(verso_fixture_dump(&b, db, "thing"), 0);
    verso_buf_free(&b);
    assert_ptr_equal(verso_db_table(db, "thing"), t);

    /* a real change gives a new object; the old one stays readable */
    other_exec(path, "ALTER TABLE thing ADD COLUMN extra TEXT");
    assert_int_equal(verso_fixture_load(db, fixture, strlen(fixture)), 0);
    const verso_table *t2 = verso_db_table(db, "thing");
    assert_ptr_not_equal(t2, t);
    assert_true(verso_table_column_index(t2, "extra") >= 0);
    assert_string_equal(verso_table_name(t), "thing");
    verso_db_close(db);
}

/* A plain SQLite file opened read-only says what it is. */
static void test_readonly_plain_file(void **state)
{
    char open_why[256] = "";
    (void)state;
    char path[1024];
    snprintf(path, sizeof path, "%s", orm_tmp_path("plain"));
    other_exec(path, "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT)");
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.readonly = true;
    assert_int_equal(verso_db_open(&db, path, &o, open_why, sizeof(open_why)), VERSO_ESCHEMA);
    assert_null(db);
    assert_non_null(strstr(open_why, "not a verso database"));
    assert_null(strstr(open_why, "no such table"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor_errors),
        cmocka_unit_test(test_migration_adds_columns),
        cmocka_unit_test(test_incompatible_column_is_refused),
        cmocka_unit_test(test_track_plain_table),
        cmocka_unit_test(test_schema_refresh_sees_other_handle),
        cmocka_unit_test(test_readonly_open),
        cmocka_unit_test(test_reload_keeps_unchanged_tables),
        cmocka_unit_test(test_readonly_plain_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
