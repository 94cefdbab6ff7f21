/*
 * How the master notices commits it did not make (sync/master.c with the
 * server's file watch): an idle master does not check the file every
 * millisecond; another connection's commit reaches a live slave within
 * 100 ms (median) even when the fallback poll is over a second, also right
 * after a checkpoint(TRUNCATE) emptied the -wal file; and where file
 * events are unavailable the fallback poll still brings every commit.
 * Master, server and slave run in this process; the commits come from a
 * plain SQLite connection with no hook, as another program's would.
 */
#include <stdatomic.h>

#include "rest/internal.h" /* verso__watch_disabled */
#include "sync_harness.h"

typedef struct master {
    verso_sync_master *sync;
    verso_rest *srv;
    h_master h; /* its URL, for h_http */
} master;

static void master_start(master *x, const char *path, int poll_ms)
{
    verso_sync_master_options mo = VERSO_SYNC_MASTER_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    memset(x, 0, sizeof(*x));
    mo.poll_ms = poll_ms;
    if (verso_sync_master_new(&x->sync, path, &mo, why, sizeof(why)) < 0)
        fail_msg("master: %s", why);
    verso_sync_master_mount(x->sync, &ro);
    ro.db_path = path;
    if (verso_rest_start(&x->srv, NULL, &ro, why, sizeof(why)) < 0)
        fail_msg("server: %s", why);
    x->h.port = verso_rest_port(x->srv);
    snprintf(x->h.url, sizeof(x->h.url), "http://127.0.0.1:%d", x->h.port);
}

static void master_stop(master *x)
{
    verso_rest_stop(x->srv);
    verso_sync_master_close(x->sync);
}

/* The value of a metric line "name value" of GET /_metrics; -1 if absent. */
static int64_t metric(const master *x, const char *name)
{
    verso_buf body = VERSO_BUF_INIT;
    char key[128];
    const char *p;
    int64_t v = -1;

    assert_int_equal(h_http(&x->h, "GET", "/_metrics", NULL, &body), 200);
    assert_int_equal(verso_buf_puts(&body, ""), 0); /* NUL-terminated */
    snprintf(key, sizeof(key), "\n%s ", name);
    if ((p = strstr(body.data, key)))
        v = strtoll(p + strlen(key), NULL, 10);
    verso_buf_free(&body);
    return v;
}

/* A master database with some history, no handle left open. */
static void make_master(const char *path, uint64_t seed)
{
    verso_db *db = h_open(path);

    h_seed(seed);
    h_orm_workload(db, 10, 5);
    verso_db_close(db);
}

static verso_slave *live_slave(const char *url, const char *spath, const char *mpath)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    o.heartbeat_ms = 1000;
    o.retry_min_ms = 20;
    o.retry_max_ms = 300;
    if (verso_slave_start(&s, spath, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, h_head(mpath), 20000) < 0)
        fail_msg("the slave did not catch up");
    return s;
}

static sqlite3 *other_connection(const char *path)
{
    sqlite3 *s = NULL;

    assert_int_equal(sqlite3_open(path, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    return s;
}

static void exec_sql(sqlite3 *s, const char *sql)
{
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(s));
}

/* Empties the -wal file (bounded: a checkpoint waits for readers to let go). */
static void checkpoint_truncate(sqlite3 *s, const char *mpath)
{
    char wal[620];
    struct stat sb;
    int64_t deadline = h_now_ms() + 10000;

    snprintf(wal, sizeof(wal), "%s-wal", mpath);
    do {
        exec_sql(s, "PRAGMA wal_checkpoint(TRUNCATE)");
        assert_int_equal(stat(wal, &sb), 0);
        if (h_now_ms() > deadline)
            fail_msg("the -wal file still holds %lld bytes", (long long)sb.st_size);
    } while (sb.st_size != 0);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/*
 * n one-row commits through s, each timed from its return to the slave's
 * commit of that version (bounded); with truncate, a checkpoint(TRUNCATE)
 * first. Returns the median in ms.
 */
static int64_t median_latency(verso_slave *sl, sqlite3 *s, const char *mpath, int n, bool truncate)
{
    int64_t ms[16];

    assert_true(n <= 16);
    for (int i = 0; i < n; i++) {
        int64_t t0, v;
        h_sleep_ms(20 + (int)(h_rand() % 40)); /* each commit finds the master idle */
        if (truncate)
            checkpoint_truncate(s, mpath);
        exec_sql(s, "INSERT INTO items(name, price) VALUES ('another program', 2.5)");
        t0 = h_now_ms();
        v = h_head(mpath);
        if (verso_slave_wait(sl, v, 10000) < 0)
            fail_msg("commit %lld never reached the slave", (long long)v);
        ms[i] = h_now_ms() - t0;
    }
    qsort(ms, (size_t)n, sizeof(ms[0]), cmp_i64);
    print_message("another connection's commit -> slave: median %lld ms, max %lld ms\n",
                  (long long)ms[n / 2], (long long)ms[n - 1]);
    return ms[n / 2];
}

/*
 * With a slave connected and nothing written, the master checks the file
 * on its slow tick only: a few times a second, where the former 1 ms poll
 * made a thousand (on a loaded machine fewer, never more). The file watch
 * wakes nobody meanwhile.
 */
static void test_idle_master_does_not_poll(void **state)
{
    char mp[600], sp[600];
    int64_t c0, w0, c1, w1, t0, elapsed;
    verso_slave *s;
    master x;

    (void)state;
    h_path(mp, sizeof(mp), "idle-master.db");
    h_path(sp, sizeof(sp), "idle-slave.db");
    make_master(mp, 81);
    master_start(&x, mp, 0);
    s = live_slave(x.h.url, sp, mp);
    assert_int_equal(metric(&x, "verso_commit_watch"), 1);
    c0 = metric(&x, "verso_sync_commit_checks_total");
    w0 = metric(&x, "verso_commit_watch_wakeups_total");
    t0 = h_now_ms();
    while (h_now_ms() - t0 < 1000)
        h_sleep_ms(50);
    c1 = metric(&x, "verso_sync_commit_checks_total");
    w1 = metric(&x, "verso_commit_watch_wakeups_total");
    elapsed = h_now_ms() - t0;
    print_message("idle: %lld checks and %lld file wake-ups in %lld ms\n", (long long)(c1 - c0),
                  (long long)(w1 - w0), (long long)elapsed);
    assert_true(c0 >= 0 && w0 >= 0);
    if ((c1 - c0) * 1000 > 20 * elapsed)
        fail_msg("%lld checks of the file in %lld ms of idleness", (long long)(c1 - c0),
                 (long long)elapsed);
    assert_true(w1 - w0 <= 2);
    verso_slave_stop(s);
    master_stop(&x);
}

/* With the fallback poll set to a minute (ticks every 1.25 s for
 * heartbeats), n commits of another connection (each after a
 * checkpoint(TRUNCATE) when truncate) reach the live slave at once: only
 * the file events can bring them in time. */
static void expect_pushed(const char *name, uint64_t seed, int n, bool truncate, const char *what)
{
    char mp[600], sp[600], file[64];
    verso_slave *s;
    sqlite3 *other;
    master x;

    snprintf(file, sizeof(file), "%s-master.db", name);
    h_path(mp, sizeof(mp), file);
    snprintf(file, sizeof(file), "%s-slave.db", name);
    h_path(sp, sizeof(sp), file);
    make_master(mp, seed);
    master_start(&x, mp, 60000);
    s = live_slave(x.h.url, sp, mp);
    other = other_connection(mp);
    if (median_latency(s, other, mp, n, truncate) > 100)
        fail_msg("%s are not pushed at once", what);
    sqlite3_close(other);
    verso_slave_stop(s);
    h_assert_converged(mp, sp);
    master_stop(&x);
}

static void test_commit_seen_by_event(void **state)
{
    (void)state;
    expect_pushed("event", 82, 9, false, "commits of another connection");
}

/* The -wal file is written from its start again, and still watched. */
static void test_commit_after_checkpoint_truncate(void **state)
{
    (void)state;
    expect_pushed("trunc", 83, 7, true, "commits after a checkpoint(TRUNCATE)");
}

/* No file events (as on a network file system, or with inotify's limits
 * exhausted): the metrics say so, and the poll brings every commit. */
static void test_fallback_without_file_events(void **state)
{
    char mp[600], sp[600];
    verso_slave *s;
    sqlite3 *other;
    master x;
    int64_t median;

    (void)state;
    h_path(mp, sizeof(mp), "poll-master.db");
    h_path(sp, sizeof(sp), "poll-slave.db");
    make_master(mp, 84);
    atomic_store(&verso__watch_disabled, true);
    master_start(&x, mp, 50);
    atomic_store(&verso__watch_disabled, false);
    assert_int_equal(metric(&x, "verso_commit_watch"), 0);
    s = live_slave(x.h.url, sp, mp);
    other = other_connection(mp);
    median = median_latency(s, other, mp, 5, false);
    if (median > 500)
        fail_msg("median %lld ms with a 50 ms poll", (long long)median);
    sqlite3_close(other);
    verso_slave_stop(s);
    h_assert_converged(mp, sp);
    master_stop(&x);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_master_does_not_poll),
        cmocka_unit_test(test_commit_seen_by_event),
        cmocka_unit_test(test_commit_after_checkpoint_truncate),
        cmocka_unit_test(test_fallback_without_file_events),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_seed(80);
    h_init_dir("sync_wake");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
