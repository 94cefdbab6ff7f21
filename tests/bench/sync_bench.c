/*
 * sync_bench - replication figures against baselines measured next to them,
 * printed as "name value" lines.
 *
 *   live_latency_p50_us / live_latency_p99_us  master commit -> slave commit,
 *       one live slave, one-row transactions, one at a time (no baseline:
 *       a loopback TCP round trip measured next to each sample moved 8x
 *       with the machine's load while the p50 here moved 1.2x)
 *   live_rows_per_s   rows/s a live slave keeps up with while the master
 *       commits 100-row transactions as fast as it can, against plain SQLite
 *       inserts of the same rows in the same transactions (sqlite_insert_*)
 *   bootstrap_*       `verso pull` of N rows into an empty slave against
 *       `sqlite3 master.db .dump | sqlite3 copy.db` of the same file
 *
 * Usage: sync_bench [N [PART [ROUNDS]]]. N rows for the bootstrap (default
 * 1000000, also VERSO_BENCH_ROWS); PART is latency, throughput, bootstrap
 * or all (default); ROUNDS (default 5, also VERSO_BENCH_ROUNDS) rounds each
 * start from fresh files and run every part chosen, baseline and subject
 * alternating which goes first. A figure is the median of the rounds, with
 * _median, _min and _max lines; a ratio is formed inside each round. One
 * line per part and round on stderr. Master and slave run in this process
 * on their own threads; the pull runs as a `verso pull` process (the
 * program next to build/bench/, or $VERSO_BIN).
 */
#include <libgen.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

static char dir[512];

static int64_t mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t mono_us(void)
{
    return mono_ns() / 1000;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "sync_bench: %s: %s\n", what, detail);
    exit(1);
}

static verso_db *open_db(const char *path)
{
    char open_why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, open_why, sizeof(open_why)) < 0)
        die(path, open_why);
    return db;
}

/* A master: the writer's handle, a REST server with /_sync, pushed at once. */
typedef struct master {
    verso_db *db;
    verso_sync_master *sync;
    verso_rest *srv;
    char url[64];
} master;

static void master_start(master *m, const char *path)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    char why[256] = "";

    m->db = open_db(path);
    if (verso_sync_master_new(&m->sync, path, NULL, why, sizeof(why)) < 0)
        die("master", why);
    verso_sync_master_mount(m->sync, &ro);
    ro.limits.max_changes = 100000;
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

static verso_slave *slave_start(const char *path, const char *url, verso_sync_apply_fn fn,
                                void *arg)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    char why[256] = "";

    o.client.on_apply = fn;
    o.client.apply_arg = arg;
    if (verso_slave_start(&s, path, url, &o, why, sizeof(why)) < 0)
        die("slave", why);
    return s;
}

static void insert_rows(verso_db *db, int n, int64_t *last_version)
{
    row r = {.name = "bench row", .price = 9.5, .qty = 3};

    for (int i = 0; i < n; i++) {
        r.id = 0;
        r.qty = i;
        if (verso_record_insert(db, &items, &r) < 0)
            die("insert", verso_db_errmsg(db));
    }
    *last_version = r.version;
}

/* The path of a file in the bench directory, removed with its WAL. */
static void fresh_path(char *out, size_t n, const char *name)
{
    char side[700];

    snprintf(out, n, "%s/%s", dir, name);
    remove(out);
    snprintf(side, sizeof(side), "%s-wal", out);
    remove(side);
    snprintf(side, sizeof(side), "%s-shm", out);
    remove(side);
}

/* ---- plain SQLite, the same columns, no version: the live rate's baseline ---- */

typedef struct local {
    sqlite3 *db;
    sqlite3_stmt *ins;
} local;

static void local_sql(sqlite3 *db, const char *sql)
{
    if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
        die(sql, sqlite3_errmsg(db));
}

static void local_open(local *l, const char *name)
{
    char path[600];

    fresh_path(path, sizeof(path), name);
    if (sqlite3_open(path, &l->db) != SQLITE_OK)
        die(path, sqlite3_errmsg(l->db));
    local_sql(l->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                     "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL,"
                     " qty INTEGER)");
    if (sqlite3_prepare_v2(l->db,
                           "INSERT INTO items(name, price, qty) VALUES ('bench row', 9.5, ?)", -1,
                           &l->ins, NULL) != SQLITE_OK)
        die("prepare", sqlite3_errmsg(l->db));
}

static void local_insert(local *l, int qty)
{
    sqlite3_bind_int(l->ins, 1, qty);
    if (sqlite3_step(l->ins) != SQLITE_DONE)
        die("local insert", sqlite3_errmsg(l->db));
    sqlite3_reset(l->ins);
}

static void local_close(local *l)
{
    sqlite3_finalize(l->ins);
    sqlite3_close(l->db);
}

/* ---- rounds ---- */

enum {
    S_LAT_P50,
    S_LAT_P99,
    S_LIVE_ROWS,
    S_LIVE_MASTER_ROWS,
    S_SQLITE_ROWS,
    S_LIVE_COMMITS,
    S_PULL_S,
    S_DUMP_S,
    NSERIES
};

static bench_series res[NSERIES];
static int nboot = 1000000;
static int nrounds;

enum { LAT_SAMPLES = 2000, LIVE_TX = 2000, LIVE_TX_ROWS = 100 };

/* ---- latency ---- */

typedef struct lat {
    atomic_llong applied_version;
    atomic_llong applied_ns;
} lat;

static void on_apply_time(const verso_sync_change *c, size_t n, int64_t cursor, bool reset,
                          void *arg)
{
    lat *l = arg;

    (void)c;
    (void)n;
    (void)reset;
    atomic_store(&l->applied_ns, mono_ns());
    atomic_store(&l->applied_version, cursor);
}

/* One one-row master transaction, from its commit to the slave's, in ns. */
static int64_t replicate_one(master *m, verso_slave *s, lat *l)
{
    int64_t t0, v;

    insert_rows(m->db, 1, &v);
    t0 = mono_ns();
    if (verso_slave_wait(s, v, 10000) < 0)
        die("latency", "the slave stopped following");
    while (atomic_load(&l->applied_version) < v) {
    } /* the callback runs just after the commit that woke us */
    return atomic_load(&l->applied_ns) - t0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

/* The pct-th percentile of n samples in ns, sorted in place, in µs. */
static double percentile_us(int64_t *ns, int n, int pct)
{
    qsort(ns, (size_t)n, sizeof(int64_t), cmp_i64);
    return (double)ns[(int64_t)n * pct / 100] / 1e3;
}

static void latency_round(int round)
{
    char mp[600], sp[600];
    master m;
    lat l = {0};
    verso_slave *s;
    int64_t *ns = calloc(LAT_SAMPLES, sizeof(int64_t)), v;

    if (!ns)
        die("latency", "out of memory");
    fresh_path(mp, sizeof(mp), "lat-master.db");
    fresh_path(sp, sizeof(sp), "lat-slave.db");
    master_start(&m, mp);
    s = slave_start(sp, m.url, on_apply_time, &l);
    insert_rows(m.db, 1, &v);
    if (verso_slave_wait(s, v, 10000) < 0)
        die("latency", "the slave did not connect");
    for (int i = 0; i < LAT_SAMPLES; i++)
        ns[i] = replicate_one(&m, s, &l);
    verso_slave_stop(s);
    master_stop(&m);
    bench_add(&res[S_LAT_P50], percentile_us(ns, LAT_SAMPLES, 50));
    bench_add(&res[S_LAT_P99], percentile_us(ns, LAT_SAMPLES, 99));
    free(ns);
    fprintf(stderr, "sync_bench: round %d/%d latency: p50 %.0f us, p99 %.0f us\n", round + 1,
            nrounds, res[S_LAT_P50].v[round], res[S_LAT_P99].v[round]);
}

static void latency_report(void)
{
    printf("live_latency_samples %d\n", LAT_SAMPLES);
    bench_print_spread("live_latency_p50_us", &res[S_LAT_P50], 0);
    bench_print_spread("live_latency_p99_us", &res[S_LAT_P99], 0);
}

/* ---- throughput ---- */

static void live_run(void)
{
    char mp[600], sp[600];
    master m;
    verso_slave *s;
    verso_slave_state st;
    int64_t v = 0, t0, t_written, t_done;
    const double rows = LIVE_TX * LIVE_TX_ROWS;

    fresh_path(mp, sizeof(mp), "tp-master.db");
    fresh_path(sp, sizeof(sp), "tp-slave.db");
    master_start(&m, mp);
    s = slave_start(sp, m.url, NULL, NULL);
    insert_rows(m.db, 1, &v);
    if (verso_slave_wait(s, v, 10000) < 0)
        die("throughput", "the slave did not connect");
    t0 = mono_us();
    for (int t = 0; t < LIVE_TX; t++) {
        verso_db_begin(m.db);
        insert_rows(m.db, LIVE_TX_ROWS, &v);
        if (verso_db_commit(m.db) < 0)
            die("commit", verso_db_errmsg(m.db));
    }
    t_written = mono_us();
    if (verso_slave_wait(s, v, 60000) < 0)
        die("throughput", "the slave did not catch up");
    t_done = mono_us();
    verso_slave_state_get(&st, s);
    verso_slave_stop(s);
    master_stop(&m);
    bench_add(&res[S_LIVE_MASTER_ROWS], rows * 1e6 / (double)(t_written - t0));
    bench_add(&res[S_LIVE_ROWS], rows * 1e6 / (double)(t_done - t0));
    bench_add(&res[S_LIVE_COMMITS], (double)st.commits);
}

/* The same rows in the same transactions into plain SQLite. */
static void sqlite_run(void)
{
    local loc;
    int64_t t0;

    local_open(&loc, "tp-local.db");
    t0 = mono_us();
    for (int t = 0; t < LIVE_TX; t++) {
        local_sql(loc.db, "BEGIN");
        for (int i = 0; i < LIVE_TX_ROWS; i++)
            local_insert(&loc, i);
        local_sql(loc.db, "COMMIT");
    }
    bench_add(&res[S_SQLITE_ROWS], LIVE_TX * LIVE_TX_ROWS * 1e6 / (double)(mono_us() - t0));
    local_close(&loc);
}

static void throughput_round(int round)
{
    if (round % 2) {
        live_run();
        sqlite_run();
    } else {
        sqlite_run();
        live_run();
    }
    fprintf(stderr,
            "sync_bench: round %d/%d throughput: live %.0f rows/s, master %.0f rows/s, "
            "sqlite %.0f rows/s\n",
            round + 1, nrounds, res[S_LIVE_ROWS].v[round], res[S_LIVE_MASTER_ROWS].v[round],
            res[S_SQLITE_ROWS].v[round]);
}

static void throughput_report(void)
{
    bench_series r;

    printf("live_rows %d\n", LIVE_TX * LIVE_TX_ROWS);
    bench_print_spread("live_rows_per_s", &res[S_LIVE_ROWS], 0);
    bench_print_spread("live_master_rows_per_s", &res[S_LIVE_MASTER_ROWS], 0);
    printf("live_slave_commits %.0f\n", bench_median(&res[S_LIVE_COMMITS]));
    bench_print_spread("sqlite_insert_rows_per_s", &res[S_SQLITE_ROWS], 0);
    bench_ratio(&r, &res[S_LIVE_ROWS], &res[S_SQLITE_ROWS]);
    bench_print_spread("ratio_live_vs_sqlite_insert", &r, 3);
    bench_ratio(&r, &res[S_LIVE_MASTER_ROWS], &res[S_SQLITE_ROWS]);
    bench_print_spread("ratio_live_master_vs_sqlite_insert", &r, 3);
}

/* ---- bootstrap ---- */

static char verso_path[600];

static void fill(const char *path, int n)
{
    verso_db *db = open_db(path);
    int64_t v;

    verso_db_begin(db);
    insert_rows(db, n, &v);
    if (verso_db_commit(db) < 0)
        die("fill", verso_db_errmsg(db));
    verso_db_close(db);
}

static double run_shell(const char *cmd)
{
    int64_t t0 = mono_us();

    if (system(cmd) != 0)
        die("command failed", cmd);
    return (double)(mono_us() - t0) / 1e6;
}

/* $VERSO_BIN, else the verso program of the build this program is in. */
static void find_verso(void)
{
    char exe[512] = "";
    const char *env = getenv("VERSO_BIN");
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (len > 0)
        exe[len] = '\0';
    if (env && env[0])
        snprintf(verso_path, sizeof(verso_path), "%s", env);
    else
        snprintf(verso_path, sizeof(verso_path), "%s/../verso", dirname(exe));
    if (access(verso_path, X_OK) != 0)
        die("the bootstrap needs the verso program (cmake --build build --target verso_cli)",
            verso_path);
}

static double dump_run(const char *mp)
{
    char dp[600], cmd[1400];

    fresh_path(dp, sizeof(dp), "boot-dump.db");
    snprintf(cmd, sizeof(cmd), "sqlite3 '%s' .dump | sqlite3 '%s'", mp, dp);
    return run_shell(cmd);
}

static double pull_run(const char *mp)
{
    char sp[600], cmd[1400];
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    verso_sync_master *sync = NULL;
    verso_rest *srv = NULL;
    char why[256] = "";
    double t;

    fresh_path(sp, sizeof(sp), "boot-slave.db");
    if (verso_sync_master_new(&sync, mp, NULL, why, sizeof(why)) < 0)
        die("master", why);
    verso_sync_master_mount(sync, &ro);
    ro.db_path = mp;
    ro.limits.max_changes = 100000;
    if (verso_rest_start(&srv, NULL, &ro, why, sizeof(why)) < 0)
        die("server", why);
    snprintf(cmd, sizeof(cmd), "'%s' pull --quiet --chunk 50000 http://127.0.0.1:%d '%s'",
             verso_path, verso_rest_port(srv), sp);
    t = run_shell(cmd);
    verso_rest_stop(srv);
    verso_sync_master_close(sync);
    return t;
}

static void bootstrap_round(int round)
{
    char mp[600];

    fresh_path(mp, sizeof(mp), "boot-master.db");
    fill(mp, nboot);
    if (round % 2) {
        bench_add(&res[S_PULL_S], pull_run(mp));
        bench_add(&res[S_DUMP_S], dump_run(mp));
    } else {
        bench_add(&res[S_DUMP_S], dump_run(mp));
        bench_add(&res[S_PULL_S], pull_run(mp));
    }
    fprintf(stderr, "sync_bench: round %d/%d bootstrap: pull %.3f s, dump|restore %.3f s\n",
            round + 1, nrounds, res[S_PULL_S].v[round], res[S_DUMP_S].v[round]);
}

static void bootstrap_report(void)
{
    bench_series r;

    printf("bootstrap_rows %d\n", nboot);
    printf("bootstrap_pull_s %.3f\n", bench_median(&res[S_PULL_S]));
    printf("bootstrap_dump_restore_s %.3f\n", bench_median(&res[S_DUMP_S]));
    printf("bootstrap_pull_rows_per_s %.0f\n", nboot / bench_median(&res[S_PULL_S]));
    bench_ratio(&r, &res[S_DUMP_S], &res[S_PULL_S]);
    bench_print_spread("bootstrap_speedup_vs_dump", &r, 2);
}

/* ---- parts ---- */

typedef struct part {
    const char *name;
    void (*prepare)(void); /* before the first round; may be NULL */
    void (*round)(int round);
    void (*report)(void);
} part;

static const part parts[] = {
    {"latency", NULL, latency_round, latency_report},
    {"throughput", NULL, throughput_round, throughput_report},
    {"bootstrap", find_verso, bootstrap_round, bootstrap_report},
};
#define NPARTS (sizeof(parts) / sizeof(parts[0]))

static int usage(void)
{
    fprintf(stderr,
            "usage: sync_bench [N [latency|throughput|bootstrap|all [ROUNDS]]]"
            "  (ROUNDS 1-%d, default %d)\n",
            BENCH_MAX_ROUNDS, BENCH_DEFAULT_ROUNDS);
    return 2;
}

int main(int argc, char **argv)
{
    const char *env = getenv("VERSO_BENCH_ROWS");
    const char *tmp = getenv("TMPDIR");
    const char *only = argc > 2 && strcmp(argv[2], "all") ? argv[2] : NULL;
    bool chosen[NPARTS], any = false;
    char cmd[600];

    nboot = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 1000000;
    nrounds = bench_rounds(argc > 3 ? argv[3] : NULL);
    for (size_t p = 0; p < NPARTS; p++) {
        chosen[p] = !only || !strcmp(only, parts[p].name);
        any = any || chosen[p];
    }
    if (nboot <= 0 || nrounds < 0 || !any)
        return usage();
    for (size_t p = 0; p < NPARTS; p++)
        if (chosen[p] && parts[p].prepare)
            parts[p].prepare();
    snprintf(dir, sizeof(dir), "%s/verso-sync-bench.%ld", tmp ? tmp : "/tmp", (long)getpid());
    mkdir(dir, 0755);
    for (int r = 0; r < nrounds; r++)
        for (size_t p = 0; p < NPARTS; p++)
            if (chosen[p])
                parts[p].round(r);
    printf("rounds %d\n", nrounds);
    for (size_t p = 0; p < NPARTS; p++)
        if (chosen[p])
            parts[p].report();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "sync_bench: could not remove %s\n", dir);
    return 0;
}
