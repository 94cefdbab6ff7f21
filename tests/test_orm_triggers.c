/* SQL triggers of the user on tracked tables fire for ORM writes as they do
 * for the sqlite3 shell; versions and tombstones stay unique; replication
 * apply fires none. */
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
#include "verso/advanced.h"

static char path[1024];

static verso_db *open_items(const char *tag)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    snprintf(path, sizeof path, "%s", orm_tmp_path(tag));
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

/* SQL run by another connection, as another program would. */
static void other(const char *sql)
{
    sqlite3 *sq = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &sq), SQLITE_OK);
    if (sqlite3_exec(sq, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("%s: %s", sql, err ? err : "?");
    sqlite3_close(sq);
}

static int64_t scalar(verso_db *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(verso_db_sqlite(db), sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static int64_t head(verso_db *db)
{
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    return info.head;
}

/* Every version handed out (rows of every tracked table, tombstones) is
 * unique and <= head, and the feed returns them strictly increasing. */
static void check_versions(verso_db *db, const char *rows_sql)
{
    char sql[1024];
    snprintf(sql, sizeof sql,
             "SELECT count(*) - count(DISTINCT v) FROM (%s UNION ALL "
             "SELECT version AS v FROM _verso_tombstones)",
             rows_sql);
    assert_int_equal(scalar(db, sql), 0);
    snprintf(sql, sizeof sql,
             "SELECT coalesce(max(v), 0) FROM (%s UNION ALL "
             "SELECT version AS v FROM _verso_tombstones)",
             rows_sql);
    assert_true(scalar(db, sql) <= head(db));
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    const verso_feed_entry *e;
    int64_t last = 0;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    while (verso_feed_next(&e, f) == 1) {
        assert_true(e->version > last);
        last = e->version;
    }
    assert_int_equal(verso_feed_cursor(f), head(db));
    verso_feed_close(f);
}

static void test_abort_trigger_stops_orm_writes(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_abort");
    other("CREATE TRIGGER item_guard BEFORE INSERT ON item WHEN NEW.qty < 0 "
          "BEGIN SELECT RAISE(ABORT, 'negative qty'); END;"
          "CREATE TRIGGER item_guard_upd BEFORE UPDATE ON item WHEN NEW.qty < 0 "
          "BEGIN SELECT RAISE(ABORT, 'negative qty'); END;");

    orm_item bad = {.name = "bad", .qty = -1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &bad), VERSO_ECONSTRAINT);
    assert_non_null(strstr(verso_db_errmsg(db), "negative qty"));
    const char *cols[] = {"name", "qty"};
    verso_value vals[] = {VERSO_VALUE_TEXT("bad"), VERSO_VALUE_INT(-5)};
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", cols, vals, 2), VERSO_ECONSTRAINT);
    assert_int_equal(scalar(db, "SELECT count(*) FROM item"), 0);
    assert_int_equal(head(db), 0);

    /* inside a transaction: the failed insert is undone, the others stay */
    orm_item a = {.name = "a", .qty = 1}, b = {.name = "b", .qty = 2};
    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &bad), VERSO_ECONSTRAINT);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(verso_db_commit(db), 0);
    assert_true(b.version > a.version);
    assert_int_equal(scalar(db, "SELECT count(*) FROM item"), 2);

    a.qty = -3;
    assert_int_equal(verso_record_update(db, &orm_item_def, &a, 0), VERSO_ECONSTRAINT);
    assert_int_equal(scalar(db, "SELECT qty FROM item WHERE name = 'a'"), 1);
    verso_value neg = VERSO_VALUE_INT(-4);
    assert_int_equal(verso_row_update(NULL, db, "item", b.id, &cols[1], &neg, 1, 0),
                     VERSO_ECONSTRAINT);
    assert_int_equal(scalar(db, "SELECT qty FROM item WHERE name = 'b'"), 2);
    check_versions(db, "SELECT version AS v FROM item");
    verso_db_close(db);
}

static void test_audit_trigger_fires_for_orm_writes(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_audit");
    other("CREATE TABLE audit(op TEXT, item_id INTEGER, qty INTEGER);"
          "CREATE TRIGGER item_ai AFTER INSERT ON item BEGIN "
          "INSERT INTO audit VALUES ('I', NEW.id, NEW.qty); END;"
          "CREATE TRIGGER item_au AFTER UPDATE ON item BEGIN "
          "INSERT INTO audit VALUES ('U', NEW.id, NEW.qty); END;"
          "CREATE TRIGGER item_ad AFTER DELETE ON item BEGIN "
          "INSERT INTO audit VALUES ('D', OLD.id, OLD.qty); END;");

    orm_item a = {.name = "a", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    a.qty = 2;
    assert_int_equal(verso_record_update(db, &orm_item_def, &a, 0), 0);
    int64_t id2;
    const char *cols[] = {"name", "qty"};
    verso_value vals[] = {VERSO_VALUE_TEXT("b"), VERSO_VALUE_INT(7)};
    assert_int_equal(verso_row_insert(&id2, NULL, db, "item", cols, vals, 2), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(verso_row_delete(db, "item", id2, 0), 0);

    assert_int_equal(scalar(db, "SELECT count(*) FROM audit"), 5);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(verso_db_sqlite(db),
                                        "SELECT group_concat(op || item_id || ':' || qty, ' ') "
                                        "FROM (SELECT * FROM audit ORDER BY rowid)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    char want[128];
    snprintf(want, sizeof want, "I%lld:1 U%lld:2 I%lld:7 D%lld:2 D%lld:7", (long long)a.id,
             (long long)a.id, (long long)id2, (long long)a.id, (long long)id2);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), want);
    sqlite3_finalize(st);

    /* one tombstone per delete, none twice */
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 2);
    assert_int_equal(head(db), 5);
    check_versions(db, "SELECT version AS v FROM item");
    verso_db_close(db);
}

typedef struct seen {
    size_t n;
    verso_change ch[32];
    char tables[32][16];
} seen;

static void hook(verso_db *db, const verso_change *changes, size_t n, void *arg)
{
    seen *s = arg;
    (void)db;
    for (size_t i = 0; i < n && s->n < 32; i++) {
        snprintf(s->tables[s->n], sizeof s->tables[0], "%s", changes[i].table);
        s->ch[s->n++] = changes[i];
    }
}

/* A trigger writing another tracked table takes its versions from the
 * counter too: after the ORM row's version, never the same one. */
static void test_trigger_writing_tracked_table(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_cascade");
    assert_int_equal(verso_db_exec(db, "CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT)"), 0);
    assert_int_equal(verso_db_track(db, "log", NULL), 0);
    other("CREATE TRIGGER item_log_i AFTER INSERT ON item BEGIN "
          "INSERT INTO log(what) VALUES ('ins ' || NEW.name); END;"
          "CREATE TRIGGER item_log_d BEFORE DELETE ON item BEGIN "
          "INSERT INTO log(what) VALUES ('del ' || OLD.name); END;");
    seen s = {0};
    assert_int_equal(verso_db_on_commit(db, hook, &s), 0);

    orm_item a = {.name = "a", .qty = 1}, b = {.name = "b", .qty = 2};
    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    b.qty = 3;
    assert_int_equal(verso_record_update(db, &orm_item_def, &b, 0), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(verso_db_commit(db), 0);

    /* a 1, its log row 2, b 3, its log row 4, b's update 5, a's log row 6
     * (BEFORE DELETE), a's tombstone 7 */
    assert_int_equal(a.version, 1);
    assert_int_equal(b.version, 5);
    assert_int_equal(head(db), 7);
    static const struct {
        const char *table;
        verso_change_kind kind;
    } want[] = {{"item", VERSO_CHANGE_INSERT}, {"log", VERSO_CHANGE_INSERT},
                {"item", VERSO_CHANGE_INSERT}, {"log", VERSO_CHANGE_INSERT},
                {"item", VERSO_CHANGE_UPDATE}, {"log", VERSO_CHANGE_INSERT},
                {"item", VERSO_CHANGE_DELETE}};
    assert_int_equal(s.n, 7);
    for (size_t i = 0; i < s.n; i++) {
        assert_int_equal(s.ch[i].version, (int64_t)i + 1);
        assert_string_equal(s.tables[i], want[i].table);
        assert_int_equal(s.ch[i].kind, want[i].kind);
    }
    assert_int_equal(s.ch[6].id, a.id);
    assert_int_equal(scalar(db, "SELECT version FROM _verso_tombstones WHERE tbl = 'item'"), 7);
    check_versions(db, "SELECT version AS v FROM item UNION ALL SELECT version FROM log");
    verso_db_close(db);
}

/* A trigger made through verso_db_exec inside a transaction binds the writes
 * after it; once dropped, deletes write their tombstones by hand again. */
static void test_trigger_made_and_dropped_through_exec(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_exec");
    orm_item a = {.name = "a", .qty = 1}, b = {.name = "b", .qty = 2}, c = {.name = "c", .qty = 3};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_db_exec(db, "CREATE TRIGGER no_b BEFORE INSERT ON item WHEN NEW.name = "
                                       "'b' BEGIN SELECT RAISE(ABORT, 'no b'); END"),
                     0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), VERSO_ECONSTRAINT);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &c), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 1);

    assert_int_equal(verso_db_exec(db, "DROP TRIGGER no_b"), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, c.id), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, b.id), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 3);
    assert_int_equal(scalar(db, "SELECT count(*) FROM item"), 0);
    check_versions(db, "SELECT version AS v FROM item");
    verso_db_close(db);
}

/* A TEMP trigger made on the handle's own connection (SQLite runs those even
 * with triggers off) counts too: rows it writes to tracked tables get
 * versions. */
static void test_temp_trigger_counts(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_temp");
    assert_int_equal(verso_db_exec(db, "CREATE TABLE log(id INTEGER PRIMARY KEY, what TEXT)"), 0);
    assert_int_equal(verso_db_track(db, "log", NULL), 0);
    assert_int_equal(verso_db_exec(db, "CREATE TEMP TRIGGER item_log AFTER INSERT ON main.item "
                                       "BEGIN INSERT INTO log(what) VALUES (NEW.name); END"),
                     0);
    orm_item a = {.name = "a", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(a.version, 1);
    assert_int_equal(scalar(db, "SELECT count(*) FROM log WHERE version = 2"), 1);
    assert_int_equal(head(db), 2);
    check_versions(db, "SELECT version AS v FROM item UNION ALL SELECT version FROM log");
    verso_db_close(db);
}

/* A rolled-back transaction that made a trigger leaves the handle on the
 * fast path again. */
static void test_rolled_back_trigger_is_forgotten(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_rb");
    orm_item a = {.name = "a", .qty = 1};
    assert_int_equal(verso_db_begin(db), 0);
    assert_int_equal(verso_db_exec(db, "CREATE TRIGGER no_a BEFORE INSERT ON item "
                                       "BEGIN SELECT RAISE(ABORT, 'no'); END"),
                     0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), VERSO_ECONSTRAINT);
    assert_int_equal(verso_db_rollback(db), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 1);
    check_versions(db, "SELECT version AS v FROM item");
    verso_db_close(db);
}

/* Replicated writes fire no trigger of the user (like PostgreSQL's logical
 * replication); the tombstone carries the master's version. */
static void test_apply_fires_no_user_trigger(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_apply");
    const verso_column cols[] = {{"id", VERSO_INT64, VERSO_FIELD_ID},
                                 {"version", VERSO_INT64, VERSO_FIELD_VERSION},
                                 {"name", VERSO_TEXT, 0}};
    assert_int_equal(verso_apply_begin(db, false), 0);
    assert_int_equal(verso_apply_table(db, "rep", cols, 3), 0);
    assert_int_equal(verso_apply_commit(db, "11111111-1111-1111-1111-111111111111", 0), 0);
    other("CREATE TABLE audit(op TEXT, rid INTEGER);"
          "CREATE TRIGGER rep_ai AFTER INSERT ON rep BEGIN INSERT INTO audit VALUES ('I', NEW.id);"
          " END;"
          "CREATE TRIGGER rep_ad AFTER DELETE ON rep BEGIN INSERT INTO audit VALUES ('D', OLD.id);"
          " END;"
          "CREATE TRIGGER item_ai AFTER INSERT ON item BEGIN INSERT INTO audit VALUES ('i', "
          "NEW.id); END;");

    const char *names[] = {"id", "version", "name"};
    verso_value v[] = {VERSO_VALUE_INT(5), VERSO_VALUE_INT(10), VERSO_VALUE_TEXT("x")};
    assert_int_equal(verso_apply_begin(db, false), 0);
    assert_int_equal(verso_apply_upsert(db, "rep", names, v, 3), 0);
    assert_int_equal(verso_apply_delete(db, "rep", 5, 11), 0);
    assert_int_equal(verso_apply_commit(db, "11111111-1111-1111-1111-111111111111", 11), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM audit"), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones WHERE version = 11"), 1);
    assert_int_equal(head(db), 11);

    /* the handle's own writes still fire them */
    orm_item a = {.name = "a", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM audit WHERE op = 'i'"), 1);
    assert_int_equal(a.version, 12);
    verso_db_close(db);
}

/* ON DELETE CASCADE from a tracked parent to a tracked child: SQLite runs
 * the action even with triggers off, so the child rows it deletes must still
 * get tombstones with their own versions. */
static void test_fk_cascade_is_tracked(void **state)
{
    (void)state;
    verso_db *db = open_items("trig_fk");
    assert_int_equal(verso_db_exec(db, "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT);"
                                       "CREATE TABLE child(id INTEGER PRIMARY KEY, pid INTEGER "
                                       "REFERENCES parent(id) ON DELETE CASCADE)"),
                     0);
    assert_int_equal(verso_db_track(db, "parent", NULL), 0);
    assert_int_equal(verso_db_track(db, "child", NULL), 0);
    assert_int_equal(
        sqlite3_exec(verso_db_sqlite(db), "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
    const char *pc[] = {"name"}, *cc[] = {"pid"};
    verso_value pv[] = {VERSO_VALUE_TEXT("p")};
    int64_t pid = 0, c1 = 0, c2 = 0;
    assert_int_equal(verso_row_insert(&pid, NULL, db, "parent", pc, pv, 1), 0);
    verso_value cv[] = {VERSO_VALUE_INT(pid)};
    assert_int_equal(verso_row_insert(&c1, NULL, db, "child", cc, cv, 1), 0);
    assert_int_equal(verso_row_insert(&c2, NULL, db, "child", cc, cv, 1), 0);
    assert_int_equal(verso_row_delete(db, "parent", pid, 0), 0);

    assert_int_equal(scalar(db, "SELECT count(*) FROM child"), 0);
    /* three tombstones: the parent and both children, each its own version */
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 3);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones WHERE tbl = 'child'"), 2);
    assert_int_equal(head(db), 6);
    check_versions(db, "SELECT version AS v FROM parent UNION ALL SELECT version FROM child");
    verso_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abort_trigger_stops_orm_writes),
        cmocka_unit_test(test_audit_trigger_fires_for_orm_writes),
        cmocka_unit_test(test_trigger_writing_tracked_table),
        cmocka_unit_test(test_trigger_made_and_dropped_through_exec),
        cmocka_unit_test(test_rolled_back_trigger_is_forgotten),
        cmocka_unit_test(test_temp_trigger_counts),
        cmocka_unit_test(test_apply_fires_no_user_trigger),
        cmocka_unit_test(test_fk_cascade_is_tracked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
