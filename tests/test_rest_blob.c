/*
 * The raw blob routes of a one-database server: GET /TABLE/ID/COLUMN streams
 * one value's bytes (Range, ETag, ?version=, HEAD), PUT /TABLE/ID/COLUMN
 * sets it from a raw body spooled to a file (Content-Length or chunked, up to
 * max-blob, If-Match).
 *
 * Values are made of a pattern computed from (seed, offset), so that a test
 * sends and checks 64 MiB without holding it: uploads are generated and
 * downloads compared as they arrive. A server in this process answers most
 * cases; a `verso serve` child ($VERSO_BIN) is measured for memory (its
 * VmHWM before and after a 64 MiB PUT and GET and a stalled download).
 * Raw sockets play the clients curl cannot: one that stops reading, one that
 * reads slowly, one that leaves mid-upload. Each test works in a directory
 * of its own (spool files are looked for there), removed at the end; a
 * child server is killed at the end of its test, also when it fails.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sqlite3.h>

#include "rest/internal.h" /* verso__spool_wanted, verso__spool_room */
#include "verso/advanced.h"
#include "verso/orm.h"
#include "verso/rest.h"

#define MiB ((int64_t)1 << 20)

/* sha256 of "reader-token", "writer-token", "other-token". */
#define READER "reader-token"
#define WRITER "writer-token"
#define OTHER  "other-token"

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&t, NULL);
}

/* ---- the pattern ---- */

static unsigned char pat(unsigned seed, int64_t off)
{
    uint64_t x = ((uint64_t)off + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 32);

    return (unsigned char)(x >> 56 ^ x >> 29);
}

static void pat_fill(unsigned char *buf, size_t n, unsigned seed, int64_t off)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pat(seed, off + (int64_t)i);
}

/* ---- one test's world ---- */

typedef struct access_seen {
    char method[8];
    char path[128];
    int status;
    size_t bytes;
} access_seen;

typedef struct env {
    char dir[512];
    char path[600];
    verso_db *db; /* the test's own handle on the file */
    verso_rest *srv;
    char base[64];
    int port;
    pid_t child;    /* a `verso serve`, killed at teardown; 0: none */
    char cert[700]; /* HTTPS: the server's self-signed certificate; "" = HTTP */
    pthread_mutex_t lock;
    access_seen seen[64];
    int nseen;
    atomic_int disk_full;
} env;

static env E;

static void on_access(const verso_rest_access *a, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&E.lock);
    if (E.nseen < 64) {
        access_seen *s = &E.seen[E.nseen++];
        snprintf(s->method, sizeof(s->method), "%s", a->method);
        snprintf(s->path, sizeof(s->path), "%s", a->path);
        s->status = a->status;
        s->bytes = a->bytes;
    }
    pthread_mutex_unlock(&E.lock);
}

static void on_disk_full(verso_rest *srv, bool full, void *arg)
{
    (void)srv;
    (void)arg;
    atomic_store(&E.disk_full, full ? 1 : 2);
}

/* A table with the blob column last (SQLite then never builds the row in
 * memory), every storage class, and rows 1..4. */
static void make_db(bool notes)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    char why[256] = "";

    assert_int_equal(verso_db_open(&E.db, E.path, &o, why, sizeof(why)), 0);
    assert_int_equal(verso_db_exec(E.db, "CREATE TABLE files(id INTEGER PRIMARY KEY, version "
                                         "INTEGER, name TEXT, qty INTEGER, ratio REAL, data BLOB)"),
                     0);
    assert_int_equal(verso_db_track(E.db, "files", "version"), 0);
    assert_int_equal(verso_db_exec(E.db, "INSERT INTO files(id, name, qty, ratio, data) VALUES "
                                         "(1, 'one', 7, 0.5, NULL), (2, 'two', 8, 1.5, x'00ff'), "
                                         "(3, 'three', 9, 2.5, NULL), (4, 'four', 10, 3.5, NULL)"),
                     0);
    if (!notes)
        return;
    assert_int_equal(verso_db_exec(E.db, "CREATE TABLE notes(id INTEGER PRIMARY KEY, version "
                                         "INTEGER, body BLOB)"),
                     0);
    assert_int_equal(verso_db_track(E.db, "notes", "version"), 0);
    assert_int_equal(verso_db_exec(E.db, "INSERT INTO notes(id, body) VALUES (1, x'01')"), 0);
}

static int setup_common(bool notes)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    memset(&E, 0, sizeof(E));
    pthread_mutex_init(&E.lock, NULL);
    snprintf(E.dir, sizeof(E.dir), "%s/blob-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(E.dir));
    snprintf(E.path, sizeof(E.path), "%s/b.db", E.dir);
    make_db(notes);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    return setup_common(true);
}

/* The world of docs/databases-blobs.md: the table files alone. */
static int setup_doc(void **state)
{
    (void)state;
    return setup_common(false);
}

static void server_start(verso_rest_options *o)
{
    char why[256] = "";

    o->port = VERSO_REST_PORT_ANY;
    o->on_access = on_access;
    o->on_disk_full = on_disk_full;
    assert_int_equal(verso_rest_start(&E.srv, E.db, o, why, sizeof(why)), 0);
    E.port = verso_rest_port(E.srv);
    snprintf(E.base, sizeof(E.base), "http://127.0.0.1:%d", E.port);
}

static void server_default(void)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    server_start(&o);
}

static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[1200];

    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static int teardown(void **state)
{
    (void)state;
    if (E.child > 0) {
        kill(E.child, SIGKILL);
        waitpid(E.child, NULL, 0);
    }
    verso_rest_stop(E.srv);
    verso_db_close(E.db);
    remove_dir(E.dir);
    pthread_mutex_destroy(&E.lock);
    return 0;
}

/* The spool files in the test's directory. */
static int spool_files(void)
{
    DIR *d = opendir(E.dir);
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)))
        n += !strncmp(e->d_name, ".verso-spool-", 13);
    if (d)
        closedir(d);
    return n;
}

/* Waits (bounded) until no spool file is left. */
static void assert_no_spool_file(void)
{
    int64_t deadline = now_ms() + 5000;

    while (spool_files() && now_ms() < deadline)
        sleep_ms(10);
    assert_int_equal(spool_files(), 0);
}

/* ---- HTTP through curl ---- */

typedef struct gen {
    unsigned seed;
    int64_t off, len;
} gen;

static size_t gen_read(char *buf, size_t size, size_t n, void *arg)
{
    gen *g = arg;
    size_t k = size * n;

    if ((int64_t)k > g->len - g->off)
        k = (size_t)(g->len - g->off);
    pat_fill((unsigned char *)buf, k, g->seed, g->off);
    g->off += (int64_t)k;
    return k;
}

typedef struct sink {
    unsigned seed;
    int64_t off; /* offset of the value the body starts at */
    int64_t got;
    int64_t bad; /* bytes that differ from the pattern */
    char keep[4096];
    size_t nkeep; /* the first bytes (error answers) */
} sink;

static size_t sink_write(char *data, size_t size, size_t n, void *arg)
{
    sink *s = arg;
    size_t k = size * n;

    for (size_t i = 0; i < k; i++)
        s->bad += (unsigned char)data[i] != pat(s->seed, s->off + s->got + (int64_t)i);
    for (size_t i = 0; i < k && s->nkeep < sizeof(s->keep) - 1; i++)
        s->keep[s->nkeep++] = data[i];
    s->keep[s->nkeep] = 0;
    s->got += (int64_t)k;
    return k;
}

typedef struct hdrs {
    char text[4096];
    size_t n;
} hdrs;

static size_t hdrs_write(char *data, size_t size, size_t n, void *arg)
{
    hdrs *h = arg;
    size_t k = size * n;

    if (k > sizeof(h->text) - 1 - h->n)
        k = sizeof(h->text) - 1 - h->n;
    memcpy(h->text + h->n, data, k);
    h->n += k;
    h->text[h->n] = 0;
    return size * n;
}

/* Value of header name in h ("" when absent). */
static const char *hval(const hdrs *h, const char *name, char *out, size_t n)
{
    size_t len = strlen(name);

    out[0] = 0;
    for (const char *p = h->text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncasecmp(p, name, len) || p[len] != ':')
            continue;
        p += len + 1 + strspn(p + len + 1, " ");
        snprintf(out, n, "%.*s", (int)strcspn(p, "\r\n"), p);
        break;
    }
    return out;
}

typedef struct call {
    const char *method;
    const char *path;
    const char *token;
    const char *const *headers;
    gen *up;          /* body generated from the pattern, or NULL */
    bool chunked;     /* send it chunked (no Content-Length) */
    const char *body; /* or this text */
} call;

static long perform(const call *c, sink *s, hdrs *h)
{
    CURL *cu = curl_easy_init();
    struct curl_slist *list = curl_slist_append(NULL, "Expect:");
    char url[512], auth[128];
    long status = 0;

    snprintf(url, sizeof(url), "%s%s", E.base, c->path);
    for (size_t i = 0; c->headers && c->headers[i]; i++)
        list = curl_slist_append(list, c->headers[i]);
    if (c->token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", c->token);
        list = curl_slist_append(list, auth);
    }
    if (c->chunked)
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
    curl_easy_setopt(cu, CURLOPT_URL, url);
    curl_easy_setopt(cu, CURLOPT_CUSTOMREQUEST, c->method);
    curl_easy_setopt(cu, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(cu, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(cu, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(cu, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(cu, CURLOPT_HEADERFUNCTION, hdrs_write);
    curl_easy_setopt(cu, CURLOPT_HEADERDATA, h);
    if (E.cert[0])
        curl_easy_setopt(cu, CURLOPT_CAINFO, E.cert);
    if (!strcmp(c->method, "HEAD"))
        curl_easy_setopt(cu, CURLOPT_NOBODY, 1L);
    if (c->up) {
        curl_easy_setopt(cu, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(cu, CURLOPT_READFUNCTION, gen_read);
        curl_easy_setopt(cu, CURLOPT_READDATA, c->up);
        if (!c->chunked)
            curl_easy_setopt(cu, CURLOPT_INFILESIZE_LARGE, (curl_off_t)c->up->len);
    } else if (c->body) {
        curl_easy_setopt(cu, CURLOPT_POSTFIELDS, c->body);
        curl_easy_setopt(cu, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(c->body));
    }
    curl_easy_setopt(cu, CURLOPT_HTTPHEADER, list);
    if (curl_easy_perform(cu) == CURLE_OK)
        curl_easy_getinfo(cu, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(list);
    curl_easy_cleanup(cu);
    return status;
}

/* PUT of len pattern bytes (seed) to path; the answer's text in s->keep. */
static long put_pattern(const char *path, unsigned seed, int64_t len, bool chunked, sink *s,
                        const char *const *headers)
{
    gen g = {.seed = seed, .len = len};
    hdrs h = {.n = 0};
    call c = {.method = "PUT", .path = path, .up = &g, .chunked = chunked, .headers = headers};

    memset(s, 0, sizeof(*s));
    s->seed = ~0u;
    return perform(&c, s, &h);
}

/* GET path, comparing the body with pattern seed from offset off. */
static long get_check(const char *path, unsigned seed, int64_t off, const char *const *headers,
                      sink *s, hdrs *h)
{
    call c = {.method = "GET", .path = path, .headers = headers};

    memset(s, 0, sizeof(*s));
    memset(h, 0, sizeof(*h));
    s->seed = seed;
    s->off = off;
    return perform(&c, s, h);
}

/* A request with a text body (or none); answer text in s->keep. */
static long request(const char *method, const char *path, const char *token, const char *body,
                    const char *const *headers, sink *s)
{
    hdrs h;
    call c = {.method = method, .path = path, .token = token, .body = body, .headers = headers};

    memset(s, 0, sizeof(*s));
    memset(&h, 0, sizeof(h));
    return perform(&c, s, &h);
}

/* ---- raw sockets ---- */

/* A connection to the server; rcvbuf > 0 keeps the kernel's buffer small. */
static int raw_connect(int port, int rcvbuf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void raw_send(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Reads up to n bytes, waiting at most ms: the count, 0 at EOF, -1 timed out. */
static ssize_t raw_read(int fd, void *buf, size_t n, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};

    if (poll(&p, 1, ms) <= 0)
        return -1;
    return recv(fd, buf, n, 0);
}

/* Reads the answer's headers; *body_read gets the body bytes read with
 * them. Returns the status. */
static int raw_headers(int fd, char *head, size_t n, int64_t *body_read)
{
    size_t len = 0;
    char *end = NULL;

    while (!end) {
        ssize_t r = raw_read(fd, head + len, n - 1 - len, 10000);
        assert_true(r > 0);
        len += (size_t)r;
        head[len] = 0;
        end = strstr(head, "\r\n\r\n");
        assert_true(end || len < n - 1);
    }
    *body_read = (int64_t)(len - (size_t)(end + 4 - head));
    return atoi(head + 9);
}

/* Reads until EOF (bounded): the bytes read. */
static int64_t raw_drain(int fd, int ms)
{
    static char buf[1 << 16];
    int64_t total = 0, deadline = now_ms() + ms;
    ssize_t r;

    while ((r = raw_read(fd, buf, sizeof(buf), (int)(deadline - now_ms()))) > 0)
        total += r;
    assert_int_equal(r, 0); /* EOF, not the deadline */
    return total;
}

static void raw_get(int fd, const char *path)
{
    char req[512];
    int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);

    raw_send(fd, req, (size_t)n);
}

/* ---- values made in the file directly ---- */

/* Sets files.data of row id to len pattern bytes with zeroblob and
 * incremental writes, on a connection of the test's own (the tracking
 * triggers give the row its new version). */
static void raw_fill(const char *table, const char *column, int64_t id, unsigned seed, int64_t len)
{
    static unsigned char buf[1 << 16];
    char sql[256];
    sqlite3 *sq = NULL;
    sqlite3_stmt *st = NULL;
    sqlite3_blob *b = NULL;

    assert_int_equal(sqlite3_open(E.path, &sq), SQLITE_OK);
    sqlite3_busy_timeout(sq, 5000);
    assert_int_equal(sqlite3_exec(sq, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql), "UPDATE %s SET %s = zeroblob(?1) WHERE id = ?2", table, column);
    assert_int_equal(sqlite3_prepare_v2(sq, sql, -1, &st, NULL), SQLITE_OK);
    sqlite3_bind_int64(st, 1, len);
    sqlite3_bind_int64(st, 2, id);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_blob_open(sq, "main", table, column, id, 1, &b), SQLITE_OK);
    for (int64_t off = 0; off < len; off += (int64_t)sizeof(buf)) {
        int n = (int)(len - off < (int64_t)sizeof(buf) ? len - off : (int64_t)sizeof(buf));
        pat_fill(buf, (size_t)n, seed, off);
        assert_int_equal(sqlite3_blob_write(b, buf, n, (int)off), SQLITE_OK);
    }
    sqlite3_blob_close(b);
    assert_int_equal(sqlite3_exec(sq, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(sq);
}

static int64_t row_version(int64_t id)
{
    static const char *const cols[] = {"version"};
    verso_cond cond = {.column = "id", .op = VERSO_EQ, .value = VERSO_VALUE_INT(id)};
    verso_query q = VERSO_QUERY_INIT;
    verso_iter *it = NULL;
    verso_value v;
    int64_t version = -1;

    q.table = "files";
    q.conds = &cond;
    q.nconds = 1;
    q.columns = cols;
    q.ncolumns = 1;
    assert_int_equal(verso_query_open(&it, E.db, &q), 0);
    if (verso_iter_next(it) == 1 && verso_iter_value(&v, it, 0) == 0)
        version = v.u.i;
    verso_iter_close(it);
    return version;
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("\"%s\" not in \"%s\"", part, text);
}

static void assert_header(const hdrs *h, const char *name, const char *want)
{
    char v[256];

    hval(h, name, v, sizeof(v));
    if (strcmp(v, want))
        fail_msg("%s: \"%s\", not \"%s\"", name, v, want);
}

static void assert_etag(const hdrs *h, int64_t version)
{
    char want[32];

    snprintf(want, sizeof(want), "\"%lld\"", (long long)version);
    assert_header(h, "etag", want);
}

/* Waits (bounded) for an access-log entry of GET path with status; its
 * bytes. Entries seen so far are dropped. */
static size_t access_bytes(const char *path, int status)
{
    int64_t deadline = now_ms() + 10000;

    for (;;) {
        pthread_mutex_lock(&E.lock);
        for (int i = E.nseen - 1; i >= 0; i--) {
            if (!strcmp(E.seen[i].method, "GET") && !strcmp(E.seen[i].path, path) &&
                E.seen[i].status == status) {
                size_t b = E.seen[i].bytes;
                E.nseen = 0;
                pthread_mutex_unlock(&E.lock);
                return b;
            }
        }
        pthread_mutex_unlock(&E.lock);
        if (now_ms() > deadline)
            fail_msg("no access-log entry for %s %d", path, status);
        sleep_ms(5);
    }
}

/* ---- GET ---- */

/* 0 B, 1 B, 1 MiB and 64 MiB put then read back byte for byte, with their
 * headers; HEAD; a 64 MiB value written into the file directly; text. */
static void test_get_sizes(void **state)
{
    static const int64_t sizes[] = {0, 1, MiB, 64 * MiB};
    char path[64], len[32];
    sink s;
    hdrs h;

    (void)state;
    server_default();
    for (unsigned i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/files/%u/data", i + 1);
        assert_int_equal(put_pattern(path, i + 1, sizes[i], false, &s, NULL), 200);
        snprintf(len, sizeof(len), "\"size\":%lld}", (long long)sizes[i]);
        assert_contains(s.keep, len);
        assert_int_equal(get_check(path, i + 1, 0, NULL, &s, &h), 200);
        assert_int_equal(s.got, sizes[i]);
        assert_int_equal(s.bad, 0);
        snprintf(len, sizeof(len), "%lld", (long long)sizes[i]);
        assert_header(&h, "content-length", len);
        assert_header(&h, "content-type", "application/octet-stream");
        assert_header(&h, "accept-ranges", "bytes");
        assert_etag(&h, row_version(i + 1));
        assert_int_equal(access_bytes(path, 200), (size_t)sizes[i]);
    }
    call head = {.method = "HEAD", .path = "/files/3/data"};
    memset(&h, 0, sizeof(h));
    memset(&s, 0, sizeof(s));
    assert_int_equal(perform(&head, &s, &h), 200);
    assert_int_equal(s.got, 0);
    assert_header(&h, "content-length", "1048576");
    raw_fill("notes", "body", 1, 77, 64 * MiB);
    assert_int_equal(get_check("/notes/1/body", 77, 0, NULL, &s, &h), 200);
    assert_int_equal(s.got, 64 * MiB);
    assert_int_equal(s.bad, 0);
    assert_int_equal(request("GET", "/files/1/name", NULL, NULL, NULL, &s), 200);
    assert_string_equal(s.keep, "one");
}

typedef struct range_case {
    const char *header;
    int status;
    const char *content_range; /* "" = none */
    int64_t off, len;          /* of the body (200/206) */
} range_case;

static void check_range(const char *path, unsigned seed, const range_case *c)
{
    char hdr[160], len[32];
    const char *list[] = {hdr, NULL};
    sink s;
    hdrs h;

    snprintf(hdr, sizeof(hdr), "Range: %s", c->header);
    if (get_check(path, seed, c->off, list, &s, &h) != c->status)
        fail_msg("Range: %s: status not %d", c->header, c->status);
    assert_header(&h, "content-range", c->content_range);
    if (c->status == 416) {
        assert_contains(s.keep, "range_not_satisfiable");
        return;
    }
    snprintf(len, sizeof(len), "%lld", (long long)c->len);
    assert_header(&h, "content-length", len);
    assert_int_equal(s.got, c->len);
    assert_int_equal(s.bad, 0);
}

/* Every form of one byte range, ranges out of the value (416), several
 * ranges and malformed ones (the whole value, 200). */
static void test_get_ranges(void **state)
{
    static const range_case cases[] = {
        {"bytes=0-0", 206, "bytes 0-0/1000", 0, 1},
        {"bytes=10-19", 206, "bytes 10-19/1000", 10, 10},
        {"bytes=990-", 206, "bytes 990-999/1000", 990, 10},
        {"bytes=-10", 206, "bytes 990-999/1000", 990, 10},
        {"bytes=-5000", 206, "bytes 0-999/1000", 0, 1000},
        {"bytes=500-99999", 206, "bytes 500-999/1000", 500, 500},
        {"bytes=999-999", 206, "bytes 999-999/1000", 999, 1},
        {"BYTES=1-2", 206, "bytes 1-2/1000", 1, 2},
        {"bytes=1000-", 416, "bytes */1000", 0, 0},
        {"bytes=1000-2000", 416, "bytes */1000", 0, 0},
        {"bytes=-0", 416, "bytes */1000", 0, 0},
        {"bytes=99999999999999999999999-", 416, "bytes */1000", 0, 0},
        {"bytes=0-1,5-6", 200, "", 0, 1000},
        {"bytes=5-2", 200, "", 0, 1000},
        {"items=0-1", 200, "", 0, 1000},
        {"bytes=abc", 200, "", 0, 1000},
        {"bytes=-", 200, "", 0, 1000},
        {"bytes=1-2x", 200, "", 0, 1000},
    };
    static const range_case empty[] = {
        {"bytes=0-", 416, "bytes */0", 0, 0},
        {"bytes=-1", 416, "bytes */0", 0, 0},
        {"bytes=0-1,2-3", 200, "", 0, 0},
    };
    sink s;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 5, 1000, false, &s, NULL), 200);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_range("/files/1/data", 5, &cases[i]);
    assert_int_equal(put_pattern("/files/2/data", 6, 0, false, &s, NULL), 200);
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++)
        check_range("/files/2/data", 6, &empty[i]);
}

/* ?version=V: the value when the row has that version, 412 otherwise. */
static void test_get_version(void **state)
{
    char path[80];
    int64_t v;
    sink s;
    hdrs h;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 3, 5000, false, &s, NULL), 200);
    v = row_version(1);
    snprintf(path, sizeof(path), "/files/1/data?version=%lld", (long long)v);
    assert_int_equal(get_check(path, 3, 0, NULL, &s, &h), 200);
    assert_int_equal(s.got, 5000);
    assert_int_equal(s.bad, 0);
    assert_etag(&h, v);
    snprintf(path, sizeof(path), "/files/1/data?version=%lld", (long long)v - 1);
    assert_int_equal(get_check(path, 3, 0, NULL, &s, &h), 412);
    assert_contains(s.keep, "precondition_failed");
    assert_int_equal(request("GET", "/files/1/data?version=x", NULL, NULL, NULL, &s), 400);
    assert_int_equal(request("GET", "/files/1/data?version=0", NULL, NULL, NULL, &s), 400);
    /* after a change, the old version is gone */
    assert_int_equal(put_pattern("/files/1/data", 4, 10, false, &s, NULL), 200);
    snprintf(path, sizeof(path), "/files/1/data?version=%lld", (long long)v);
    assert_int_equal(request("GET", path, NULL, NULL, NULL, &s), 412);
}

/* NULL, unknown table / row / column, numbers: errors that say what to do. */
static void test_get_errors(void **state)
{
    sink s;
    hdrs h;
    call patch = {.method = "PATCH", .path = "/files/1/data", .body = "x"};

    (void)state;
    server_default();
    assert_int_equal(request("GET", "/files/1/data", NULL, NULL, NULL, &s), 404);
    assert_contains(s.keep, "column data of row 1 is NULL");
    assert_int_equal(request("GET", "/files/1/nope", NULL, NULL, NULL, &s), 404);
    assert_contains(s.keep, "no column");
    assert_int_equal(request("GET", "/files/99/data", NULL, NULL, NULL, &s), 404);
    assert_contains(s.keep, "no row with id 99");
    assert_int_equal(request("GET", "/nosuch/1/data", NULL, NULL, NULL, &s), 404);
    assert_int_equal(request("GET", "/files/1/qty", NULL, NULL, NULL, &s), 400);
    assert_contains(s.keep, "an integer, not bytes: GET /files/1 gives it");
    assert_int_equal(request("GET", "/files/1/ratio", NULL, NULL, NULL, &s), 400);
    assert_contains(s.keep, "a real number");
    assert_int_equal(request("GET", "/files/1/id", NULL, NULL, NULL, &s), 400);
    assert_int_equal(request("GET", "/files/1/version", NULL, NULL, NULL, &s), 400);
    assert_int_equal(request("GET", "/files/1/data/x", NULL, NULL, NULL, &s), 404);
    assert_int_equal(request("GET", "/files/x/data", NULL, NULL, NULL, &s), 404);
    assert_int_equal(request("GET", "/files/1/", NULL, NULL, NULL, &s), 404);
    assert_int_equal(request("GET", "/_info/1/data", NULL, NULL, NULL, &s), 404);
    memset(&s, 0, sizeof(s));
    memset(&h, 0, sizeof(h));
    assert_int_equal(perform(&patch, &s, &h), 405);
    assert_header(&h, "allow", "GET, HEAD, PUT");
    assert_int_equal(request("GET", "/files/2/name", NULL, NULL, NULL, &s), 200);
    assert_string_equal(s.keep, "two");
    assert_int_equal(request("GET", "/_metrics", NULL, NULL, NULL, &s), 200);
    assert_contains(s.keep, "blob_get");
}

/* A row changed or deleted while its value is being sent: the connection
 * ends before the body does. */
static void test_get_changed_midway(void **state)
{
    static char buf[1 << 16];
    const char *cols[] = {"name"};
    verso_value val = {.type = VERSO_TEXT, .u.b = {"changed", 7}};
    char head[4096];
    int64_t got;
    sink s;
    hdrs h;

    (void)state;
    server_default();
    for (int round = 0; round < 2; round++) {
        int fd;
        assert_int_equal(put_pattern("/files/1/data", 9, 16 * MiB, false, &s, NULL), 200);
        fd = raw_connect(E.port, 4096);
        raw_get(fd, "/files/1/data");
        assert_int_equal(raw_headers(fd, head, sizeof(head), &got), 200);
        while (got < 65536) {
            ssize_t r = raw_read(fd, buf, sizeof(buf), 10000);
            assert_true(r > 0);
            got += r;
        }
        if (round == 0)
            assert_int_equal(verso_row_update(NULL, E.db, "files", 1, cols, &val, 1, 0), 0);
        else
            assert_int_equal(verso_row_delete(E.db, "files", 1, 0), 0);
        got += raw_drain(fd, 20000);
        close(fd);
        print_message("%s mid-download: %lld of %lld bytes sent\n", round ? "deleted" : "updated",
                      (long long)got, (long long)(16 * MiB));
        assert_true(got < 16 * MiB);
        assert_true(access_bytes("/files/1/data", 200) < (size_t)(16 * MiB));
        if (round == 0) {
            assert_int_equal(get_check("/files/1/data", 9, 0, NULL, &s, &h), 200);
            assert_int_equal(s.got, 16 * MiB);
            assert_etag(&h, row_version(1));
        }
    }
}

/* A client that stops reading: other requests are answered meanwhile, and
 * the server ends the connection once it has waited body-timeout-ms. */
static void test_get_stalled_client(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char head[4096];
    int64_t got;
    sink s;
    int fd;

    (void)state;
    o.limits.body_timeout_ms = 1500;
    server_start(&o);
    assert_int_equal(put_pattern("/files/1/data", 11, 16 * MiB, false, &s, NULL), 200);
    fd = raw_connect(E.port, 4096);
    raw_get(fd, "/files/1/data");
    assert_int_equal(raw_headers(fd, head, sizeof(head), &got), 200);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(request("GET", "/_health", NULL, NULL, NULL, &s), 200);
        assert_int_equal(request("GET", "/files/2/data", NULL, NULL, NULL, &s), 200);
    }
    /* the server gives up (the access log tells) while the client still sleeps */
    assert_true(access_bytes("/files/1/data", 200) < (size_t)(16 * MiB));
    got += raw_drain(fd, 20000);
    close(fd);
    print_message("stalled client: %lld of %lld bytes before the server gave up\n", (long long)got,
                  (long long)(16 * MiB));
    assert_true(got < 16 * MiB);
}

/* A slow reader whose download lasts longer than the header timeout still
 * gets all of it (nothing but the stall limit ends a download). */
static void test_get_slow_reader(void **state)
{
    static char buf[8192];
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char head[4096];
    int64_t got, t0 = now_ms();
    sink s;
    int fd;

    (void)state;
    o.limits.header_timeout_ms = 1000;
    o.limits.body_timeout_ms = 2000;
    server_start(&o);
    assert_int_equal(put_pattern("/files/1/data", 12, 2 * MiB, false, &s, NULL), 200);
    fd = raw_connect(E.port, 8192);
    raw_get(fd, "/files/1/data");
    assert_int_equal(raw_headers(fd, head, sizeof(head), &got), 200);
    while (got < 2 * MiB) {
        ssize_t r = raw_read(fd, buf, sizeof(buf), 10000);
        assert_true(r > 0);
        got += r;
        sleep_ms(10); /* the pace of the reader, not a wait for an event */
    }
    close(fd);
    print_message("slow reader: 2 MiB in %lld ms\n", (long long)(now_ms() - t0));
    assert_int_equal(got, 2 * MiB);
    assert_int_equal(access_bytes("/files/1/data", 200), (size_t)(2 * MiB));
}

typedef struct reader {
    int port;
    atomic_int started;
    int64_t got;
} reader;

static void *slow_download(void *arg)
{
    static char buf[8192];
    reader *r = arg;
    char head[4096];
    int fd = raw_connect(r->port, 8192);
    ssize_t n;

    raw_get(fd, "/files/1/data");
    if (raw_headers(fd, head, sizeof(head), &r->got) != 200)
        return NULL;
    atomic_store(&r->started, 1);
    while (r->got < 4 * MiB && (n = raw_read(fd, buf, sizeof(buf), 10000)) > 0) {
        r->got += n;
        sleep_ms(4);
    }
    close(fd);
    return NULL;
}

/* A download under way when the server stops is sent to its end. */
static void test_get_drained_at_stop(void **state)
{
    reader r = {.got = 0};
    pthread_t t;
    int64_t deadline;
    sink s;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 13, 4 * MiB, false, &s, NULL), 200);
    r.port = E.port;
    assert_int_equal(pthread_create(&t, NULL, slow_download, &r), 0);
    deadline = now_ms() + 10000;
    while (!atomic_load(&r.started) && now_ms() < deadline)
        sleep_ms(5);
    assert_true(atomic_load(&r.started));
    verso_rest_stop(E.srv);
    E.srv = NULL;
    pthread_join(t, NULL);
    assert_int_equal(r.got, 4 * MiB);
}

/* A client that leaves mid-download is logged with what it got, and a stop
 * that follows does not wait for its answer. */
static void test_get_client_leaves(void **state)
{
    char head[4096];
    int64_t got, t0;
    sink s;
    int fd;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 14, 16 * MiB, false, &s, NULL), 200);
    fd = raw_connect(E.port, 4096);
    raw_get(fd, "/files/1/data");
    assert_int_equal(raw_headers(fd, head, sizeof(head), &got), 200);
    close(fd);
    assert_true(access_bytes("/files/1/data", 200) < (size_t)(16 * MiB));
    t0 = now_ms();
    verso_rest_stop(E.srv);
    E.srv = NULL;
    print_message("stop after a client left mid-download: %lld ms\n", (long long)(now_ms() - t0));
    assert_true(now_ms() - t0 < 5000); /* the drain waits 10 s for answers it thinks under way */
}

/* The read role is needed, for that table. */
static void test_get_auth(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char cfg[700];
    FILE *f;
    sink s;

    (void)state;
    snprintf(cfg, sizeof(cfg), "%s/verso.conf", E.dir);
    assert_non_null(f = fopen(cfg, "w"));
    fputs("token ba5005a40cf5212e4ac0190104cc127edab013294bb71279a975b27a80982d45 read\n"
          "token 3590c0a59f72ce02700194a05f228a725c1f135a6dcb3ded9b2d86ab6a6f52cb write\n"
          "token 6c67163bbed989f232b31acc4f04df54b31285bfc01bd022c735b71e041a4754 read notes\n",
          f);
    fclose(f);
    o.config_path = cfg;
    server_start(&o);
    assert_int_equal(request("GET", "/files/2/data", NULL, NULL, NULL, &s), 401);
    assert_int_equal(request("GET", "/files/2/data", "not-a-token", NULL, NULL, &s), 401);
    assert_int_equal(request("GET", "/files/2/data", READER, NULL, NULL, &s), 200);
    assert_int_equal(s.got, 2);
    assert_int_equal(request("GET", "/files/2/data", OTHER, NULL, NULL, &s), 403);
    assert_int_equal(request("GET", "/notes/1/body", OTHER, NULL, NULL, &s), 200);
    assert_int_equal(request("PUT", "/files/2/data", READER, "abc", NULL, &s), 403);
    assert_int_equal(request("PUT", "/files/2/data", NULL, "abc", NULL, &s), 401);
    assert_no_spool_file();
    assert_int_equal(request("PUT", "/files/2/data", WRITER, "abc", NULL, &s), 200);
    assert_int_equal(request("GET", "/files/2/data", WRITER, NULL, NULL, &s), 200);
    assert_string_equal(s.keep, "abc");
}

/* Over TLS: the same bytes both ways, and a range (libwebsockets queues
 * what OpenSSL does not take at once, as for a plain socket). */
static void test_tls_round_trip(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    const char *range[] = {"Range: bytes=-1000", NULL};
    char key[700], cmd[2048];
    sink s;
    hdrs h;

    (void)state;
    snprintf(E.cert, sizeof(E.cert), "%s/cert.pem", E.dir);
    snprintf(key, sizeof(key), "%s/key.pem", E.dir);
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey rsa:2048 -nodes -keyout '%s' -out '%s' -days 2 "
             "-subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1",
             key, E.cert);
    assert_int_equal(system(cmd), 0);
    o.tls_cert = E.cert;
    o.tls_key = key;
    server_start(&o);
    snprintf(E.base, sizeof(E.base), "https://127.0.0.1:%d", E.port);
    assert_int_equal(put_pattern("/files/1/data", 95, 8 * MiB, false, &s, NULL), 200);
    assert_int_equal(get_check("/files/1/data", 95, 0, NULL, &s, &h), 200);
    assert_int_equal(s.got, 8 * MiB);
    assert_int_equal(s.bad, 0);
    assert_int_equal(get_check("/files/1/data", 95, 8 * MiB - 1000, range, &s, &h), 206);
    assert_int_equal(s.got, 1000);
    assert_int_equal(s.bad, 0);
}

/* ---- PUT ---- */

/* The value of files row id is pattern seed of len bytes, version v. */
static void assert_value(int64_t id, unsigned seed, int64_t len, int64_t v)
{
    char path[64];
    sink s;
    hdrs h;

    snprintf(path, sizeof(path), "/files/%lld/data", (long long)id);
    assert_int_equal(get_check(path, seed, 0, NULL, &s, &h), 200);
    assert_int_equal(s.got, len);
    assert_int_equal(s.bad, 0);
    assert_etag(&h, v);
}

/* Sends a raw request (head, then body in pieces of piece bytes) and reads
 * the answer's status. */
static int raw_put(const char *head, const unsigned char *body, size_t n, size_t piece)
{
    char answer[4096];
    int64_t got;
    int fd = raw_connect(E.port, 0), st;

    raw_send(fd, head, strlen(head));
    for (size_t off = 0; off < n; off += piece) {
        raw_send(fd, body + off, n - off < piece ? n - off : piece);
        sleep_ms(1); /* pieces the server reads one by one */
    }
    st = raw_headers(fd, answer, sizeof(answer), &got);
    close(fd);
    return st;
}

/* "Expect: 100-continue": the interim answer comes before the body is sent
 * (curl would wait a second for it); a body refused by its length gets the
 * refusal instead. */
static void test_put_expect_continue(void **state)
{
    static unsigned char body[5000];
    char head[512], answer[4096];
    const char *fmt = "PUT /files/1/data HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                      "Content-Length: %d\r\n\r\n";
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    int64_t got;
    int fd;

    (void)state;
    o.limits.max_blob = 10000;
    server_start(&o);
    pat_fill(body, sizeof(body), 91, 0);
    fd = raw_connect(E.port, 0);
    snprintf(head, sizeof(head), fmt, (int)sizeof(body));
    raw_send(fd, head, strlen(head));
    assert_int_equal(raw_headers(fd, answer, sizeof(answer), &got), 100);
    assert_int_equal(got, 0);
    raw_send(fd, body, sizeof(body));
    assert_int_equal(raw_headers(fd, answer, sizeof(answer), &got), 200);
    close(fd);
    assert_value(1, 91, sizeof(body), row_version(1));
    fd = raw_connect(E.port, 0);
    snprintf(head, sizeof(head), fmt, 20000);
    raw_send(fd, head, strlen(head));
    assert_int_equal(raw_headers(fd, answer, sizeof(answer), &got), 413);
    close(fd);
}

/* Content-Length and chunked bodies, from curl and trickled by hand, and
 * empty ones, read back byte for byte. */
static void test_put_bodies(void **state)
{
    static unsigned char body[300000], framed[400000];
    char head[256];
    size_t nf = 0;
    sink s;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 21, MiB, true, &s, NULL), 200);
    assert_value(1, 21, MiB, row_version(1));
    pat_fill(body, sizeof(body), 22, 0);
    snprintf(head, sizeof(head),
             "PUT /files/2/data HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
             "Content-Length: %zu\r\n\r\n",
             sizeof(body));
    assert_int_equal(raw_put(head, body, sizeof(body), 3000), 200);
    assert_value(2, 22, sizeof(body), row_version(2));
    /* chunks of 1000 bytes, sent in pieces that cut their framing anywhere */
    for (size_t off = 0; off < sizeof(body); off += 1000) {
        nf += (size_t)sprintf((char *)framed + nf, "%zx\r\n", (size_t)1000);
        memcpy(framed + nf, body + off, 1000);
        nf += 1000;
        memcpy(framed + nf, "\r\n", 2);
        nf += 2;
    }
    memcpy(framed + nf, "0\r\n\r\n", 5);
    nf += 5;
    assert_int_equal(raw_put("PUT /files/3/data HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n",
                             framed, nf, 777),
                     200);
    assert_value(3, 22, sizeof(body), row_version(3));
    assert_int_equal(request("PUT", "/files/4/data", NULL, "", NULL, &s), 200);
    assert_contains(s.keep, "\"size\":0}");
    assert_value(4, 0, 0, row_version(4));
    assert_int_equal(raw_put("PUT /files/1/data HTTP/1.1\r\nHost: x\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n",
                             (const unsigned char *)"0\r\n\r\n", 5, 5),
                     200);
    assert_value(1, 0, 0, row_version(1));
    assert_no_spool_file();
}

/* Above max-blob: 413 (by Content-Length at once, chunked as it arrives),
 * the row unchanged and no spool file left. */
static void test_put_too_large(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    int64_t v;
    sink s;

    (void)state;
    o.limits.max_blob = MiB;
    server_start(&o);
    assert_int_equal(put_pattern("/files/1/data", 31, 1000, false, &s, NULL), 200);
    v = row_version(1);
    assert_int_equal(put_pattern("/files/1/data", 32, MiB + 1, false, &s, NULL), 413);
    assert_contains(s.keep, "payload_too_large");
    assert_int_equal(put_pattern("/files/1/data", 32, 2 * MiB, true, &s, NULL), 413);
    assert_no_spool_file();
    assert_value(1, 31, 1000, v);
    assert_int_equal(put_pattern("/files/1/data", 33, MiB, false, &s, NULL), 200);
    assert_value(1, 33, MiB, row_version(1));
}

/* If-Match: the value is replaced only when the row has that version. */
static void test_put_if_match(void **state)
{
    char ifm[64];
    const char *list[] = {ifm, NULL};
    int64_t v;
    sink s;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 41, 100000, false, &s, NULL), 200);
    v = row_version(1);
    snprintf(ifm, sizeof(ifm), "If-Match: \"%lld\"", (long long)v + 5);
    assert_int_equal(put_pattern("/files/1/data", 42, 200000, false, &s, list), 412);
    assert_contains(s.keep, "precondition_failed");
    assert_value(1, 41, 100000, v);
    snprintf(ifm, sizeof(ifm), "If-Match: garbage");
    assert_int_equal(put_pattern("/files/1/data", 42, 200000, false, &s, list), 400);
    snprintf(ifm, sizeof(ifm), "If-Match: \"%lld\"", (long long)v);
    assert_int_equal(put_pattern("/files/1/data", 42, 200000, false, &s, list), 200);
    assert_value(1, 42, 200000, row_version(1));
    assert_true(row_version(1) > v);
    assert_no_spool_file();
}

/* A client that leaves mid-upload, or stops sending: nothing changes and
 * the spool file goes. */
static void test_put_aborted(void **state)
{
    static unsigned char body[100000];
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    const char *head = "PUT /files/1/data HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n";
    char answer[4096];
    int64_t v, got;
    sink s;
    int fd;

    (void)state;
    o.limits.body_timeout_ms = 1000;
    server_start(&o);
    assert_int_equal(put_pattern("/files/1/data", 51, 5000, false, &s, NULL), 200);
    v = row_version(1);
    pat_fill(body, sizeof(body), 52, 0);
    fd = raw_connect(E.port, 0);
    raw_send(fd, head, strlen(head));
    raw_send(fd, body, sizeof(body));
    close(fd); /* gone with 100000 of 1048576 bytes sent */
    assert_no_spool_file();
    fd = raw_connect(E.port, 0);
    raw_send(fd, head, strlen(head));
    raw_send(fd, body, sizeof(body));
    assert_int_equal(raw_headers(fd, answer, sizeof(answer), &got), 408);
    close(fd);
    assert_no_spool_file();
    assert_value(1, 51, 5000, v);
}

/* A full disk while spooling: 507, the application told once, nothing
 * left; the next upload works and says so. */
static void test_put_disk_full(void **state)
{
    int64_t v, deadline;
    sink s;

    (void)state;
    server_default();
    assert_int_equal(put_pattern("/files/1/data", 61, 5000, false, &s, NULL), 200);
    v = row_version(1);
    verso__spool_room = 300000;
    assert_int_equal(put_pattern("/files/1/data", 62, MiB, false, &s, NULL), 507);
    assert_contains(s.keep, "insufficient_storage");
    assert_int_equal(put_pattern("/files/1/data", 62, MiB, true, &s, NULL), 507);
    verso__spool_room = -1;
    assert_no_spool_file();
    deadline = now_ms() + 5000;
    while (atomic_load(&E.disk_full) != 1 && now_ms() < deadline)
        sleep_ms(5);
    assert_int_equal(atomic_load(&E.disk_full), 1);
    assert_value(1, 61, 5000, v);
    assert_int_equal(put_pattern("/files/1/data", 63, MiB, false, &s, NULL), 200);
    assert_int_equal(atomic_load(&E.disk_full), 2);
    assert_value(1, 63, MiB, row_version(1));
}

/* Bodies the route refuses, with nothing left behind. */
static void test_put_errors(void **state)
{
    const char *json[] = {"Content-Type: application/json", NULL};
    sink s;

    (void)state;
    server_default();
    assert_int_equal(request("PUT", "/files/1/data", NULL, "{\"a\":1}", json, &s), 415);
    assert_contains(s.keep, "PUT /files/1");
    assert_int_equal(put_pattern("/files/1/name", 71, 1000, false, &s, NULL), 400);
    assert_contains(s.keep, "BLOB or untyped");
    assert_int_equal(put_pattern("/files/1/qty", 71, 1000, false, &s, NULL), 400);
    assert_int_equal(put_pattern("/files/1/version", 71, 10, false, &s, NULL), 400);
    assert_int_equal(put_pattern("/files/99/data", 71, 1000, false, &s, NULL), 404);
    assert_contains(s.keep, "no row with id 99");
    assert_int_equal(put_pattern("/files/1/nope", 71, 1000, false, &s, NULL), 404);
    assert_int_equal(put_pattern("/nosuch/1/data", 71, 1000, false, &s, NULL), 404);
    assert_no_spool_file();
    assert_int_equal(request("GET", "/files/1/data", NULL, NULL, NULL, &s), 404);
}

/* Which bodies go to a spool file, decided on the path as sent (a dir
 * server's /db/<name> prefix included). */
static void test_spool_wanted(void **state)
{
    static const struct {
        unsigned method;
        const char *path, *ct;
        bool want;
    } cases[] = {
        {VERSO__PUT, "/files/1/data", "application/octet-stream", true},
        {VERSO__PUT, "/files/1/data", NULL, true},
        {VERSO__PUT, "/files/1/data", "image/png", true},
        {VERSO__PUT, "/files/1/data", "application/json", false},
        {VERSO__PUT, "/files/1/data", "application/json; charset=utf-8", false},
        {VERSO__GET, "/files/1/data", NULL, false},
        {VERSO__POST, "/files/1/data", NULL, false},
        {VERSO__PUT, "/files/1", NULL, false},
        {VERSO__PUT, "/files", NULL, false},
        {VERSO__PUT, "/files/x/data", NULL, false},
        {VERSO__PUT, "/files/1/", NULL, false},
        {VERSO__PUT, "/files/1/data/more", NULL, false},
        {VERSO__PUT, "/_info/1/data", NULL, false},
        {VERSO__PUT, "/db/shop/files/1/data", NULL, true},
        {VERSO__PUT, "/db/shop/files/1/data", "application/json", false},
        {VERSO__PUT, "/db/shop/files/1", NULL, false},
        {VERSO__PUT, "/_databases/shop", "application/vnd.sqlite3", true},
        {VERSO__PUT, "/_databases/shop", "APPLICATION/VND.SQLITE3", true},
        {VERSO__PUT, "/_databases/shop", "application/octet-stream", false},
        {VERSO__PUT, "/_databases/shop", NULL, false},
        {VERSO__PUT, "/_databases", "application/vnd.sqlite3", false},
        {VERSO__PUT, "", NULL, false},
        {VERSO__PUT, "files/1/data", NULL, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (verso__spool_wanted(cases[i].method, cases[i].path, cases[i].ct) != cases[i].want)
            fail_msg("%s %s: want %d", cases[i].path, cases[i].ct ? cases[i].ct : "-",
                     cases[i].want);
}

/* A blob value with no bytes but a length is that many zeros (the ORM used
 * to read them past the end of an empty string). */
static void test_orm_zero_blob(void **state)
{
    static const unsigned char zeros[4096];
    const char *cols[] = {"data"};
    verso_value v = {.type = VERSO_BLOB, .u.b = {NULL, sizeof(zeros)}};
    int64_t id = 0;
    sink s;

    (void)state;
    assert_int_equal(verso_row_update(NULL, E.db, "files", 1, cols, &v, 1, 0), 0);
    assert_int_equal(verso_row_insert(&id, NULL, E.db, "files", cols, &v, 1), 0);
    server_default();
    assert_int_equal(request("GET", "/files/1/data", NULL, NULL, NULL, &s), 200);
    assert_int_equal(s.got, sizeof(zeros));
    assert_memory_equal(s.keep, zeros, sizeof(zeros) - 1);
}

/* Spool files of a process that died are removed at start; those of a
 * live one (another server on the same directory) are not. */
static void test_spool_swept(void **state)
{
    char dead[700], live[700], other[700];
    pid_t pid = fork();
    FILE *f;

    (void)state;
    if (pid == 0)
        _exit(0);
    assert_true(pid > 0);
    waitpid(pid, NULL, 0);
    snprintf(dead, sizeof(dead), "%s/.verso-spool-%ld-abcdef", E.dir, (long)pid);
    snprintf(live, sizeof(live), "%s/.verso-spool-%ld-abcdef", E.dir, (long)getppid());
    snprintf(other, sizeof(other), "%s/.verso-spool-notes", E.dir);
    assert_non_null(f = fopen(dead, "w"));
    fclose(f);
    assert_non_null(f = fopen(live, "w"));
    fclose(f);
    assert_non_null(f = fopen(other, "w"));
    fclose(f);
    server_default();
    assert_int_equal(access(dead, F_OK), -1);
    assert_int_equal(access(live, F_OK), 0);
    assert_int_equal(access(other, F_OK), 0);
}

/* ---- the memory of a `verso serve` process ---- */

/* kB of a /proc/PID/status line ("VmHWM", "VmRSS"). */
static long proc_kb(pid_t pid, const char *key)
{
    char path[64], line[256];
    long kb = -1;
    size_t n = strlen(key);
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    if (!(f = fopen(path, "r")))
        return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, n) && line[n] == ':')
            kb = atol(line + n + 1);
    fclose(f);
    return kb;
}

/* ASan keeps freed memory in quarantine (256 MiB by default), which would
 * show as RSS: the child runs with a small one. */
static void small_quarantine(void)
{
    const char *had = getenv("ASAN_OPTIONS");
    char opts[1024];

    snprintf(opts, sizeof(opts), "%s%squarantine_size_mb=1:thread_local_quarantine_size_kb=64",
             had ? had : "", had && *had ? ":" : "");
    setenv("ASAN_OPTIONS", opts, 1);
}

/* `verso serve E.path --port 0`; its base URL in E.base. */
static void serve_child(void)
{
    char *argv[] = {getenv("VERSO_BIN"), "serve", E.path, "--port", "0", "--quiet", NULL};
    pid_t parent = getpid();
    char line[256] = "";
    int fds[2];
    FILE *out;

    assert_non_null(argv[0]);
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    E.child = fork();
    assert_true(E.child >= 0);
    if (E.child == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        dup2(fds[1], STDOUT_FILENO);
        close(fds[0]);
        close(fds[1]);
        small_quarantine();
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    assert_non_null(out = fdopen(fds[0], "r"));
    if (!fgets(line, sizeof(line), out))
        fail_msg("verso serve did not start");
    fclose(out);
    line[strcspn(line, "\n")] = 0;
    if (line[0] && line[strlen(line) - 1] == '/')
        line[strlen(line) - 1] = 0;
    assert_non_null(strrchr(line, ':'));
    E.port = atoi(strrchr(line, ':') + 1);
    snprintf(E.base, sizeof(E.base), "http://127.0.0.1:%d", E.port);
}

/* A 64 MiB PUT, a 64 MiB GET and a client that stalls on a 64 MiB download
 * grow the server's peak RSS by less than 32 MiB (the value passes through
 * 64 KiB pieces; SQLite's page cache is 2 MiB). Measured: about 3 MiB, 6
 * MiB under ASan with a small quarantine. */
static void test_serve_memory(void **state)
{
    char head[4096];
    int64_t t0, got;
    long before, after_put, after_get, after;
    sink s;
    hdrs h;
    int fd;

    (void)state;
    serve_child();
    assert_int_equal(request("GET", "/_health", NULL, NULL, NULL, &s), 200);
    before = proc_kb(E.child, "VmHWM");
    t0 = now_ms();
    assert_int_equal(put_pattern("/files/1/data", 81, 64 * MiB, false, &s, NULL), 200);
    print_message("PUT 64 MiB: %lld ms\n", (long long)(now_ms() - t0));
    after_put = proc_kb(E.child, "VmHWM");
    t0 = now_ms();
    assert_int_equal(get_check("/files/1/data", 81, 0, NULL, &s, &h), 200);
    print_message("GET 64 MiB: %lld ms\n", (long long)(now_ms() - t0));
    assert_int_equal(s.got, 64 * MiB);
    assert_int_equal(s.bad, 0);
    after_get = proc_kb(E.child, "VmHWM");
    fd = raw_connect(E.port, 4096);
    raw_get(fd, "/files/1/data");
    assert_int_equal(raw_headers(fd, head, sizeof(head), &got), 200);
    for (int i = 0; i < 20; i++)
        assert_int_equal(request("GET", "/_health", NULL, NULL, NULL, &s), 200);
    after = proc_kb(E.child, "VmHWM");
    close(fd);
    print_message("verso serve VmHWM: %ld kB at start, %ld after PUT, %ld after GET, %ld with a "
                  "stalled download (growth %ld kB)\n",
                  before, after_put, after_get, after, after - before);
    assert_true(before > 0);
    assert_true(after - before < 32 * 1024);
}

/* ---- docs/databases-blobs.md ---- */

static char *read_doc(void)
{
    const char *src = getenv("VERSO_SOURCE_DIR");
    char path[1024];
    char *text;
    long n;
    FILE *f;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/docs/databases-blobs.md", src);
    assert_non_null(f = fopen(path, "r"));
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    assert_non_null(text = calloc(1, (size_t)n + 1));
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return text;
}

/* Runs one block with sh -e in the test's directory; appends its output. */
static void run_block(const char *block, size_t n, char *all, size_t cap)
{
    char script[700], cmd[1600], line[4096];
    FILE *f, *p;
    int status;

    snprintf(script, sizeof(script), "%s/example.sh", E.dir);
    assert_non_null(f = fopen(script, "w"));
    fwrite(block, 1, n, f);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "cd '%s' && sh -e '%s' 2>&1", E.dir, script);
    assert_non_null(p = popen(cmd, "r"));
    while (fgets(line, sizeof(line), p))
        strncat(all, line, cap - strlen(all) - 1);
    status = pclose(p);
    if (status != 0)
        fail_msg("example failed (%d):\n%.*s", status, (int)n, block);
}

/* Every ```sh example of the page runs, in order, and answers what the
 * page says it answers. */
static void test_docs_examples(void **state)
{
    static const char *const answers[] = {
        "{\"id\":1,\"version\":5,\"size\":3000000}",
        "same bytes",
        "content-type: application/octet-stream",
        "content-length: 3000000",
        "etag: \"5\"",
        "HTTP/1.1 206",
        "content-range: bytes 0-9/3000000",
        "content-range: bytes 2999900-2999999/3000000",
        "416",
        "files: row 1 has version 5, not 4",
        "column data of row 3 is NULL",
        "\none\n",
    };
    static char all[16384];
    char *doc = read_doc();
    int blocks = 0;

    (void)state;
    server_default();
    setenv("VERSO_URL", E.base, 1);
    all[0] = 0;
    for (char *p = strstr(doc, "\n```sh\n"); p; p = strstr(p, "\n```sh\n")) {
        char *start = p + 7, *end = strstr(start, "\n```");
        assert_non_null(end);
        run_block(start, (size_t)(end - start + 1), all, sizeof(all));
        blocks++;
        p = end + 4;
    }
    free(doc);
    assert_int_equal(blocks, 5);
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
        if (!strstr(all, answers[i]))
            fail_msg("the examples did not answer \"%s\":\n%s", answers[i], all);
    /* and the page shows these answers */
    doc = read_doc();
    for (size_t i = 0; i < sizeof(answers) / sizeof(answers[0]); i++)
        if (!strstr(doc, answers[i]) && i != 11)
            fail_msg("the page does not show \"%s\"", answers[i]);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_get_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_changed_midway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_stalled_client, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_drained_at_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_client_leaves, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_auth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_bodies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_if_match, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_aborted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_disk_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_wanted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_orm_zero_blob, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spool_swept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serve_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_docs_examples, setup_doc, teardown),
    };

    curl_global_init(CURL_GLOBAL_ALL);
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
