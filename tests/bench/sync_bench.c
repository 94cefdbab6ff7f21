/*
 * sync_bench - replication figures, printed as "name value" lines.
 *
 *   live_latency_p50_us / live_latency_p99_us  master commit -> slave commit,
 *       one live slave, one-row transactions, one at a time
 *   live_rows_per_s   rows/s a live slave keeps up with while the master
 *       commits 100-row transactions as fast as it can
 *   bootstrap_*       `verso pull` of N rows into an empty slave against
 *       `sqlite3 master.db .dump | sqlite3 copy.db` in the same run
 *
 * Usage: sync_bench [N [latency|throughput|bootstrap]]   (N rows for the
 * bootstrap, default 1000000, also VERSO_BENCH_ROWS; the second argument
 * runs one part only). Master and slave run in this process on their
 * own threads; the pull runs as a `verso pull` process.
 */
#include <libgen.h>
#include <pthread.h>
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

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "sync_bench: %s: %s\n", what, detail);
    exit(1);
}

static verso_db *open_db(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;

    o.tables = tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o) < 0)
        die(path, verso_open_errmsg());
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
    verso_sync_master_free(m->sync);
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
        if (verso_insert(db, &items, &r) < 0)
            die("insert", verso_errmsg(db));
    }
    *last_version = r.version;
}

/* ---- latency ---- */

typedef struct lat {
    atomic_llong applied_version;
    atomic_llong applied_us;
} lat;

static void on_apply_time(const verso_sync_change *c, size_t n, int64_t cursor, bool reset,
                          void *arg)
{
    lat *l = arg;

    (void)c;
    (void)n;
    (void)reset;
    atomic_store(&l->applied_us, mono_us());
    atomic_store(&l->applied_version, cursor);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static void bench_latency(int samples)
{
    char mp[600], sp[600];
    master m;
    lat l = {0};
    verso_slave *s;
    int64_t *us = calloc((size_t)samples, sizeof(int64_t)), v;

    snprintf(mp, sizeof(mp), "%s/lat-master.db", dir);
    snprintf(sp, sizeof(sp), "%s/lat-slave.db", dir);
    master_start(&m, mp);
    s = slave_start(sp, m.url, on_apply_time, &l);
    insert_rows(m.db, 1, &v);
    if (verso_slave_wait(s, v, 10000) < 0)
        die("latency", "the slave did not connect");
    for (int i = 0; i < samples; i++) {
        int64_t t0;
        insert_rows(m.db, 1, &v);
        t0 = mono_us();
        if (verso_slave_wait(s, v, 10000) < 0)
            die("latency", "the slave stopped following");
        while (atomic_load(&l.applied_version) < v) {
        } /* the callback runs just after the commit that woke us */
        us[i] = atomic_load(&l.applied_us) - t0;
    }
    qsort(us, (size_t)samples, sizeof(int64_t), cmp_i64);
    printf("live_latency_samples %d\n", samples);
    printf("live_latency_p50_us %lld\n", (long long)us[samples / 2]);
    printf("live_latency_p99_us %lld\n", (long long)us[samples * 99 / 100]);
    fflush(stdout);
    free(us);
    verso_slave_stop(s);
    master_stop(&m);
}

/* ---- throughput ---- */

static void bench_throughput(int ntx)
{
    char mp[600], sp[600];
    master m;
    verso_slave *s;
    verso_slave_state st;
    int64_t v = 0, t0, t_written, t_done;

    snprintf(mp, sizeof(mp), "%s/tp-master.db", dir);
    snprintf(sp, sizeof(sp), "%s/tp-slave.db", dir);
    master_start(&m, mp);
    s = slave_start(sp, m.url, NULL, NULL);
    insert_rows(m.db, 1, &v);
    if (verso_slave_wait(s, v, 10000) < 0)
        die("throughput", "the slave did not connect");
    t0 = mono_us();
    for (int t = 0; t < ntx; t++) {
        verso_begin(m.db);
        insert_rows(m.db, 100, &v);
        if (verso_commit(m.db) < 0)
            die("commit", verso_errmsg(m.db));
    }
    t_written = mono_us();
    if (verso_slave_wait(s, v, 60000) < 0)
        die("throughput", "the slave did not catch up");
    t_done = mono_us();
    verso_slave_state_get(&st, s);
    printf("live_rows %d\n", ntx * 100);
    printf("live_master_rows_per_s %.0f\n", ntx * 100 * 1e6 / (double)(t_written - t0));
    printf("live_rows_per_s %.0f\n", ntx * 100 * 1e6 / (double)(t_done - t0));
    printf("live_slave_commits %lld\n", (long long)st.commits);
    fflush(stdout);
    verso_slave_stop(s);
    master_stop(&m);
}

/* ---- bootstrap ---- */

static void fill(const char *path, int n)
{
    verso_db *db = open_db(path);
    int64_t v;

    verso_begin(db);
    insert_rows(db, n, &v);
    if (verso_commit(db) < 0)
        die("fill", verso_errmsg(db));
    verso_db_close(db);
}

static double run_shell(const char *cmd)
{
    int64_t t0 = mono_us();

    if (system(cmd) != 0)
        die("command failed", cmd);
    return (double)(mono_us() - t0) / 1e6;
}

static void verso_bin(char *out, size_t n)
{
    char exe[512] = "";
    ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (len > 0)
        exe[len] = '\0';
    snprintf(out, n, "%s/../verso", dirname(exe));
}

static void bench_bootstrap(int n)
{
    char mp[600], sp[600], dp[600], bin[600], cmd[2400];
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    verso_sync_master *sync = NULL;
    verso_rest *srv = NULL;
    char why[256] = "";
    double t_dump, t_pull;

    snprintf(mp, sizeof(mp), "%s/boot-master.db", dir);
    snprintf(sp, sizeof(sp), "%s/boot-slave.db", dir);
    snprintf(dp, sizeof(dp), "%s/boot-dump.db", dir);
    fill(mp, n);
    verso_bin(bin, sizeof(bin));

    snprintf(cmd, sizeof(cmd), "sqlite3 '%s' .dump | sqlite3 '%s'", mp, dp);
    t_dump = run_shell(cmd);

    if (verso_sync_master_new(&sync, mp, NULL, why, sizeof(why)) < 0)
        die("master", why);
    verso_sync_master_mount(sync, &ro);
    ro.db_path = mp;
    ro.limits.max_changes = 100000;
    if (verso_rest_start(&srv, NULL, &ro, why, sizeof(why)) < 0)
        die("server", why);
    snprintf(cmd, sizeof(cmd), "'%s' pull --quiet --chunk 50000 http://127.0.0.1:%d '%s'", bin,
             verso_rest_port(srv), sp);
    t_pull = run_shell(cmd);
    verso_rest_stop(srv);
    verso_sync_master_free(sync);

    printf("bootstrap_rows %d\n", n);
    printf("bootstrap_pull_s %.3f\n", t_pull);
    printf("bootstrap_dump_restore_s %.3f\n", t_dump);
    printf("bootstrap_pull_rows_per_s %.0f\n", n / t_pull);
    printf("bootstrap_speedup_vs_dump %.2f\n", t_dump / t_pull);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    const char *env = getenv("VERSO_BENCH_ROWS");
    int n = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 1000000;
    const char *tmp = getenv("TMPDIR");
    const char *only = argc > 2 ? argv[2] : NULL;

    snprintf(dir, sizeof(dir), "%s/verso-sync-bench.%ld", tmp ? tmp : "/tmp", (long)getpid());
    mkdir(dir, 0755);
    if (!only || !strcmp(only, "latency"))
        bench_latency(2000);
    if (!only || !strcmp(only, "throughput"))
        bench_throughput(2000);
    if (!only || !strcmp(only, "bootstrap"))
        bench_bootstrap(n > 0 ? n : 1000000);
    {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "sync_bench: could not remove %s\n", dir);
    }
    return 0;
}
