/* Plain SQL from another program (the real sqlite3 shell) is tracked:
 * inserts and updates get fresh versions, deletes leave tombstones. Several
 * handles and processes share a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "support/orm_support.h"
#include "verso/orm.h"

static char path[1024];

static verso_db *open_items(void)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) != 0)
        fail_msg("open: %s", open_why);
    return db;
}

static void shell(const char *sql)
{
    char out[2048];
    int st = orm_sqlite_shell(path, sql, out, sizeof out);
    if (st != 0)
        fail_msg("sqlite3 failed (%d): %s", st, out);
}

typedef struct change {
    int64_t id, version;
    bool deleted;
} change;

static size_t read_feed(change *out, size_t max, verso_db *db, int64_t since, int64_t *cursor)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f;
    const verso_feed_entry *e;
    size_t n = 0;
    fo.since = since;
    assert_int_equal(verso_feed_open(&f, db, &fo), 0);
    while (verso_feed_next(&e, f) == 1 && n < max)
        out[n++] = (change){e->id, e->version, e->deleted};
    *cursor = verso_feed_cursor(f);
    verso_feed_close(f);
    return n;
}

static void test_shell_writes_are_tracked(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s", orm_tmp_path("raw"));
    verso_db *db = open_items();
    orm_item a = {.name = "orm", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &a), 0);
    int64_t cursor = a.version;

    shell("INSERT INTO item(name, qty) VALUES ('s1', 1), ('s2', 2), ('s3', 3);");
    change ch[16];
    size_t n = read_feed(ch, 16, db, cursor, &cursor);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        assert_false(ch[i].deleted);
        assert_int_equal(ch[i].version, a.version + 1 + (int64_t)i); /* one version per row */
    }
    assert_int_equal(cursor, a.version + 3);

    shell("UPDATE item SET qty = qty + 10 WHERE name IN ('s1', 's3');");
    n = read_feed(ch, 16, db, cursor, &cursor);
    assert_int_equal(n, 2);
    assert_int_equal(ch[1].version, ch[0].version + 1);

    /* an update that sets the version to itself is still a change */
    shell("UPDATE item SET version = version, qty = 0 WHERE name = 's2';");
    n = read_feed(ch, 16, db, cursor, &cursor);
    assert_int_equal(n, 1);

    shell("DELETE FROM item WHERE name LIKE 's%';");
    n = read_feed(ch, 16, db, cursor, &cursor);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++)
        assert_true(ch[i].deleted);

    /* changing an id deletes the old id and creates the new one */
    shell("UPDATE item SET id = 1000 WHERE id = 1;");
    n = read_feed(ch, 16, db, cursor, &cursor);
    assert_int_equal(n, 2);
    assert_true(ch[0].deleted);
    assert_int_equal(ch[0].id, a.id);
    assert_false(ch[1].deleted);
    assert_int_equal(ch[1].id, 1000);

    /* the ORM continues above what the shell handed out */
    orm_item b = {.name = "after", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &b), 0);
    assert_int_equal(b.version, cursor + 1);

    char out[256];
    assert_int_equal(orm_sqlite_shell(path, "PRAGMA integrity_check;", out, sizeof out), 0);
    assert_string_equal(out, "ok\n");
    verso_db_close(db);
}

static void test_tracked_by_shell_inside_shell_transaction(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s", orm_tmp_path("rawtx"));
    verso_db *db = open_items();
    shell("BEGIN; INSERT INTO item(qty) VALUES (1); INSERT INTO item(qty) VALUES (2); ROLLBACK;"
          "BEGIN; INSERT INTO item(qty) VALUES (3); COMMIT;");
    change ch[4];
    int64_t cursor;
    assert_int_equal(read_feed(ch, 4, db, 0, &cursor), 1);
    assert_int_equal(ch[0].version, 1);
    assert_int_equal(cursor, 1);
    verso_db_close(db);
}

static void test_concurrent_processes(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s", orm_tmp_path("conc"));
    verso_db *db = open_items();
    enum { NPROC = 3, NROWS = 200 };
    pid_t kids[NPROC];
    for (int k = 0; k < NPROC; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            verso_db *c = open_items(); /* concurrent opens migrate safely */
            int bad = 0;
            for (int i = 0; i < NROWS && !bad; i++) {
                orm_item it = {.qty = k};
                bad = verso_record_insert(c, &orm_item_def, &it) != 0;
                if (!bad && i % 10 == 0)
                    bad = verso_record_delete(c, &orm_item_def, it.id) != 0;
            }
            verso_db_close(c);
            _exit(bad);
        }
    }
    /* this handle reads while the others write */
    int64_t last_head = 0;
    for (int i = 0; i < 50; i++) {
        verso_info info;
        assert_int_equal(verso_db_info(&info, db), 0);
        assert_true(info.head >= last_head);
        last_head = info.head;
        int64_t n;
        assert_int_equal(verso_query_count(&n, db, "item", NULL, 0), 0);
    }
    for (int k = 0; k < NPROC; k++) {
        int st;
        assert_int_equal(waitpid(kids[k], &st, 0), kids[k]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    /* every write got its own version: inserts + deletes */
    change *ch = calloc(NPROC * NROWS * 2, sizeof *ch);
    int64_t cursor;
    size_t n = read_feed(ch, NPROC * NROWS * 2, db, 0, &cursor);
    assert_int_equal(n, NPROC * NROWS); /* 180 deleted rows only show their tombstone */
    assert_int_equal(cursor, NPROC * (NROWS + NROWS / 10));
    for (size_t i = 1; i < n; i++)
        assert_true(ch[i].version > ch[i - 1].version);
    free(ch);
    verso_db_close(db);
}

static void test_open_while_another_handle_writes(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s", orm_tmp_path("openbusy"));
    verso_db *w = open_items();
    orm_item a = {.qty = 1};
    assert_int_equal(verso_record_insert(w, &orm_item_def, &a), 0);
    assert_int_equal(verso_db_begin(w), 0); /* holds the write lock */
    orm_item b = {.qty = 2};
    assert_int_equal(verso_record_insert(w, &orm_item_def, &b), 0);

    /* an up-to-date file is opened without the write lock: no waiting */
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *r = NULL;
    o.tables = tabs;
    o.ntables = 1;
    o.busy_timeout_ms = 1;
    assert_int_equal(verso_db_open(&r, path, &o, NULL, 0), 0);
    int64_t n;
    assert_int_equal(verso_query_count(&n, r, "item", NULL, 0), 0);
    assert_int_equal(n, 1); /* the uncommitted row is not visible */
    orm_item got = {0};
    assert_int_equal(verso_record_get(&got, r, &orm_item_def, a.id), 0);
    assert_int_equal(verso_record_insert(r, &orm_item_def, &got), VERSO_EBUSY);
    assert_int_equal(verso_db_commit(w), 0);
    assert_int_equal(verso_query_count(&n, r, "item", NULL, 0), 0);
    assert_int_equal(n, 2);
    verso_db_close(r);
    verso_db_close(w);
}

int main(void)
{
    if (system("sqlite3 -version >/dev/null 2>&1") != 0) {
        fprintf(stderr, "the sqlite3 shell is required\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shell_writes_are_tracked),
        cmocka_unit_test(test_tracked_by_shell_inside_shell_transaction),
        cmocka_unit_test(test_concurrent_processes),
        cmocka_unit_test(test_open_while_another_handle_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
