/*
 * all_bench - the time a --all slave takes to copy a server of 100
 * databases from scratch, against 100 single-database pulls one after the
 * other measured next to it, printed as "name value" lines.
 *
 *   all_copy_100_s         verso_sync_all_start() into an empty directory
 *                          until all 100 databases are copied, at their
 *                          heads (WORKERS pulls at a time, default 2)
 *   seq_pull_100_s         verso_sync_pull() of each database in turn into
 *                          an empty file (the baseline)
 *   all_copy_vs_seq_ratio  all / sequential, formed inside each round
 *   *_cold_s               the same against a server just started (its
 *                          databases not opened yet); the figures without
 *                          _cold are against a server that served them
 *                          moments before
 *
 * Usage: all_bench [N [ROUNDS [WORKERS]]]: N rows per database (default
 * 1000, also VERSO_BENCH_ROWS); ROUNDS (default 5, also
 * VERSO_BENCH_ROUNDS), subject and baseline alternating which goes first.
 * The master is a server of databases (verso_rest with db_dir) in this
 * process, on its own thread. A figure is the median of the rounds, with
 * _median, _min and _max lines; one line per round on stderr.
 */
#include <dirent.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"
#include "bench_rounds.h"

#define NDB 100

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

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "all_bench: %s: %s\n", what, detail);
    exit(1);
}

static void make_db(const char *path, int rows)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char why[256] = "";

    o.tables = tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0 || verso_db_begin(db) < 0)
        die(path, why);
    for (int i = 0; i < rows; i++) {
        row r = {.name = "a row of the benchmark", .price = i * 0.5, .qty = i};
        if (verso_record_insert(db, &items, &r) < 0)
            die("insert", verso_db_errmsg(db));
    }
    if (verso_db_commit(db) < 0)
        die("commit", verso_db_errmsg(db));
    verso_db_close(db);
}

/* Empties (and makes) a directory of flat files. */
static void fresh_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;

    while (d && (e = readdir(d))) {
        char p[1024];
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
            unlink(p);
        }
    }
    if (d)
        closedir(d);
    mkdir(path, 0755);
}

static double seq_pulls(const char *url, const char *into)
{
    double t0 = now_s();

    fresh_dir(into);
    for (int i = 0; i < NDB; i++) {
        char path[700], u[256], why[256] = "";
        verso_db *db = NULL;
        verso_pull_result r;
        snprintf(path, sizeof(path), "%s/db%03d.db", into, i);
        snprintf(u, sizeof(u), "%s/db/db%03d", url, i);
        if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 ||
            verso_sync_pull(&r, db, u, NULL, why, sizeof(why)) < 0)
            die("pull", why);
        verso_db_close(db);
    }
    return now_s() - t0;
}

static double all_copy(const char *url, const char *into, int workers)
{
    verso_sync_all_options o = VERSO_SYNC_ALL_OPTIONS_INIT;
    verso_sync_all *a = NULL;
    verso_sync_all_state st;
    char why[256] = "";
    double t0, t;

    fresh_dir(into);
    o.workers = workers;
    t0 = now_s();
    if (verso_sync_all_start(&a, into, url, &o, why, sizeof(why)) < 0)
        die("verso_sync_all_start", why);
    do {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
        verso_sync_all_state_get(&st, a);
        if (now_s() - t0 > 600)
            die("all", "no copy after 600 s");
    } while (st.created < NDB || st.in_sync < NDB);
    t = now_s() - t0;
    verso_sync_all_stop(a);
    return t;
}

static verso_rest *server_start(const char *m, int port)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_rest *srv = NULL;
    char why[256] = "";

    ro.db_dir = m;
    ro.port = port;
    for (int i = 0; i < 100; i++) { /* the port of the server just stopped may take a moment */
        struct timespec ts = {0, 50000000L};
        if (verso_rest_start(&srv, NULL, &ro, why, sizeof(why)) == 0)
            return srv;
        nanosleep(&ts, NULL);
    }
    die("server", why);
    return NULL;
}

/* One measurement; cold: against a server started for it. */
static double measure(verso_rest **srv, const char *m, const char *s, bool all, bool cold,
                      int workers)
{
    char url[64];
    int port = verso_rest_port(*srv);

    if (cold) {
        verso_rest_stop(*srv);
        *srv = server_start(m, port);
    }
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
    return all ? all_copy(url, s, workers) : seq_pulls(url, s);
}

int main(int argc, char **argv)
{
    const char *env = getenv("VERSO_BENCH_ROWS");
    int rows = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 1000;
    int rounds = bench_rounds(argc > 2 ? argv[2] : NULL);
    int workers = argc > 3 ? atoi(argv[3]) : 2;
    verso_rest *srv = NULL;
    bench_series all = {0}, seq = {0}, ratio = {0}, call = {0}, cseq = {0}, cratio = {0};
    char m[600], s[600];

    if (rows < 1 || rounds < 1 || workers < 1 || workers > 64)
        die("usage", "all_bench [ROWS [ROUNDS [WORKERS]]]");
    snprintf(dir, sizeof(dir), "/tmp/all_bench.%ld", (long)getpid());
    snprintf(m, sizeof(m), "%s/master", dir);
    snprintf(s, sizeof(s), "%s/slave", dir);
    mkdir(dir, 0755);
    fresh_dir(m);
    for (int i = 0; i < NDB; i++) {
        char p[700];
        snprintf(p, sizeof(p), "%s/db%03d.db", m, i);
        make_db(p, rows);
    }
    srv = server_start(m, VERSO_REST_PORT_ANY);
    for (int r = 0; r < rounds; r++) {
        bool first = r % 2 == 0; /* which goes first alternates */
        double ca, cq, a, q;
        ca = measure(&srv, m, s, first, true, workers);
        cq = measure(&srv, m, s, !first, true, workers);
        if (!first) {
            double t = ca;
            ca = cq;
            cq = t;
        }
        a = measure(&srv, m, s, first, false, workers);
        q = measure(&srv, m, s, !first, false, workers);
        if (!first) {
            double t = a;
            a = q;
            q = t;
        }
        bench_add(&call, ca);
        bench_add(&cseq, cq);
        bench_add(&all, a);
        bench_add(&seq, q);
        fprintf(stderr,
                "all_bench: round %d/%d: --all %.3f s (cold %.3f s), sequential pulls %.3f s "
                "(cold %.3f s)\n",
                r + 1, rounds, a, ca, q, cq);
    }
    bench_ratio(&ratio, &all, &seq);
    bench_ratio(&cratio, &call, &cseq);
    printf("all_databases %d\nall_rows_per_database %d\nall_workers %d\nall_rounds %d\n", NDB, rows,
           workers, rounds);
    bench_print_spread("all_copy_100_s", &all, 3);
    bench_print_spread("seq_pull_100_s", &seq, 3);
    bench_print_spread("all_copy_vs_seq_ratio", &ratio, 2);
    bench_print_spread("all_copy_100_cold_s", &call, 3);
    bench_print_spread("seq_pull_100_cold_s", &cseq, 3);
    bench_print_spread("all_copy_vs_seq_cold_ratio", &cratio, 2);
    verso_rest_stop(srv);
    fresh_dir(m);
    fresh_dir(s);
    rmdir(m);
    rmdir(s);
    rmdir(dir);
    return 0;
}
