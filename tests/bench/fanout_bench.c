/*
 * fanout_bench - one `verso serve` master, N light WebSocket subscribers in
 * this process (they parse each message's text and acknowledge it, no
 * SQLite), while this process commits 10-row transactions at 1,000 rows/s
 * into the master's file (another process for the server: it wakes on the
 * file event). Prints "name value" lines per N:
 *
 *   fanout_<N>_p50_ms / fanout_<N>_p99_ms
 *       from the start of a writer's commit call to a subscriber's receipt
 *       of the message holding it, over every (commit, subscriber) pair
 *   fanout_<N>_cpu_us_per_row
 *       the serve process's CPU (utime + stime) during the writes, per row
 *       delivered to a subscriber (rows written x N)
 *   fanout_<N>_rss_kb_per_subscriber
 *       the serve process's resident memory with N idle subscribers, less
 *       its memory before the first one connected, divided by N
 *   fanout_<N>_delivered
 *       the fraction of (row, subscriber) pairs received by the end (the
 *       writes and 2 s more)
 *   fanout_<N>_client_cpu_pct
 *       this process's CPU (the subscribers and the writer) over the same
 *       time, % of one core: near 100 the subscribers, not the master, set
 *       the pace (one thread parses every message of every subscriber)
 *
 * Usage: fanout_bench VERSO_BIN [BEFORE_BIN|bare:BARE_BIN|-] [DIR [SECONDS [N,N,...]]]
 * (defaults: no before, /tmp, 5 s, 1,10,100,1000). With BEFORE_BIN the
 * same figures follow for that `verso` with the suffix _before, measured
 * right after (interleaved per N), then the ratios after/before. With
 * bare:BARE_BIN (tests/bench/bare_ws_fanout) the baseline is libwebsockets
 * alone: a server that sends each commit's message, built once, to every
 * subscriber, told of the commit on a pipe; suffix _bare.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <libwebsockets.h>
#include <pthread.h>
#include <sqlite3.h>

#include "verso/orm.h"

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    int64_t qty;
} row;

static const verso_field row_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, qty, VERSO_INT64, 0),
};
static const verso_table_def items = VERSO_TABLE_DEF("items", row, row_fields);
static const verso_table_def *const tables[] = {&items};

#define ROWS_PER_TX 10
#define TX_EVERY_US 10000 /* 1,000 rows/s */
#define MAX_TX      100000
#define HIST_US     10 /* histogram resolution */
#define HIST_N      1000000

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void sleep_us(int64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000), (long)(us % 1000000) * 1000};

    while (us > 0 && nanosleep(&ts, &ts) != 0)
        ;
}

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "fanout_bench: %s: %s\n", what, detail);
    exit(1);
}

/* ---- the master process ---- */

/* The bare server's stdin (bare_ws_fanout): the writer tells it each commit there; -1 for verso. */
static int g_notify = -1;

/* `bin serve db --port 0`, or with bare the baseline server bin (told of commits on a pipe,
 * g_notify); *pid and the port (from its first output line). */
static int serve(pid_t *pid, const char *bin, const char *db, bool bare)
{
    char url[256];
    int fds[2], in[2] = {-1, -1};
    FILE *out;
    const char *p;

    if (pipe(fds) != 0 || (bare && pipe(in) != 0))
        die("pipe", strerror(errno));
    if ((*pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (bare) {
            dup2(in[0], STDIN_FILENO);
            close(in[0]);
            close(in[1]);
            execl(bin, bin, (char *)NULL);
        }
        execl(bin, bin, "serve", db, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (bare) {
        close(in[0]);
        g_notify = in[1];
    }
    if (!(out = fdopen(fds[0], "r")) || !fgets(url, (int)sizeof(url), out))
        die(bin, "serve did not start");
    fclose(out);
    if (!(p = strrchr(url, ':')))
        die(bin, "no port in its first line");
    return atoi(p + 1);
}

/* utime + stime of pid, in microseconds. */
static int64_t cpu_us(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if (!(f = fopen(path, "r")) || !fgets(buf, sizeof(buf), f))
        die(path, "unreadable");
    fclose(f);
    if (!(p = strrchr(buf, ')')) ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        die(path, "unexpected format");
    return (int64_t)(ut + st) * 1000000 / sysconf(_SC_CLK_TCK);
}

/* VmRSS of pid in KiB. */
static int64_t rss_kb(pid_t pid)
{
    char path[64], line[256];
    long long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (!(f = fopen(path, "r")))
        die(path, "unreadable");
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %lld", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* ---- the writer ---- */

static int64_t commit_us[MAX_TX]; /* when transaction i's commit call started */
static atomic_int ntx;

typedef struct writer {
    const char *path;
    int seconds;
    atomic_int done;
} writer;

static void *write_loop(void *arg)
{
    writer *w = arg;
    int64_t next = mono_us(), end = next + (int64_t)w->seconds * 1000000;
    sqlite3 *s = NULL;
    char sql[300];

    if (sqlite3_open(w->path, &s) != SQLITE_OK)
        die(w->path, "cannot open");
    sqlite3_busy_timeout(s, 5000);
    for (int i = 0; i < MAX_TX && next < end; i++, next += TX_EVERY_US) {
        sleep_us(next - mono_us());
        snprintf(sql, sizeof(sql),
                 "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < %d) "
                 "INSERT INTO items(name, qty) SELECT 'fan-out row', %d FROM c",
                 ROWS_PER_TX, i);
        commit_us[i] = mono_us();
        atomic_store(&ntx, i + 1);
        if (sqlite3_exec(s, sql, NULL, NULL, NULL) != SQLITE_OK)
            die("insert", sqlite3_errmsg(s));
        if (g_notify >= 0 && dprintf(g_notify, "%d\n", i) < 0)
            die("bare server", strerror(errno));
    }
    sqlite3_close(s);
    atomic_store(&w->done, 1);
    return NULL;
}

/* ---- the subscribers ---- */

typedef struct sub {
    char *rx;
    size_t len, cap;
    int64_t head, ack, last_tx, rows;
    char identity[40];
    bool sub_due, ack_due, first;
} sub;

static struct {
    int subscribed, closed;
    int64_t rows, bytes, msgs; /* bytes and changes messages received by every subscriber */
    uint32_t *hist;
    int64_t samples;
} g;

static int64_t num_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);

    return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* A changes message: every transaction it completes is timed, and a state end acknowledged. */
static void on_changes(struct lws *wsi, sub *s, int64_t now)
{
    int64_t top = -1, n = ntx;

    for (const char *p = s->rx; (p = strstr(p, "\"qty\":")); p += 6) {
        int64_t k = strtoll(p + 6, NULL, 10);
        top = k > top ? k : top;
        s->rows++;
    }
    for (int64_t k = s->last_tx + 1; k <= top && k < n; k++) {
        int64_t us = now - commit_us[k];
        g.hist[us / HIST_US < HIST_N ? us / HIST_US : HIST_N - 1]++;
        g.samples++;
    }
    if (top > s->last_tx)
        s->last_tx = top;
    if (!s->first) {
        s->first = true;
        g.subscribed++;
    }
    if (strstr(s->rx, "\"more\":false")) {
        s->ack = num_after(s->rx, "\"to\":");
        s->ack_due = true;
        lws_callback_on_writable(wsi);
    }
}

static void on_message(struct lws *wsi, sub *s)
{
    const char *id;

    if (strncmp(s->rx, "{\"type\":\"changes\"", 17) == 0) {
        g.msgs++;
        g.bytes += (int64_t)s->len;
        on_changes(wsi, s, mono_us());
    } else if (strstr(s->rx, "\"type\":\"hello\"") && (id = strstr(s->rx, "\"identity\":\""))) {
        snprintf(s->identity, sizeof(s->identity), "%.36s", id + 12);
        s->head = num_after(s->rx, "\"head\":");
        s->sub_due = true;
        lws_callback_on_writable(wsi);
    }
}

static int on_writeable(struct lws *wsi, sub *s)
{
    unsigned char buf[LWS_PRE + 256];
    char *m = (char *)buf + LWS_PRE;
    int n = 0;

    if (s->sub_due)
        n = snprintf(m, 256, "{\"type\":\"subscribe\",\"cursor\":%lld,\"identity\":\"%s\"}",
                     (long long)s->head, s->identity);
    else if (s->ack_due)
        n = snprintf(m, 256, "{\"type\":\"ack\",\"version\":%lld}", (long long)s->ack);
    s->sub_due = s->ack_due = false;
    return n > 0 && lws_write(wsi, (unsigned char *)m, (size_t)n, LWS_WRITE_TEXT) < n ? -1 : 0;
}

static int receive(struct lws *wsi, sub *s, const void *in, size_t len)
{
    if (s->len + len + 1 > s->cap) {
        size_t cap = (s->len + len + 1) * 2;
        char *p = realloc(s->rx, cap);
        if (!p)
            return -1;
        s->rx = p;
        s->cap = cap;
    }
    memcpy(s->rx + s->len, in, len);
    s->len += len;
    s->rx[s->len] = '\0';
    if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
        on_message(wsi, s);
        s->len = 0;
    }
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    sub *s = user;

    switch (reason) {
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return receive(wsi, s, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(wsi, s);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
    case LWS_CALLBACK_CLIENT_CLOSED:
        g.closed++;
        return 0;
    case LWS_CALLBACK_WSI_DESTROY:
        if (s) {
            g.rows += s->rows;
            free(s->rx);
            s->rx = NULL;
        }
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {"verso-sync.1", callback, sizeof(sub), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static struct lws_context *subscribers(int port, int n)
{
    struct lws_context_creation_info info;
    struct lws_context *ctx;

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.fd_limit_per_thread = (unsigned)n * 2 + 64;
    if (!(ctx = lws_create_context(&info)))
        die("lws", "no context");
    for (int i = 0; i < n; i++) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = ctx;
        ci.address = "127.0.0.1";
        ci.port = port;
        ci.path = "/_sync";
        ci.host = ci.address;
        ci.origin = ci.address;
        ci.protocol = "verso-sync.1";
        if (!lws_client_connect_via_info(&ci))
            die("lws", "cannot connect");
        if (i % 50 == 49) /* not all at once: the listen backlog */
            lws_service(ctx, 0);
    }
    return ctx;
}

/* Serves the subscribers until done() or ms pass. */
static void service(struct lws_context *ctx, int ms, bool (*done)(int), int arg)
{
    int64_t end = mono_us() + (int64_t)ms * 1000;

    while (mono_us() < end && !(done && done(arg)))
        lws_service(ctx, 0);
}

static bool all_subscribed(int n)
{
    return g.subscribed >= n || g.closed > 0;
}

/* ---- one round ---- */

static int64_t percentile(double q)
{
    int64_t want = (int64_t)(q * (double)g.samples), seen = 0;

    for (int i = 0; i < HIST_N; i++)
        if ((seen += g.hist[i]) > want)
            return (int64_t)i * HIST_US;
    return (int64_t)HIST_N * HIST_US;
}

typedef struct figures {
    double p50_ms, p99_ms, cpu_us_per_row, rss_kb, delivered, client_pct, bytes_per_row,
        rows_per_msg;
} figures;

/* This process's CPU in microseconds. */
static int64_t self_us(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static void remove_db(const char *path)
{
    char f[700];

    for (const char *const *p = (const char *const[]){"", "-wal", "-shm", NULL}; *p; p++) {
        snprintf(f, sizeof(f), "%s%s", path, *p);
        unlink(f);
    }
}

static figures round_of(const char *bin, const char *dir, int n, int seconds, bool bare)
{
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    char path[600], why[256] = "";
    writer w = {.path = path, .seconds = seconds};
    figures fg = {0};
    struct lws_context *ctx;
    verso_db *db = NULL;
    int64_t rss0, c0, c1, s0, w0;
    pthread_t t;
    pid_t pid;
    int port, status;

    snprintf(path, sizeof(path), "%s/fanout-%ld-%d.db", dir, (long)getpid(), n);
    remove_db(path);
    dbo.tables = tables;
    dbo.ntables = 1;
    if (verso_db_open(&db, path, &dbo, why, sizeof(why)) < 0)
        die(path, why);
    verso_db_close(db);
    memset(g.hist, 0, HIST_N * sizeof(*g.hist));
    g.subscribed = g.closed = 0;
    g.rows = g.samples = g.bytes = g.msgs = 0;
    atomic_store(&ntx, 0);
    port = serve(&pid, bin, path, bare);
    sleep_us(300000);
    rss0 = rss_kb(pid);
    ctx = subscribers(port, n);
    service(ctx, 60000, all_subscribed, n);
    if (g.subscribed < n)
        die("subscribers", "not all subscribed within 60 s");
    service(ctx, 1000, NULL, 0); /* idle */
    fg.rss_kb = (double)(rss_kb(pid) - rss0) / n;
    c0 = cpu_us(pid);
    s0 = self_us();
    w0 = mono_us();
    pthread_create(&t, NULL, write_loop, &w);
    while (!atomic_load(&w.done))
        lws_service(ctx, 0);
    pthread_join(t, NULL);
    service(ctx, 2000, NULL, 0); /* the last commits arrive */
    c1 = cpu_us(pid);
    fg.client_pct = 100.0 * (double)(self_us() - s0) / (double)(mono_us() - w0);
    lws_context_destroy(ctx); /* adds each subscriber's rows to g.rows */
    fg.p50_ms = percentile(0.50) / 1000.0;
    fg.p99_ms = percentile(0.99) / 1000.0;
    fg.delivered = (double)g.rows / ((double)atomic_load(&ntx) * ROWS_PER_TX * n);
    fg.cpu_us_per_row = g.rows ? (double)(c1 - c0) / (double)g.rows : 0;
    fg.bytes_per_row = g.rows ? (double)g.bytes / (double)g.rows : 0;
    fg.rows_per_msg = g.msgs ? (double)g.rows / (double)g.msgs : 0;
    if (g_notify >= 0)
        close(g_notify); /* the bare server ends at EOF */
    g_notify = -1;
    kill(pid, SIGTERM);
    waitpid(pid, &status, 0);
    remove_db(path);
    return fg;
}

static void print(int n, const char *suffix, const figures *f)
{
    printf("fanout_%d_p50_ms%s %.3f\nfanout_%d_p99_ms%s %.3f\n", n, suffix, f->p50_ms, n, suffix,
           f->p99_ms);
    printf("fanout_%d_cpu_us_per_row%s %.3f\nfanout_%d_rss_kb_per_subscriber%s %.1f\n", n, suffix,
           f->cpu_us_per_row, n, suffix, f->rss_kb);
    printf("fanout_%d_delivered%s %.4f\nfanout_%d_client_cpu_pct%s %.1f\n", n, suffix, f->delivered,
           n, suffix, f->client_pct);
    printf("fanout_%d_bytes_per_row%s %.1f\nfanout_%d_rows_per_message%s %.2f\n", n, suffix,
           f->bytes_per_row, n, suffix, f->rows_per_msg);
    fflush(stdout);
}

static double ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

int main(int argc, char **argv)
{
    const char *bin = argc > 1 ? argv[1] : NULL;
    const char *before = argc > 2 && strcmp(argv[2], "-") ? argv[2] : NULL;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    int seconds = argc > 4 ? atoi(argv[4]) : 5;
    char list[128];
    struct rlimit rl;

    if (!bin || seconds < 1)
        die("usage", "fanout_bench VERSO_BIN [BEFORE_BIN|-] [DIR [SECONDS [N,N,...]]]");
    snprintf(list, sizeof(list), "%s", argc > 5 ? argv[5] : "1,10,100,1000");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(0, NULL);
    if (!(g.hist = calloc(HIST_N, sizeof(*g.hist))))
        die("memory", "histogram");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int n = atoi(tok);
        bool bare = before && strncmp(before, "bare:", 5) == 0;
        figures a = round_of(bin, dir, n, seconds, false), b;
        print(n, "", &a);
        if (!before)
            continue;
        b = round_of(bare ? before + 5 : before, dir, n, seconds, bare);
        print(n, bare ? "_bare" : "_before", &b);
        printf("fanout_%d_p50_ratio %.3f\nfanout_%d_p99_ratio %.3f\nfanout_%d_cpu_ratio "
               "%.3f\nfanout_%d_rss_ratio %.3f\n",
               n, ratio(a.p50_ms, b.p50_ms), n, ratio(a.p99_ms, b.p99_ms), n,
               ratio(a.cpu_us_per_row, b.cpu_us_per_row), n, ratio(a.rss_kb, b.rss_kb));
        fflush(stdout);
    }
    free(g.hist);
    return 0;
}
