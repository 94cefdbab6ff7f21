/*
 * Commits seen as file events (rest/watch.c): a commit by another
 * connection wakes the watcher's callback, also once the -wal file was
 * deleted and created again, after a checkpoint(TRUNCATE) and when a copy
 * is renamed over the database; other files of the directory do not; an
 * idle database costs no wake-up. Then the server's side: tick_on_change
 * runs on_tick after another connection's commit, and verso_rest_wake_after
 * runs it once more later.
 */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "rest/internal.h"
#include "support/rest_http.h"
#include "verso/orm.h"
#include "verso/rest.h"

static char g_dir[512];

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_dir, name);
}

static bool exists(const char *path)
{
    return access(path, F_OK) == 0;
}

static void exec_sql(sqlite3 *s, const char *sql)
{
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(s));
}

static sqlite3 *open_conn(const char *path)
{
    sqlite3 *s = NULL;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    return s;
}

/* A WAL database with table t, no connection left open (so no -wal file). */
static void make_db(const char *path)
{
    sqlite3 *s = open_conn(path);
    char wal[620];

    exec_sql(s, "PRAGMA journal_mode=WAL; CREATE TABLE t(x)");
    sqlite3_close(s);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_false(exists(wal));
}

static void insert(sqlite3 *s)
{
    exec_sql(s, "INSERT INTO t VALUES (1)");
}

static void bump(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static verso__watch_stats stats(const verso__watch *w)
{
    verso__watch_stats st;

    verso__watch_stats_get(&st, w);
    return st;
}

/* Waits (bounded) until the watcher's counters moved past before. */
static void wait_seen(const verso__watch *w, verso__watch_stats before, const char *what)
{
    int64_t deadline = mono_ms() + 5000;
    verso__watch_stats st;

    while ((st = stats(w)).events <= before.events || st.wakes <= before.wakes) {
        if (mono_ms() > deadline)
            fail_msg("%s: not seen (events %llu, wakes %llu)", what, (unsigned long long)st.events,
                     (unsigned long long)st.wakes);
        pause_ms(1);
    }
}

/* Waits (bounded) until no event and no wake-up for 50 ms (all events of
 * earlier writes are read by then) and returns the counters. */
static verso__watch_stats settle(const verso__watch *w)
{
    int64_t deadline = mono_ms() + 5000, since = mono_ms();
    verso__watch_stats last = stats(w), st;

    while (mono_ms() - since < 50) {
        if (mono_ms() > deadline)
            fail_msg("the watcher never went quiet");
        pause_ms(5);
        st = stats(w);
        if (st.events != last.events || st.wakes != last.wakes)
            since = mono_ms();
        last = st;
    }
    return last;
}

static verso__watch *watch(const char *path, atomic_int *calls)
{
    verso__watch *w = NULL;

    assert_int_equal(verso__watch_start(&w, path, bump, calls), 0);
    assert_non_null(w);
    assert_true(stats(w).active);
    return w;
}

static void test_commit_by_another_connection(void **state)
{
    char db[600];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before;
    sqlite3 *s;

    (void)state;
    path_of(db, sizeof(db), "commit.db");
    make_db(db);
    s = open_conn(db);
    w = watch(db, &calls);
    before = stats(w);
    insert(s);
    wait_seen(w, before, "a commit");
    assert_true(atomic_load(&calls) >= 1);
    sqlite3_close(s);
    verso__watch_stop(w);
}

/* The -wal file's times set (what a commit made through verso does once it
 * is visible, orm/txn.c): one wake-up at once, with no re-checks after it
 * (they are for write events, which come before a commit is visible). */
static void test_signal_wakes_once(void **state)
{
    char db[600], wal[620];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before, after;
    sqlite3 *s;

    (void)state;
    path_of(db, sizeof(db), "signal.db");
    snprintf(wal, sizeof(wal), "%s-wal", db);
    make_db(db);
    s = open_conn(db);
    insert(s); /* the -wal file exists */
    w = watch(db, &calls);
    before = settle(w);
    assert_int_equal(utimensat(AT_FDCWD, wal, NULL, 0), 0);
    after = settle(w);
    assert_int_equal(after.signals, before.signals + 1);
    assert_int_equal(after.events, before.events);
    assert_int_equal(after.wakes, before.wakes + 1); /* once, no tail of re-checks */
    sqlite3_close(s);
    verso__watch_stop(w);
}

/* Waits (bounded) until the watcher counted n signals. */
static void wait_signals(const verso__watch *w, uint64_t n)
{
    int64_t deadline = mono_ms() + 5000;

    while (stats(w).signals < n) {
        if (mono_ms() > deadline)
            fail_msg("%llu signals, not %llu", (unsigned long long)stats(w).signals,
                     (unsigned long long)n);
        pause_ms(1);
    }
}

/* Which commits say so: one through verso that wrote, once; one through
 * verso that wrote nothing, and one by plain SQLite, never. Each is
 * followed by a writing verso commit, so a signal of theirs would show as
 * a count one too high once that last one is seen. */
static void test_verso_commits_signal(void **state)
{
    char db[600];
    atomic_int calls = 0;
    verso__watch *w;
    verso_db *v = NULL;
    sqlite3 *s;
    uint64_t base;

    (void)state;
    path_of(db, sizeof(db), "signals.db");
    make_db(db);
    assert_int_equal(verso_db_open(&v, db, NULL, NULL, 0), 0);
    s = open_conn(db);
    insert(s);
    w = watch(db, &calls);
    base = settle(w).signals;
    assert_int_equal(verso_db_exec(v, "INSERT INTO t VALUES (2)"), 0);
    wait_signals(w, base + 1);
    assert_int_equal(settle(w).signals, base + 1);
    assert_int_equal(verso_db_begin(v), 0); /* writes nothing */
    assert_int_equal(verso_db_commit(v), 0);
    insert(s); /* plain SQLite */
    assert_int_equal(verso_db_exec(v, "INSERT INTO t VALUES (3)"), 0);
    wait_signals(w, base + 2);
    assert_int_equal(settle(w).signals, base + 2);
    sqlite3_close(s);
    verso_db_close(v);
    verso__watch_stop(w);
}

/* The last connection's close deletes the -wal file; the next commit
 * creates it again, and is seen as well. */
static void test_wal_deleted_and_recreated(void **state)
{
    char db[600], wal[620];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before;
    sqlite3 *s;

    (void)state;
    path_of(db, sizeof(db), "recreated.db");
    snprintf(wal, sizeof(wal), "%s-wal", db);
    make_db(db);
    w = watch(db, &calls);
    for (int round = 0; round < 3; round++) {
        before = settle(w);
        s = open_conn(db);
        insert(s);
        assert_true(exists(wal));
        wait_seen(w, before, "a commit into a new -wal file");
        sqlite3_close(s);
        assert_false(exists(wal)); /* gone with the last connection */
    }
    verso__watch_stop(w);
}

static void test_commit_after_checkpoint_truncate(void **state)
{
    char db[600], wal[620];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before;
    struct stat sb;
    sqlite3 *keep, *s;

    (void)state;
    path_of(db, sizeof(db), "truncate.db");
    snprintf(wal, sizeof(wal), "%s-wal", db);
    make_db(db);
    keep = open_conn(db); /* another reader keeps the -wal file in place */
    s = open_conn(db);
    exec_sql(keep, "SELECT count(*) FROM t");
    w = watch(db, &calls);
    for (int round = 0; round < 3; round++) {
        insert(s);
        exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)");
        assert_int_equal(stat(wal, &sb), 0);
        assert_int_equal(sb.st_size, 0);
        before = settle(w);
        insert(s);
        wait_seen(w, before, "a commit after a checkpoint(TRUNCATE)");
    }
    sqlite3_close(s);
    sqlite3_close(keep);
    verso__watch_stop(w);
}

/* A database restored by renaming a copy over it. */
static void test_rename_over(void **state)
{
    char db[600], copy[600], sql[700];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before;
    sqlite3 *s;

    (void)state;
    path_of(db, sizeof(db), "renamed.db");
    path_of(copy, sizeof(copy), "renamed-copy.db");
    make_db(db);
    s = open_conn(db);
    snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", copy);
    exec_sql(s, sql);
    sqlite3_close(s);
    w = watch(db, &calls);
    before = settle(w);
    assert_int_equal(rename(copy, db), 0);
    wait_seen(w, before, "a copy renamed over the database");
    verso__watch_stop(w);
}

/* Files of the same directory that are not the database's: read, dropped. */
static void test_other_files_ignored(void **state)
{
    static const char *const names[] = {"other.db-wal", "quiet.db.snapshot-1", "quiet.dbx",
                                        "xquiet.db", "quiet.db-shm"};
    char db[600], p[600];
    atomic_int calls = 0;
    int64_t deadline = mono_ms() + 5000;
    verso__watch *w;
    verso__watch_stats st;

    (void)state;
    path_of(db, sizeof(db), "quiet.db");
    make_db(db);
    w = watch(db, &calls);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        FILE *f;
        path_of(p, sizeof(p), names[i]);
        assert_non_null(f = fopen(p, "w"));
        fputs("not a commit", f);
        fclose(f);
    }
    while ((st = stats(w)).ignored < sizeof(names) / sizeof(names[0])) {
        if (mono_ms() > deadline)
            fail_msg("only %llu events on other files seen", (unsigned long long)st.ignored);
        pause_ms(1);
    }
    assert_int_equal(st.events, 0);
    assert_int_equal(st.wakes, 0);
    assert_int_equal(atomic_load(&calls), 0);
    verso__watch_stop(w);
}

/*
 * After a commit the watcher re-checks for a while (at growing gaps, for
 * half a second), then sleeps: a quarter of a second comes with no wake-up
 * at all, and the commit cost a few dozen (polling every millisecond would
 * make a thousand over this test). Load can only delay the re-checks,
 * never add any.
 */
static void test_quiet_when_idle(void **state)
{
    char db[600];
    atomic_int calls = 0;
    verso__watch *w;
    verso__watch_stats before, st;
    int64_t deadline, since;
    sqlite3 *s;

    (void)state;
    path_of(db, sizeof(db), "idle.db");
    make_db(db);
    s = open_conn(db);
    w = watch(db, &calls);
    before = stats(w);
    insert(s);
    wait_seen(w, before, "a commit");
    deadline = mono_ms() + 10000;
    for (since = mono_ms(), before = stats(w); mono_ms() - since < 250;) {
        if (mono_ms() > deadline)
            fail_msg("still waking up after 10 s: %llu", (unsigned long long)stats(w).wakes);
        pause_ms(10);
        if ((st = stats(w)).wakes != before.wakes)
            since = mono_ms();
        before = st;
    }
    st = stats(w);
    print_message("one commit: %llu events, %llu wake-ups\n", (unsigned long long)st.events,
                  (unsigned long long)st.wakes);
    if (st.wakes > 80)
        fail_msg("%llu wake-ups for one commit", (unsigned long long)st.wakes);
    assert_int_equal(atomic_load(&calls), (int)st.wakes);
    sqlite3_close(s);
    verso__watch_stop(w);
}

static void test_start_fails_without_the_file(void **state)
{
    char db[600];
    atomic_int calls = 0;
    verso__watch *w = (verso__watch *)&calls;

    (void)state;
    path_of(db, sizeof(db), "missing/none.db");
    assert_int_equal(verso__watch_start(&w, db, bump, &calls), VERSO_EIO);
    assert_null(w);
    verso__watch_stop(NULL);
}

/* ---- the server's side ---- */

typedef struct ticks {
    atomic_int n;
    atomic_int after_ms; /* > 0: the next tick asks for one more after that long */
} ticks;

static void on_tick(verso_rest *srv, void *arg)
{
    ticks *t = arg;
    int after = atomic_exchange(&t->after_ms, 0);

    atomic_fetch_add(&t->n, 1);
    if (after > 0)
        verso_rest_wake_after(srv, after);
}

static verso_rest *start_server(const char *db, ticks *t, bool on_change)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_db *vdb = NULL;
    verso_rest *srv = NULL;
    char why[256] = "";

    assert_int_equal(verso_db_open(&vdb, db, NULL, NULL, 0), 0);
    verso_db_close(vdb);
    o.db_path = db;
    o.port = 0;
    o.on_tick = on_tick;
    o.tick_arg = t;
    o.tick_ms = 0; /* no period: only wakes */
    o.tick_on_change = on_change;
    if (verso_rest_start(&srv, NULL, &o, why, sizeof(why)) < 0)
        fail_msg("server: %s", why);
    return srv;
}

static void wait_ticks(ticks *t, int above, const char *what)
{
    int64_t deadline = mono_ms() + 5000;

    while (atomic_load(&t->n) <= above) {
        if (mono_ms() > deadline)
            fail_msg("%s: no tick", what);
        pause_ms(1);
    }
}

static void test_server_ticks_on_commit(void **state)
{
    char db[600], url[128];
    ticks t = {0};
    rt_resp r;
    verso_rest *srv;
    sqlite3 *s;
    int before;

    (void)state;
    path_of(db, sizeof(db), "server.db");
    make_db(db);
    srv = start_server(db, &t, true);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_metrics", verso_rest_port(srv));
    assert_int_equal(rt_request(&r, "GET", url, NULL, 0, NULL), 0);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body, "\nverso_commit_watch 1\n"));
    rt_resp_free(&r);
    s = open_conn(db);
    for (int i = 0; i < 3; i++) {
        before = atomic_load(&t.n);
        insert(s);
        wait_ticks(&t, before, "a commit by another connection");
    }
    sqlite3_close(s);
    verso_rest_stop(srv);
}

/* Descriptors open in this process. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;

    assert_non_null(d);
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* A commit made through verso reaches the server's tick through its own loop (the watch's
 * signal descriptor adopted there), each one, with the watch's counters still right. */
static void test_server_polls_signals(void **state)
{
    char db[600];
    ticks t = {0};
    verso_rest *srv;
    verso_db *v = NULL;
    uint64_t base;

    (void)state;
    path_of(db, sizeof(db), "inloop.db");
    make_db(db);
    srv = start_server(db, &t, true);
    assert_non_null(srv->watch);
    assert_true(stats(srv->watch).in_loop);
    assert_int_equal(verso_db_open(&v, db, NULL, NULL, 0), 0);
    base = settle(srv->watch).signals;
    for (int i = 0; i < 3; i++) {
        char sql[64];
        int before = atomic_load(&t.n);
        snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (%d)", 10 + i);
        assert_int_equal(verso_db_exec(v, sql), 0);
        wait_signals(srv->watch, base + (uint64_t)i + 1);
        wait_ticks(&t, before, "a commit made through verso");
    }
    assert_int_equal(settle(srv->watch).signals, base + 3);
    verso_db_close(v);
    verso_rest_stop(srv);
    /* the adopted copy of the descriptor goes with its server: none left over */
    int fds = open_fds();
    for (int i = 0; i < 5; i++)
        verso_rest_stop(start_server(db, &t, true));
    assert_int_equal(open_fds(), fds);
}

/* Without tick_on_change there is no watch, and the metrics say nothing of one. */
static void test_server_without_watch(void **state)
{
    char db[600], url[128];
    ticks t = {0};
    rt_resp r;
    verso_rest *srv;

    (void)state;
    path_of(db, sizeof(db), "nowatch.db");
    make_db(db);
    srv = start_server(db, &t, false);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_metrics", verso_rest_port(srv));
    assert_int_equal(rt_request(&r, "GET", url, NULL, 0, NULL), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body, "verso_commit_watch"));
    rt_resp_free(&r);
    verso_rest_stop(srv);
}

static void test_wake_after(void **state)
{
    char db[600];
    ticks t = {0};
    verso_rest *srv;
    int64_t t0;

    (void)state;
    path_of(db, sizeof(db), "after.db");
    make_db(db);
    srv = start_server(db, &t, false);
    atomic_store(&t.after_ms, 100);
    verso_rest_wake(srv); /* tick 1 asks for tick 2 in 100 ms */
    wait_ticks(&t, 0, "verso_rest_wake");
    t0 = mono_ms();
    wait_ticks(&t, 1, "verso_rest_wake_after");
    assert_true(mono_ms() - t0 >= 90);
    verso_rest_stop(srv);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1024];

    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_by_another_connection),
        cmocka_unit_test(test_signal_wakes_once),
        cmocka_unit_test(test_verso_commits_signal),
        cmocka_unit_test(test_wal_deleted_and_recreated),
        cmocka_unit_test(test_commit_after_checkpoint_truncate),
        cmocka_unit_test(test_rename_over),
        cmocka_unit_test(test_other_files_ignored),
        cmocka_unit_test(test_quiet_when_idle),
        cmocka_unit_test(test_start_fails_without_the_file),
        cmocka_unit_test(test_server_ticks_on_commit),
        cmocka_unit_test(test_server_polls_signals),
        cmocka_unit_test(test_server_without_watch),
        cmocka_unit_test(test_wake_after),
    };
    const char *tmp = getenv("VERSO_TEST_TMP");
    int failed;

    snprintf(g_dir, sizeof(g_dir), "%s/rest_watch.%ld", tmp ? tmp : "/tmp", (long)getpid());
    mkdir(g_dir, 0755);
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    if (!failed) /* a passing run leaves nothing behind */
        remove_dir(g_dir);
    return failed;
}
