/*
 * The change stream through NATS JetStream, against a real nats-server and
 * a real master process: followers converge, versions and storage classes
 * included, under writes through the ORM, REST and the sqlite3 shell; a
 * follower never shows a state the master did not have (the sum of the
 * accounts, a transaction longer than one message); the stream keeps its
 * promises (contiguous Verso-From/To, no Nats-Msg-Id twice). Without
 * libnats: skipped, saying why.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "nats_harness.h"

#ifdef VERSO_HAVE_NATS

static hn_server ns;

static int setup_server(void **state)
{
    (void)state;
    hn_start(&ns, "nats");
    return 0;
}

static int teardown_server(void **state)
{
    (void)state;
    hn_kill(&ns, SIGKILL);
    return 0;
}

/* Odd values the protocol must carry exactly: a blob in a text column, -0.0, the largest
 * integer, text with U+0000, NULL. */
static const char odd_values_sql[] =
    "BEGIN; INSERT INTO items(name, price, qty) VALUES (X'00FF10', -0.0, 9223372036854775807);"
    "INSERT INTO items(name, price, qty) VALUES ('a' || char(0) || 'b', 1e308, NULL);"
    "INSERT INTO items(name, price, qty) VALUES ('x', 'text in a real column', 3.5); COMMIT;";

static void shell_round(const char *mpath, int n)
{
    for (int i = 0; i < n; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql),
                 "BEGIN; INSERT INTO items(name, price, qty) VALUES ('sh-%d-%u', %u.5, %u);"
                 "UPDATE items SET qty = COALESCE(qty, 0) + 1 WHERE id = (SELECT MAX(id) FROM "
                 "items); COMMIT;",
                 i, h_rand(), h_rand() % 100, h_rand() % 100);
        hn_shell(mpath, sql);
    }
}

/* The sqlite3 shell running n transactions from a script, in the background. */
static void shell_start(hn_proc *p, const char *mpath, int n)
{
    char script[600], read[700];
    char *argv[] = {"/usr/bin/sqlite3", "-bail", "-cmd", ".timeout 20000",
                    (char *)mpath,      read,    NULL};
    FILE *f;

    h_path(script, sizeof(script), "shell_load.sql");
    assert_non_null(f = fopen(script, "w"));
    for (int i = 0; i < n; i++)
        fprintf(f,
                "BEGIN IMMEDIATE; INSERT INTO items(name, price, qty) VALUES ('bg-%d', %d.25, %d);"
                "UPDATE items SET price = price + 1 WHERE id = (SELECT MIN(id) FROM items);"
                "COMMIT;\n",
                i, i, i % 7);
    fclose(f);
    snprintf(read, sizeof(read), ".read %s", script);
    hn_proc_spawn(p, argv, true);
}

static void test_converge_orm_rest_shell(void **state)
{
    char mpath[600], s1[600], s2[600];
    verso_nats_publisher *pub;
    verso_nats_follower *f1, *f2;
    verso_slave_state st;
    verso_info info;
    hn_proc sh;
    h_master m;
    hn_chain chain;
    verso_db *db;

    (void)state;
    h_seed(13);
    h_path(mpath, sizeof(mpath), "conv_m.db");
    h_path(s1, sizeof(s1), "conv_s1.db");
    h_path(s2, sizeof(s2), "conv_s2.db");
    h_master_start(&m, mpath, NULL);
    db = h_open(mpath);
    pub = hn_pub_start(mpath, ns.url, "CONV", NULL);
    f1 = hn_follow_start(s1, ns.url, "CONV", m.url, NULL);
    h_orm_workload(db, 20, 6);
    h_rest_workload(&m, mpath, 20);
    hn_shell(mpath, odd_values_sql);
    f2 = hn_follow_start(s2, ns.url, "CONV", m.url, NULL); /* joins mid-stream */
    shell_start(&sh, mpath, 100); /* 100 transactions of another program, meanwhile: */
    for (int round = 0; round < 3; round++) {
        h_orm_workload(db, 10, 4);
        shell_round(mpath, 3);
        h_rest_workload(&m, mpath, 10);
    }
    assert_int_equal(hn_proc_wait(&sh, 30000), 0);
    /* it ran (the other writers delete some of its rows) */
    assert_true(h_sql_int(verso_db_sqlite(db), "SELECT COUNT(*) FROM items WHERE name LIKE 'bg-%'",
                          0) > 50);
    hn_pub_wait_head(pub, mpath, 20000);
    hn_follow_wait_head(f1, mpath, 20000);
    hn_follow_wait_head(f2, mpath, 20000);
    assert_int_equal(verso_nats_follow_state_get(&st, f1), 0);
    assert_true(st.commits > 0);
    assert_int_equal(st.resyncs, 0);
    verso_nats_follow_stop(f1);
    verso_nats_follow_stop(f2);
    h_assert_converged(mpath, s1);
    h_assert_converged(mpath, s2);
    assert_int_equal(verso_db_info(&info, db), 0);
    hn_assert_chain(&chain, ns.url, "CONV", "verso.CONV");
    assert_int_equal(chain.last_to, info.head);
    assert_string_equal(chain.last_identity, info.identity);
    assert_true(chain.messages > 0 && chain.entries > 0); /* commits may share a message */
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_master_kill(&m, SIGTERM);
}

/* ---- a follower never shows a state the master did not have ---- */

typedef struct watcher {
    const char *path;
    atomic_bool stop;
    atomic_long reads, bad;
    int64_t sum, bad_sum;
} watcher;

static void *watch_sum(void *arg)
{
    watcher *w = arg;

    while (!atomic_load(&w->stop)) {
        int64_t sum, count;
        h_accounts_sum(w->path, &sum, &count);
        if (count == 2) {
            atomic_fetch_add(&w->reads, 1);
            if (sum != w->sum) {
                w->bad_sum = sum;
                atomic_fetch_add(&w->bad, 1);
            }
        }
    }
    return NULL;
}

static void test_follower_atomic(void **state)
{
    char mpath[600], spath[600];
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    watcher w = {.sum = 2000};
    pthread_t t;
    verso_db *db;

    (void)state;
    h_seed(31);
    h_path(mpath, sizeof(mpath), "atomic_m.db");
    h_path(spath, sizeof(spath), "atomic_s.db");
    db = h_open(mpath);
    h_seed_accounts(db, 1000);
    pub = hn_pub_start(mpath, ns.url, "ATOMIC", NULL);
    /* no --master: the stream starts at the seed, nothing to bootstrap but an empty file */
    f = hn_follow_start(spath, ns.url, "ATOMIC", NULL, NULL);
    hn_follow_wait_head(f, mpath, 20000);
    w.path = spath;
    assert_int_equal(pthread_create(&t, NULL, watch_sum, &w), 0);
    for (int i = 0; i < 300; i++)
        h_transfer(db);
    hn_follow_wait_head(f, mpath, 20000);
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    if (atomic_load(&w.bad))
        fail_msg("%ld reads of the follower saw a sum the master never had (%lld)",
                 atomic_load(&w.bad), (long long)w.bad_sum);
    assert_true(atomic_load(&w.reads) > 10);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
}

/* A transaction longer than a message (chunk 100): the follower shows all of it or none. */
typedef struct count_watch {
    const char *path;
    atomic_bool stop;
    atomic_long reads, torn;
    int64_t before, after, seen;
} count_watch;

static void *watch_count(void *arg)
{
    count_watch *w = arg;

    while (!atomic_load(&w->stop)) {
        int64_t n = h_count(w->path, "items");
        if (n < 0)
            continue;
        atomic_fetch_add(&w->reads, 1);
        if (n != w->before && n != w->after) {
            w->seen = n;
            atomic_fetch_add(&w->torn, 1);
        }
    }
    return NULL;
}

static void test_long_transaction_atomic(void **state)
{
    char mpath[600], spath[600];
    verso_nats_publish_options po = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    verso_nats_publish_state ps;
    count_watch w = {0};
    pthread_t t;
    verso_db *db;

    (void)state;
    h_seed(7);
    h_path(mpath, sizeof(mpath), "long_m.db");
    h_path(spath, sizeof(spath), "long_s.db");
    db = h_open(mpath);
    h_orm_workload(db, 5, 3);
    po.chunk = 100;
    po.snapshot_every_ms = -1;
    pub = hn_pub_start(mpath, ns.url, "LONG", &po);
    f = hn_follow_start(spath, ns.url, "LONG", NULL, NULL);
    hn_follow_wait_head(f, mpath, 20000);
    w.path = spath;
    w.before = h_count(mpath, "items");
    w.after = w.before + 2500;
    assert_int_equal(pthread_create(&t, NULL, watch_count, &w), 0);
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < 2500; i++) {
        h_item it = {.name = "bulk", .price = i, .qty = i};
        assert_int_equal(verso_record_insert(db, &h_items, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
    hn_follow_wait_head(f, mpath, 30000);
    atomic_store(&w.stop, true);
    pthread_join(t, NULL);
    if (atomic_load(&w.torn))
        fail_msg("the follower showed %lld items, between %lld and %lld", (long long)w.seen,
                 (long long)w.before, (long long)w.after);
    assert_int_equal(h_count(spath, "items"), w.after);
    assert_int_equal(verso_nats_publish_state_get(&ps, pub), 0);
    assert_true(ps.messages >= 25 + 1); /* the long one went as a chain of >= 25 messages */
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
    h_assert_converged(mpath, spath);
}

/* on_apply sees each committed state once, in order, up to the head. */
typedef struct applies {
    atomic_long calls;
    int64_t last;
    atomic_long out_of_order;
} applies;

static void on_apply(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    applies *a = arg;

    (void)c;
    (void)n;
    (void)reset;
    if (cursor <= a->last)
        atomic_fetch_add(&a->out_of_order, 1);
    a->last = cursor;
    atomic_fetch_add(&a->calls, 1);
}

static void test_callbacks_and_mount(void **state)
{
    char mpath[600], spath[600];
    verso_nats_follow_options fo = VERSO_NATS_FOLLOW_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_nats_publisher *pub;
    verso_nats_follower *f;
    applies a = {0};
    verso_rest *srv = NULL;
    verso_db *db, *sdb;
    h_master view;
    verso_buf body = {0};
    char why[256];

    (void)state;
    h_seed(5);
    h_path(mpath, sizeof(mpath), "cb_m.db");
    h_path(spath, sizeof(spath), "cb_s.db");
    db = h_open(mpath);
    pub = hn_pub_start(mpath, ns.url, "CB", NULL);
    fo.slave.client.on_apply = on_apply;
    fo.slave.client.apply_arg = &a;
    f = hn_follow_start(spath, ns.url, "CB", NULL, &fo);
    h_orm_workload(db, 30, 3);
    hn_follow_wait_head(f, mpath, 20000);
    assert_true(atomic_load(&a.calls) > 0);
    assert_int_equal(atomic_load(&a.out_of_order), 0);
    assert_int_equal(a.last, h_head(mpath));
    /* the follower's state in a REST server's /_status */
    sdb = h_open(spath);
    assert_int_equal(verso_nats_follow_mount(f, &ro), 0);
    ro.port = VERSO_REST_PORT_ANY;
    if (verso_rest_start(&srv, sdb, &ro, why, sizeof(why)) < 0)
        fail_msg("rest: %s", why);
    snprintf(view.url, sizeof(view.url), "http://127.0.0.1:%d", verso_rest_port(srv));
    assert_int_equal(h_http(&view, "GET", "/_status", NULL, &body), 200);
    assert_non_null(body.data);
    assert_non_null(strstr(body.data, "\"cursor\""));
    verso_buf_free(&body);
    verso_rest_stop(srv);
    verso_db_close(sdb);
    verso_nats_follow_stop(f);
    verso_nats_publish_stop(pub);
    verso_db_close(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converge_orm_rest_shell),
        cmocka_unit_test(test_follower_atomic),
        cmocka_unit_test(test_long_transaction_atomic),
        cmocka_unit_test(test_callbacks_and_mount),
    };
    int failed;

    H_MAIN_DISPATCH(argc, argv);
    if (!hn_have_server()) {
        printf("# skipped: nats-server is not installed (scripts/setup.sh installs it)\n");
        return 0;
    }
    if (getenv("VERSO_TEST_ONLY")) /* a development aid: one test by name (glob) */
        cmocka_set_test_filter(getenv("VERSO_TEST_ONLY"));
    if (getenv("VERSO_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("VERSO_TEST_SKIP"));
    h_init_dir("nats_converge");
    failed = cmocka_run_group_tests(tests, setup_server, teardown_server);
    hn_kill_all();
    if (!failed)
        hn_remove_tree(h_dir); /* the servers' stores too */
    return failed;
}

#else

static void test_skipped(void **state)
{
    (void)state;
    printf("# skipped: verso was built without libnats (install libnats-dev and rebuild)\n");
    skip();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_skipped)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}

#endif
