/*
 * dir_bench - a dir server (`verso serve --dir DIR`) with many databases,
 * against a one-database server (`verso serve FILE`) answering the same
 * requests, printed as "name value" lines.
 *
 *   dir_req_us / one_req_us   latency of one request (a POST of a row,
 *       then a GET of the table's first 10 rows), the median of a round;
 *       the dir server spreads the requests over ACTIVE databases, the
 *       baseline sends them all to its one database. dir_over_one is their
 *       ratio, formed inside each round.
 *   cold_req_us   the first request to each of the NDB databases (opening
 *       it, closing the least recently used one past --max-open)
 *   dir_rss_kb, dir_hwm_kb, dir_fds   VmRSS, VmHWM and open file
 *       descriptors of the dir server after the rounds; one_* the same of
 *       the baseline; sweep_* of the dir server after the cold sweep over
 *       every database, with dir_open its open databases then
 *
 * Usage: dir_bench [NDB [ACTIVE [ROUNDS]]] (defaults 1000, 100, 5; ROUNDS
 * also VERSO_BENCH_ROUNDS). Both servers are child processes (the verso
 * program next to build/bench/, or $VERSO_BIN), each with its own files
 * in a temporary directory removed at the end; they get the rounds
 * alternately, alternating which goes first. One line per round on stderr.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "verso/orm.h"
#include "bench_rounds.h"

typedef struct item {
    int64_t id;
    int64_t version;
    char *name;
    int64_t qty;
} item;

static const verso_field k_fields[] = {
    VERSO_FIELD_ID_OF(item, id),
    VERSO_FIELD_VERSION_OF(item, version),
    VERSO_FIELD(item, name, VERSO_TEXT, 0),
    VERSO_FIELD(item, qty, VERSO_INT64, 0),
};
static const verso_table_def k_def = VERSO_TABLE_DEF("items", item, k_fields);
static const verso_table_def *const k_tables[] = {&k_def};

typedef struct server {
    pid_t pid;
    char url[128];
} server;

static char g_verso[512], g_root[512];

static void die(const char *what, const char *detail)
{
    fprintf(stderr, "dir_bench: %s: %s\n", what, detail);
    exit(1);
}

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
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
        snprintf(g_verso, sizeof(g_verso), "%s", env);
    else
        snprintf(g_verso, sizeof(g_verso), "%s/../verso", dirname(exe));
    if (access(g_verso, X_OK) != 0)
        die("needs the verso program (cmake --build build --target verso_cli)", g_verso);
}

static void make_db(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char why[256] = "";

    o.tables = k_tables;
    o.ntables = 1;
    if (verso_db_open(&db, path, &o, why, sizeof(why)) < 0)
        die(path, why);
    verso_db_close(db);
}

/* `verso serve ARGS... --port 0`: its pid and URL (its first line). */
static void serve(server *s, const char *a1, const char *a2)
{
    int fds[2];
    FILE *out;

    if (pipe(fds) != 0)
        die("pipe", strerror(errno));
    if ((s->pid = fork()) == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        if (a2)
            execl(g_verso, g_verso, "serve", a1, a2, "--port", "0", (char *)NULL);
        else
            execl(g_verso, g_verso, "serve", a1, "--port", "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (!(out = fdopen(fds[0], "r")) || !fgets(s->url, (int)sizeof(s->url), out))
        die(g_verso, "serve did not start");
    s->url[strcspn(s->url, "\n")] = '\0';
    if (s->url[0] && s->url[strlen(s->url) - 1] == '/')
        s->url[strlen(s->url) - 1] = '\0';
    fclose(out);
}

static void stop(server *s)
{
    int st;

    kill(s->pid, SIGTERM);
    waitpid(s->pid, &st, 0);
}

/* A /proc/PID/status field in kB. */
static long proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    long v = -1;
    size_t n = strlen(field);
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, n) && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    fclose(f);
    return v;
}

static long proc_fds(pid_t pid)
{
    char path[64];
    struct dirent *e;
    long n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
    if (!(d = opendir(path)))
        return -1;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One request on the kept-alive handle; its time in µs. */
static double request(CURL *h, const char *url, const char *body)
{
    int64_t t0 = mono_us();
    long code = 0;

    curl_easy_setopt(h, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    if (curl_easy_perform(h) != CURLE_OK)
        die("request failed", url);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (code != 200 && code != 201)
        die("unexpected status", url);
    return (double)(mono_us() - t0);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median latencies of one pass: writes, reads, both. */
typedef struct pass {
    double write_us, read_us, all_us;
} pass;

/* A write then a read on each database from first (prefix "/db/dbNNNN",
 * or none for the baseline). */
static pass touch(CURL *h, const server *s, int first, int count, bool dir, int round)
{
    double *w = malloc(sizeof(double) * (size_t)count), *r = malloc(sizeof(double) * (size_t)count);
    double *all = malloc(sizeof(double) * (size_t)count * 2);
    char url[256], body[64];
    pass p;

    if (!w || !r || !all)
        die("malloc", "out of memory");
    for (int i = 0; i < count; i++) {
        char prefix[32] = "";
        if (dir)
            snprintf(prefix, sizeof(prefix), "/db/db%04d", first + i);
        snprintf(body, sizeof(body), "{\"name\":\"p%d\",\"qty\":%d}", round, i);
        snprintf(url, sizeof(url), "%s%s/items", s->url, prefix);
        all[2 * i] = w[i] = request(h, url, body);
        snprintf(url, sizeof(url), "%s%s/items?limit=10", s->url, prefix);
        all[2 * i + 1] = r[i] = request(h, url, NULL);
    }
    p.write_us = median(w, count);
    p.read_us = median(r, count);
    p.all_us = median(all, 2 * count);
    free(w);
    free(r);
    free(all);
    return p;
}

static struct curl_slist *g_json;

static CURL *handle(void)
{
    CURL *h = curl_easy_init();

    if (!h)
        die("curl", "no handle");
    if (!g_json)
        g_json = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, g_json);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    return h;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int arg_int(char **argv, int argc, int i, int def)
{
    return argc > i ? atoi(argv[i]) : def;
}

static int open_count(CURL *h, const server *s)
{
    char url[256];
    FILE *mem;
    char *buf = NULL, *p;
    size_t len = 0;
    int n = -1;

    snprintf(url, sizeof(url), "%s/_status", s->url);
    mem = open_memstream(&buf, &len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, NULL);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, mem);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    curl_easy_perform(h);
    fclose(mem);
    if (buf && (p = strstr(buf, "\"open\":")))
        n = atoi(p + 7);
    free(buf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, NULL);
    return n;
}

int main(int argc, char **argv)
{
    int ndb = arg_int(argv, argc, 1, 1000), active = arg_int(argv, argc, 2, 100);
    int rounds = bench_rounds(argc > 3 ? argv[3] : NULL);
    const char *tmp = getenv("TMPDIR");
    bench_series dir_us = {0}, one_us = {0}, ratio = {0}, dir_w = {0}, one_w = {0}, dir_r = {0},
                 one_r = {0};
    char dir[600], one[600], path[700];
    server sd, so;
    CURL *hd, *ho;
    pass cold;

    if (ndb < 1 || active < 1 || active > ndb || rounds < 0)
        die("usage", "dir_bench [NDB [ACTIVE [ROUNDS]]]");
    find_verso();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(g_root, sizeof(g_root), "%s/dir_bench_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(g_root))
        die("mkdtemp", strerror(errno));
    snprintf(dir, sizeof(dir), "%s/dir", g_root);
    snprintf(one, sizeof(one), "%s/one.db", g_root);
    mkdir(dir, 0700);
    for (int i = 0; i < ndb; i++) {
        snprintf(path, sizeof(path), "%s/db%04d.db", dir, i);
        make_db(path);
    }
    make_db(one);
    sync(); /* the new files' writeback is not the servers' to pay for */
    serve(&sd, "--dir", dir);
    serve(&so, one, NULL);
    hd = handle();
    ho = handle();
    touch(hd, &sd, 0, active, true, -1); /* the active databases open; the rounds keep them */
    touch(ho, &so, 0, active, false, -1);
    for (int r = 0; r < rounds; r++) {
        pass d, o;
        if (r % 2) {
            o = touch(ho, &so, 0, active, false, r);
            d = touch(hd, &sd, 0, active, true, r);
        } else {
            d = touch(hd, &sd, 0, active, true, r);
            o = touch(ho, &so, 0, active, false, r);
        }
        bench_add(&dir_us, d.all_us);
        bench_add(&one_us, o.all_us);
        bench_add(&dir_w, d.write_us);
        bench_add(&one_w, o.write_us);
        bench_add(&dir_r, d.read_us);
        bench_add(&one_r, o.read_us);
        fprintf(stderr, "round %d: dir %.0f us (write %.0f, read %.0f), one %.0f us (%.0f, %.0f)\n",
                r + 1, d.all_us, d.write_us, d.read_us, o.all_us, o.write_us, o.read_us);
    }
    bench_ratio(&ratio, &dir_us, &one_us);
    printf("databases %d\nactive %d\nrounds %d\n", ndb, active, rounds);
    bench_print_spread("dir_req_us", &dir_us, 0);
    bench_print_spread("one_req_us", &one_us, 0);
    bench_print_spread("dir_over_one", &ratio, 2);
    bench_print_spread("dir_write_us", &dir_w, 0);
    bench_print_spread("one_write_us", &one_w, 0);
    bench_print_spread("dir_read_us", &dir_r, 0);
    bench_print_spread("one_read_us", &one_r, 0);
    printf("dir_rss_kb %ld\ndir_hwm_kb %ld\ndir_fds %ld\n", proc_kb(sd.pid, "VmRSS"),
           proc_kb(sd.pid, "VmHWM"), proc_fds(sd.pid));
    printf("one_rss_kb %ld\none_hwm_kb %ld\none_fds %ld\n", proc_kb(so.pid, "VmRSS"),
           proc_kb(so.pid, "VmHWM"), proc_fds(so.pid));
    cold = touch(hd, &sd, 0, ndb, true, 1000);
    printf("cold_req_us %.0f\ncold_write_us %.0f\ncold_read_us %.0f\n", cold.all_us, cold.write_us,
           cold.read_us);
    printf("sweep_rss_kb %ld\nsweep_hwm_kb %ld\nsweep_fds %ld\ndir_open %d\n",
           proc_kb(sd.pid, "VmRSS"), proc_kb(sd.pid, "VmHWM"), proc_fds(sd.pid),
           open_count(hd, &sd));
    curl_easy_cleanup(hd);
    curl_easy_cleanup(ho);
    curl_slist_free_all(g_json);
    stop(&sd);
    stop(&so);
    nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    curl_global_cleanup();
    return 0;
}
