/*
 * The slave's fetch of a long blob (a {"blob_fetch":N} value of the change
 * stream): GET <base>/<table>/<id>/<column>?version=V with the slave's
 * token, the body streamed into a temporary file beside the database and
 * its length checked, then handed to the applier chunk by chunk. The file
 * is unlinked as soon as it is made: a slave killed mid-fetch leaves
 * nothing behind, and nothing of the blob is ever held in memory.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "orm/service.h"
#include "sync/internal.h"

struct verso__blobfetch {
    verso__sync_url url;
    char *token;
    bool insecure;
    int timeout_ms;
    char dir_tmpl[720]; /* "<db_path>.blob-XXXXXX" */
    const verso__sync_cancel *stop;
    verso__sync_http *http;     /* made at the first fetch */
    int fd;                     /* the current blob's file, -1 none */
    int64_t got;                /* bytes written to it */
    int64_t want;               /* its announced length */
    const char *table, *column; /* the current fetch's, for the test hook */
    int64_t id;
};

void (*verso__blobfetch_hook)(const char *table, int64_t id, const char *column, int64_t received,
                              void *arg);
void *verso__blobfetch_hook_arg;

int verso__blobfetch_new(verso__blobfetch **out, const verso__sync_url *u, const char *token,
                         bool insecure, int timeout_ms, const char *db_path,
                         const verso__sync_cancel *stop)
{
    verso__blobfetch *f = verso__calloc(1, sizeof(*f));

    *out = NULL;
    if (!f)
        return VERSO_ENOMEM;
    f->url = *u;
    f->insecure = insecure;
    f->timeout_ms = timeout_ms;
    f->stop = stop;
    f->fd = -1;
    snprintf(f->dir_tmpl, sizeof(f->dir_tmpl), "%s.blob-XXXXXX", db_path ? db_path : "verso");
    if (token && *token && !(f->token = verso__strdup(token))) {
        verso__free(f);
        return VERSO_ENOMEM;
    }
    *out = f;
    return 0;
}

static void file_close(verso__blobfetch *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->got = f->want = 0;
}

void verso__blobfetch_free(verso__blobfetch *f)
{
    if (!f)
        return;
    file_close(f);
    verso__sync_http_free(f->http);
    verso__free(f->token);
    verso__free(f);
}

/* A path segment, percent-encoded but for unreserved characters. */
static int put_segment(verso_buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = verso_buf_puts(b, "/");

    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || strchr("-_.~", *p);
        char esc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
        rc = plain ? verso_buf_append(b, p, 1) : verso_buf_append(b, esc, 3);
    }
    return rc;
}

static int make_path(verso_buf *b, const char *table, int64_t id, const char *column,
                     int64_t version)
{
    int rc = put_segment(b, table);

    if (rc == 0)
        rc = verso_buf_printf(b, "/%lld", (long long)id);
    if (rc == 0)
        rc = put_segment(b, column);
    return rc == 0 ? verso_buf_printf(b, "?version=%lld", (long long)version) : rc;
}

/* The body's bytes, as they arrive, to the file; never past the length announced. */
static int sink(const void *p, size_t n, void *arg)
{
    verso__blobfetch *f = arg;
    const char *c = p;

    verso__crashpoint("slave.blob.received");
    if (verso__blobfetch_hook)
        verso__blobfetch_hook(f->table, f->id, f->column, f->got, verso__blobfetch_hook_arg);
    if (f->got + (int64_t)n > f->want)
        return VERSO_EPROTO;
    while (n > 0) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return errno == ENOSPC ? VERSO_EFULL : VERSO_EIO;
        c += w;
        n -= (size_t)w;
        f->got += w;
    }
    return 0;
}

static int file_open(verso__blobfetch *f, int64_t n, char *why, size_t whylen)
{
    char path[sizeof(f->dir_tmpl)];

    memcpy(path, f->dir_tmpl, sizeof(path));
    file_close(f);
    if ((f->fd = mkstemp(path)) < 0) {
        verso__sync_why(why, whylen, "cannot make a temporary file beside the database: %s",
                        strerror(errno));
        return VERSO_EIO;
    }
    unlink(path); /* nothing left behind, even after a kill -9 */
    f->want = n;
    return 0;
}

/* What a status other than 200 means for the apply: 412 and 404 (the row
 * changed or was deleted after the change was read) send the slave back to
 * its cursor, to read the row's later state. */
static int refused(int status, const verso_buf *body, const char *what, char *why, size_t whylen)
{
    const char *b = body->data && body->data[0] == '{' ? body->data : "";
    int n = (int)strcspn(b, "\r\n");

    if (status == 412) {
        verso__sync_why(why, whylen,
                        "%s changed on the master since the change was read (HTTP 412)", what);
        return VERSO_ECONFLICT;
    }
    if (status == 404) { /* the row deleted since the read; reading again shows its deletion */
        verso__sync_why(why, whylen,
                        "%s is gone on the master since the change was read (HTTP 404%s%.*s)", what,
                        n ? ": " : "", n > 160 ? 160 : n, b);
        return VERSO_ECONFLICT;
    }
    verso__sync_why(why, whylen, "fetching %s: HTTP %d%s%.*s", what, status, n ? " " : "",
                    n > 200 ? 200 : n, b);
    return status == 401 || status == 403 ? VERSO_EAUTH : VERSO_EPROTO;
}

static int transfer(verso__blobfetch *f, const char *path, const char *what, char *why,
                    size_t whylen)
{
    verso_buf err = VERSO_BUF_INIT;
    int64_t length = -1;
    int status = 0;
    int rc = verso__sync_http_stream(&status, &length, &err, f->http, path, sink, f, f->stop);

    if (rc < 0 && rc != VERSO_EPROTO && rc != VERSO_EFULL && rc != VERSO_EIO)
        verso__sync_why(why, whylen, "fetching %s: %s", what,
                        rc == VERSO_ENET && verso__sync_http_cause(f->http)[0]
                            ? verso__sync_http_cause(f->http)
                            : verso_strerror(rc));
    else if (rc < 0)
        verso__sync_why(why, whylen, "fetching %s: %s", what,
                        rc == VERSO_EPROTO ? "more bytes than announced" : verso_strerror(rc));
    else if (status != 200)
        rc = refused(status, &err, what, why, whylen);
    else if (length == f->want && f->got < f->want) {
        /* the master ends the body early when the row changes while it is sent */
        verso__sync_why(why, whylen,
                        "%s changed on the master while it was sent (%lld of %lld bytes)", what,
                        (long long)f->got, (long long)f->want);
        rc = VERSO_ECONFLICT;
    } else if ((length >= 0 && length != f->want) || f->got != f->want) {
        verso__sync_why(why, whylen,
                        "fetching %s: %lld bytes (Content-Length %lld) where %lld were announced",
                        what, (long long)f->got, (long long)length, (long long)f->want);
        rc = VERSO_EPROTO;
    }
    verso_buf_free(&err);
    return rc;
}

int verso__blobfetch_get(verso__blobfetch *f, const char *table, int64_t id, const char *column,
                         int64_t version, int64_t n, char *why, size_t whylen)
{
    verso_buf path = VERSO_BUF_INIT;
    char what[200];
    int rc;

    snprintf(what, sizeof(what), "the blob of %s #%lld, column %s, version %lld", table,
             (long long)id, column, (long long)version);
    if (!f->http &&
        (rc = verso__sync_http_new(&f->http, &f->url, f->token, f->insecure, f->timeout_ms)) < 0) {
        verso__sync_why(why, whylen, "fetching %s: %s", what, verso_strerror(rc));
        return rc;
    }
    f->table = table;
    f->id = id;
    f->column = column;
    if (verso__blobfetch_hook)
        verso__blobfetch_hook(table, id, column, -1, verso__blobfetch_hook_arg);
    if ((rc = make_path(&path, table, id, column, version)) == 0 &&
        (rc = file_open(f, n, why, whylen)) == 0)
        rc = transfer(f, path.data, what, why, whylen);
    verso_buf_free(&path);
    if (rc < 0)
        file_close(f);
    return rc;
}

int verso__blobfetch_fill(unsigned char *buf, size_t len, int64_t off, void *arg)
{
    verso__blobfetch *f = arg;

    while (len > 0) {
        ssize_t r = pread(f->fd, buf, len, off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return VERSO_EIO;
        buf += r;
        len -= (size_t)r;
        off += r;
    }
    return 0;
}

void verso__blobfetch_end(verso__blobfetch *f)
{
    file_close(f);
}

static int source_get(void *arg, const char *table, int64_t id, const char *column, int64_t version,
                      int64_t n, char *why, size_t whylen)
{
    return verso__blobfetch_get(arg, table, id, column, version, n, why, whylen);
}

static void source_end(void *arg)
{
    verso__blobfetch_end(arg);
}

void verso__blobfetch_source(verso__sync_blob_source *out, verso__blobfetch *f)
{
    *out = (verso__sync_blob_source){source_get, verso__blobfetch_fill, source_end, f};
}
