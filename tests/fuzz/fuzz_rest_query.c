/*
 * libFuzzer harness: the query string of GET /items (filters, select=,
 * order=, limit=, after=, offset=) through the REST dispatcher
 * (verso__dispatch) of a server that does not listen
 * (verso__rest_open_offline), over a fixed tracked table whose rows hold
 * duplicate sort keys, NULLs, every storage class in every column and values
 * that travel tagged (-0.0, infinities, invalid UTF-8, U+0000, blobs).
 *
 * The input is the query string as a client sends it: split at '&' and the
 * first '=', percent-decoded ('+' is a blank), as libwebsockets hands it over.
 *
 * Properties beyond "no crash":
 *   - every answer is 2xx with a JSON array of objects, or 4xx with
 *     {"error":{"code":"..","message":".."}}: never 5xx, never malformed;
 *   - a page with `limit` rows carries a Link rel="next", a shorter one none;
 *   - when the unpaged query (limit= and after= removed) answers 200, the
 *     paged query (a small limit) followed through the server's own Link
 *     headers gives exactly its rows, in its order, without a duplicate or a
 *     miss, in at most rows/limit + 2 requests.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rest/internal.h"

#define MAXP 64

static verso_rest *g_srv;

static const char k_rows[] =
    "INSERT INTO items(name, price, qty, sku, b, u, bl, a) VALUES"
    "('teapot', 24.5, 10, 'T-1', 1, '6f1c1a9e-8d1c-4f0e-9a41-1e4f3b2c7d10', x'00ff', 1),"
    "('cup', 6, 120, NULL, 0, NULL, NULL, 1.0),"
    "('cup', 6, 120, 'C-2', NULL, NULL, x'', 'one'),"
    "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    "(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),"
    "('item-1', -0.0, 0, 'S', 2, 'not-a-uuid', 'text in blob', x'01'),"
    "('item-2', 0.0, -1, 7, 'yes', 42, 3.5, -0.0),"
    "('item-3', 9e999, 9223372036854775807, x'41', 1, x'00', 12, 9e999),"
    "('item-4', -9e999, -9223372036854775808, 1.5, 0, 1.5, NULL, -9e999),"
    "(CAST(x'61ff62' AS TEXT), 1e-300, 'qty text', CAST(x'610062' AS TEXT), 0, 'u', x'7f', "
    " CAST(x'c0af' AS TEXT)),"
    "(CAST(x'610062' AS TEXT), 'price text', 2.5, '', 1, '', x'00', ''),"
    "('item-*', 6, 2, 'x%y', 1, 'U', x'ff', 2),"
    "('Item-5', 6.0, 2, 'sku', 0, 'u', x'ff', 2.0),"
    "('item_6', 1e15, 3, 'sku', 1, 'u', NULL, 9007199254740993),"
    "('cup', 6, 120, NULL, 0, NULL, NULL, x'0102'),"
    "('', 24.5, 10, 'T-1', 1, 'u', x'00ff', 'teapot'),"
    "('zz', 0.1, 5, 'zz', 1, 'zz', x'', 0.1),"
    "('zz', 0.1, 5, 'zz', 1, 'zz', x'', 0.1);";

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/verso_fuzz_XXXXXX", path[64], why[256];
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_db *db = NULL;

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/q.db", dir);
    if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_exec(db, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, price REAL, "
                          "qty INTEGER, sku TEXT, b BOOLEAN, u UUID TEXT, bl BLOB, a)") < 0 ||
        verso_db_track(db, "items", NULL) < 0 || verso_db_exec(db, k_rows) < 0 ||
        verso_db_exec(db, "DELETE FROM items WHERE id = 5") < 0)
        abort();
    verso_db_close(db);
    o.db_path = path;
    o.limits.max_offset = 50;
    if (verso__rest_open_offline(&g_srv, NULL, &o, why, sizeof(why)) < 0)
        abort();
    return 0;
}

/* ---- requests ---- */

typedef struct req {
    char *text; /* "key\0value\0" pairs */
    verso__param params[MAXP];
    size_t nparams;
    verso__resp rs;
    verso_buf body, location, link;
} req;

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9'   ? ch - '0'
           : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
           : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                    : -1;
}

/* Decodes s[0..n) into out; false if it holds a NUL (the server answers 400
 * before the dispatcher sees such a request). */
static bool decode(char *out, const char *s, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            out[k++] = (char)(hexval(s[i + 1]) << 4 | hexval(s[i + 2]));
            i += 2;
        } else {
            out[k++] = s[i] == '+' ? ' ' : s[i];
        }
        if (!out[k - 1])
            return false;
    }
    out[k] = 0;
    return true;
}

/* Splits a query string into r's parameters; false when the server would
 * refuse it before dispatch (NUL, invalid UTF-8) or it has too many. */
static bool req_parse(req *r, const char *qs, size_t n)
{
    char *w;

    memset(r, 0, sizeof(*r));
    if (!(w = r->text = malloc(2 * n + 2)))
        return false;
    for (size_t at = 0; at < n;) {
        const char *amp = memchr(qs + at, '&', n - at), *eq;
        size_t len = amp ? (size_t)(amp - (qs + at)) : n - at;
        if (r->nparams == MAXP)
            return false;
        eq = memchr(qs + at, '=', len);
        r->params[r->nparams].key = w;
        if (!decode(w, qs + at, eq ? (size_t)(eq - (qs + at)) : len))
            return false;
        w += strlen(w) + 1;
        r->params[r->nparams].value = w;
        if (!decode(w, eq ? eq + 1 : "", eq ? len - (size_t)(eq - (qs + at)) - 1 : 0))
            return false;
        w += strlen(w) + 1;
        if (!verso__utf8_valid(r->params[r->nparams].key, strlen(r->params[r->nparams].key)) ||
            !verso__utf8_valid(r->params[r->nparams].value, strlen(r->params[r->nparams].value)))
            return false;
        r->nparams++;
        at += len + 1;
    }
    return true;
}

static void req_free(req *r)
{
    free(r->text);
    verso_buf_free(&r->body);
    verso_buf_free(&r->location);
    verso_buf_free(&r->link);
}

static bool is_object_with_strings(const cJSON *o, const char *a, const char *b)
{
    return cJSON_IsObject(o) && cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, a)) &&
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(o, b));
}

/* The answer is well formed; returns its status. */
static int check_answer(const req *r)
{
    verso_json *doc = NULL;
    const cJSON *root, *j;
    int st = r->rs.status;

    if (verso_json_parse(&doc, r->body.data ? r->body.data : "", r->body.len, 64, NULL, 0) < 0)
        abort(); /* malformed body */
    root = verso_json_root(doc);
    if (st >= 200 && st < 300) {
        if (!cJSON_IsArray(root))
            abort();
        cJSON_ArrayForEach(j, root) if (!cJSON_IsObject(j)) abort();
    } else if (st < 400 || st >= 500 || r->link.len ||
               !is_object_with_strings(cJSON_GetObjectItemCaseSensitive(root, "error"), "code",
                                       "message")) {
        abort(); /* 5xx, or an error without its object */
    }
    if (st >= 400 &&
        (strlen(r->rs.errmsg) >= 400 || !verso__utf8_valid(r->rs.errmsg, strlen(r->rs.errmsg))))
        abort(); /* a message quotes the client's text bounded, as valid UTF-8 */
    verso_json_free(doc);
    return st;
}

static int run(req *r)
{
    verso__req rq = {.srv = g_srv,
                     .method = VERSO__GET,
                     .path = "/items",
                     .params = r->params,
                     .nparams = r->nparams,
                     .body = (char *)""};

    r->rs = (verso__resp){.status = 200, .etag = -1};
    r->rs.body = &r->body;
    r->rs.location = &r->location;
    r->rs.link = &r->link;
    verso__dispatch(&rq, &r->rs);
    return check_answer(r);
}

/* ---- paging ---- */

/* A copy of src's parameters without limit= and after=, and limit=lim if not NULL. */
static void req_derive(req *dst, const req *src, const char *lim)
{
    memset(dst, 0, sizeof(*dst));
    for (size_t i = 0; i < src->nparams; i++)
        if (strcmp(src->params[i].key, "limit") && strcmp(src->params[i].key, "after"))
            dst->params[dst->nparams++] = src->params[i];
    if (lim && dst->nparams < MAXP)
        dst->params[dst->nparams++] = (verso__param){"limit", lim};
}

/* The query string of the Link header, or NULL; aborts on a malformed header. */
static const char *next_query(const req *r, size_t *n)
{
    static const char pre[] = "</items?", post[] = ">; rel=\"next\"";
    const char *l = r->link.data;

    if (!r->link.len)
        return NULL;
    if (r->link.len < sizeof(pre) + sizeof(post) - 2 || strncmp(l, pre, sizeof(pre) - 1) ||
        strcmp(l + r->link.len - (sizeof(post) - 1), post))
        abort();
    *n = r->link.len - (sizeof(pre) - 1) - (sizeof(post) - 1);
    return l + sizeof(pre) - 1;
}

/* Appends the rows of a 200 answer, comma-separated, to all. */
static void add_rows(verso_buf *all, const req *r)
{
    if (r->body.len <= 2)
        return;
    if (all->len)
        verso_buf_puts(all, ",");
    verso_buf_append(all, r->body.data + 1, r->body.len - 2);
}

/* Follows the Link headers from first; all gets every row. */
static void walk(verso_buf *all, req *first, int64_t limit, int64_t maxsteps)
{
    req pages[2], *cur = first;
    int64_t steps = 1;

    for (;;) {
        req *next = &pages[steps % 2];
        const char *qs;
        size_t n = 0;
        if (cur->rs.status != 200 || cur->rs.rows > limit ||
            (cur->rs.rows == limit) != (cur->link.len > 0))
            abort(); /* a page is 200; only a full one links to the next */
        add_rows(all, cur);
        if (!(qs = next_query(cur, &n)))
            break;
        if (++steps > maxsteps)
            abort(); /* the walk does not end */
        if (!req_parse(next, qs, n))
            abort(); /* the server's own link is refused */
        if (cur != first)
            req_free(cur);
        cur = next;
        run(cur);
    }
    if (cur != first)
        req_free(cur);
}

static void check_paging(const req *r, int64_t limit)
{
    char lim[24];
    req unpaged, paged;
    verso_buf all = VERSO_BUF_INIT;

    req_derive(&unpaged, r, NULL);
    if (run(&unpaged) == 200) {
        snprintf(lim, sizeof(lim), "%lld", (long long)limit);
        req_derive(&paged, r, lim);
        if (run(&paged) != 200)
            abort(); /* the same query, paged, fails */
        walk(&all, &paged, limit, unpaged.rs.rows / limit + 2);
        if (all.len + 2 != unpaged.body.len ||
            (all.len && memcmp(all.data, unpaged.body.data + 1, all.len)))
            abort(); /* pages do not add up to the unpaged answer */
        req_free(&paged);
    }
    verso_buf_free(&all);
    req_free(&unpaged);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    req r;

    if (req_parse(&r, (const char *)data, size)) {
        run(&r);
        check_paging(&r, 1 + (int64_t)(size % 3));
    }
    req_free(&r);
    return 0;
}
