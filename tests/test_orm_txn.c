/* Transactions, rollback, batch, commit hooks, raw SQL through verso_db_exec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/orm_support.h"
#include "verso/orm.h"
#include "verso/advanced.h"

typedef struct seen {
    int calls;
    size_t n;
    verso_change ch[64];
    char tables[64][16];
} seen;

static void hook(verso_db *db, const verso_change *changes, size_t n, void *arg)
{
    seen *s = arg;
    (void)db;
    s->calls++;
    for (size_t i = 0; i < n && s->n < 64; i++) {
        snprintf(s->tables[s->n], sizeof s->tables[0], "%s", changes[i].table);
        s->ch[s->n++] = changes[i];
    }
}

static verso_db *open_items(void)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, orm_tmp_path("txn"), &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

static int64_t head(verso_db *db)
{
    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    return info.head;
}

static int64_t count(verso_db *db)
{
    int64_t n;
    assert_int_equal(verso_query_count(&n, db, "item", NULL, 0), 0);
    return n;
}

static void test_commit_gives_each_row_a_version(void **state)
{
    (void)state;
    verso_db *db = open_items();
    int64_t h0 = head(db);
    assert_int_equal(verso_db_begin(db), 0);
    assert_true(verso_in_transaction(db));
    assert_int_equal(verso_db_begin(db), VERSO_ESTATE);
    orm_item a = {.qty = 1}, b = {.qty = 2};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(b.version, a.version + 1);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    orm_item c = {.qty = 3};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &c), 0);
    assert_int_equal(c.version, b.version + 2); /* the delete took b + 1 */
    assert_int_equal(verso_db_commit(db), 0);
    assert_false(verso_in_transaction(db));
    assert_int_equal(head(db), h0 + 4);
    assert_int_equal(verso_db_commit(db), VERSO_ESTATE);
    verso_db_close(db);
}

static void test_rollback_leaves_nothing(void **state)
{
    (void)state;
    verso_db *db = open_items();
    seen s = {0};
    assert_int_equal(verso_db_on_commit(db, hook, &s), 0);
    orm_item keep = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &keep), 0);
    int64_t h0 = head(db);
    assert_int_equal(s.calls, 1);

    assert_int_equal(verso_db_begin(db), 0);
    orm_item a = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, keep.id), 0);
    assert_int_equal(verso_db_exec(db, "UPDATE item SET qty = qty + 1"), 0);
    assert_int_equal(verso_db_rollback(db), 0);
    assert_int_equal(s.calls, 1); /* no hook for a rollback */
    assert_int_equal(head(db), h0);
    assert_int_equal(count(db), 1);

    /* the versions of the rolled-back transaction are handed out again,
     * which is fine: nobody could have seen them */
    orm_item b = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(b.version, h0 + 1);

    verso_feed *f;
    const verso_feed_entry *e;
    assert_int_equal(verso_feed_open(&f, db, NULL), 0);
    int n = 0;
    while (verso_feed_next(&e, f) == 1) {
        assert_false(e->deleted);
        n++;
    }
    assert_int_equal(n, 2);
    verso_feed_close(f);
    verso_db_close(db);
}

static int batch_ok(verso_db *db, void *arg)
{
    orm_item *it = arg;
    for (int i = 0; i < 3; i++) {
        it[i].qty = i;
        int rc = verso_record_insert(db, &orm_item_def, &it[i]);
        if (rc < 0)
            return rc;
    }
    return 7;
}

static int batch_fail(verso_db *db, void *arg)
{
    orm_item *it = arg;
    int rc = verso_record_insert(db, &orm_item_def, &it[0]);
    if (rc < 0)
        return rc;
    it[1].id = it[0].id;
    return verso_record_insert(db, &orm_item_def, &it[1]); /* duplicate id */
}

static void test_batch(void **state)
{
    (void)state;
    verso_db *db = open_items();
    orm_item it[3] = {{0}};
    assert_int_equal(verso_db_batch(db, batch_ok, it), 7);
    assert_int_equal(count(db), 3);
    int64_t h = head(db);
    orm_item jt[2] = {{.qty = 1}, {.qty = 2}};
    assert_int_equal(verso_db_batch(db, batch_fail, jt), VERSO_ECONSTRAINT);
    assert_int_equal(count(db), 3);
    assert_int_equal(head(db), h);
    assert_false(verso_in_transaction(db));
    verso_db_close(db);
}

static void test_failed_statement_inside_transaction(void **state)
{
    (void)state;
    verso_db *db = open_items();
    assert_int_equal(verso_db_begin(db), 0);
    orm_item a = {.id = 5, .qty = 1}, dup = {.id = 5, .qty = 2}, b = {.qty = 3};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &dup), VERSO_ECONSTRAINT);
    assert_true(verso_in_transaction(db));
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(b.version, a.version + 1);
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(count(db), 2);
    verso_db_close(db);
}

static void test_hooks_report_changes_in_order(void **state)
{
    (void)state;
    verso_db *db = open_items();
    seen s = {0}, s2 = {0};
    assert_int_equal(verso_db_on_commit(db, NULL, NULL), VERSO_EINVAL);
    assert_int_equal(verso_db_on_commit(db, hook, &s), 0);
    assert_int_equal(verso_db_on_commit(db, hook, &s2), 0);
    assert_int_equal(verso_db_begin(db), 0);
    orm_item a = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    a.qty = 2;
    assert_int_equal(verso_record_update(db, &orm_item_def, &a, 0), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO item(name, qty) VALUES ('raw', 1);"
                                       "UPDATE item SET qty = 9 WHERE name = 'raw'"),
                     0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(s.calls, 0); /* not before the commit */
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s2.calls, 1);
    assert_int_equal(s.n, 4);
    assert_int_equal(s.ch[0].kind, VERSO_CHANGE_INSERT);
    assert_int_equal(s.ch[1].kind, VERSO_CHANGE_UPDATE);
    assert_int_equal(s.ch[2].kind, VERSO_CHANGE_INSERT); /* raw insert + update: one row */
    assert_int_equal(s.ch[3].kind, VERSO_CHANGE_DELETE);
    assert_int_equal(s.ch[3].id, a.id);
    for (size_t i = 0; i < s.n; i++) {
        assert_string_equal(s.tables[i], "item");
        if (i)
            assert_true(s.ch[i].version > s.ch[i - 1].version);
    }
    assert_int_equal(s.ch[3].version, head(db));

    assert_int_equal(verso_db_on_commit_remove(db, hook, &s2), 0);
    assert_int_equal(verso_db_on_commit_remove(db, hook, &s2), VERSO_ENOTFOUND);
    orm_item b = {.qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0); /* autocommit: one hook call */
    assert_int_equal(s.calls, 2);
    assert_int_equal(s2.calls, 1);
    assert_int_equal(s.ch[4].version, b.version);
    verso_db_close(db);
}

static void test_exec_errors_change_nothing(void **state)
{
    (void)state;
    verso_db *db = open_items();
    int64_t h = head(db);
    assert_int_equal(
        verso_db_exec(db, "INSERT INTO item(qty) VALUES (1); INSERT INTO nosuch VALUES (1)"),
        VERSO_EDB);
    assert_int_equal(count(db), 0);
    assert_int_equal(head(db), h);
    assert_int_equal(verso_db_exec(db, "COMMIT"), VERSO_ESTATE);
    assert_int_equal(verso_db_exec(db, "INSERT INTO item(qty) VALUES (1), (2), (3)"), 0);
    assert_int_equal(head(db), h + 3);
    verso_db_close(db);
}

static void test_exec_between_orm_writes(void **state)
{
    (void)state;
    verso_db *db = open_items();
    assert_int_equal(verso_db_begin(db), 0);
    orm_item a = {.qty = 1}, b = {.qty = 2};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    /* the in-memory counter is written back before the triggers run */
    assert_int_equal(verso_db_exec(db, "INSERT INTO item(qty) VALUES (7), (8)"), 0);
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(b.version, a.version + 3);
    assert_int_equal(verso_db_exec(db, "DELETE FROM item WHERE qty = 7"), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, a.id), 0);
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(head(db), a.version + 5);
    verso_feed *f;
    const verso_feed_entry *e;
    int64_t last = 0;
    int n = 0, deleted = 0;
    assert_int_equal(verso_feed_open(&f, db, NULL), 0);
    while (verso_feed_next(&e, f) == 1) {
        assert_true(e->version > last);
        last = e->version;
        deleted += e->deleted;
        n++;
    }
    verso_feed_close(f);
    assert_int_equal(n, 4); /* two rows and two tombstones */
    assert_int_equal(deleted, 2);
    /* triggers are off on the handle again: the ORM still writes one tombstone per delete */
    assert_int_equal(verso_record_delete(db, &orm_item_def, b.id), 0);
    assert_int_equal(head(db), a.version + 6);
    verso_db_close(db);
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

/* Deletes queue their tombstones and write them 32 per statement: all are
 * in place for raw SQL and pruning inside the transaction, at commit, and
 * gone with a rollback. */
static void test_many_deletes_keep_their_tombstones(void **state)
{
    (void)state;
    verso_db *db = open_items();
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < 200; i++) {
        orm_item a = {.name = "x", .qty = i};
        assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    }
    assert_int_equal(verso_db_exec(db, "CREATE TABLE seen(n INTEGER)"), 0);
    assert_int_equal(verso_db_commit(db), 0);

    assert_int_equal(verso_db_begin(db), 0);
    for (int64_t id = 1; id <= 70; id++)
        assert_int_equal(verso_record_delete(db, &orm_item_def, id), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO seen SELECT count(*) FROM _verso_tombstones"),
                     0);
    assert_int_equal(scalar(db, "SELECT n FROM seen"), 70);
    for (int64_t id = 71; id <= 75; id++)
        assert_int_equal(verso_record_delete(db, &orm_item_def, id), 0);
    assert_int_equal(verso_db_rollback(db), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 0);
    assert_int_equal(count(db), 200);

    assert_int_equal(verso_db_begin(db), 0);
    for (int64_t id = 1; id <= 40; id++)
        assert_int_equal(verso_record_delete(db, &orm_item_def, id), 0);
    assert_int_equal(verso_record_delete(db, &orm_item_def, 1), VERSO_ENOTFOUND);
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 40);
    assert_int_equal(scalar(db, "SELECT count(DISTINCT id) FROM _verso_tombstones"), 40);
    assert_int_equal(scalar(db, "SELECT min(version) FROM _verso_tombstones"), 201);
    assert_int_equal(scalar(db, "SELECT max(version) FROM _verso_tombstones"), 240);
    assert_int_equal(head(db), 240);

    /* pruning inside the transaction reaches the queued ones too */
    int64_t horizon;
    assert_int_equal(verso_db_begin(db), 0);
    for (int64_t id = 41; id <= 43; id++)
        assert_int_equal(verso_record_delete(db, &orm_item_def, id), 0);
    assert_int_equal(verso_db_prune_version(&horizon, db, 243), 0);
    assert_int_equal(verso_db_commit(db), 0);
    assert_int_equal(horizon, 243);
    assert_int_equal(scalar(db, "SELECT count(*) FROM _verso_tombstones"), 0);
    verso_db_close(db);
}

/* Busy handler of the handle: the other writer commits while verso_db_begin waits. */
static int commit_other(void *arg, int count)
{
    (void)count;
    return sqlite3_exec(arg, "COMMIT", NULL, NULL, NULL) == SQLITE_OK;
}

/* A schema change committed while verso_db_begin waits for the write lock is
 * seen by the transaction. */
static void test_begin_sees_schema_committed_while_waiting(void **state)
{
    (void)state;
    verso_db *db = open_items();
    sqlite3 *o = NULL;
    assert_int_equal(sqlite3_open(verso_db_path(db), &o), SQLITE_OK);
    assert_int_equal(sqlite3_exec(o, "BEGIN IMMEDIATE; ALTER TABLE item ADD COLUMN extra TEXT",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_busy_handler(verso_db_sqlite(db), commit_other, o);
    assert_int_equal(verso_db_begin(db), 0);
    assert_true(sqlite3_get_autocommit(o)); /* the handler did commit */
    assert_true(verso_table_column_index(verso_db_table(db, "item"), "extra") >= 0);
    const char *cols[] = {"qty", "extra"};
    verso_value vals[] = {VERSO_VALUE_INT(1), VERSO_VALUE_TEXT("x")};
    assert_int_equal(verso_row_insert(NULL, NULL, db, "item", cols, vals, 2), 0);
    assert_int_equal(verso_db_commit(db), 0);
    sqlite3_close(o);
    verso_db_close(db);
}

/* The size of the database file (a checkpoint writes it; commits in WAL mode do not) when the
 * commit hook ran. */
typedef struct file_seen {
    const char *path;
    off_t at_hook;
} file_seen;

static void size_hook(verso_db *db, const verso_change *changes, size_t n, void *arg)
{
    file_seen *s = arg;
    struct stat st;
    (void)db;
    (void)changes;
    (void)n;
    assert_int_equal(stat(s->path, &st), 0);
    s->at_hook = st.st_size;
}

static off_t size_of(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return st.st_size;
}

/*
 * SQLite checkpoints the WAL inside the COMMIT that takes it past 1,000 pages; verso runs that
 * checkpoint after the commit hooks (a master's slaves hear of the commit without waiting for
 * it). The WAL stays bounded all the same, for verso's commits and for SQL it does not track.
 */
static void test_checkpoint_after_hooks(void **state)
{
    (void)state;
    verso_db *db = open_items();
    char path[1024], wal[1100];
    snprintf(path, sizeof path, "%s", sqlite3_db_filename(verso_db_sqlite(db), "main"));
    snprintf(wal, sizeof wal, "%s-wal", path);
    file_seen s = {.path = path};
    assert_int_equal(verso_db_on_commit(db, size_hook, &s), 0);
    int after_hook = 0;
    off_t wal_max = 0;
    for (int i = 0; i < 40; i++) { /* ~100 pages a commit: 4,000 pages in all */
        assert_int_equal(verso_db_begin(db), 0);
        assert_int_equal(verso_db_exec(db, "INSERT INTO item(name, qty, data) VALUES ('big', 1, "
                                           "randomblob(400000))"),
                         0);
        assert_int_equal(verso_db_commit(db), 0);
        after_hook += size_of(path) != s.at_hook; /* checkpointed once the hook had run */
        wal_max = size_of(wal) > wal_max ? size_of(wal) : wal_max;
    }
    assert_true(after_hook >= 2);
    assert_true(wal_max < (off_t)1200 * (4096 + 24) + 32); /* 1,000 pages and one commit */

    /* commits verso does not make checkpoint too */
    assert_int_equal(verso_db_on_commit_remove(db, size_hook, &s), 0);
    off_t db_size = size_of(path);
    for (int i = 0; i < 40; i++)
        assert_int_equal(verso_db_exec(db, "INSERT INTO item(name, qty, data) VALUES ('raw', 1, "
                                           "randomblob(400000))"),
                         0);
    assert_true(size_of(wal) < (off_t)1200 * (4096 + 24) + 32);
    assert_true(size_of(path) > db_size + 2000 * 4096); /* most of it checkpointed */
    assert_int_equal(count(db), 80);
    verso_db_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_gives_each_row_a_version),
        cmocka_unit_test(test_rollback_leaves_nothing),
        cmocka_unit_test(test_batch),
        cmocka_unit_test(test_failed_statement_inside_transaction),
        cmocka_unit_test(test_hooks_report_changes_in_order),
        cmocka_unit_test(test_exec_errors_change_nothing),
        cmocka_unit_test(test_exec_between_orm_writes),
        cmocka_unit_test(test_begin_sees_schema_committed_while_waiting),
        cmocka_unit_test(test_many_deletes_keep_their_tombstones),
        cmocka_unit_test(test_checkpoint_after_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
