/*
 * rest_bench - requests per second of the REST server against a bare
 * libwebsockets server answering a fixed ~200-byte body, in the same run,
 * with the same wrk scripts (wrk -t2 -c50).
 *
 * usage: rest_bench [--duration S] [--rounds N] [--rows N]
 * Needs wrk on PATH and bare_lws_server next to this program.
 * Prints "name value" lines: *_rps are medians over the rounds; ratios
 * are verso / bare of those medians; *_errors count non-2xx answers.
 */
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "verso/orm.h"
#include "verso/rest.h"

typedef struct row {
    int64_t id;
    int64_t version;
    char *name;
    double price;
    int64_t qty;
    char *note;
} row;

static const verso_field k_fields[] = {
    VERSO_FIELD_ID_OF(row, id),
    VERSO_FIELD_VERSION_OF(row, version),
    VERSO_FIELD(row, name, VERSO_TEXT, 0),
    VERSO_FIELD(row, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(row, qty, VERSO_INT64, 0),
    VERSO_FIELD(row, note, VERSO_TEXT, 0),
};
static const verso_table_def k_items = VERSO_TABLE_DEF("items", row, k_fields);
static const verso_table_def *const k_tables[] = {&k_items};

/* No quote characters: it is pasted into a Lua string. */
static const char k_note[] = "a note of about one hundred bytes, so that a row is as big as "
                             "the fixed body of the bare server";

typedef struct bench {
    int duration, rounds, rows;
    char dir[512];
    char db[600], get_lua[600], post_lua[600];
    pid_t bare;
    int bare_port;
} bench;

static int seed(bench *b)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    char name[32];
    int rc;

    o.tables = k_tables;
    o.ntables = 1;
    if ((rc = verso_db_open(&db, b->db, &o, NULL, 0)) < 0 || (rc = verso_db_begin(db)) < 0)
        goto done;
    for (int i = 1; rc == 0 && i <= b->rows; i++) {
        row r = {.name = name, .price = i * 0.25, .qty = i % 100, .note = (char *)k_note};
        snprintf(name, sizeof(name), "item number %d", i);
        rc = verso_record_insert(db, &k_items, &r);
    }
    if (rc == 0)
        rc = verso_db_commit(db);
done:
    verso_db_close(db);
    return rc;
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static int write_scripts(bench *b)
{
    char get[512], post[512];

    snprintf(get, sizeof(get),
             "math.randomseed(42)\n"
             "request = function()\n"
             "  return wrk.format(\"GET\", \"/items/\" .. math.random(1, %d))\n"
             "end\n",
             b->rows);
    snprintf(post, sizeof(post),
             "wrk.method = \"POST\"\n"
             "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
             "wrk.body = '{\"name\":\"posted item\",\"price\":2.5,\"qty\":7,\"note\":\"%s\"}'\n",
             k_note);
    return write_file(b->get_lua, get) || write_file(b->post_lua, post) ? -1 : 0;
}

static int start_bare(bench *b, const char *self)
{
    char path[1024], line[64], *copy = strdup(self);
    int fds[2];
    FILE *out;

    snprintf(path, sizeof(path), "%s/bare_lws_server", dirname(copy));
    free(copy);
    if (pipe(fds) < 0 || (b->bare = fork()) < 0)
        return -1;
    if (b->bare == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        execl(path, path, "0", (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    out = fdopen(fds[0], "r");
    if (!out || !fgets(line, sizeof(line), out) || sscanf(line, "port %d", &b->bare_port) != 1) {
        fprintf(stderr, "rest_bench: cannot start %s\n", path);
        return -1;
    }
    fclose(out);
    return 0;
}

/* Runs wrk; returns requests/s, *errors gets the non-2xx/3xx count. */
static double run_wrk(const bench *b, int port, const char *path, const char *script, long *errors)
{
    char cmd[2048], line[256];
    double rps = 0;
    bool failed = false;
    FILE *p;

    snprintf(cmd, sizeof(cmd), "wrk -t2 -c50 -d%ds -s '%s' http://127.0.0.1:%d%s 2>&1", b->duration,
             script, port, path);
    if (!(p = popen(cmd, "r")))
        return 0;
    while (fgets(line, sizeof(line), p)) {
        sscanf(line, "Requests/sec: %lf", &rps);
        sscanf(line, "  Non-2xx or 3xx responses: %ld", errors);
        if (strstr(line, "rror") && !strstr(line, "Socket errors")) {
            fprintf(stderr, "rest_bench: wrk: %s", line);
            failed = true;
        }
    }
    pclose(p);
    return failed ? 0 : rps;
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

enum { BARE_GET, VERSO_GET, BARE_POST, VERSO_POST, NRUNS };

static const char *const k_names[NRUNS] = {"bare_get", "verso_record_get", "bare_post",
                                           "verso_post"};

static void measure(const bench *b, int port, double rps[NRUNS][16], long errors[NRUNS])
{
    for (int r = 0; r < b->rounds; r++) {
        rps[BARE_GET][r] = run_wrk(b, b->bare_port, "/", b->get_lua, &errors[BARE_GET]);
        rps[VERSO_GET][r] = run_wrk(b, port, "/", b->get_lua, &errors[VERSO_GET]);
        rps[BARE_POST][r] = run_wrk(b, b->bare_port, "/items", b->post_lua, &errors[BARE_POST]);
        rps[VERSO_POST][r] = run_wrk(b, port, "/items", b->post_lua, &errors[VERSO_POST]);
    }
}

/* Rows in the table: proves the POST runs created rows. */
static int64_t count_rows(const bench *b)
{
    verso_db *db = NULL;
    int64_t n = -1;

    if (verso_db_open(&db, b->db, NULL, NULL, 0) == 0)
        verso_query_count(&n, db, "items", NULL, 0);
    verso_db_close(db);
    return n;
}

static void report(const bench *b, double rps[NRUNS][16], const long errors[NRUNS])
{
    double med[NRUNS];

    for (int i = 0; i < NRUNS; i++) {
        med[i] = median(rps[i], b->rounds);
        printf("%s_rps %.0f\n%s_errors %ld\n", k_names[i], med[i], k_names[i], errors[i]);
    }
    printf("ratio_get_vs_bare %.3f\n", med[BARE_GET] > 0 ? med[VERSO_GET] / med[BARE_GET] : 0);
    printf("ratio_post_vs_bare %.3f\n", med[BARE_POST] > 0 ? med[VERSO_POST] / med[BARE_POST] : 0);
    printf("verso_post_rows_created %lld\n", (long long)(count_rows(b) - b->rows));
}

static void parse_args(bench *b, int argc, char **argv)
{
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--duration"))
            b->duration = v > 0 ? v : b->duration;
        else if (!strcmp(argv[i], "--rounds"))
            b->rounds = v > 0 && v <= 16 ? v : b->rounds;
        else if (!strcmp(argv[i], "--rows"))
            b->rows = v > 0 ? v : b->rows;
    }
}

int main(int argc, char **argv)
{
    bench b = {.duration = 3, .rounds = 3, .rows = 10000};
    double rps[NRUNS][16] = {{0}};
    long errors[NRUNS] = {0};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    verso_rest *srv = NULL;
    char why[700];
    int rc = 1;

    parse_args(&b, argc, argv);
    snprintf(b.dir, sizeof(b.dir), "%s",
             getenv("VERSO_TEST_TMP") ? getenv("VERSO_TEST_TMP") : "/tmp");
    snprintf(b.db, sizeof(b.db), "%s/rest_bench_%d.db", b.dir, (int)getpid());
    snprintf(b.get_lua, sizeof(b.get_lua), "%s/rest_bench_get_%d.lua", b.dir, (int)getpid());
    snprintf(b.post_lua, sizeof(b.post_lua), "%s/rest_bench_post_%d.lua", b.dir, (int)getpid());
    o.db_path = b.db;
    if (seed(&b) < 0 || write_scripts(&b) < 0 || start_bare(&b, argv[0]) < 0 ||
        verso_rest_start(&srv, NULL, &o, why, sizeof(why)) < 0) {
        fprintf(stderr, "rest_bench: setup failed\n");
        goto done;
    }
    printf("rows %d\nrounds %d\nduration_s %d\n", b.rows, b.rounds, b.duration);
    measure(&b, verso_rest_port(srv), rps, errors);
    report(&b, rps, errors);
    rc = 0;
done:
    verso_rest_stop(srv);
    if (b.bare > 0) {
        kill(b.bare, SIGTERM);
        waitpid(b.bare, NULL, 0);
    }
    for (const char *const *f = (const char *const[]){b.db, b.get_lua, b.post_lua, NULL}; *f; f++)
        unlink(*f);
    snprintf(why, sizeof(why), "%s-wal", b.db);
    unlink(why);
    snprintf(why, sizeof(why), "%s-shm", b.db);
    unlink(why);
    return rc;
}
