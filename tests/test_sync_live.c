/*
 * Live (WebSocket) replication against a real master process: convergence
 * under seeded ORM / SQL / REST workloads, atomicity of master transactions
 * on the slave, read-your-writes and callbacks, read-only replicas, master
 * restart, master recreated, pruned horizon, and a cascade.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

static verso_slave *start_slave(const char *url, const char *spath, verso_slave_options *o)
{
    verso_slave_options d = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    if (!o)
        o = &d;
    o->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : 1000;
    o->retry_min_ms = o->retry_min_ms ? o->retry_min_ms : 20;
    o->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : 300;
    if (verso_slave_start(&s, spath, url, o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    return s;
}

/* Waits (bounded) until the slave equals the master's head under the master's identity. */
static void wait_head(verso_slave *s, const char *mpath)
{
    verso_db *db = h_open(mpath);
    verso_slave_state st;
    verso_info info;
    int64_t deadline = h_now_ms() + 20000;

    assert_int_equal(verso_db_info(&info, db), 0);
    verso_db_close(db);
    for (;;) {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        if (st.cursor == info.head && !strcmp(st.master, info.identity))
            return;
        if (h_now_ms() > deadline)
            fail_msg("slave at %lld, master %s head %lld (connected %d, error '%s')",
                     (long long)st.cursor, mpath, (long long)info.head, st.connected,
                     st.last_error);
        h_sleep_ms(10);
    }
}

static void count_progress(const verso_sync_progress *p, void *arg)
{
    atomic_int *calls = arg;

    assert_true(p->cursor <= p->master_head && p->elapsed_ms >= 0);
    atomic_fetch_add(calls, 1);
}

/* Every applied version once, in order, across catch-up and live: a version
 * reported twice or out of order would be a duplicate or a gap refilled. */
typedef struct order {
    int64_t last;   /* last version reported */
    int64_t cursor; /* last cursor reported */
    int64_t changes;
    int64_t bad;
    char what[160];
} order;

static void check_order(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    order *k = arg;

    if (cursor <= k->cursor && !(reset && n == 0 && k->cursor == 0)) {
        k->bad++;
        snprintf(k->what, sizeof(k->what), "cursor %lld after %lld", (long long)cursor,
                 (long long)k->cursor);
    }
    for (size_t i = 0; i < n; i++) {
        if (c[i].version <= k->last || c[i].version > cursor) {
            k->bad++;
            snprintf(k->what, sizeof(k->what), "version %lld after %lld (cursor %lld)",
                     (long long)c[i].version, (long long)k->last, (long long)cursor);
        }
        k->last = c[i].version;
    }
    k->changes += (int64_t)n;
    k->last = cursor > k->last ? cursor : k->last;
    k->cursor = cursor;
}

static void test_live_converges(void **state)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    atomic_int progress_calls = 0;
    order k = {0};
    char mp[600], sp[600];
    verso_slave_state st;
    verso_buf body = VERSO_BUF_INIT;
    h_master m;
    verso_slave *s;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "live-master.db");
    h_path(sp, sizeof(sp), "live-slave.db");
    db = h_open(mp);
    h_seed(11);
    h_seed_accounts(db, 100);
    h_orm_workload(db, 100, 20); /* the catch-up part */
    h_master_start(&m, mp, NULL);
    o.client.on_progress = count_progress;
    o.client.progress_arg = &progress_calls;
    o.client.on_apply = check_order;
    o.client.apply_arg = &k;
    s = start_slave(m.url, sp, &o);
    for (int round = 0; round < 5; round++) { /* the live part */
        h_orm_workload(db, 40, 10);
        h_sql_workload(mp, 5);
        h_rest_workload(&m, mp, 5);
    }
    wait_head(s, mp);
    verso_slave_stop(s); /* the callback's thread is gone: k is ours */
    s = NULL;
    if (k.bad)
        fail_msg("%lld callbacks out of order: %s", (long long)k.bad, k.what);
    assert_true(k.changes > 0);
    assert_int_equal(k.cursor, h_head(mp));

    /* resumes from its cursor: a catch-up by rows, handed over to live writes */
    h_orm_workload(db, 60, 20);
    h_sql_workload(mp, 5);
    s = start_slave(m.url, sp, &o);
    for (int round = 0; round < 3; round++) {
        h_orm_workload(db, 40, 10);
        h_rest_workload(&m, mp, 5);
    }
    wait_head(s, mp);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_true(st.connected);
    assert_int_equal(st.lag_versions, 0);
    assert_int_equal(st.resyncs, 0);
    assert_true(atomic_load(&progress_calls) > 0);
    h_assert_converged(mp, sp);

    /* the master reports its slave */
    assert_int_equal(h_http(&m, "GET", "/_metrics", NULL, &body), 200);
    assert_non_null(strstr(body.data, "verso_sync_slaves 1"));
    verso_buf_free(&body);

    verso_slave_stop(s);
    if (k.bad)
        fail_msg("%lld callbacks out of order after the restart: %s", (long long)k.bad, k.what);
    assert_int_equal(k.cursor, h_head(mp));
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

typedef struct reader {
    const char *path;
    atomic_int stop;
    atomic_llong reads;
    int64_t bad;
    int64_t bad_sum;
} reader;

static void *read_loop(void *arg)
{
    reader *r = arg;

    while (!atomic_load(&r->stop)) {
        int64_t sum, count;
        h_accounts_sum(r->path, &sum, &count);
        if (count == 2) {
            r->reads++;
            if (sum != 2000) {
                r->bad++;
                r->bad_sum = sum;
            }
        }
    }
    return NULL;
}

static void test_live_atomic(void **state)
{
    const char *extra[] = {"--chunk", "1", NULL}; /* every transaction spans messages */
    char mp[600], sp[600];
    reader r = {0};
    pthread_t th;
    h_master m;
    verso_slave *s;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "atomic-master.db");
    h_path(sp, sizeof(sp), "atomic-slave.db");
    db = h_open(mp);
    h_seed(12);
    h_seed_accounts(db, 1000);
    h_master_start(&m, mp, extra);
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    r.path = sp;
    assert_int_equal(pthread_create(&th, NULL, read_loop, &r), 0);
    /* at least 400 transfers, and on until the reader has read 100 times meanwhile */
    for (int i = 0; i < 20000 && (i < 400 || atomic_load(&r.reads) < 100); i++)
        h_transfer(db);
    wait_head(s, mp);
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    assert_true(r.reads > 0);
    if (r.bad)
        fail_msg("%lld of %lld reads saw a partial transfer (sum %lld)", (long long)r.bad,
                 (long long)r.reads, (long long)r.bad_sum);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

typedef struct seen {
    pthread_mutex_t lock;
    int64_t inserts, updates, deletes, commits;
    int64_t last_id;
    char last_name[32];
} seen;

static void on_apply(const verso_sync_change *ch, size_t n, int64_t cursor, bool reset, void *arg)
{
    seen *k = arg;

    (void)cursor;
    (void)reset;
    pthread_mutex_lock(&k->lock);
    k->commits++;
    for (size_t i = 0; i < n; i++) {
        k->inserts += ch[i].kind == VERSO_CHANGE_INSERT;
        k->updates += ch[i].kind == VERSO_CHANGE_UPDATE;
        k->deletes += ch[i].kind == VERSO_CHANGE_DELETE;
        k->last_id = ch[i].id;
        for (size_t c = 0; c < ch[i].ncolumns; c++) {
            if (!strcmp(ch[i].columns[c], "name") && ch[i].values[c].type == VERSO_TEXT)
                snprintf(k->last_name, sizeof(k->last_name), "%.*s", (int)ch[i].values[c].u.b.n,
                         (const char *)ch[i].values[c].u.b.p);
        }
    }
    pthread_mutex_unlock(&k->lock);
}

static void test_live_callbacks_and_ryw(void **state)
{
    char mp[600], sp[600];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    seen k = {.lock = PTHREAD_MUTEX_INITIALIZER};
    h_item it = {.name = "first", .price = 2.5};
    h_item got = {0};
    h_master m;
    verso_slave *s;
    verso_db *db, *sdb;

    (void)state;
    h_path(mp, sizeof(mp), "ryw-master.db");
    h_path(sp, sizeof(sp), "ryw-slave.db");
    db = h_open(mp);
    h_master_start(&m, mp, NULL);
    o.client.on_apply = on_apply;
    o.client.apply_arg = &k;
    s = start_slave(m.url, sp, &o);
    wait_head(s, mp);

    assert_int_equal(verso_record_insert(db, &h_items, &it), 0);
    assert_int_equal(verso_slave_wait(s, it.version, 10000), 0);
    sdb = h_open(sp);
    assert_int_equal(verso_record_get(&got, sdb, &h_items, it.id), 0);
    assert_string_equal(got.name, "first");
    assert_int_equal(got.version, it.version);
    verso_record_clear(&h_items, &got);

    it.name = "second";
    assert_int_equal(verso_record_update(db, &h_items, &it, 0), 0);
    assert_int_equal(verso_slave_wait(s, it.version, 10000), 0);
    assert_int_equal(verso_record_delete(db, &h_items, it.id), 0);
    assert_int_equal(verso_slave_wait(s, h_head(mp), 10000), 0);
    assert_int_equal(verso_slave_wait(s, h_head(mp) + 1000, 50), VERSO_ETIMEOUT);

    pthread_mutex_lock(&k.lock);
    assert_int_equal(k.inserts, 1);
    assert_int_equal(k.updates, 1);
    assert_int_equal(k.deletes, 1);
    assert_int_equal(k.last_id, it.id);
    assert_string_equal(k.last_name, "second");
    pthread_mutex_unlock(&k.lock);

    /* replicas are read-only */
    it.id = 0;
    assert_int_equal(verso_record_insert(sdb, &h_items, &it), VERSO_EREADONLY);
    verso_db_close(sdb);

    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

static void test_live_master_restart(void **state)
{
    char mp[600], sp[600];
    verso_slave_state st;
    h_master m;
    verso_slave *s;
    verso_db *db;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "restart-master.db");
    h_path(sp, sizeof(sp), "restart-slave.db");
    db = h_open(mp);
    h_seed(13);
    h_orm_workload(db, 50, 10);
    h_master_start(&m, mp, NULL);
    port = m.port;
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    for (int round = 0; round < 3; round++) {
        h_master_kill(&m, SIGKILL);
        h_orm_workload(db, 30, 10); /* written while the master is down */
        h_master_start_port(&m, mp, port);
        h_orm_workload(db, 10, 10);
        wait_head(s, mp);
    }
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_true(st.reconnects >= 3);
    assert_int_equal(st.resyncs, 0);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* A subscription the master refuses (a table it does not track): its error
 * message stays in last_error, and the slave keeps trying with backoff. */
static void test_live_master_error_kept(void **state)
{
    char mp[600], sp[600];
    const char *tables[] = {"nosuch"};
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    h_master m;
    verso_slave *s;
    int64_t deadline;

    (void)state;
    h_path(mp, sizeof(mp), "refused-master.db");
    h_path(sp, sizeof(sp), "refused-slave.db");
    verso_db_close(h_open(mp));
    h_master_start(&m, mp, NULL);
    o.client.tables = tables;
    o.client.ntables = 1;
    s = start_slave(m.url, sp, &o);
    deadline = h_now_ms() + 10000;
    do {
        h_sleep_ms(20);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    } while ((st.attempts < 3 || st.link == VERSO_LINK_LIVE) && h_now_ms() < deadline);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    if (strcmp(st.last_error, "master: unknown table nosuch") != 0)
        fail_msg("last_error '%s'", st.last_error);
    assert_true(st.attempts >= 3);
    assert_int_equal(st.cursor, 0);
}

/* Rows written into the declared tables before the slave first follows
 * the master do not survive: the slave ends equal to the master. */
static void test_live_replaces_local_rows(void **state)
{
    char mp[600], sp[600];
    h_master m;
    verso_slave *s;
    verso_db *db, *sdb;
    h_item it = {0};
    h_account acc = {0};

    (void)state;
    h_path(mp, sizeof(mp), "local-master.db");
    h_path(sp, sizeof(sp), "local-slave.db");
    db = h_open(mp);
    h_seed(21);
    h_seed_accounts(db, 5);
    h_orm_workload(db, 20, 5);
    h_master_start(&m, mp, NULL);
    sdb = h_open(sp);
    it.name = "local";
    for (int i = 0; i < 40; i++) {
        it.id = acc.id = 0;
        acc.balance = 1000 + i;
        assert_int_equal(verso_record_insert(sdb, &h_items, &it), 0);
        assert_int_equal(verso_record_insert(sdb, &h_accounts, &acc), 0);
    }
    assert_int_equal(verso_db_exec(sdb, "DELETE FROM items WHERE id % 3 = 0"), 0);
    verso_db_close(sdb);
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    h_orm_workload(db, 10, 5);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

static void test_live_master_recreated(void **state)
{
    char mp[600], sp[600];
    verso_slave_state st;
    h_master m;
    verso_slave *s;
    verso_db *db;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "recreate-master.db");
    h_path(sp, sizeof(sp), "recreate-slave.db");
    db = h_open(mp);
    h_seed(14);
    h_orm_workload(db, 80, 10);
    verso_db_close(db);
    h_master_start(&m, mp, NULL);
    port = m.port;
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);

    h_master_kill(&m, SIGTERM);
    h_remove_db(mp);
    db = h_open(mp); /* new identity, lower versions */
    h_orm_workload(db, 5, 3);
    h_master_start_port(&m, mp, port);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_int_equal(st.resyncs, 1);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* The master restored from an older backup of itself (same identity, lower
 * head): the slave's cursor is ahead of the head, so it resynchronises,
 * taking a new identity of its own; its own slave (cascade) follows suit. */
static void test_live_cursor_ahead(void **state)
{
    char mp[600], sp[600], bp[600], cp[600], sql[700], url[64], why[256] = "";
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    verso_sync_master *sm = NULL;
    verso_rest *ssrv = NULL;
    verso_slave_state st;
    h_master m;
    verso_slave *s, *c;
    verso_db *db;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "ahead-master.db");
    h_path(sp, sizeof(sp), "ahead-slave.db");
    h_path(bp, sizeof(bp), "ahead-backup.db");
    h_path(cp, sizeof(cp), "ahead-subslave.db");
    db = h_open(mp);
    h_seed(23);
    h_orm_workload(db, 30, 10);
    snprintf(sql, sizeof(sql), "VACUUM INTO '%s'", bp);
    assert_int_equal(sqlite3_exec(verso_db_sqlite(db), sql, NULL, NULL, NULL), SQLITE_OK);
    h_orm_workload(db, 30, 10);
    h_master_start(&m, mp, NULL);
    port = m.port;
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    if (verso_sync_master_new(&sm, sp, NULL, why, sizeof(why)) < 0)
        fail_msg("slave as a master: %s", why);
    verso_sync_master_mount(sm, &ro);
    ro.db_path = sp;
    if (verso_rest_start(&ssrv, NULL, &ro, why, sizeof(why)) < 0)
        fail_msg("slave's server: %s", why);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", verso_rest_port(ssrv));
    c = start_slave(url, cp, NULL);
    wait_head(c, sp);

    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
    h_remove_db(mp);
    assert_int_equal(rename(bp, mp), 0);
    db = h_open(mp);
    assert_true(h_head(mp) < h_cursor(sp, NULL));
    h_master_start_port(&m, mp, port);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_int_equal(st.resyncs, 1);
    wait_head(c, sp); /* under the slave's new identity */
    h_assert_converged(sp, cp);
    assert_int_equal(verso_slave_state_get(&st, c), 0);
    assert_int_equal(st.resyncs, 1);

    verso_slave_stop(c);
    verso_rest_stop(ssrv);
    verso_sync_master_close(sm);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* The master's verso_sync_slaves gauge (from /_metrics). */
static int64_t slaves_of(const h_master *m)
{
    verso_buf body = VERSO_BUF_INIT;
    const char *p;
    int64_t v = -1;

    assert_int_equal(h_http(m, "GET", "/_metrics", NULL, &body), 200);
    assert_int_equal(verso_buf_puts(&body, ""), 0);
    if ((p = strstr(body.data, "\nverso_sync_slaves ")))
        v = strtoll(p + 20, NULL, 10);
    verso_buf_free(&body);
    return v;
}

static void test_live_behind_horizon(void **state)
{
    char mp[600], sp[600];
    verso_slave_state st;
    h_master m;
    verso_slave *s;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "horizon-master.db");
    h_path(sp, sizeof(sp), "horizon-slave.db");
    db = h_open(mp);
    h_seed(15);
    h_orm_workload(db, 80, 10);
    h_master_start(&m, mp, NULL);
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    verso_slave_stop(s);
    /* once the master knows the slave is gone, it keeps no ring of encoded commits (which
     * would still hold the deletions for the slave, tombstones pruned or not) */
    for (int64_t t0 = h_now_ms(); slaves_of(&m) != 0;) {
        if (h_now_ms() - t0 > 10000)
            fail_msg("the master still lists a slave 10 s after it stopped");
        h_sleep_ms(5);
    }

    for (int i = 0; i < 10; i++) {
        int64_t id = h_pick_id(verso_db_sqlite(db), "items");
        if (id)
            assert_int_equal(verso_record_delete(db, &h_items, id), 0);
    }
    assert_int_equal(verso_db_prune_version(NULL, db, h_head(mp)), 0);
    h_orm_workload(db, 5, 3);

    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    assert_int_equal(st.resyncs, 1);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* Under writes that never pause (200 rows changed per transaction, faster
 * than one-change messages drain them), sequences still end at snapshot
 * heads because the master widens its reads: the slave keeps committing. */
typedef struct writer {
    const char *path;
    atomic_int stop;
    atomic_int done;
} writer;

static void *transfer_loop(void *arg)
{
    writer *w = arg;
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open(w->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    for (int i = 0; i < 5000 && !atomic_load(&w->stop); i++) /* 200 changes each */
        assert_int_equal(
            sqlite3_exec(db, "UPDATE items SET qty = COALESCE(qty, 0) + 1", NULL, NULL, NULL),
            SQLITE_OK);
    sqlite3_close(db);
    atomic_store(&w->done, 1);
    return NULL;
}

static void test_live_sequences_end(void **state)
{
    const char *extra[] = {"--chunk", "1", NULL};
    char mp[600], sp[600];
    verso_slave_state st;
    writer w = {0};
    pthread_t th;
    h_master m;
    verso_slave *s;
    verso_db *db;
    int64_t commits0;

    (void)state;
    h_path(mp, sizeof(mp), "seq-master.db");
    h_path(sp, sizeof(sp), "seq-slave.db");
    db = h_open(mp);
    assert_int_equal(verso_db_begin(db), 0);
    for (int i = 0; i < 200; i++) {
        h_item it = {.name = "row"};
        assert_int_equal(verso_record_insert(db, &h_items, &it), 0);
    }
    assert_int_equal(verso_db_commit(db), 0);
    verso_db_close(db);
    h_master_start(&m, mp, extra);
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);
    verso_slave_state_get(&st, s);
    commits0 = st.commits;
    w.path = mp;
    assert_int_equal(pthread_create(&th, NULL, transfer_loop, &w), 0);
    do {
        h_sleep_ms(5);
        verso_slave_state_get(&st, s);
    } while (st.commits < commits0 + 5 && !atomic_load(&w.done));
    assert_false(atomic_load(&w.done)); /* commits came while the writes went on */
    atomic_store(&w.stop, 1);
    pthread_join(th, NULL);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
}

/* A slave stuck in its callback (its socket fills up) slows neither the
 * master's REST writes nor another slave; released, it catches up. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool open;
} gate;

static void on_apply_gated(const verso_sync_change *c, size_t n, int64_t cursor, bool reset,
                           void *arg)
{
    gate *g = arg;

    (void)c;
    (void)n;
    (void)cursor;
    (void)reset;
    pthread_mutex_lock(&g->lock);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

/* The largest field (lag_versions, lag_ms) in the master's /_status, checking it lists n slaves. */
static int64_t max_master_lag(const h_master *m, int n, const char *field)
{
    verso_buf body = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    const cJSON *slaves, *sl;
    int64_t lag = -1, v;

    assert_int_equal(h_http(m, "GET", "/_status", NULL, &body), 200);
    assert_int_equal(verso_json_parse(&doc, body.data, body.len, 0, NULL, 0), 0);
    slaves = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "replication"), "slaves");
    assert_int_equal(cJSON_GetArraySize(slaves), n);
    cJSON_ArrayForEach(sl, slaves)
    {
        assert_int_equal(verso_json_int64(&v, cJSON_GetObjectItemCaseSensitive(sl, field)), 0);
        lag = v > lag ? v : lag;
    }
    verso_json_free(doc);
    verso_buf_free(&body);
    return lag;
}

static void test_live_stuck_slave(void **state)
{
    gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
    char mp[600], fp[600], sp[600];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    h_master m;
    verso_slave *fast, *stuck;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "stuck-master.db");
    h_path(fp, sizeof(fp), "stuck-fast.db");
    h_path(sp, sizeof(sp), "stuck-slow.db");
    db = h_open(mp);
    h_seed(19);
    h_orm_workload(db, 20, 5);
    h_master_start(&m, mp, NULL);
    fast = start_slave(m.url, fp, NULL);
    o.client.on_apply = on_apply_gated;
    o.client.apply_arg = &g;
    o.heartbeat_ms = 60000; /* stuck on purpose: no heartbeat either */
    stuck = start_slave(m.url, sp, &o);
    for (int round = 0; round < 10; round++) {
        h_orm_workload(db, 40, 20);
        h_rest_workload(&m, mp, 5); /* served by the master's service thread */
    }
    wait_head(fast, mp);
    assert_int_equal(verso_slave_state_get(&st, stuck), 0);
    assert_true(st.cursor < h_head(mp));
    assert_true(max_master_lag(&m, 2, "lag_versions") > 0); /* the master sees who lags */
    assert_true(max_master_lag(&m, 2, "lag_ms") > 0);       /* and for how long */

    pthread_mutex_lock(&g.lock);
    g.open = true;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.lock);
    wait_head(stuck, mp);
    h_assert_converged(mp, fp);
    h_assert_converged(mp, sp);
    verso_slave_stop(fast);
    verso_slave_stop(stuck);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* Pull and live are the same stream: one file alternates between them. */
static void test_live_and_pull_alternate(void **state)
{
    char mp[600], sp[600], why[256] = "";
    verso_pull_result res;
    h_master m;
    verso_slave *s;
    verso_db *db, *sdb;

    (void)state;
    h_path(mp, sizeof(mp), "alt-master.db");
    h_path(sp, sizeof(sp), "alt-slave.db");
    db = h_open(mp);
    h_seed(21);
    h_orm_workload(db, 40, 10);
    h_master_start(&m, mp, NULL);
    for (int round = 0; round < 3; round++) {
        sdb = h_open(sp);
        if (verso_sync_pull(&res, sdb, m.url, NULL, why, sizeof(why)) < 0)
            fail_msg("pull: %s", why);
        assert_false(res.resynced);
        verso_db_close(sdb);
        h_assert_converged(mp, sp);
        h_orm_workload(db, 20, 10);
        s = start_slave(m.url, sp, NULL);
        wait_head(s, mp);
        h_orm_workload(db, 20, 10);
        wait_head(s, mp);
        verso_slave_stop(s);
        h_assert_converged(mp, sp);
        h_orm_workload(db, 20, 10);
    }
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* `verso replicate --port 0` is a live slave that serves its copy: a pull
 * from it gets the master's rows and versions. */
static void test_cli_replicate_serves(void **state)
{
    char mp[600], bp[600], cp[600], line[256] = "", why[256] = "", *url;
    const char *bin = getenv("VERSO_BIN");
    verso_pull_result res;
    h_master m;
    verso_db *db, *cdb;
    int fds[2], status;
    pid_t pid;
    FILE *err;
    pid_t parent = getpid();

    (void)state;
    h_path(mp, sizeof(mp), "cli-a.db");
    h_path(bp, sizeof(bp), "cli-b.db");
    h_path(cp, sizeof(cp), "cli-c.db");
    db = h_open(mp);
    h_seed(22);
    h_orm_workload(db, 30, 10);
    h_master_start(&m, mp, NULL);
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    if ((pid = fork()) == 0) {
        const char *args[] = {"verso", "replicate", "--port", "0", m.url, bp, NULL};
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* the test died before prctl */
            _exit(1);
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        close(fds[1]);
        execv(bin, (char *const *)args);
        _exit(127);
    }
    close(fds[1]);
    assert_non_null(err = fdopen(fds[0], "r"));
    do /* "verso replicate: serving B on URL", maybe after an event line */
        assert_non_null(fgets(line, sizeof(line), err));
    while (!strstr(line, "serving "));
    assert_non_null(url = strstr(line, "http://"));
    url[strcspn(url, "\n")] = '\0';
    h_orm_workload(db, 10, 5);
    if (!h_wait_cursor(mp, bp, 20000))
        fail_msg("verso replicate did not follow");
    assert_non_null(cdb = h_open(cp));
    if (verso_sync_pull(&res, cdb, url, NULL, why, sizeof(why)) < 0)
        fail_msg("pull from the slave: %s", why);
    verso_db_close(cdb);
    h_assert_converged(bp, cp);
    h_assert_table_equal(mp, cp, "items");
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fclose(err);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* A table tracked on the master while slaves follow it reaches them. */
static void test_live_new_table(void **state)
{
    char mp[600], sp[600];
    h_master m;
    verso_slave *s;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "newtable-master.db");
    h_path(sp, sizeof(sp), "newtable-slave.db");
    db = h_open(mp);
    h_seed(18);
    h_orm_workload(db, 10, 5);
    h_master_start(&m, mp, NULL);
    s = start_slave(m.url, sp, NULL);
    wait_head(s, mp);

    assert_int_equal(verso_db_exec(db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT);"
                                       "INSERT INTO notes(body) VALUES ('one'), ('two');"),
                     0);
    assert_int_equal(verso_db_track(db, "notes", NULL), 0);
    assert_int_equal(verso_db_exec(db, "INSERT INTO notes(body) VALUES ('three');"
                                       "UPDATE notes SET body = 'uno' WHERE id = 1;"
                                       "DELETE FROM notes WHERE id = 2;"),
                     0);
    h_orm_workload(db, 10, 5);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    h_assert_table_equal(mp, sp, "notes");
    assert_int_equal(h_count(sp, "notes"), 2);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* A master that stops answering (SIGSTOP: the socket stays open) is
 * detected by missing heartbeats; the slave reconnects once it is back. */
static void test_live_silent_master(void **state)
{
    const char *extra[] = {"--heartbeat", "200", NULL};
    char mp[600], sp[600];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    h_master m;
    verso_slave *s;
    verso_db *db;
    int64_t deadline;

    (void)state;
    h_path(mp, sizeof(mp), "silent-master.db");
    h_path(sp, sizeof(sp), "silent-slave.db");
    db = h_open(mp);
    h_seed(17);
    h_orm_workload(db, 20, 5);
    h_master_start(&m, mp, extra);
    o.heartbeat_ms = 5000; /* capped by the master's 200 ms */
    s = start_slave(m.url, sp, &o);
    wait_head(s, mp);
    /* idle for 4 heartbeat periods, one more than either side's silence
     * limit: heartbeats keep the link up, watched all along */
    for (int64_t t0 = h_now_ms(); h_now_ms() - t0 < 4 * 200; h_sleep_ms(10)) {
        assert_int_equal(verso_slave_state_get(&st, s), 0);
        if (!st.connected || st.reconnects != 0)
            fail_msg("the idle link dropped after %lld ms: %s", (long long)(h_now_ms() - t0),
                     st.last_error);
    }

    kill(m.pid, SIGSTOP);
    deadline = h_now_ms() + 10000;
    do {
        h_sleep_ms(20);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    } while (st.connected && h_now_ms() < deadline);
    assert_false(st.connected);
    kill(m.pid, SIGCONT);
    h_orm_workload(db, 10, 5);
    wait_head(s, mp);
    h_assert_converged(mp, sp);
    verso_slave_stop(s);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

/* master (process) -> slave B (this process, also a master) -> sub-slave C */
static void test_live_cascade(void **state)
{
    char mp[600], bp[600], cp[600], burl[64], why[256] = "";
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    verso_sync_master *bm = NULL;
    verso_rest *bsrv = NULL;
    h_master m;
    verso_slave *b, *c;
    verso_db *db;

    (void)state;
    h_path(mp, sizeof(mp), "cascade-a.db");
    h_path(bp, sizeof(bp), "cascade-b.db");
    h_path(cp, sizeof(cp), "cascade-c.db");
    db = h_open(mp);
    h_seed(16);
    h_seed_accounts(db, 50);
    h_orm_workload(db, 60, 10);
    h_master_start(&m, mp, NULL);
    b = start_slave(m.url, bp, NULL);
    wait_head(b, mp);

    if (verso_sync_master_new(&bm, bp, NULL, why, sizeof(why)) < 0)
        fail_msg("B master: %s", why);
    verso_sync_master_mount(bm, &ro);
    ro.db_path = bp;
    if (verso_rest_start(&bsrv, NULL, &ro, why, sizeof(why)) < 0)
        fail_msg("B server: %s", why);
    snprintf(burl, sizeof(burl), "http://127.0.0.1:%d", verso_rest_port(bsrv));
    c = start_slave(burl, cp, NULL);
    {
        h_master bview = {.port = verso_rest_port(bsrv)};
        snprintf(bview.url, sizeof(bview.url), "%s", burl);
        assert_int_equal(h_http(&bview, "POST", "/items", "{\"name\":\"no\"}", NULL), 403);
    }

    for (int round = 0; round < 4; round++) {
        h_orm_workload(db, 30, 10);
        h_sql_workload(mp, 3);
    }
    wait_head(b, mp);
    wait_head(c, bp); /* B's head equals A's: the original versions flow down */
    {                 /* B, as a master, knows from C's acks that C caught up */
        verso_sync_peer *peers = NULL;
        size_t n = 0;
        int64_t deadline = h_now_ms() + 10000, head = h_head(bp);
        for (;;) {
            assert_int_equal(verso_sync_master_peers(&peers, &n, bm), 0);
            assert_int_equal(n, 1);
            if ((peers[0].acked == head && peers[0].lag_versions == 0 && peers[0].lag_ms == 0) ||
                h_now_ms() > deadline)
                break;
            verso_free(peers);
            h_sleep_ms(10);
        }
        assert_int_equal(peers[0].acked, head);
        assert_int_equal(peers[0].lag_versions, 0);
        assert_int_equal(peers[0].lag_ms, 0);
        assert_true(peers[0].sent_rows > 0);
        verso_free(peers);
    }
    h_assert_converged(mp, bp);
    h_assert_converged(bp, cp);
    h_assert_table_equal(mp, cp, "items");
    h_assert_table_equal(mp, cp, "accounts");

    verso_slave_stop(c);
    verso_rest_stop(bsrv);
    verso_sync_master_close(bm);
    verso_slave_stop(b);
    h_master_kill(&m, SIGTERM);
    verso_db_close(db);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live_converges),
        cmocka_unit_test(test_live_atomic),
        cmocka_unit_test(test_live_callbacks_and_ryw),
        cmocka_unit_test(test_live_master_restart),
        cmocka_unit_test(test_live_master_error_kept),
        cmocka_unit_test(test_live_master_recreated),
        cmocka_unit_test(test_live_behind_horizon),
        cmocka_unit_test(test_live_cursor_ahead),
        cmocka_unit_test(test_live_cascade),
        cmocka_unit_test(test_live_silent_master),
        cmocka_unit_test(test_live_new_table),
        cmocka_unit_test(test_live_stuck_slave),
        cmocka_unit_test(test_live_sequences_end),
        cmocka_unit_test(test_live_and_pull_alternate),
        cmocka_unit_test(test_cli_replicate_serves),
        cmocka_unit_test(test_live_replaces_local_rows),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_live");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
