/* rest/blob.c - GET and PUT /<table>/<id>/<column>: one value's raw bytes.
 *
 * GET streams: the answer's body is a verso__stream that http.c reads as
 * the socket takes it, 64 KiB at a time, from one read snapshot of the
 * value (orm/blob.c). Before each piece the row's version is checked: a
 * row changed or deleted mid-download ends the connection before the body
 * is complete, so the client sees a short body rather than bytes of a
 * version that no longer exists.
 *
 * PUT takes the body from the spool file (spool.c) or, when it was small
 * enough to come without one, from memory. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "orm/service.h"
#include "rest/internal.h"

/* ---- Range: bytes=A-B, A-, -N (RFC 9110 14.1.2) ---- */

enum { RANGE_WHOLE, RANGE_PART, RANGE_UNSATISFIABLE };

/* Decimal digits at *p (advanced past them); saturates; -1 when none. */
static int64_t digits(const char **p)
{
    int64_t v = 0;
    const char *s = *p;

    if (*s < '0' || *s > '9')
        return -1;
    for (; *s >= '0' && *s <= '9'; s++)
        v = v > (INT64_MAX - 9) / 10 ? INT64_MAX : v * 10 + (*s - '0');
    *p = s;
    return v;
}

/* One range of a value of len bytes into [*a, *b]. A header that is not
 * one valid byte range (another unit, bad syntax, several ranges) is
 * ignored: the whole value is the answer. */
static int parse_range(int64_t *a, int64_t *b, const char *h, int64_t len)
{
    int64_t x, y;

    if (!h || strncasecmp(h, "bytes=", 6) || strchr(h, ','))
        return RANGE_WHOLE;
    h += 6 + strspn(h + 6, " \t");
    x = digits(&h);
    if (*h++ != '-')
        return RANGE_WHOLE;
    y = digits(&h);
    if (h[strspn(h, " \t")] || (x < 0 && y < 0) || (x >= 0 && y >= 0 && y < x))
        return RANGE_WHOLE;
    if (x < 0) { /* the last y bytes */
        if (y == 0 || len == 0)
            return RANGE_UNSATISFIABLE;
        *a = len > y ? len - y : 0;
        *b = len - 1;
        return RANGE_PART;
    }
    if (x >= len)
        return RANGE_UNSATISFIABLE;
    *a = x;
    *b = y < 0 || y >= len ? len - 1 : y;
    return RANGE_PART;
}

/* ---- the streamed body ---- */

typedef struct blob_stream {
    verso__stream s;
    verso__cell *cell;
    int64_t off; /* of the next byte */
} blob_stream;

static int stream_read(verso__stream *s, void *buf, size_t n)
{
    blob_stream *bs = (blob_stream *)s;
    int rc = verso__cell_read(bs->cell, buf, n, bs->off);

    if (rc == 0)
        bs->off += (int64_t)n;
    return rc;
}

static void stream_free(verso__stream *s)
{
    blob_stream *bs = (blob_stream *)s;

    verso__cell_close(bs->cell);
    verso__free(bs);
}

static int stream_new(verso__stream **out, verso__cell *cell, int64_t off, int64_t len)
{
    blob_stream *bs = verso__calloc(1, sizeof(*bs));

    if (!bs)
        return VERSO_ENOMEM;
    bs->s = (verso__stream){.len = len, .read = stream_read, .free = stream_free};
    bs->cell = cell;
    bs->off = off;
    *out = &bs->s;
    return 0;
}

/* ---- GET ---- */

/* ?version=V: 0 when absent, -1 (400 written) when malformed. */
static int64_t wanted_version(verso__req *rq, verso__resp *rs)
{
    const char *v = verso__param_get(rq, "version");
    int64_t n = 0;

    if (v && (verso__parse_i64(&n, v) < 0 || n < 1)) {
        verso__error(rs, 400, "version must be a positive integer (the row's version)");
        return -1;
    }
    return n;
}

/* The value can be sent as bytes: else the error answer is written. */
static bool readable(verso__resp *rs, const verso__cell_info *in, const char *table, int64_t id,
                     const char *column, int64_t want)
{
    char q[80];

    verso__rest_quote(q, sizeof(q), column, 64);
    if (want && want != in->version)
        verso__error(rs, 412, "row %lld of %s has version %lld, not %lld", (long long)id, table,
                     (long long)in->version, (long long)want);
    else if (in->type == VERSO_NULL)
        verso__error(rs, 404, "column %s of row %lld is NULL", q, (long long)id);
    else if (in->type != VERSO_TEXT && in->type != VERSO_BLOB)
        verso__error(rs, 400, "column %s of row %lld holds %s, not bytes: GET /%s/%lld gives it", q,
                     (long long)id, in->type == VERSO_INT64 ? "an integer" : "a real number", table,
                     (long long)id);
    else
        return true;
    return false;
}

/* Status, Content-Range and the byte span [*a, *b] of the answer. */
static void answer_range(verso__resp *rs, int64_t *a, int64_t *b, const verso__req *rq, int64_t len)
{
    int kind = parse_range(a, b, rq->range, len);

    if (kind == RANGE_UNSATISFIABLE) {
        verso__error(rs, 416, "the range is outside the value's %lld bytes", (long long)len);
        snprintf(rs->content_range, sizeof(rs->content_range), "bytes */%lld", (long long)len);
    } else if (kind == RANGE_PART) {
        rs->status = 206;
        snprintf(rs->content_range, sizeof(rs->content_range), "bytes %lld-%lld/%lld",
                 (long long)*a, (long long)*b, (long long)len);
    } else {
        *a = 0;
        *b = len - 1;
    }
}

void verso__route_blob_get(verso__req *rq, verso__resp *rs, const char *table, int64_t id,
                           const char *column)
{
    verso_rest *srv = rq->srv;
    verso__cell *cell = NULL;
    verso__cell_info info;
    int64_t want = wanted_version(rq, rs), a = 0, b = -1;
    int rc;

    if (want < 0)
        return;
    if ((rc = verso__schema_sync(srv)) < 0 ||
        (rc = verso__cell_open(&cell, &info, srv->db, table, id, column)) < 0) {
        verso__error_orm(rs, srv, rc);
        return;
    }
    rs->ranges = true;
    if (readable(rs, &info, table, id, column, want))
        answer_range(rs, &a, &b, rq, info.len);
    if (rs->status >= 300) {
        verso__cell_close(cell);
        return;
    }
    rs->etag = info.version;
    rs->rows = 1;
    rs->content_type =
        info.type == VERSO_TEXT ? "text/plain; charset=utf-8" : "application/octet-stream";
    if (b < a) /* nothing to send */
        verso__cell_close(cell);
    else if (stream_new(&rs->stream, cell, a, b - a + 1) < 0) {
        verso__cell_close(cell);
        verso__error_nomem(rs);
    }
}

/* ---- PUT ---- */

typedef struct source {
    int fd; /* the spool file, or -1: from mem */
    const char *mem;
} source;

static int fill(void *buf, size_t n, void *arg)
{
    source *src = arg;

    if (src->fd < 0) {
        memcpy(buf, src->mem, n);
        src->mem += n;
        return 0;
    }
    for (size_t got = 0; got < n;) {
        ssize_t r = read(src->fd, (char *)buf + got, n - got);
        if (r <= 0)
            return VERSO_EIO;
        got += (size_t)r;
    }
    return 0;
}

static bool is_json(const char *ct)
{
    return ct && !strncasecmp(ct, "application/json", 16);
}

static void put_answer(verso__resp *rs, int64_t id, int64_t version, int64_t len)
{
    rs->etag = version;
    if (verso_buf_printf(rs->body, "{\"id\":%lld,\"version\":%lld,\"size\":%lld}", (long long)id,
                         (long long)version, (long long)len) < 0)
        verso__error_nomem(rs);
}

void verso__route_blob_put(verso__req *rq, verso__resp *rs, const char *table, int64_t id,
                           const char *column)
{
    source src = {.fd = -1, .mem = rq->body};
    int64_t expect = 0, version = 0, len = rq->spool_path ? rq->spool_len : (int64_t)rq->nbody;
    int rc;

    if (is_json(rq->content_type)) {
        verso__error(rs, 415,
                     "a column's raw bytes come with another content type than "
                     "application/json (application/octet-stream, ...); JSON goes to PUT /%s/%lld",
                     table, (long long)id);
        return;
    }
    if (rq->if_match && verso__parse_etag(&expect, rq->if_match) < 0) {
        verso__error(rs, 400, "bad If-Match header");
        return;
    }
    if (rq->spool_path && (src.fd = open(rq->spool_path, O_RDONLY | O_CLOEXEC)) < 0) {
        verso__error_rc(rs, rq->srv, VERSO_EIO, "cannot read the spooled body");
        return;
    }
    rc = verso__cell_write(&version, rq->srv->db, table, id, column, len, expect, fill, &src);
    if (src.fd >= 0)
        close(src.fd);
    if (rc < 0)
        verso__error_orm(rs, rq->srv, rc);
    else
        put_answer(rs, id, version, len);
}
