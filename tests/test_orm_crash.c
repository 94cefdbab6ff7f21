/*
 * kill -9 at any moment: a child writes in a loop (ORM transactions, raw
 * SQL, deletes) and is killed many times. After each kill the file passes
 * integrity_check, the head never decreases, no version appears twice among
 * rows and tombstones, no version at or below the previous head appears that
 * was not there before, and new writes continue above the head.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/orm_support.h"
#include "verso/orm.h"
#include "verso/advanced.h"

enum { KILLS = 30 };

static char path[1024];

static verso_db *open_items(void)
{
    char open_why[256] = "";
    const verso_table_def *tabs[] = {&orm_item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    o.tables = tabs;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) != 0) {
        fprintf(stderr, "open: %s\n", open_why);
        return NULL;
    }
    return db;
}

static void writer(unsigned seed)
{
    verso_db *db = open_items();
    if (!db)
        _exit(2);
    srand(seed);
    for (;;) {
        if (verso_db_begin(db) != 0)
            continue;
        int64_t last = 0;
        for (int i = 0; i < 1 + rand() % 20; i++) {
            orm_item it = {.name = "crash", .qty = i};
            if (verso_record_insert(db, &orm_item_def, &it) == 0)
                last = it.id;
        }
        if (rand() % 3 == 0 && last)
            verso_record_delete(db, &orm_item_def, last - 1);
        if (rand() % 3 == 0)
            verso_db_exec(db, "UPDATE item SET qty = qty + 1 WHERE id % 7 = 3");
        if (rand() % 5 == 0)
            verso_db_rollback(db);
        else
            verso_db_commit(db);
        if (rand() % 4 == 0)
            verso_db_exec(db, "DELETE FROM item WHERE id IN (SELECT id FROM item ORDER BY random() "
                              "LIMIT 2)");
    }
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* All versions of rows and tombstones, sorted. */
static size_t versions(int64_t **out, sqlite3 *sq)
{
    sqlite3_stmt *st;
    size_t n = 0, cap = 1024;
    int64_t *v = malloc(cap * sizeof *v);
    assert_int_equal(sqlite3_prepare_v2(sq,
                                        "SELECT version FROM item UNION ALL "
                                        "SELECT version FROM _verso_tombstones",
                                        -1, &st, NULL),
                     SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW) {
        if (n == cap)
            v = realloc(v, (cap *= 2) * sizeof *v);
        assert_int_equal(sqlite3_column_type(st, 0), SQLITE_INTEGER);
        v[n++] = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    qsort(v, n, sizeof *v, cmp64);
    *out = v;
    return n;
}

static void check_after_kill(int64_t *prev_head, int64_t **prev, size_t *nprev)
{
    verso_db *db = open_items();
    assert_non_null(db);
    sqlite3 *sq = verso_db_sqlite(db);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(sq, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);

    verso_info info;
    assert_int_equal(verso_db_info(&info, db), 0);
    assert_true(info.head >= *prev_head);

    int64_t *v;
    size_t n = versions(&v, sq);
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i] >= 1 && v[i] <= info.head);
        if (i)
            assert_true(v[i] > v[i - 1]); /* unique */
        if (v[i] <= *prev_head)           /* old versions only disappear */
            assert_non_null(bsearch(&v[i], *prev, *nprev, sizeof **prev, cmp64));
    }
    /* new writes continue strictly above the head */
    orm_item it = {.name = "check", .qty = 1};
    assert_int_equal(verso_record_insert(db, &orm_item_def, &it), 0);
    assert_int_equal(it.version, info.head + 1);
    free(*prev);
    *nprev = versions(prev, sq);
    *prev_head = it.version;
    free(v);
    verso_db_close(db);
}

static void test_kill_in_a_loop(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "%s", orm_tmp_path("crash"));
    verso_db *db = open_items();
    assert_non_null(db);
    verso_db_close(db);
    int64_t prev_head = 0, *prev = NULL;
    size_t nprev = 0;
    srand(12345);
    for (int k = 0; k < KILLS; k++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            writer((unsigned)k + 1);
        /* let the child run a little; the moment of the kill is what varies */
        struct timespec ts = {0, (5 + rand() % 40) * 1000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st));
        check_after_kill(&prev_head, &prev, &nprev);
    }
    assert_true(prev_head > 2 * KILLS); /* the children did write */
    free(prev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill_in_a_loop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
