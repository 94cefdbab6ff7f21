/*
 * libFuzzer harness: GET /files/ID/data with a fuzzed Range header and
 * ?version= through the REST dispatcher (verso__dispatch) of a server that
 * does not listen (verso__rest_open_offline). Rows: 1 holds 1000 known
 * bytes, 2 an empty blob, 3 text, 4 NULL, 5 an integer.
 *
 * Input: its first byte picks the row (and whether ?version= names the
 * row's version, another one or garbage); the rest is the Range value.
 *
 * Properties beyond "no crash":
 *   - 200: the whole value, no Content-Range; 206: Content-Range
 *     "bytes A-B/LEN" with 0 <= A <= B < LEN and a body of B - A + 1 bytes,
 *     those of the value at A; 416: "bytes *" "/LEN" (the length after a
 *     star) and a JSON error;
 *   - a header that does not start with "bytes=" (any case) or that holds
 *     a comma is never 206 or 416;
 *   - 404 (NULL), 400 (integer, bad ?version=) and 412 (another version)
 *     come whatever the Range says; nothing else (never 5xx).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rest/internal.h"

static verso_rest *g_srv;
static int64_t g_version[6];

static unsigned char byte_at(int64_t off)
{
    return (unsigned char)(off * 7 + 3);
}

static void make_db(const char *path)
{
    char why[256], sql[8192];
    verso_db *db = NULL;
    int n = 0;

    n += snprintf(sql + n, sizeof(sql) - (size_t)n, "INSERT INTO files(id, data) VALUES (1, x'");
    for (int i = 0; i < 1000; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%02x", byte_at(i));
    snprintf(sql + n, sizeof(sql) - (size_t)n,
             "'), (2, x''), (3, 'some text'), (4, NULL), (5, 42)");
    if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_exec(db, "CREATE TABLE files(id INTEGER PRIMARY KEY, version INTEGER, data)") <
            0 ||
        verso_db_track(db, "files", "version") < 0 || verso_db_exec(db, sql) < 0)
        abort();
    for (int id = 1; id <= 5; id++) /* versions 1..5 in insertion order */
        g_version[id] = id;
    verso_db_close(db);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/verso_fuzz_XXXXXX", path[64], why[256];
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/b.db", dir);
    make_db(path);
    o.db_path = path;
    if (verso__rest_open_offline(&g_srv, NULL, &o, why, sizeof(why)) < 0)
        abort();
    return 0;
}

static int64_t value_len(int id)
{
    return id == 1 ? 1000 : id == 2 ? 0 : id == 3 ? 9 : -1;
}

/* The body of a 200/206: len bytes of the value at off. */
static void check_body(verso__resp *rs, int id, int64_t off, int64_t len)
{
    unsigned char buf[1000];

    if (!len) {
        if (rs->stream || rs->body->len)
            abort();
        return;
    }
    if (!rs->stream || rs->stream->len != len || len > (int64_t)sizeof(buf))
        abort();
    if (rs->stream->read(rs->stream, buf, (size_t)len) < 0)
        abort();
    for (int64_t i = 0; i < len; i++)
        if (id == 1 ? buf[i] != byte_at(off + i) : buf[i] != (unsigned char)"some text"[off + i])
            abort();
}

static bool ranged(const char *h)
{
    return h && !strncasecmp(h, "bytes=", 6) && !strchr(h, ',');
}

static void check(verso__resp *rs, int id, const char *range, int vmode)
{
    int64_t len = value_len(id);
    long long a = -1, b = -1, total = -1;
    char tail;

    if (id == 4 || id == 5 || vmode != 0) {
        int want = vmode == 2 ? 400 : vmode == 1 ? 412 : id == 4 ? 404 : 400;
        if (rs->status != want)
            abort();
        return;
    }
    if (rs->status == 200) {
        if (rs->content_range[0])
            abort();
        check_body(rs, id, 0, len);
    } else if (rs->status == 206) {
        if (!ranged(range) ||
            sscanf(rs->content_range, "bytes %lld-%lld/%lld%c", &a, &b, &total, &tail) != 3 ||
            total != len || a < 0 || b < a || b >= len)
            abort();
        check_body(rs, id, a, b - a + 1);
    } else if (rs->status == 416) {
        char want[64];
        snprintf(want, sizeof(want), "bytes */%lld", (long long)len);
        if (!ranged(range) || strcmp(rs->content_range, want) || rs->stream ||
            !strstr(rs->body->data, "range_not_satisfiable"))
            abort();
    } else {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static verso_buf body, location, link;
    char range[512], path[32], version[32];
    verso__param param = {"version", version};
    int id, vmode;
    verso__req rq = {.srv = g_srv, .method = VERSO__GET, .path = path, .body = (char *)""};
    verso__resp rs = {
        .status = 200, .etag = -1, .body = &body, .location = &location, .link = &link};

    if (size < 1 || size - 1 >= sizeof(range) || memchr(data + 1, 0, size - 1))
        return 0;
    id = 1 + data[0] % 5;
    vmode = data[0] / 5 % 4; /* 0, 3: none or the right one; 1: another; 2: garbage */
    memcpy(range, data + 1, size - 1);
    range[size - 1] = 0;
    snprintf(path, sizeof(path), "/files/%d/data", id);
    if (vmode) {
        snprintf(version, sizeof(version),
                 vmode == 1   ? "%lld"
                 : vmode == 2 ? "x%lld"
                              : "%lld",
                 (long long)(vmode == 1 ? g_version[id] + 100 : g_version[id]));
        rq.params = &param;
        rq.nparams = 1;
    }
    rq.range = range;
    verso_buf_clear(&body);
    verso_buf_clear(&location);
    verso_buf_clear(&link);
    verso__dispatch(&rq, &rs);
    check(&rs, id, range, vmode == 3 ? 0 : vmode);
    if (rs.stream)
        rs.stream->free(rs.stream);
    return 0;
}
