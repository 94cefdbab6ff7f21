/* Foreign keys on a verso connection (docs/orm.md "Foreign keys"):
 * `PRAGMA foreign_keys=ON` through verso_db_exec() takes effect on that
 * connection (SQLite ignores it inside the transaction verso_db_exec runs
 * in), is refused inside an explicit transaction, and the rows an
 * ON DELETE / ON UPDATE action changes get versions and tombstones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/orm_support.h"
#include "verso/orm.h"

static verso_db *open_shop(void)
{
    char why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    if (verso_db_open(&db, orm_tmp_path("fkeys"), &o, why, sizeof why) != 0)
        fail_msg("open: %s", why);
    assert_int_equal(verso_db_exec(db, "CREATE TABLE shelf(id INTEGER PRIMARY KEY, name TEXT);"
                                       "CREATE TABLE item(id INTEGER PRIMARY KEY, name TEXT, "
                                       "shelf INTEGER REFERENCES shelf(id) ON DELETE CASCADE);"
                                       "CREATE TABLE label(id INTEGER PRIMARY KEY, "
                                       "item INTEGER REFERENCES item(id) ON DELETE SET NULL)"),
                     0);
    assert_int_equal(verso_db_track(db, "shelf", NULL), 0);
    assert_int_equal(verso_db_track(db, "item", NULL), 0);
    assert_int_equal(verso_db_track(db, "label", NULL), 0);
    return db;
}

static int64_t scalar(verso_db *db, const char *sql)
{
    sqlite3_stmt *st;
    int64_t v = -1;
    assert_int_equal(sqlite3_prepare_v2(verso_db_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void test_pragma_through_exec_takes_effect(void **state)
{
    (void)state;
    verso_db *db = open_shop();
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 0);
    assert_int_equal(verso_db_exec(db, "PRAGMA foreign_keys=ON"), 0);
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 1);
    /* enforced: a child naming a missing parent is refused */
    assert_int_equal(verso_db_exec(db, "INSERT INTO item(name, shelf) VALUES ('x', 99)"),
                     VERSO_ECONSTRAINT);
    assert_int_equal(verso_db_exec(db, "pragma main.FOREIGN_KEYS = off"), 0);
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO item(name, shelf) VALUES ('x', 99)"), 0);
    /* reading the setting changes nothing */
    assert_int_equal(verso_db_exec(db, "PRAGMA foreign_keys"), 0);
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 0);
    verso_db_close(db);
}

static void test_pragma_in_explicit_transaction_is_refused(void **state)
{
    (void)state;
    verso_db *db = open_shop();
    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_db_exec(db, "PRAGMA foreign_keys=ON"), VERSO_ESTATE);
    assert_non_null(strstr(verso_db_errmsg(db), "outside a transaction"));
    assert_int_equal(verso_db_rollback(db), 0);
    assert_int_equal(scalar(db, "PRAGMA foreign_keys"), 0);
    verso_db_close(db);
}

/* ORM writes on the parent: the child rows the actions change are tracked. */
static void test_cascade_children_get_versions_and_tombstones(void **state)
{
    (void)state;
    verso_db *db = open_shop();
    assert_int_equal(verso_db_exec(db, "PRAGMA foreign_keys=ON"), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO shelf(id, name) VALUES (1, 'top');"
                                       "INSERT INTO item(id, name, shelf) VALUES (10, 'tea', 1);"
                                       "INSERT INTO label(id, item) VALUES (100, 10)"),
                     0);
    int64_t label_v = scalar(db, "SELECT version FROM label WHERE id = 100");
    assert_true(label_v > 0);
    assert_int_equal(verso_row_delete(db, "shelf", 1, 0), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM item"), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones WHERE tbl = 'item' AND "
                                "id = 10"),
                     1);
    assert_int_equal(scalar(db, "SELECT count(*) FROM label WHERE item IS NULL"), 1);
    assert_true(scalar(db, "SELECT version FROM label WHERE id = 100") > label_v);
    verso_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pragma_through_exec_takes_effect),
        cmocka_unit_test(test_pragma_in_explicit_transaction_is_refused),
        cmocka_unit_test(test_cascade_children_get_versions_and_tombstones),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
