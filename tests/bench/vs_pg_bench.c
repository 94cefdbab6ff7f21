/*
 * vs_pg_bench - verso replication against PostgreSQL 15 logical replication,
 * the same workload with the same definitions, run in one go, interleaved
 * in rounds (verso first in even rounds, PostgreSQL first in odd ones).
 * scripts/bench_vs_pg.sh starts the two PostgreSQL clusters and runs it;
 * docs/perf-pgbench.md states every definition and the figures.
 *
 * Table items(id int64 primary key, name text, price double, qty int64);
 * row i is (i, 'row i', i * 0.25, i) on both sides. Publishers commit
 * durably (PostgreSQL synchronous_commit=on; verso synchronous=FULL);
 * subscribers flush nothing at commit (synchronous_commit=off; verso's
 * slave: WAL with synchronous=NORMAL).
 *
 *   bootstrap  ROWS rows into an empty subscriber: PostgreSQL CREATE
 *       SUBSCRIPTION (copy_data) until the subscriber shows them all;
 *       `verso pull` until it exits, `verso replicate` until its file shows
 *       them all (both from `verso serve`)
 *   lag        one-row transactions at RATE/s for LAG_S seconds, each timed
 *       from the start of the publisher's commit call (_start) and from its
 *       return (_return) to the subscriber's commit: PostgreSQL, an ALWAYS
 *       trigger on the subscriber NOTIFYs, a LISTENing connection's thread
 *       stamps the arrival; verso, the slave's apply callback (it runs after
 *       the slave's commit). verso with the master in the writer's process
 *       (verso_lag_*) and with `verso serve` and the writer in this process
 *       (verso_serve_lag_*)
 *   sustained  100-row transactions as fast as one writer can for S seconds
 *       (PostgreSQL: one prepared 100-row INSERT per transaction, one round
 *       trip; verso: 100 verso_record_insert between begin and commit; master
 *       in the writer's process); a thread reads max(id) on the subscriber
 *       every 2 ms: subscriber rows/s, backlog at the end, the longest time
 *       with no change seen while the writer had committed past the reading
 *       (_max_stall_ms), with no change at all (_max_gap_ms), between two
 *       readings (_max_sample_step_ms) and between two of the writer's
 *       commits (_pub_max_gap_ms). Then the same paced at the rows/s
 *       PostgreSQL's subscriber reached in that round (_paced_)
 *
 * Usage: vs_pg_bench --pub CONNINFO --sub CONNINFO --verso BIN --dir DIR
 *        [--rounds N] [--rows N] [--seconds S] [--lag-seconds S]
 *        [--lag-rate R] [--parts bootstrap,lag,sustained]
 * CONNINFO names the database (created empty by the script) on each cluster;
 * the subscriber reaches the publisher with the --pub string.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"
#include "bench_rounds.h"

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
} row;

static const verso_field row_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(row, qty, VERSO_INT64, 0),
};
static const verso_table_def items = VERSO_TABLE_DEF("items", row, row_fields);
static const verso_table_def *const tables[] = {&items};

enum { TX_ROWS = 100, SAMPLE_US = 2000, MAX_SAMPLES = 1 << 20 };

static struct config {
    const char *pub, *sub, *verso, *dir;
    int rounds, rows, seconds, lag_seconds, lag_rate;
    bool boot, lag, sustained;
} cfg = {.rounds = 3, .rows = 1000000, .seconds = 10, .lag_seconds = 5, .lag_rate = 200};

/* ---- clock, errors ---- */

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_until(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};

    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "vs_pg_bench: %s: %s\n", what, detail);
    exit(1);
}

/* ---- results: one series per figure name ---- */

enum { MAX_FIGURES = 64 };

static struct figure {
    const char *name;
    bench_series s;
} figs[MAX_FIGURES];
static int nfigs;

static bench_series *series(const char *name)
{
    for (int i = 0; i < nfigs; i++)
        if (!strcmp(figs[i].name, name))
            return &figs[i].s;
    if (nfigs == MAX_FIGURES)
        die("figures", "too many");
    if (!(figs[nfigs].name = strdup(name)))
        die("figures", "out of memory");
    return &figs[nfigs++].s;
}

static void record(const char *name, double v)
{
    bench_add(series(name), v);
    fprintf(stderr, "vs_pg_bench:   %s %.3f\n", name, v);
}

/* ---- samples ---- */

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double pct_us(int64_t *ns, int n, int pct)
{
    int i = (int)((int64_t)n * pct / 100);

    qsort(ns, (size_t)n, sizeof(*ns), cmp_i64);
    return (double)ns[i < n ? i : n - 1] / 1e3;
}

/* ---- PostgreSQL ---- */

static PGconn *pg_open(const char *conninfo, const char *dbname)
{
    char ci[1024];
    PGconn *c;

    snprintf(ci, sizeof(ci), "%s%s%s", conninfo, dbname ? " dbname=" : "", dbname ? dbname : "");
    c = PQconnectdb(ci);
    if (PQstatus(c) != CONNECTION_OK)
        die(ci, PQerrorMessage(c));
    return c;
}

static void pg_check(PGconn *c, PGresult *r, const char *what)
{
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        die(what, PQerrorMessage(c));
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    pg_check(c, r, sql);
    PQclear(r);
}

/* The first cell of a one-value query as an integer; NULL is 0. */
static int64_t pg_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int64_t v;

    pg_check(c, r, sql);
    v = PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

static void pg_prepare(PGconn *c, const char *name, const char *sql, int nparams)
{
    PGresult *r = PQprepare(c, name, sql, nparams, NULL);

    pg_check(c, r, sql);
    PQclear(r);
}

#define ITEMS_DDL "(id bigint PRIMARY KEY, name text, price double precision, qty bigint)"

/* Polls sql on c every 5 ms until it returns want; 0, or -1 after limit_s. */
static int pg_wait_value(PGconn *c, const char *sql, int64_t want, int limit_s)
{
    int64_t end = now_ns() + (int64_t)limit_s * 1000000000;

    while (pg_int(c, sql) != want) {
        if (now_ns() > end)
            return -1;
        sleep_until(now_ns() + 5000000);
    }
    return 0;
}

static PGconn *pub_db, *sub_db;

/* Tables, publications, the live subscription (no copy) and the notify
 * trigger (disabled until the lag part). */
static void pg_setup(void)
{
    char sql[2048];

    pub_db = pg_open(cfg.pub, NULL);
    sub_db = pg_open(cfg.sub, NULL);
    pg_exec(pub_db, "CREATE TABLE items " ITEMS_DDL "; CREATE TABLE boot_items " ITEMS_DDL);
    snprintf(sql, sizeof(sql),
             "INSERT INTO boot_items SELECT i, 'row ' || i, i * 0.25, i"
             " FROM generate_series(1, %d) i",
             cfg.rows);
    pg_exec(pub_db, sql);
    pg_exec(pub_db, "VACUUM ANALYZE boot_items");
    pg_exec(pub_db, "CREATE PUBLICATION pub_live FOR TABLE items;"
                    " CREATE PUBLICATION pub_boot FOR TABLE boot_items");
    pg_exec(sub_db, "CREATE TABLE items " ITEMS_DDL);
    pg_exec(sub_db, "CREATE FUNCTION items_notify() RETURNS trigger LANGUAGE plpgsql AS"
                    " $$BEGIN PERFORM pg_notify('items', NEW.id::text); RETURN NULL; END$$");
    pg_exec(sub_db, "CREATE TRIGGER items_notify AFTER INSERT ON items FOR EACH ROW"
                    " EXECUTE FUNCTION items_notify(); ALTER TABLE items DISABLE TRIGGER"
                    " items_notify");
    snprintf(sql, sizeof(sql),
             "CREATE SUBSCRIPTION sub_live CONNECTION '%s' PUBLICATION pub_live"
             " WITH (copy_data = false)",
             cfg.pub);
    pg_exec(sub_db, sql);
    /* the subscription is live once a row written now arrives */
    pg_exec(pub_db, "INSERT INTO items VALUES (0, 'probe', 0, 0)");
    if (pg_wait_value(sub_db, "SELECT count(*) FROM items WHERE id = 0", 1, 60) < 0)
        die("postgresql", "the live subscription did not start within 60 s");
    pg_exec(pub_db, "DELETE FROM items");
    if (pg_wait_value(sub_db, "SELECT count(*) FROM items", 0, 60) < 0)
        die("postgresql", "the subscriber did not apply a delete within 60 s");
}

/* ---- verso ---- */

static verso_db *verso_open(const char *path, bool durable)
{
    char why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = tables;
    o.ntables = 1;
    o.synchronous_full = durable;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        die(path, why);
    return db;
}

static void fresh_path(char *out, size_t n, const char *name)
{
    static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
    char p[700];

    snprintf(out, n, "%s/%s", cfg.dir, name);
    for (size_t i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", out, sides[i]);
        remove(p);
    }
}

static void verso_row(row *r, int64_t id, char *buf, size_t n)
{
    snprintf(buf, n, "row %lld", (long long)id);
    *r = (row){.id = id, .name = buf, .price = (double)id * 0.25, .qty = id};
}

static int64_t verso_insert(verso_db *db, int64_t id)
{
    char name[32];
    row r;

    verso_row(&r, id, name, sizeof(name));
    if (verso_record_insert(db, &items, &r) < 0)
        die("verso insert", verso_db_errmsg(db));
    return r.version;
}

static void verso_commit(verso_db *db)
{
    if (verso_db_commit(db) < 0)
        die("verso commit", verso_db_errmsg(db));
}

/* A master in this process: the writer's handle, REST + /_sync, pushed at once. */
typedef struct master {
    verso_db *db;
    verso_sync_master *sync;
    verso_rest *srv;
    char url[64];
} master;

static void master_start(master *m, const char *path)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    m->db = verso_open(path, true);
    if (verso_sync_master_new(&m->sync, path, NULL, why, sizeof(why)) < 0)
        die("master", why);
    verso_sync_master_mount(m->sync, &ro);
    ro.port = VERSO_REST_PORT_ANY;
    if (verso_rest_start(&m->srv, m->db, &ro, why, sizeof(why)) < 0)
        die("server", why);
    verso_sync_master_watch(m->sync, m->db);
    snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", verso_rest_port(m->srv));
}

static void master_stop(master *m)
{
    verso_sync_master_unwatch(m->sync, m->db);
    verso_rest_stop(m->srv);
    verso_sync_master_close(m->sync);
    verso_db_close(m->db);
}

typedef struct applied {
    atomic_llong cursor;
    atomic_llong at_ns;
} applied;

static void on_apply(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    applied *a = arg;

    (void)c;
    (void)n;
    (void)reset;
    atomic_store(&a->at_ns, now_ns());
    atomic_store(&a->cursor, cursor);
}

static verso_slave *slave_start(const char *path, const char *url, applied *a)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    o.client.on_apply = a ? on_apply : NULL;
    o.client.apply_arg = a;
    if (verso_slave_start(&s, path, url, &o, why, sizeof(why)) < 0)
        die("slave", why);
    return s;
}

/* `verso serve PATH --port 0` as a child; its URL from its first line. */
static pid_t serve_start(const char *path, char *url, size_t n)
{
    int fds[2];
    FILE *out;
    pid_t pid;

    if (pipe(fds) != 0)
        die("pipe", strerror(errno));
    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        execl(cfg.verso, cfg.verso, "serve", path, "--port", "0", "--quiet", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (!(out = fdopen(fds[0], "r")) || !fgets(url, (int)n, out))
        die(cfg.verso, "serve did not start");
    url[strcspn(url, "\n")] = '\0';
    if (url[0] && url[strlen(url) - 1] == '/')
        url[strlen(url) - 1] = '\0';
    fclose(out);
    return pid;
}

static void child_stop(pid_t pid)
{
    int status;

    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
}

/* ---- bootstrap ---- */

static pid_t boot_serve;
static char boot_url[256];

static void verso_boot_prepare(void)
{
    char path[600];
    verso_db *db;

    fresh_path(path, sizeof(path), "boot-master.db");
    db = verso_open(path, true);
    verso_db_begin(db);
    for (int64_t i = 1; i <= cfg.rows; i++)
        verso_insert(db, i);
    verso_commit(db);
    verso_db_close(db);
    boot_serve = serve_start(path, boot_url, sizeof(boot_url));
}

static void pg_boot_round(void)
{
    char sql[1024];
    PGconn *boot;
    int64_t t0;

    pg_exec(sub_db, "DROP DATABASE IF EXISTS boot WITH (FORCE)");
    pg_exec(sub_db, "CREATE DATABASE boot");
    boot = pg_open(cfg.sub, "boot");
    pg_exec(boot, "CREATE TABLE boot_items " ITEMS_DDL);
    snprintf(sql, sizeof(sql), "CREATE SUBSCRIPTION sub_boot CONNECTION '%s' PUBLICATION pub_boot",
             cfg.pub);
    t0 = now_ns();
    pg_exec(boot, sql);
    /* the initial copy commits in one transaction: all rows show at once */
    if (pg_wait_value(boot, "SELECT coalesce(max(id), 0) FROM boot_items", cfg.rows, 300) < 0)
        die("postgresql bootstrap", "not done within 300 s");
    record("pg_boot_s", (double)(now_ns() - t0) / 1e9);
    if (pg_int(boot, "SELECT count(*) FROM boot_items") != cfg.rows)
        die("postgresql bootstrap", "row count differs");
    pg_exec(boot, "DROP SUBSCRIPTION sub_boot"); /* and its slot on the publisher */
    PQfinish(boot);
    pg_exec(sub_db, "DROP DATABASE boot WITH (FORCE)");
}

/* max(id) of items in the SQLite file at path; -1 while it cannot be read. */
static int64_t sqlite_max_id(const char *path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT coalesce(max(id), 0) FROM items", -1, &st, NULL) ==
            SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static double run_child(char *const argv[], const char *until_path)
{
    int64_t t0 = now_ns(), end = t0 + 300 * (int64_t)1000000000;
    int status;
    pid_t pid;

    if ((pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(argv[0], argv);
        _exit(127);
    }
    if (!until_path) {
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status))
            die(argv[1], "failed");
        return (double)(now_ns() - t0) / 1e9;
    }
    while (sqlite_max_id(until_path) != cfg.rows) {
        if (now_ns() > end)
            die(argv[1], "not done within 300 s");
        sleep_until(now_ns() + 5000000);
    }
    t0 = now_ns() - t0;
    child_stop(pid);
    return (double)t0 / 1e9;
}

static void verso_boot_round(void)
{
    char path[600];
    char *pull[] = {(char *)cfg.verso, "pull", "--quiet", boot_url, path, NULL};
    char *repl[] = {(char *)cfg.verso, "replicate", "--quiet", boot_url, path, NULL};

    fresh_path(path, sizeof(path), "boot-pull.db");
    record("verso_pull_boot_s", run_child(pull, NULL));
    if (sqlite_max_id(path) != cfg.rows)
        die("verso pull", "rows missing");
    fresh_path(path, sizeof(path), "boot-replicate.db");
    record("verso_replicate_boot_s", run_child(repl, path));
}

/* ---- lag ---- */

/* One side of the lag test: commit one row (timing the commit call), then
 * wait until its subscriber committed it; times in ns. */
typedef struct lag_side {
    void (*write)(void *ctx, int64_t id, int64_t *t_start, int64_t *t_return);
    int64_t (*await)(void *ctx, int64_t id); /* the subscriber's commit time */
    void *ctx;
} lag_side;

static void lag_run(const lag_side *side, int64_t first_id, const char *start_name,
                    const char *ret_name)
{
    int n = cfg.lag_seconds * cfg.lag_rate;
    int64_t *from_start = calloc((size_t)n, sizeof(int64_t));
    int64_t *from_ret = calloc((size_t)n, sizeof(int64_t));
    int64_t t0 = now_ns(), gap = 1000000000 / cfg.lag_rate;
    char name[96];

    if (!from_start || !from_ret)
        die("lag", "out of memory");
    for (int i = 0; i < n; i++) {
        int64_t ts, tr, tc;

        sleep_until(t0 + gap * i);
        side->write(side->ctx, first_id + i, &ts, &tr);
        tc = side->await(side->ctx, first_id + i);
        from_start[i] = tc - ts;
        from_ret[i] = tc - tr;
    }
    snprintf(name, sizeof(name), "%s_p50_us", start_name);
    record(name, pct_us(from_start, n, 50));
    snprintf(name, sizeof(name), "%s_p99_us", start_name);
    record(name, pct_us(from_start, n, 99));
    snprintf(name, sizeof(name), "%s_p50_us", ret_name);
    record(name, pct_us(from_ret, n, 50));
    snprintf(name, sizeof(name), "%s_p99_us", ret_name);
    record(name, pct_us(from_ret, n, 99));
    free(from_start);
    free(from_ret);
}

/* PostgreSQL: a thread LISTENs on the subscriber and stamps each NOTIFY. */
typedef struct pg_lag {
    PGconn *writer, *listener;
    pthread_t thread;
    atomic_bool stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int64_t last_id, last_ns; /* under mu */
} pg_lag;

static void *pg_listen_loop(void *arg)
{
    pg_lag *l = arg;
    struct pollfd p = {.fd = PQsocket(l->listener), .events = POLLIN};
    PGnotify *nt;

    while (!atomic_load(&l->stop)) {
        if (poll(&p, 1, 50) <= 0)
            continue;
        if (!PQconsumeInput(l->listener))
            die("listen", PQerrorMessage(l->listener));
        while ((nt = PQnotifies(l->listener)) != NULL) {
            int64_t t = now_ns(), id = strtoll(nt->extra, NULL, 10);
            pthread_mutex_lock(&l->mu);
            if (id > l->last_id) {
                l->last_id = id;
                l->last_ns = t;
            }
            pthread_cond_broadcast(&l->cv);
            pthread_mutex_unlock(&l->mu);
            PQfreemem(nt);
        }
    }
    return NULL;
}

static void pg_lag_write(void *ctx, int64_t id, int64_t *ts, int64_t *tr)
{
    pg_lag *l = ctx;
    char a[24], b[40], c[40];
    const char *v[4] = {a, b, c, a};
    PGresult *r;

    snprintf(a, sizeof(a), "%lld", (long long)id);
    snprintf(b, sizeof(b), "row %lld", (long long)id);
    snprintf(c, sizeof(c), "%.17g", (double)id * 0.25);
    pg_exec(l->writer, "BEGIN");
    r = PQexecPrepared(l->writer, "ins1", 4, v, NULL, NULL, 0);
    pg_check(l->writer, r, "insert");
    PQclear(r);
    *ts = now_ns();
    pg_exec(l->writer, "COMMIT");
    *tr = now_ns();
}

static int64_t pg_lag_await(void *ctx, int64_t id)
{
    pg_lag *l = ctx;
    struct timespec dl;
    int64_t t;

    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&l->mu);
    while (l->last_id < id)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &dl) == ETIMEDOUT)
            die("postgresql lag", "no notification within 10 s");
    t = l->last_ns;
    pthread_mutex_unlock(&l->mu);
    return t;
}

static int64_t pg_next_id = 1;

/* The hop the PostgreSQL end point adds: a NOTIFY committed by a plain
 * connection on the subscriber, from its return to the listener's stamp. */
static void pg_notify_hop(pg_lag *l)
{
    enum { N = 200 };
    int64_t hop[N];
    char sql[64];

    for (int i = 0; i < N; i++) {
        int64_t id = pg_next_id++, tr;
        snprintf(sql, sizeof(sql), "NOTIFY items, '%lld'", (long long)id);
        pg_exec(sub_db, sql);
        tr = now_ns();
        hop[i] = pg_lag_await(l, id) - tr;
        sleep_until(now_ns() + 2000000);
    }
    record("pg_notify_hop_p50_us", pct_us(hop, N, 50));
}

static void pg_lag_round(void)
{
    pg_lag l = {.stop = false};
    lag_side side = {pg_lag_write, pg_lag_await, &l};

    pthread_mutex_init(&l.mu, NULL);
    pthread_cond_init(&l.cv, NULL);
    l.writer = pg_open(cfg.pub, NULL);
    l.listener = pg_open(cfg.sub, NULL);
    pg_prepare(l.writer, "ins1", "INSERT INTO items VALUES ($1, $2, $3, $4)", 4);
    pg_exec(l.listener, "LISTEN items");
    pg_exec(sub_db, "ALTER TABLE items ENABLE ALWAYS TRIGGER items_notify");
    l.last_id = pg_next_id - 1;
    if (pthread_create(&l.thread, NULL, pg_listen_loop, &l) != 0)
        die("thread", "cannot start");
    /* a first row, past the trigger's first use */
    pg_lag_write(&l, pg_next_id, &(int64_t){0}, &(int64_t){0});
    pg_lag_await(&l, pg_next_id++);
    lag_run(&side, pg_next_id, "pg_lag_start", "pg_lag_return");
    pg_next_id += cfg.lag_seconds * cfg.lag_rate;
    pg_notify_hop(&l);
    atomic_store(&l.stop, true);
    pthread_join(l.thread, NULL);
    pg_exec(sub_db, "ALTER TABLE items DISABLE TRIGGER items_notify");
    PQfinish(l.writer);
    PQfinish(l.listener);
    pthread_mutex_destroy(&l.mu);
    pthread_cond_destroy(&l.cv);
}

typedef struct verso_lag {
    verso_db *writer;
    verso_slave *slave;
    applied a;
    int64_t version; /* the last one written */
} verso_lag;

static void verso_lag_write(void *ctx, int64_t id, int64_t *ts, int64_t *tr)
{
    verso_lag *l = ctx;

    verso_db_begin(l->writer);
    l->version = verso_insert(l->writer, id);
    *ts = now_ns();
    verso_commit(l->writer);
    *tr = now_ns();
}

static int64_t verso_lag_await(void *ctx, int64_t id)
{
    verso_lag *l = ctx;

    (void)id;
    if (verso_slave_wait(l->slave, l->version, 10000) < 0)
        die("verso lag", "the slave did not commit within 10 s");
    /* the callback has run: verso_slave_wait returns after it */
    if (atomic_load(&l->a.cursor) < l->version)
        die("verso lag", "the apply callback did not run");
    return atomic_load(&l->a.at_ns);
}

static void verso_lag_go(verso_lag *l, const char *start_name, const char *ret_name)
{
    lag_side side = {verso_lag_write, verso_lag_await, l};

    verso_lag_write(l, 1, &(int64_t){0}, &(int64_t){0});
    verso_lag_await(l, 1);
    lag_run(&side, 2, start_name, ret_name);
}

/* With the master in this process, or `verso serve` and the writer here. */
static void verso_lag_config(bool serve)
{
    char mp[600], sp[600];
    verso_lag l = {0};
    master m = {0};
    pid_t pid = 0;

    fresh_path(mp, sizeof(mp), serve ? "lag-serve-master.db" : "lag-master.db");
    fresh_path(sp, sizeof(sp), serve ? "lag-serve-slave.db" : "lag-slave.db");
    if (serve) {
        l.writer = verso_open(mp, true);
        pid = serve_start(mp, m.url, sizeof(m.url));
    } else {
        master_start(&m, mp);
        l.writer = m.db;
    }
    l.slave = slave_start(sp, m.url, &l.a);
    if (serve)
        verso_lag_go(&l, "verso_serve_lag_start", "verso_serve_lag_return");
    else
        verso_lag_go(&l, "verso_lag_start", "verso_lag_return");
    verso_slave_stop(l.slave);
    if (serve) {
        child_stop(pid);
        verso_db_close(l.writer);
    } else {
        master_stop(&m);
    }
}

static void verso_lag_round(void)
{
    verso_lag_config(false);
    verso_lag_config(true);
}

/* ---- sustained ---- */

/* A thread reads the subscriber's max(id) every SAMPLE_US and keeps every
 * reading with its time. */
typedef struct sampler {
    int64_t (*read)(void *ctx);
    void *ctx;
    pthread_t thread;
    atomic_bool stop;
    int64_t *t, *v; /* readings: time (ns) and value */
    atomic_int n;   /* readings stored */
} sampler;

/* The sampler's own delays would read as stalls: under load a 2 ms sleeper
 * may wait 100 ms for a core. A real-time priority (root only) keeps its
 * steps short; its longest step is reported either way. */
static atomic_bool sampler_rt;

static void *sampler_loop(void *arg)
{
    sampler *s = arg;
    int64_t next = now_ns();
    struct sched_param sp = {.sched_priority = 10};

    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0)
        atomic_store(&sampler_rt, true);

    while (!atomic_load(&s->stop)) {
        int64_t v = s->read(s->ctx), t = now_ns();
        int n = atomic_load(&s->n);
        if (v < 0 && n > 0) /* a read that failed (busy) repeats the last one */
            v = s->v[n - 1];
        if (n < MAX_SAMPLES) {
            s->t[n] = t;
            s->v[n] = v;
            atomic_store(&s->n, n + 1);
        }
        next += SAMPLE_US * 1000;
        if (next < t)
            next = t;
        sleep_until(next);
    }
    return NULL;
}

static void sampler_start(sampler *s)
{
    s->t = malloc(MAX_SAMPLES * sizeof(int64_t));
    s->v = malloc(MAX_SAMPLES * sizeof(int64_t));
    if (!s->t || !s->v)
        die("sampler", "out of memory");
    atomic_store(&s->n, 0);
    atomic_store(&s->stop, false);
    if (pthread_create(&s->thread, NULL, sampler_loop, s) != 0)
        die("thread", "cannot start");
    while (atomic_load(&s->n) == 0) /* a first reading before the writer starts */
        sleep_until(now_ns() + 1000000);
}

static void sampler_stop(sampler *s)
{
    atomic_store(&s->stop, true);
    pthread_join(s->thread, NULL);
    free(s->t);
    free(s->v);
}

static int64_t sampler_last(sampler *s)
{
    return s->v[atomic_load(&s->n) - 1];
}

/* Longest time in [t0, t1] with no change seen (*stall; the end counts when
 * rows were still to apply) and between two readings (*step), in ms; when
 * that longest gap began, in s from t0 (*stall_at). */
static void sampler_gaps(sampler *s, int64_t t0, int64_t t1, bool behind, double *stall,
                         double *step, double *stall_at)
{
    int n = atomic_load(&s->n);
    int64_t since = t0, gap = 0, prev_t = t0, big = 0, gap_from = t0;

    for (int i = 1; i < n && s->t[i] <= t1; i++) {
        if (s->t[i] < t0)
            continue;
        if (s->t[i] - prev_t > big)
            big = s->t[i] - prev_t;
        prev_t = s->t[i];
        if (s->v[i] != s->v[i - 1]) {
            if (s->t[i] - since > gap)
                gap = s->t[i] - since, gap_from = since;
            since = s->t[i];
        }
    }
    if (behind && t1 - since > gap)
        gap = t1 - since, gap_from = since;
    *stall = (double)gap / 1e6;
    *stall_at = (double)(gap_from - t0) / 1e9;
    *step = (double)big / 1e6;
}

/* The writer's commits in a sustained run: return time, last id written. */
typedef struct commits {
    int64_t *t, *id;
    int n, cap;
} commits;

static void commits_add(commits *c, int64_t t, int64_t id)
{
    if (c->n < c->cap) {
        c->t[c->n] = t;
        c->id[c->n++] = id;
    }
}

/* From reading value v, unchanged over [a, b): how long of it the subscriber
 * had rows to apply (from the first commit past v, or a if earlier). */
static int64_t behind_span(const commits *c, int *k, int64_t v, int64_t a, int64_t b)
{
    int64_t from;

    while (*k < c->n && c->id[*k] <= v)
        (*k)++;
    if (*k == c->n)
        return 0;
    from = c->t[*k] > a ? c->t[*k] : a;
    return b > from ? b - from : 0;
}

/* Longest time in [t0, t1] during which the subscriber's reading did not
 * change while the writer had committed rows past it, in ms: the issue's
 * "no commit while it has changes to apply". */
static double stall_behind_ms(sampler *s, const commits *c, int64_t t0, int64_t t1)
{
    int n = atomic_load(&s->n), i = 0, k = 0;
    int64_t v, a = t0, worst = 0, span;

    while (i + 1 < n && s->t[i + 1] <= t0)
        i++;
    for (v = s->v[i]; i < n && s->t[i] <= t1; i++) {
        if (s->t[i] <= t0 || s->v[i] == v)
            continue;
        if ((span = behind_span(c, &k, v, a, s->t[i])) > worst)
            worst = span;
        a = s->t[i];
        v = s->v[i];
    }
    if ((span = behind_span(c, &k, v, a, t1)) > worst)
        worst = span;
    return (double)worst / 1e6;
}

/* Longest time in [t0, t1] between two of the writer's commits, in ms. */
static double pub_gap_ms(const commits *c, int64_t t0, int64_t t1)
{
    int64_t prev = t0, worst = 0;

    for (int i = 0; i < c->n; i++) {
        if (c->t[i] - prev > worst)
            worst = c->t[i] - prev;
        prev = c->t[i];
    }
    return (double)(t1 - prev > worst ? t1 - prev : worst) / 1e6;
}

/* One side of the sustained test. */
typedef struct sus_side {
    void (*write_tx)(void *ctx, int64_t first_id); /* TX_ROWS rows, committed */
    int (*drain)(void *ctx, int64_t last_id);      /* 0 once all applied */
    void *ctx;
    sampler smp;
    int64_t next_id; /* after the run: the first id not written */
} sus_side;

/* Writes from first_id for cfg.seconds, paced to rate rows/s when rate > 0;
 * records prefix_{pub,sub}_rows_per_s, _backlog_rows, _max_gap_ms. Returns
 * the subscriber's rows/s. */
static double sustained_run(sus_side *sd, int64_t first_id, double rate, const char *prefix)
{
    int64_t t0 = now_ns(), end = t0 + (int64_t)cfg.seconds * 1000000000, id = first_id, t1;
    double pub_rows, sub_rows, secs, stall, step, stall_at;
    char name[128];
    int tx = 0;
    commits c = {.cap = cfg.seconds * 10000 + 16};

    c.t = malloc((size_t)c.cap * sizeof(int64_t));
    c.id = malloc((size_t)c.cap * sizeof(int64_t));
    if (!c.t || !c.id)
        die("commits", "out of memory");
    while (now_ns() < end) {
        if (rate > 0)
            sleep_until(t0 + (int64_t)(1e9 * TX_ROWS * tx / rate));
        if (now_ns() >= end)
            break;
        sd->write_tx(sd->ctx, id);
        id += TX_ROWS;
        tx++;
        commits_add(&c, now_ns(), id - 1);
    }
    t1 = now_ns();
    sub_rows = (double)(sampler_last(&sd->smp) - (first_id - 1));
    if (sub_rows < 0)
        sub_rows = 0;
    sd->next_id = id;
    pub_rows = (double)(id - first_id);
    secs = (double)(t1 - t0) / 1e9;
    snprintf(name, sizeof(name), "%s_pub_rows_per_s", prefix);
    record(name, pub_rows / secs);
    snprintf(name, sizeof(name), "%s_sub_rows_per_s", prefix);
    record(name, sub_rows / secs);
    snprintf(name, sizeof(name), "%s_backlog_rows", prefix);
    record(name, pub_rows - sub_rows);
    sampler_gaps(&sd->smp, t0, t1, pub_rows > sub_rows, &stall, &step, &stall_at);
    snprintf(name, sizeof(name), "%s_max_gap_ms", prefix);
    record(name, stall);
    fprintf(stderr, "vs_pg_bench:   (%s: the longest gap began %.3f s into the window)\n", prefix,
            stall_at);
    snprintf(name, sizeof(name), "%s_max_sample_step_ms", prefix);
    record(name, step);
    snprintf(name, sizeof(name), "%s_max_stall_ms", prefix);
    record(name, stall_behind_ms(&sd->smp, &c, t0, t1));
    snprintf(name, sizeof(name), "%s_pub_max_gap_ms", prefix);
    record(name, pub_gap_ms(&c, t0, t1));
    free(c.t);
    free(c.id);
    if (sd->drain(sd->ctx, id - 1) < 0)
        fprintf(stderr, "vs_pg_bench: %s: the subscriber did not drain its backlog\n", prefix);
    return sub_rows / secs;
}

/* PostgreSQL: one prepared 100-row INSERT per transaction (autocommit). */
typedef struct pg_sus {
    PGconn *writer, *reader;
} pg_sus;

static void pg_sus_write(void *ctx, int64_t first_id)
{
    pg_sus *p = ctx;
    static char buf[TX_ROWS][3][40];
    const char *v[TX_ROWS * 4];
    PGresult *r;

    for (int i = 0; i < TX_ROWS; i++) {
        int64_t id = first_id + i;
        snprintf(buf[i][0], 40, "%lld", (long long)id);
        snprintf(buf[i][1], 40, "row %lld", (long long)id);
        snprintf(buf[i][2], 40, "%.17g", (double)id * 0.25);
        v[i * 4] = v[i * 4 + 3] = buf[i][0];
        v[i * 4 + 1] = buf[i][1];
        v[i * 4 + 2] = buf[i][2];
    }
    r = PQexecPrepared(p->writer, "ins100", TX_ROWS * 4, v, NULL, NULL, 0);
    pg_check(p->writer, r, "insert 100");
    PQclear(r);
}

static int64_t pg_read_max(void *ctx)
{
    return pg_int(((pg_sus *)ctx)->reader, "SELECT coalesce(max(id), 0) FROM items");
}

static int pg_sus_drain(void *ctx, int64_t last_id)
{
    (void)ctx;
    return pg_wait_value(sub_db, "SELECT coalesce(max(id), 0) FROM items", last_id, 300);
}

static void pg_sus_prepare(pg_sus *p)
{
    char sql[TX_ROWS * 40 + 64];
    size_t o = 0;

    p->writer = pg_open(cfg.pub, NULL);
    p->reader = pg_open(cfg.sub, NULL);
    o += (size_t)snprintf(sql, sizeof(sql), "INSERT INTO items VALUES ");
    for (int i = 0; i < TX_ROWS; i++)
        o += (size_t)snprintf(sql + o, sizeof(sql) - o, "%s($%d, $%d, $%d, $%d)", i ? ", " : "",
                              i * 4 + 1, i * 4 + 2, i * 4 + 3, i * 4 + 4);
    pg_prepare(p->writer, "ins100", sql, TX_ROWS * 4);
}

/* Starts from an empty table on both clusters. */
static void pg_sus_reset(void)
{
    pg_exec(pub_db, "TRUNCATE items");
    if (pg_wait_value(sub_db, "SELECT count(*) FROM (SELECT 1 FROM items LIMIT 1) x", 0, 300) < 0)
        die("postgresql", "TRUNCATE did not reach the subscriber within 300 s");
    pg_exec(sub_db, "VACUUM items");
}

static double pg_sustained_round(double rate)
{
    pg_sus p;
    sus_side sd = {.write_tx = pg_sus_write, .drain = pg_sus_drain, .ctx = &p};
    double sub;

    pg_sus_reset();
    pg_sus_prepare(&p);
    sd.smp.read = pg_read_max;
    sd.smp.ctx = &p;
    sampler_start(&sd.smp);
    sub = sustained_run(&sd, pg_next_id, rate, rate > 0 ? "pg_paced" : "pg_sustained");
    pg_next_id = sd.next_id;
    sampler_stop(&sd.smp);
    PQfinish(p.writer);
    PQfinish(p.reader);
    return sub;
}

typedef struct verso_sus {
    master m;
    verso_slave *slave;
    sqlite3 *reader;
    sqlite3_stmt *max;
    int64_t version;
} verso_sus;

static void verso_sus_write(void *ctx, int64_t first_id)
{
    verso_sus *v = ctx;

    verso_db_begin(v->m.db);
    for (int i = 0; i < TX_ROWS; i++)
        v->version = verso_insert(v->m.db, first_id + i);
    verso_commit(v->m.db);
}

static int64_t verso_read_max(void *ctx)
{
    verso_sus *v = ctx;
    int64_t m = -1;

    if (sqlite3_step(v->max) == SQLITE_ROW)
        m = sqlite3_column_int64(v->max, 0);
    sqlite3_reset(v->max);
    return m;
}

static int verso_sus_drain(void *ctx, int64_t last_id)
{
    (void)ctx;
    (void)last_id;
    return 0; /* files are thrown away: the backlog is not waited for */
}

static void verso_sustained_round(double rate)
{
    char mp[600], sp[600];
    verso_sus v = {0};
    sus_side sd = {.write_tx = verso_sus_write, .drain = verso_sus_drain, .ctx = &v};

    fresh_path(mp, sizeof(mp), "sus-master.db");
    fresh_path(sp, sizeof(sp), "sus-slave.db");
    master_start(&v.m, mp);
    v.slave = slave_start(sp, v.m.url, NULL);
    v.version = verso_insert(v.m.db, 1);
    if (verso_slave_wait(v.slave, v.version, 10000) < 0)
        die("verso sustained", "the slave did not connect");
    if (sqlite3_open_v2(sp, &v.reader, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(v.reader, "SELECT coalesce(max(id), 0) FROM items", -1, &v.max, NULL) !=
            SQLITE_OK)
        die(sp, sqlite3_errmsg(v.reader));
    sd.smp.read = verso_read_max;
    sd.smp.ctx = &v;
    sampler_start(&sd.smp);
    sustained_run(&sd, 2, rate, rate > 0 ? "verso_paced" : "verso_sustained");
    sampler_stop(&sd.smp);
    sqlite3_finalize(v.max);
    sqlite3_close(v.reader);
    verso_slave_stop(v.slave);
    master_stop(&v.m);
}

/* ---- rounds ---- */

/* Before each side's part: both clusters write their dirty pages out and the
 * kernel its dirty files, so that neither side pays for the other's writes
 * (a checkpoint spread over minutes, writeback of the last run's files). */
static void settle(void)
{
    pg_exec(pub_db, "CHECKPOINT");
    pg_exec(sub_db, "CHECKPOINT");
    sync();
}

static void round_boot(bool verso_first)
{
    for (int k = 0; k < 2; k++) {
        settle();
        if ((k == 0) == verso_first)
            verso_boot_round();
        else
            pg_boot_round();
    }
}

static void round_lag(bool verso_first)
{
    for (int k = 0; k < 2; k++) {
        settle();
        if ((k == 0) == verso_first)
            verso_lag_round();
        else
            pg_lag_round();
    }
}

/* Unpaced, then paced at the rows/s PostgreSQL's subscriber reached. */
static void round_sustained(bool verso_first)
{
    double pg_rate = 0;

    for (int k = 0; k < 4; k++) {
        bool verso = (k % 2 == 0) == verso_first;
        settle();
        if (k == 2)
            record("pace_rows_per_s", pg_rate);
        if (verso)
            verso_sustained_round(k < 2 ? 0 : pg_rate);
        else if (k < 2)
            pg_rate = pg_sustained_round(0);
        else
            pg_sustained_round(pg_rate);
    }
}

/* ---- report ---- */

static void print_figure(const char *name, int decimals)
{
    for (int i = 0; i < nfigs; i++)
        if (!strcmp(figs[i].name, name))
            bench_print_spread(name, &figs[i].s, decimals);
}

/* ratio_<name> = verso figure / pg figure, per round; keepup_<name> = a
 * subscriber's rows/s / its publisher's */
static const struct ratio {
    const char *name, *verso, *pg;
} ratios[] = {
    {"ratio_boot_pull", "verso_pull_boot_s", "pg_boot_s"},
    {"ratio_boot_replicate", "verso_replicate_boot_s", "pg_boot_s"},
    {"ratio_lag_start_p50", "verso_lag_start_p50_us", "pg_lag_start_p50_us"},
    {"ratio_lag_start_p99", "verso_lag_start_p99_us", "pg_lag_start_p99_us"},
    {"ratio_lag_return_p50", "verso_lag_return_p50_us", "pg_lag_return_p50_us"},
    {"ratio_lag_return_p99", "verso_lag_return_p99_us", "pg_lag_return_p99_us"},
    {"ratio_serve_lag_start_p50", "verso_serve_lag_start_p50_us", "pg_lag_start_p50_us"},
    {"ratio_serve_lag_start_p99", "verso_serve_lag_start_p99_us", "pg_lag_start_p99_us"},
    {"ratio_serve_lag_return_p50", "verso_serve_lag_return_p50_us", "pg_lag_return_p50_us"},
    {"ratio_serve_lag_return_p99", "verso_serve_lag_return_p99_us", "pg_lag_return_p99_us"},
    {"ratio_sustained_pub_rows", "verso_sustained_pub_rows_per_s", "pg_sustained_pub_rows_per_s"},
    {"ratio_sustained_sub_rows", "verso_sustained_sub_rows_per_s", "pg_sustained_sub_rows_per_s"},
    {"ratio_sustained_max_gap", "verso_sustained_max_gap_ms", "pg_sustained_max_gap_ms"},
    {"ratio_paced_sub_rows", "verso_paced_sub_rows_per_s", "pg_paced_sub_rows_per_s"},
    {"ratio_paced_max_gap", "verso_paced_max_gap_ms", "pg_paced_max_gap_ms"},
    {"ratio_sustained_max_stall", "verso_sustained_max_stall_ms", "pg_sustained_max_stall_ms"},
    {"ratio_paced_max_stall", "verso_paced_max_stall_ms", "pg_paced_max_stall_ms"},
    /* each side's subscriber rows/s over its own publisher's, same run (issue 12: >= 0.9) */
    {"keepup_verso_sustained", "verso_sustained_sub_rows_per_s", "verso_sustained_pub_rows_per_s"},
    {"keepup_pg_sustained", "pg_sustained_sub_rows_per_s", "pg_sustained_pub_rows_per_s"},
    {"keepup_verso_paced", "verso_paced_sub_rows_per_s", "verso_paced_pub_rows_per_s"},
    {"keepup_pg_paced", "pg_paced_sub_rows_per_s", "pg_paced_pub_rows_per_s"},
};

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);

    return n >= k && !strcmp(s + n - k, tail);
}

static void report(void)
{
    printf("rounds %d\nrows %d\nseconds %d\nlag_samples %d\n", cfg.rounds, cfg.rows, cfg.seconds,
           cfg.lag_seconds * cfg.lag_rate);
    printf("sampler_realtime %d\n", (int)atomic_load(&sampler_rt));
    for (int i = 0; i < nfigs; i++)
        print_figure(figs[i].name, ends_with(figs[i].name, "_per_s") ? 0
                                   : ends_with(figs[i].name, "_s")   ? 3
                                   : ends_with(figs[i].name, "_ms")  ? 1
                                                                     : 0);
    for (size_t k = 0; k < sizeof(ratios) / sizeof(ratios[0]); k++) {
        bench_series r;
        bench_series *v = NULL, *p = NULL;
        for (int i = 0; i < nfigs; i++) {
            if (!strcmp(figs[i].name, ratios[k].verso))
                v = &figs[i].s;
            if (!strcmp(figs[i].name, ratios[k].pg))
                p = &figs[i].s;
        }
        if (!v || !p)
            continue;
        bench_ratio(&r, v, p);
        bench_print_spread(ratios[k].name, &r, 3);
    }
}

/* ---- arguments ---- */

static int usage(void)
{
    fprintf(stderr, "usage: vs_pg_bench --pub CONNINFO --sub CONNINFO --verso BIN --dir DIR\n"
                    "       [--rounds N] [--rows N] [--seconds S] [--lag-seconds S]"
                    " [--lag-rate R]\n       [--parts bootstrap,lag,sustained]\n");
    return 2;
}

static int parse_args(int argc, char **argv)
{
    const char *parts = "bootstrap,lag,sustained";

    for (int i = 1; i + 1 < argc; i += 2) {
        const char *o = argv[i], *v = argv[i + 1];
        if (!strcmp(o, "--pub"))
            cfg.pub = v;
        else if (!strcmp(o, "--sub"))
            cfg.sub = v;
        else if (!strcmp(o, "--verso"))
            cfg.verso = v;
        else if (!strcmp(o, "--dir"))
            cfg.dir = v;
        else if (!strcmp(o, "--rounds"))
            cfg.rounds = atoi(v);
        else if (!strcmp(o, "--rows"))
            cfg.rows = atoi(v);
        else if (!strcmp(o, "--seconds"))
            cfg.seconds = atoi(v);
        else if (!strcmp(o, "--lag-seconds"))
            cfg.lag_seconds = atoi(v);
        else if (!strcmp(o, "--lag-rate"))
            cfg.lag_rate = atoi(v);
        else if (!strcmp(o, "--parts"))
            parts = v;
        else
            return -1;
    }
    cfg.boot = strstr(parts, "bootstrap") != NULL;
    cfg.lag = strstr(parts, "lag") != NULL;
    cfg.sustained = strstr(parts, "sustained") != NULL;
    if (argc % 2 == 0 || !cfg.pub || !cfg.sub || !cfg.verso || !cfg.dir || cfg.rounds < 1 ||
        cfg.rounds > BENCH_MAX_ROUNDS || cfg.rows < 1 || cfg.seconds < 1 || cfg.lag_seconds < 1 ||
        cfg.lag_rate < 1 || cfg.lag_rate > 10000)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    if (parse_args(argc, argv) < 0)
        return usage();
    if (access(cfg.verso, X_OK) != 0)
        die("no verso program", cfg.verso);
    mkdir(cfg.dir, 0755);
    fprintf(stderr, "vs_pg_bench: setting up (%d rows)\n", cfg.rows);
    pg_setup();
    if (cfg.boot)
        verso_boot_prepare();
    for (int r = 0; r < cfg.rounds; r++) {
        bool verso_first = r % 2 == 0;
        fprintf(stderr, "vs_pg_bench: round %d/%d (%s first)\n", r + 1, cfg.rounds,
                verso_first ? "verso" : "pg");
        if (cfg.boot)
            round_boot(verso_first);
        if (cfg.lag)
            round_lag(verso_first);
        if (cfg.sustained)
            round_sustained(verso_first);
    }
    if (cfg.boot)
        child_stop(boot_serve);
    report();
    PQfinish(pub_db);
    PQfinish(sub_db);
    return 0;
}
