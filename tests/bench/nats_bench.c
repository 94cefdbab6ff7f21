/*
 * nats_bench - commit -> follower commit latency through NATS JetStream,
 * against a direct live slave of the same master in the same run. Prints
 * "name value" lines (bench_rounds.h: the bare name is the median of the
 * rounds, then _median, _min, _max):
 *
 *   direct_p50_us / direct_p99_us   a one-row commit on the master file by
 *       another connection (as the sqlite3 shell or another process makes it) ->
 *       the live slave's commit of that version (verso_slave_start on the
 *       master's /_sync WebSocket, the master in this process)
 *   nats_p50_us / nats_p99_us       the same commit -> the JetStream
 *       follower's commit of it (verso_nats_publish_start on the master
 *       file, nats-server -js children on 127.0.0.1, verso_nats_follow_start)
 *   ratio_p50 / ratio_p99           nats / direct, formed in each round
 *   orm_*                           the same figures for a commit through the master's own
 *       handle (verso_record_insert; the master watches it: verso_sync_master_watch)
 *   burst_direct_ms / burst_nats_ms a transaction of BURST rows -> each
 *       follower's commit of it
 *
 * Each commit is timed on both paths at once (the followers' on_apply
 * callbacks stamp the time they commit a version), so both see the same
 * machine load; commits are spaced 20-50 ms so each finds everything idle.
 * Each round makes COMMITS commits of each kind, then a burst.
 *
 * Usage: nats_bench [DIR [COMMITS [ROUNDS [REPLICAS]]]] (defaults /tmp, 100,
 * 5 or VERSO_BENCH_ROUNDS, 1). REPLICAS 3 runs a 3-node JetStream cluster on
 * 127.0.0.1 and a stream of 3 replicas. Needs nats-server on PATH.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "bench_rounds.h"
#include "verso/nats.h"
#include "verso/orm.h"
#include "verso/rest.h"
#include "verso/sync.h"

#define BURST 2000

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    double price;
} row;

static const verso_field row_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, price, VERSO_DOUBLE, 0),
};
static const verso_table_def items = VERSO_TABLE_DEF("items", row, row_fields);
static const verso_table_def *const tables[] = {&items};

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "nats_bench: %s: %s\n", what, detail);
    exit(1);
}

/* ---- nats-server ---- */

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    if (port <= 0)
        die("port", "no free port on 127.0.0.1");
    return port;
}

static int answers_info(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0), ok = 0;
    char buf[5];

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ok = poll(&p, 1, 2000) == 1 && recv(fd, buf, 5, MSG_WAITALL) == 5 &&
             !memcmp(buf, "INFO ", 5);
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* nats-server -js with config conf (written by the caller), answering on port. */
static pid_t nats_start(int port, const char *conf)
{
    pid_t pid;
    int64_t deadline = mono_us() + 15000000;

    fflush(NULL);
    if ((pid = fork()) == 0) {
        int null = open("/dev/null", O_WRONLY);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        execlp("nats-server", "nats-server", "-js", "-c", conf, (char *)NULL);
        _exit(127);
    }
    while (!answers_info(port)) {
        if (mono_us() > deadline || waitpid(pid, NULL, WNOHANG) == pid)
            die("nats-server", "did not start (is it on PATH?)");
        sleep_us(20000);
    }
    return pid;
}

#define MAX_NODES 3

/* n servers (1, or 3 in a cluster) under store; their client ports into ports. */
static void nats_cluster(pid_t *pids, int *ports, int n, const char *store)
{
    int cports[MAX_NODES];
    char cmd[700];

    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", store);
    if (system(cmd) != 0)
        die(store, "cannot make it");
    for (int i = 0; i < n; i++) {
        ports[i] = free_port();
        cports[i] = free_port();
    }
    for (int i = 0; i < n; i++) {
        char conf[700];
        FILE *f;
        snprintf(conf, sizeof(conf), "%s/n%d.conf", store, i);
        if (!(f = fopen(conf, "w")))
            die(conf, strerror(errno));
        fprintf(f, "server_name: n%d\nlisten: \"127.0.0.1:%d\"\n", i, ports[i]);
        fprintf(f, "jetstream { store_dir: \"%s/n%d\" }\n", store, i);
        if (n > 1) {
            fprintf(f, "cluster { name: bench\n listen: \"127.0.0.1:%d\"\n routes: [", cports[i]);
            for (int k = 0, first = 1; k < n; k++)
                if (k != i) {
                    fprintf(f, "%s \"nats-route://127.0.0.1:%d\"", first ? "" : ",", cports[k]);
                    first = 0;
                }
            fprintf(f, " ] }\n");
        }
        fclose(f);
        pids[i] = nats_start(ports[i], conf);
    }
}

/* ---- arrival stamps ---- */

typedef struct stamp {
    pthread_mutex_t mu;
    int64_t cursor, at_us;
} stamp;

static stamp direct_stamp = {PTHREAD_MUTEX_INITIALIZER, 0, 0};
static stamp nats_stamp = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

static void on_apply(const verso_sync_change *c, size_t n, int64_t cursor, bool reset, void *arg)
{
    stamp *s = arg;
    int64_t now = mono_us();

    (void)c, (void)n, (void)reset;
    pthread_mutex_lock(&s->mu);
    s->cursor = cursor;
    s->at_us = now;
    pthread_mutex_unlock(&s->mu);
}

/* When s reached version v (0 while it has not). */
static int64_t reached(stamp *s, int64_t v)
{
    int64_t at;

    pthread_mutex_lock(&s->mu);
    at = s->cursor >= v ? s->at_us : 0;
    pthread_mutex_unlock(&s->mu);
    return at;
}

/* Waits (10 s at most) until both followers hold v; their latencies from t0 into d and n. */
static void wait_both(int64_t v, int64_t t0, int64_t *d, int64_t *n)
{
    int64_t deadline = t0 + 10000000, ad = 0, an = 0;

    while (!(ad = reached(&direct_stamp, v)) || !(an = reached(&nats_stamp, v))) {
        if (mono_us() > deadline)
            die(ad ? "nats follower" : "direct slave", "a commit did not arrive within 10 s");
        sleep_us(50);
    }
    *d = ad - t0;
    *n = an - t0;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

static double pct(int64_t *v, int n, int p)
{
    int i = (n * p) / 100;

    qsort(v, (size_t)n, sizeof(*v), cmp_i64);
    return (double)v[i < n ? i : n - 1];
}

static int64_t head_of(verso_db *reader)
{
    verso_info info;

    if (verso_db_info(&info, reader) < 0)
        die("info", verso_db_errmsg(reader));
    return info.head;
}

typedef struct lat {
    bench_series dp50, dp99, np50, np99, r50, r99;
} lat;

typedef struct series {
    lat ext, orm;
    bench_series bd, bn, rb;
} series;

/* One commit of one row: through the plain connection s, or (s NULL) through the master's
 * own handle db (the ORM, watched by the master: verso_sync_master_watch). */
static void commit_one(sqlite3 *s, verso_db *db, int round, int i)
{
    char name[64];

    snprintf(name, sizeof(name), "r%d c%d", round, i);
    if (s) {
        char sql[128];
        snprintf(sql, sizeof(sql), "INSERT INTO items(name, price) VALUES ('%s', %d.5)", name, i);
        if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
            die("insert", sqlite3_errmsg(s));
    } else {
        row r = {.name = name, .price = i + 0.5};
        if (verso_record_insert(db, &items, &r) < 0)
            die("insert", verso_db_errmsg(db));
    }
}

static void round_latency(lat *out, sqlite3 *s, verso_db *reader, int commits, int round)
{
    int64_t *d = calloc((size_t)commits, sizeof(*d)), *n = calloc((size_t)commits, sizeof(*n));

    if (!d || !n)
        die("memory", "calloc");
    for (int i = 0; i < commits; i++) {
        int64_t t0;
        sleep_us(20000 + rand() % 30000);
        t0 = mono_us();
        commit_one(s, reader, round, i);
        wait_both(head_of(reader), t0, &d[i], &n[i]);
    }
    bench_add(&out->dp50, pct(d, commits, 50));
    bench_add(&out->dp99, pct(d, commits, 99));
    bench_add(&out->np50, pct(n, commits, 50));
    bench_add(&out->np99, pct(n, commits, 99));
    free(d);
    free(n);
}

static void round_burst(series *out, sqlite3 *s, verso_db *reader, int round)
{
    char sql[256];
    int64_t t0, d, n;

    sleep_us(50000);
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d) "
             "INSERT INTO items(name, price) SELECT 'burst %d ' || i, i FROM c",
             BURST, round);
    t0 = mono_us();
    if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
        die("burst", sqlite3_errmsg(s));
    wait_both(head_of(reader), t0, &d, &n);
    bench_add(&out->bd, (double)d / 1000.0);
    bench_add(&out->bn, (double)n / 1000.0);
}

static void report_lat(const char *prefix, lat *l)
{
    char name[64];

    bench_ratio(&l->r50, &l->np50, &l->dp50);
    bench_ratio(&l->r99, &l->np99, &l->dp99);
    snprintf(name, sizeof(name), "%sdirect_p50_us", prefix);
    bench_print_spread(name, &l->dp50, 0);
    snprintf(name, sizeof(name), "%sdirect_p99_us", prefix);
    bench_print_spread(name, &l->dp99, 0);
    snprintf(name, sizeof(name), "%snats_p50_us", prefix);
    bench_print_spread(name, &l->np50, 0);
    snprintf(name, sizeof(name), "%snats_p99_us", prefix);
    bench_print_spread(name, &l->np99, 0);
    snprintf(name, sizeof(name), "%sratio_p50", prefix);
    bench_print_spread(name, &l->r50, 2);
    snprintf(name, sizeof(name), "%sratio_p99", prefix);
    bench_print_spread(name, &l->r99, 2);
}

static void report(series *s)
{
    report_lat("", &s->ext);
    report_lat("orm_", &s->orm);
    bench_ratio(&s->rb, &s->bn, &s->bd);
    bench_print_spread("burst_direct_ms", &s->bd, 1);
    bench_print_spread("burst_nats_ms", &s->bn, 1);
    bench_print_spread("ratio_burst", &s->rb, 2);
}

typedef struct rig {
    char mpath[600], spath[600], fpath[600], store[600], nurl[256], furl[256], murl[64];
    pid_t nats[MAX_NODES];
    int nodes;
    verso_db *db;
    verso_sync_master *m;
    verso_rest *srv;
    verso_slave *sl;
    verso_nats_publisher *pub;
    verso_nats_follower *f;
} rig;

static void rig_paths(rig *r, const char *dir)
{
    long pid = (long)getpid();

    snprintf(r->mpath, sizeof(r->mpath), "%s/nats-bench-m.%ld.db", dir, pid);
    snprintf(r->spath, sizeof(r->spath), "%s/nats-bench-s.%ld.db", dir, pid);
    snprintf(r->fpath, sizeof(r->fpath), "%s/nats-bench-f.%ld.db", dir, pid);
    snprintf(r->store, sizeof(r->store), "%s/nats-bench-store.%ld", dir, pid);
}

static void rig_master(rig *r, verso_db_options *dbo)
{
    verso_sync_master_options mo = VERSO_SYNC_MASTER_OPTIONS_INIT;
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    if (verso_db_open(&r->db, r->mpath, dbo, why, sizeof(why)) < 0)
        die(r->mpath, why);
    if (verso_sync_master_new(&r->m, r->mpath, &mo, why, sizeof(why)) < 0)
        die("master", why);
    verso_sync_master_mount(r->m, &ro);
    verso_sync_master_watch(r->m, r->db); /* the ORM's commits wake the master at once */
    ro.port = VERSO_REST_PORT_ANY;
    if (verso_rest_start(&r->srv, r->db, &ro, why, sizeof(why)) < 0)
        die("rest", why);
    snprintf(r->murl, sizeof(r->murl), "http://127.0.0.1:%d", verso_rest_port(r->srv));
}

/* The publisher, retried while a new cluster elects its JetStream leader (bounded). */
static void rig_publisher(rig *r, verso_db_options *dbo)
{
    verso_nats_publish_options po = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    char why[256] = "";
    int64_t deadline = mono_us() + 30000000;

    po.stream = "BENCH";
    po.snapshot_every_ms = -1;
    po.replicas = r->nodes;
    po.db = *dbo;
    while (verso_nats_publish_start(&r->pub, r->mpath, r->nurl, &po, why, sizeof(why)) < 0) {
        if (mono_us() > deadline)
            die("publisher", why);
        sleep_us(200000);
    }
}

static void rig_followers(rig *r, verso_db_options *dbo)
{
    verso_slave_options so = VERSO_SLAVE_OPTIONS_INIT;
    verso_nats_follow_options fo = VERSO_NATS_FOLLOW_OPTIONS_INIT;
    char why[256] = "";
    int ports[MAX_NODES];
    size_t on = 0, of = 0;

    nats_cluster(r->nats, ports, r->nodes, r->store);
    of = (size_t)snprintf(r->furl, sizeof(r->furl), "nats://");
    for (int i = 0; i < r->nodes; i++) {
        on += (size_t)snprintf(r->nurl + on, sizeof(r->nurl) - on, "%snats://127.0.0.1:%d",
                               i ? "," : "", ports[i]);
        of += (size_t)snprintf(r->furl + of, sizeof(r->furl) - of, "%s127.0.0.1:%d", i ? "," : "",
                               ports[i]);
    }
    snprintf(r->furl + of, sizeof(r->furl) - of, "/BENCH");
    so.db = *dbo;
    so.client.on_apply = on_apply;
    so.client.apply_arg = &direct_stamp;
    if (verso_slave_start(&r->sl, r->spath, r->murl, &so, why, sizeof(why)) < 0)
        die("slave", why);
    rig_publisher(r, dbo);
    fo.slave.db = *dbo;
    fo.slave.client.on_apply = on_apply;
    fo.slave.client.apply_arg = &nats_stamp;
    fo.master_url = r->murl;
    if (verso_nats_follow_start(&r->f, r->fpath, r->furl, &fo, why, sizeof(why)) < 0)
        die("follower", why);
}

static void rig_stop(rig *r)
{
    verso_nats_follow_stop(r->f);
    verso_nats_publish_stop(r->pub);
    verso_slave_stop(r->sl);
    verso_sync_master_unwatch(r->m, r->db);
    verso_rest_stop(r->srv);
    verso_sync_master_close(r->m);
    verso_db_close(r->db);
    for (int i = 0; i < r->nodes; i++) {
        kill(r->nats[i], SIGKILL);
        waitpid(r->nats[i], NULL, 0);
    }
    for (const char *p = r->mpath; p; p = p == r->mpath   ? r->spath
                                          : p == r->spath ? r->fpath
                                                          : NULL) {
        char x[700];
        unlink(p);
        snprintf(x, sizeof(x), "%s-wal", p);
        unlink(x);
        snprintf(x, sizeof(x), "%s-shm", p);
        unlink(x);
    }
    {
        char cmd[700];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", r->store);
        if (system(cmd) != 0)
            fprintf(stderr, "nats_bench: could not remove %s\n", r->store);
    }
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    int commits = argc > 2 ? atoi(argv[2]) : 100, rounds = bench_rounds(argc > 3 ? argv[3] : NULL);
    int replicas = argc > 4 ? atoi(argv[4]) : 1;
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    series out;
    sqlite3 *s = NULL;
    rig r = {0};

    if (commits < 2 || rounds < 1 || (replicas != 1 && replicas != 3))
        die("usage", "nats_bench [DIR [COMMITS [ROUNDS [REPLICAS (1 or 3)]]]]");
    r.nodes = replicas;
    memset(&out, 0, sizeof(out));
    dbo.tables = tables;
    dbo.ntables = 1;
    rig_paths(&r, dir);
    rig_master(&r, &dbo);
    rig_followers(&r, &dbo);
    if (sqlite3_open(r.mpath, &s) != SQLITE_OK)
        die(r.mpath, "cannot open");
    sqlite3_busy_timeout(s, 5000);
    srand(13);
    round_latency(&out.ext, s, r.db, 5, -1); /* warm-up: both links up and idle */
    memset(&out, 0, sizeof(out));
    for (int i = 0; i < rounds; i++) {
        round_latency(&out.ext, s, r.db, commits, i);
        round_latency(&out.orm, NULL, r.db, commits, i);
        round_burst(&out, s, r.db, i);
    }
    printf("commits_per_round %d\nrounds %d\nburst_rows %d\nreplicas %d\n", commits, rounds, BURST,
           replicas);
    report(&out);
    sqlite3_close(s);
    rig_stop(&r);
    return 0;
}
