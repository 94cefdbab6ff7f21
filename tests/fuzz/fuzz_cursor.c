/*
 * libFuzzer harness: the after= keyset cursor of GET /<table> (rest/query.c:
 * verso__listq_parse, verso__listq_cursor_of), for a table with a column of
 * every type.
 *
 * Input: byte 0 gives the number of order terms (0-3), the next bytes their
 * columns and directions; the rest is read twice: as cursor text, and as a
 * key tuple (a tag byte per value, then its bits or its length and bytes).
 *
 * Properties beyond "no crash":
 *   - only canonical cursors are accepted: a cursor text accepted for the
 *     query encodes its decoded keys back to the identical text;
 *   - any key tuple (every storage class in every column, the id an
 *     integer) encodes to a cursor the same query accepts, which decodes to
 *     the same values: storage class, bits of reals, bytes of text and blobs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rest/internal.h"

#define MAXO 3

static const char *const k_cols[] = {"id", "i", "d", "b", "s", "u", "a"};
static verso_rest *g_srv;
static const verso_table *g_t;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/verso_fuzz_XXXXXX", path[64], why[256];
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_db *db = NULL;

    (void)argc;
    (void)argv;
    if (!mkdtemp(dir))
        abort();
    snprintf(path, sizeof(path), "%s/c.db", dir);
    if (verso_db_open(&db, path, NULL, why, sizeof(why)) < 0 ||
        verso_db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, i INTEGER, d REAL, b BOOLEAN, "
                          "s TEXT, u UUID TEXT, bl BLOB, a)") < 0 ||
        verso_db_track(db, "t", NULL) < 0)
        abort();
    verso_db_close(db);
    o.db_path = path;
    if (verso__rest_open_offline(&g_srv, NULL, &o, why, sizeof(why)) < 0 ||
        !(g_t = verso_db_table(g_srv->db, "t")))
        abort();
    return 0;
}

typedef struct query {
    char order[64];
    verso__param params[2];
    verso__req rq;
    verso_buf body, location, link;
    verso__resp rs;
    verso__listq *lq;
} query;

/* Parses order (may be "") and after (NULL: none) as GET /t would. */
static int query_parse(query *q, const char *order, const char *after)
{
    size_t n = 0;

    memset(q, 0, sizeof(*q));
    snprintf(q->order, sizeof(q->order), "%s", order);
    if (*order)
        q->params[n++] = (verso__param){"order", q->order};
    if (after)
        q->params[n++] = (verso__param){"after", after};
    q->rq = (verso__req){.srv = g_srv,
                         .method = VERSO__GET,
                         .path = "/t",
                         .params = q->params,
                         .nparams = n,
                         .body = (char *)""};
    q->rs.body = &q->body;
    q->rs.location = &q->location;
    q->rs.link = &q->link;
    q->rs.status = 200;
    return verso__listq_parse(&q->lq, &q->rq, g_t, &q->rs);
}

static void query_free(query *q)
{
    verso__listq_free(q->lq);
    verso_buf_free(&q->body);
    verso_buf_free(&q->location);
    verso_buf_free(&q->link);
}

static int storage_class(verso_type t)
{
    return t == VERSO_BOOL ? VERSO_INT64 : t == VERSO_UUID ? VERSO_TEXT : (int)t;
}

static bool same_value(const verso_value *a, const verso_value *b)
{
    if (storage_class(a->type) != storage_class(b->type))
        return false;
    switch (storage_class(a->type)) {
    case VERSO_INT64:
        return a->u.i == b->u.i;
    case VERSO_DOUBLE:
        return !memcmp(&a->u.d, &b->u.d, sizeof(double));
    case VERSO_TEXT:
    case VERSO_BLOB:
        return a->u.b.n == b->u.b.n && (!a->u.b.n || !memcmp(a->u.b.p, b->u.b.p, a->u.b.n));
    default:
        return true;
    }
}

/* Reads n bytes of input; false at its end. */
static bool take(void *out, size_t n, const uint8_t **data, size_t *size)
{
    if (*size < n)
        return false;
    memcpy(out, *data, n);
    *data += n;
    *size -= n;
    return true;
}

/* One key value of the tuple; the id (last) is always an integer. */
static bool read_key(verso_value *v, bool id, const uint8_t **data, size_t *size)
{
    uint8_t tag = 1, len = 0;

    if (!id && !take(&tag, 1, data, size))
        return false;
    switch (id ? 1 : tag % 5) {
    case 0:
        *v = VERSO_VALUE_NULL;
        return true;
    case 1:
        v->type = VERSO_INT64;
        return take(&v->u.i, 8, data, size);
    case 2:
        v->type = VERSO_DOUBLE;
        return take(&v->u.d, 8, data, size) && !isnan(v->u.d); /* SQLite holds no NaN */
    default:
        if (!take(&len, 1, data, size) || *size < len)
            return false;
        v->type = tag % 5 == 3 ? VERSO_TEXT : VERSO_BLOB;
        v->u.b.p = *data;
        v->u.b.n = len;
        *data += len;
        *size -= len;
        return true;
    }
}

static void check_text(const char *order, const char *text)
{
    verso_buf again = VERSO_BUF_INIT;
    query q;

    if (query_parse(&q, order, text) == 0) {
        const verso_query *vq = verso__listq_query(q.lq);
        if (verso__listq_cursor_of(&again, q.lq, vq->after) < 0 ||
            strcmp(again.data ? again.data : "", text))
            abort(); /* an accepted cursor that is not the encoding of its keys */
    } else if (q.rs.status != 400) {
        abort();
    }
    verso_buf_free(&again);
    query_free(&q);
}

static void check_keys(const char *order, size_t norder, const uint8_t *data, size_t size)
{
    verso_value keys[MAXO + 1];
    verso_buf cursor = VERSO_BUF_INIT;
    query q1, q2;

    for (size_t i = 0; i <= norder; i++)
        if (!read_key(&keys[i], i == norder, &data, &size))
            return;
    if (query_parse(&q1, order, NULL) < 0)
        abort(); /* the order terms are valid */
    if (verso__listq_cursor_of(&cursor, q1.lq, keys) < 0)
        abort(); /* every key tuple has a cursor */
    if (query_parse(&q2, order, cursor.data) < 0)
        abort(); /* the server's own cursor is refused */
    for (size_t i = 0; i <= norder; i++)
        if (!same_value(&keys[i], &verso__listq_query(q2.lq)->after[i]))
            abort(); /* a key changed on the way */
    query_free(&q1);
    query_free(&q2);
    verso_buf_free(&cursor);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char order[64] = "", *text;
    size_t norder, len = 0;

    if (size < 1)
        return 0;
    norder = data[0] % (MAXO + 1);
    if (size < 1 + norder)
        return 0;
    for (size_t i = 0; i < norder; i++) {
        uint8_t b = data[1 + i];
        len += (size_t)snprintf(order + len, sizeof(order) - len, "%s%s%s", i ? "," : "",
                                k_cols[b % 7], b & 8 ? ".desc" : "");
    }
    data += 1 + norder;
    size -= 1 + norder;
    if (!(text = malloc(size + 1)))
        return 0;
    memcpy(text, data, size);
    text[size] = 0; /* parameters are C strings: the text up to a NUL */
    check_text(order, text);
    free(text);
    check_keys(order, norder, data, size);
    return 0;
}
