/* End-to-end: malformed and hostile requests. Each gets a 4xx answer and
 * leaves the database exactly as it was (rows, head, change feed). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "rest_common.h"

static rc_env g_env;

static int setup(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    o.limits.header_timeout_ms = 1000;
    rc_start_with(&g_env, "rest_hostile", &o);
    rc_seed(g_env.db, 20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

typedef struct bad_req {
    const char *method;
    const char *path;
    const char *body;
    long want;     /* exact status; 0 = any 4xx, -1 = 4xx or dropped (libwebsockets' parser) */
    size_t len;    /* body length; 0 = strlen */
    bool bad_etag; /* send a garbage If-Match header */
} bad_req;

static const bad_req k_corpus[] = {
    /* broken JSON */
    {"POST", "/items", "{\"name\":", 400, 0, false},
    {"POST", "/items", "{name:\"x\"}", 400, 0, false},
    {"POST", "/items", "[", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\"}}", 400, 0, false},
    {"POST", "/items", "", 400, 0, false},
    {"POST", "/items", "null", 400, 0, false},
    {"POST", "/items", "42", 400, 0, false},
    {"POST", "/items", "\"str\"", 400, 0, false},
    {"POST", "/items", "[1,2]", 400, 0, false},
    {"POST", "/items", "{\"name\":\"a\",}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"a\" \"qty\":1}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"\\x41\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"a\"}\0{\"name\":\"b\"}", 400, 25, false},
    /* wrong types and values */
    {"POST", "/items", "{\"name\":123}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"qty\":\"abc\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"qty\":1.5}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"qty\":99999999999999999999}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"price\":\"cheap\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"active\":\"yes\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"qty\":[1]}", 400, 0, false},
    {"POST", "/items", "{\"name\":{\"a\":1}}", 400, 0, false},
    {"POST", "/items", "{\"name\":null}", 409, 0, false},
    {"POST", "/items", "{\"qty\":1}", 409, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"id\":1}", 409, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"id\":\"1\"}", 400, 0, false},
    /* unknown columns, versions, duplicates */
    {"POST", "/items", "{\"name\":\"x\",\"nosuch\":1}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"__proto__\":{}}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"x\",\"version\":5}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"a\",\"name\":\"b\"}", 400, 0, false},
    {"POST", "/items", "[{\"name\":\"ok\"},{\"name\":\"x\",\"nosuch\":1}]", 400, 0, false},
    {"POST", "/items", "[{\"name\":\"ok\"},{\"name\":\"x\",\"version\":1}]", 400, 0, false},
    /* invalid UTF-8 and bad escapes */
    {"POST", "/items", "{\"name\":\"\xff\xfe\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"\xc0\xaf\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"\xed\xa0\x80\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"ab\xe2\x82\"}", 400, 0, false},
    {"POST", "/items", "{\"na\xffme\":\"x\"}", 400, 0, false},
    {"POST", "/items", "{\"name\":\"\\ud800\"}", 400, 0, false},
    {"GET", "/items?name=eq.%FF%FE", NULL, 400, 0, false},
    {"GET", "/items?na%C0%AFme=eq.x", NULL, 400, 0, false},
    /* a NUL byte: libwebsockets' parser drops the connection */
    {"GET", "/items?name=eq.a%00b", NULL, -1, 0, false},
    {"GET", "/items?name%00=eq.a", NULL, -1, 0, false},
    /* updates */
    {"PUT", "/items/1", "{\"qty\":\"many\"}", 400, 0, false},
    {"PUT", "/items/1", "{\"nosuch\":1}", 400, 0, false},
    {"PUT", "/items/1", "{\"id\":2,\"qty\":1}", 400, 0, false},
    {"PUT", "/items/1", "{\"version\":\"x\",\"qty\":1}", 400, 0, false},
    {"PUT", "/items/1", "{\"version\":999999,\"qty\":1}", 412, 0, false},
    {"PUT", "/items/1", "{}", 400, 0, false},
    {"PUT", "/items/1", "[]", 400, 0, false},
    {"PUT", "/items/1", "{\"name\":null}", 409, 0, false},
    {"PATCH", "/items/1", "{\"qty\":", 400, 0, false},
    {"PATCH", "/items/99999", "{\"qty\":1}", 404, 0, false},
    {"DELETE", "/items/99999", NULL, 404, 0, false},
    /* SQL where names, numbers and ids belong */
    {"GET", "/items?name%3BDROP%20TABLE%20items=eq.1", NULL, 400, 0, false},
    {"GET", "/items?order=id%3BDROP%20TABLE%20items", NULL, 400, 0, false},
    {"GET", "/items?select=*", NULL, 400, 0, false},
    {"GET", "/items?select=name,(SELECT%201)", NULL, 400, 0, false},
    {"GET", "/items?qty=eq.1%20OR%201%3D1", NULL, 400, 0, false},
    {"GET", "/items?id=in.(1,2)%20OR%201%3D1", NULL, 400, 0, false},
    {"GET", "/items/1%3BDROP%20TABLE%20items", NULL, 404, 0, false},
    {"GET", "/items/1%20OR%201%3D1", NULL, 404, 0, false},
    {"DELETE", "/items/1%20OR%201%3D1", NULL, 404, 0, false},
    {"PUT", "/items/0x1", "{\"qty\":1}", 404, 0, false},
    {"GET", "/items%22%3B--", NULL, 404, 0, false},
    {"GET", "/sqlite_master", NULL, 404, 0, false},
    {"GET", "/_verso_tombstones", NULL, 404, 0, false},
    {"GET", "/_verso_meta/1", NULL, 404, 0, false},
    {"DELETE", "/_verso_head", NULL, 404, 0, false},
    {"GET", "/_changes?since=1%3BDROP", NULL, 400, 0, false},
    {"GET", "/_changes?tables=items%22%3B--", NULL, 404, 0, false},
    {"GET", "/_changes?tables=,,", NULL, 400, 0, false},
    {"GET", "/_changes?limit=0", NULL, 400, 0, false},
    /* batch */
    {"POST", "/_batch", "{}", 400, 0, false},
    {"POST", "/_batch", "[{\"op\":\"insert\",\"table\":\"_verso_meta\",\"row\":{}}]", 404, 0,
     false},
    {"POST", "/_batch", "[{\"op\":\"insert\",\"table\":\"items\"}]", 400, 0, false},
    {"POST", "/_batch", "[{\"op\":\"delete\",\"table\":\"items\",\"id\":\"1\"}]", 400, 0, false},
    {"POST", "/_batch",
     "[{\"op\":\"insert\",\"table\":\"items\",\"row\":{\"name\":\"a\"},\"version\":3}]", 400, 0,
     false},
    {"POST", "/_batch",
     "[{\"op\":\"delete\",\"table\":\"items\",\"id\":2},{\"op\":\"delete\",\"table\":\"items\","
     "\"id\":2}]",
     404, 0, false},
    /* headers */
    {"PUT", "/items/1", "{\"qty\":1}", 400, 0, true},
    {"DELETE", "/items/1", NULL, 400, 0, true},
    /* percent-encoding libwebsockets itself refuses */
    {"GET", "/items?x=%%%", NULL, 0, 0, false},
};

static char *deep(const char *open, const char *inner, const char *close, int depth)
{
    size_t n = strlen(open) * (size_t)depth + strlen(inner) + strlen(close) * (size_t)depth + 1;
    char *s = malloc(n), *p = s;

    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", open);
    p += sprintf(p, "%s", inner);
    for (int i = 0; i < depth; i++)
        p += sprintf(p, "%s", close);
    return s;
}

static void expect_rejected(const char *method, const char *path, const char *body, size_t nbody,
                            const char *const *headers, long want)
{
    char *url = malloc(strlen(g_env.base) + strlen(path) + 1);
    char *before = rc_fingerprint(g_env.db), *after;
    rt_resp r;
    bool answered;

    sprintf(url, "%s%s", g_env.base, path);
    rt_request(&r, method, url, body, nbody, headers);
    answered = r.status >= 400 && r.status <= 499;

    if ((want > 0 && r.status != want) || (!answered && !(want < 0 && r.status == 0)))
        fprintf(stderr, "%s %s %.60s -> %ld %.200s\n", method, path, body ? body : "", r.status,
                r.body);
    if (want > 0)
        assert_int_equal(r.status, want);
    assert_true(answered || (want < 0 && r.status == 0));
    if (want > 0) {
        cJSON *j = rc_json(&r);
        assert_non_null(cJSON_GetObjectItem(j, "error"));
        /* SQL never leaks; a message may quote the request's own text */
        if (!strstr(path, "SELECT"))
            assert_null(strstr(r.body, "SELECT"));
        assert_null(strstr(r.body, g_env.path));
        cJSON_Delete(j);
    }
    rt_resp_free(&r);
    free(url);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
}

static void test_corpus(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_corpus) / sizeof(k_corpus[0]); i++) {
        const bad_req *b = &k_corpus[i];
        const char *const ifm[] = {"If-Match: garbage", NULL};
        size_t n = b->len ? b->len : b->body ? strlen(b->body) : 0;
        expect_rejected(b->method, b->path, b->body, n, b->bad_etag ? ifm : NULL, b->want);
    }
}

static void test_deep_nesting(void **state)
{
    char *arr = deep("[", "1", "]", 100), *obj = deep("{\"a\":", "1", "}", 100);
    char *row = deep("{\"name\":", "\"x\"", "}", 2);

    (void)state;
    expect_rejected("POST", "/items", arr, strlen(arr), NULL, 400);
    expect_rejected("POST", "/items", obj, strlen(obj), NULL, 400);
    expect_rejected("POST", "/items", row, strlen(row), NULL, 400);
    expect_rejected("POST", "/_batch", arr, strlen(arr), NULL, 400);
    free(arr);
    free(obj);
    free(row);
    arr = deep("[", "", "]", 100000);
    expect_rejected("POST", "/items", arr, strlen(arr), NULL, 400);
    free(arr);
}

static void test_oversized(void **state)
{
    size_t n = (2u << 20) + 10;
    char *big = malloc(n + 1), *path = malloc(6000);

    (void)state;
    memset(big, ' ', n);
    memcpy(big, "{\"name\":\"", 9);
    big[n - 2] = '"';
    big[n - 1] = '}';
    big[n] = 0;
    expect_rejected("POST", "/items", big, n, NULL, 413);
    expect_rejected("POST", "/items", big, n, (const char *[]){"Transfer-Encoding: chunked", NULL},
                    413);
    expect_rejected("PUT", "/items/1", big, n, NULL, 413);
    strcpy(path, "/items?name=eq.");
    memset(path + 15, 'a', 5000);
    path[5015] = 0;
    expect_rejected("GET", path, NULL, 0, NULL, 414);
    expect_rejected("POST", path, "{\"name\":\"x\"}", 12, NULL, 414);
    free(big);
    free(path);
    /* Beyond libwebsockets' header buffer (max_url + 8 KiB) the request is
     * dropped unanswered; the database and the server are unaffected. */
    path = malloc(70000);
    strcpy(path, "/items?name=eq.");
    memset(path + 15, 'a', 69000);
    path[69015] = 0;
    expect_rejected("GET", path, NULL, 0, NULL, -1);
    expect_rejected("DELETE", path, NULL, 0, NULL, -1);
    free(path);
    /* The server still answers normally afterwards. */
    assert_int_equal(rc_status(&g_env, "GET", "/items/1", NULL, NULL), 200);
}

static void test_sql_in_values_is_data(void **state)
{
    rt_resp r;
    char *before = rc_fingerprint(g_env.db), *after;

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET",
                             "/items?name=eq.x%27%3B%20DROP%20TABLE%20items%3B--", NULL, NULL),
                     200);
    assert_string_equal(r.body, "[]");
    rt_resp_free(&r);
    assert_int_equal(
        rc_call(&r, &g_env, "GET", "/items?name=like.%25%27%20OR%20%271%27%3D%271", NULL, NULL),
        200);
    assert_string_equal(r.body, "[]");
    rt_resp_free(&r);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
}

static int connect_raw(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)verso_rest_port(g_env.srv))};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

/* True if the server closed the connection (read returns 0 or an error). */
static bool closed_by_server(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[512];

    if (poll(&p, 1, wait_ms) <= 0)
        return false;
    return read(fd, buf, sizeof(buf)) <= 0;
}

/* A client that sends its headers one line every 200 ms is dropped after the
 * header time limit (1 s here), long before it finishes (8 s). */
static void test_trickled_headers_dropped(void **state)
{
    static const char first[] = "GET /_health HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = connect_raw(), lines = 0;
    bool dropped = false;
    struct timespec pause = {0, 200 * 1000 * 1000};

    (void)state;
    assert_true(write(fd, "GET /items HTTP/1.1\r\n", 21) == 21);
    while (!dropped && lines < 40) {
        nanosleep(&pause, NULL);
        if (write(fd, "X-Slow: 1\r\n", 11) != 11 || closed_by_server(fd, 0))
            dropped = true;
        lines++;
    }
    close(fd);
    assert_true(dropped);
    assert_true(lines < 40);
    /* The same for the second request of a keep-alive connection. */
    fd = connect_raw();
    assert_true(write(fd, first, strlen(first)) == (ssize_t)strlen(first));
    assert_false(closed_by_server(fd, 5000));
    assert_true(write(fd, "GET /items HTTP/1.1\r\n", 21) == 21);
    for (dropped = false, lines = 0; !dropped && lines < 40; lines++) {
        nanosleep(&pause, NULL);
        dropped = write(fd, "X-Slow: 1\r\n", 11) != 11 || closed_by_server(fd, 0);
    }
    close(fd);
    assert_true(dropped);
    assert_true(lines < 40);
    /* An idle connection that never sends anything is dropped too. */
    fd = connect_raw();
    assert_true(closed_by_server(fd, 10000));
    close(fd);
    assert_int_equal(rc_status(&g_env, "GET", "/_health", NULL, NULL), 200);
}

/* Sends pieces (NULL-terminated) on a new connection, one write each, and
 * reads the answer until the server closes; returns its status (0 if none). */
static int raw_exchange(const char *const *pieces, char *out, size_t n)
{
    int fd = connect_raw(), status = 0;
    size_t got = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t r = 1;

    for (size_t i = 0; pieces[i]; i++)
        assert_true(write(fd, pieces[i], strlen(pieces[i])) == (ssize_t)strlen(pieces[i]));
    while (got + 1 < n && r > 0 && poll(&p, 1, 5000) == 1)
        if ((r = read(fd, out + got, n - 1 - got)) > 0)
            got += (size_t)r;
    out[got] = 0;
    close(fd);
    sscanf(out, "HTTP/1.1 %d", &status);
    return status;
}

#define CHUNKED_HEAD "POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"

/* libwebsockets passes chunked bodies through undecoded: verso decodes them,
 * whatever the chunk boundaries, extensions and trailers, and refuses bad framing. */
static void test_chunked_bodies(void **state)
{
    static const char *const good[] = {CHUNKED_HEAD,
                                       "5;ext=1\r\n{\"nam\r\n",
                                       "a\r\ne\":\"raw-ch\r",
                                       "\n4\r\nunk\"",
                                       "\r\n1\r\n}",
                                       "\r\n0\r\nX-Trailer: 1\r\n\r\n",
                                       NULL};
    static const char *const bad[][3] = {
        {CHUNKED_HEAD, "zz\r\n{}\r\n0\r\n\r\n", NULL},
        {CHUNKED_HEAD, "2\r\n{}XX0\r\n\r\n", NULL},
        {CHUNKED_HEAD, "\r\n", NULL},
        {CHUNKED_HEAD, "12345678901234567\r\n", NULL},
        {CHUNKED_HEAD, "2\n{}\r\n0\r\n\r\n", NULL},
        {CHUNKED_HEAD, "2;a\nb\r\n{}\r\n0\r\n\r\n", NULL},      /* bare LF in an extension */
        {CHUNKED_HEAD, "2\r\n{}\r\n0\r\n\nX: 1\r\n\r\n", NULL}, /* bare LF as a trailer */
        {"POST /items HTTP/1.1\r\nHost: x\r\nContent-Length: 14\r\n"
         "Transfer-Encoding: chunked\r\n\r\n",
         "e\r\n{\"name\":\"cl\"}\r\n0\r\n\r\n", NULL},
        {"POST /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "0\r\n\r\n",
         NULL},
    };
    char out[4096], *before, *after;
    rc_item it = {0};
    int64_t id = 0;

    (void)state;
    assert_int_equal(raw_exchange(good, out, sizeof(out)), 201);
    assert_non_null(strstr(out, "connection: close"));
    assert_int_equal(sscanf(strstr(out, "\"id\":"), "\"id\":%" SCNd64, &id), 1);
    assert_int_equal(verso_record_get(&it, g_env.db, &rc_item_def, id), 0);
    assert_string_equal(it.name, "raw-chunk");
    verso_record_clear(&rc_item_def, &it);

    before = rc_fingerprint(g_env.db);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int st = raw_exchange(bad[i], out, sizeof(out));
        if (st != 400)
            fprintf(stderr, "chunked case %zu: %s\n", i, out);
        assert_int_equal(st, 400);
    }
    /* A chunk bigger than max_body: 413 before any of it is read. */
    assert_int_equal(
        raw_exchange((const char *const[]){CHUNKED_HEAD, "ffffffff\r\n{", NULL}, out, sizeof(out)),
        413);
    after = rc_fingerprint(g_env.db);
    assert_string_equal(before, after);
    verso_free(before);
    verso_free(after);
    /* And through libcurl, which sends chunks when asked to. */
    assert_int_equal(rc_status(&g_env, "PATCH", "/items/2", "{\"qty\":321}",
                               (const char *[]){"Transfer-Encoding: chunked", NULL}),
                     200);
    assert_int_equal(verso_record_get(&it, g_env.db, &rc_item_def, 2), 0);
    assert_int_equal(it.qty, 321);
    verso_record_clear(&rc_item_def, &it);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_sql_in_values_is_data),
        cmocka_unit_test(test_trickled_headers_dropped),
        cmocka_unit_test(test_chunked_bodies),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
