/* rest/http.c - turns libwebsockets HTTP callbacks into verso__req and
 * writes verso__resp back: headers and body in a single write, into a
 * buffer reused across requests. Enforces the URL and body limits. */
#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "rest/internal.h"

/* A connection's state between requests and while reading one. Each state
 * has its time limit: ST_IDLE libwebsockets' header and keep-alive timeouts
 * (set to the header limit), ST_BODY and ST_DRAIN the connection's lws timer
 * (the body limit), armed by move(). */
enum {
    ST_IDLE,  /* waiting for, or answering, a request without a body */
    ST_BODY,  /* reading the body: 408 once the body limit has passed */
    ST_DRAIN, /* answered early: dropping the rest until the client closes */
    ST_SEND,  /* sending a streamed answer: closed once it waits body-timeout for the client */
};

typedef struct conn {
    int state;
    unsigned method;
    verso_buf path;
    verso_buf body;
    size_t drained;
    bool armed;   /* our first-request timeout is pending */
    bool chunked; /* Transfer-Encoding: chunked, decoded here (libwebsockets does not) */
    bool shut;    /* half-close once libwebsockets has sent what it buffered */
    verso__chunked ck;
    struct timespec t0;
    const char *role;      /* for the access log: verso__access_role() of the request */
    verso__spool spool;    /* ST_BODY: the body goes to this file (spool.path set) */
    verso__stream *stream; /* ST_SEND: the answer's body */
    int64_t sent;          /* ST_SEND: its bytes sent */
    int status, route;     /* ST_SEND: of the answer, for the metrics and the access log */
    bool close_after;      /* ST_SEND: the answer says Connection: close */
} conn;

typedef struct method_token {
    enum lws_token_indexes token;
    unsigned method;
} method_token;

static const method_token k_methods[] = {
    {.token = WSI_TOKEN_GET_URI, .method = VERSO__GET},
    {.token = WSI_TOKEN_POST_URI, .method = VERSO__POST},
    {.token = WSI_TOKEN_PUT_URI, .method = VERSO__PUT},
    {.token = WSI_TOKEN_PATCH_URI, .method = VERSO__PATCH},
    {.token = WSI_TOKEN_DELETE_URI, .method = VERSO__DELETE},
    {.token = WSI_TOKEN_HEAD_URI, .method = VERSO__HEAD},
    {.token = WSI_TOKEN_OPTIONS_URI, .method = VERSO__OPTIONS},
};

/* A new connection must send its first request's headers within the header
 * time limit. Later requests are covered by libwebsockets' keep-alive and
 * header-table idle timeouts, set to the same limit. */
void verso__http_arm_timeout(verso_rest *srv, struct lws *wsi, void *pss)
{
    conn *c = pss;

    if (c)
        c->armed = true;
    lws_set_timeout(wsi, PENDING_TIMEOUT_USER_OK, (srv->cfg.limits.header_timeout_ms + 999) / 1000);
}

size_t verso__http_pss_size(void)
{
    return sizeof(conn);
}

static void stream_record(verso_rest *srv, struct lws *wsi, conn *c);

void verso__http_conn_free(verso_rest *srv, struct lws *wsi, void *pss)
{
    conn *c = pss;

    if (!c)
        return;
    if (c->state == ST_BODY)
        srv->metrics.requests_reading--;
    if (c->state == ST_SEND) { /* the client left mid-answer */
        stream_record(srv, wsi, c);
        srv->metrics.answers_writing--; /* else every stop waits its whole drain for it */
    }
    verso__spool_close(&c->spool);
    c->state = ST_IDLE;
    verso_buf_free(&c->path);
    verso_buf_free(&c->body);
}

static unsigned method_of(struct lws *wsi)
{
    for (size_t i = 0; i < sizeof(k_methods) / sizeof(k_methods[0]); i++)
        if (lws_hdr_total_length(wsi, k_methods[i].token) > 0)
            return k_methods[i].method;
    return 0;
}

static double elapsed(const struct timespec *t0)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The connection's lws timer for its state. ST_BODY wakes up at least twice
 * per lws content timeout (the header limit rounded up to seconds), which lws
 * renews after each piece of body and which would close a slow body without
 * an answer: each wake-up clears it, until the body limit. ST_DRAIN wakes up
 * once, at the body limit, to close. */
static void arm(verso_rest *srv, struct lws *wsi, conn *c)
{
    const verso_rest_limits *l = &srv->cfg.limits;
    int64_t ms = l->body_timeout_ms;

    if (c->state == ST_IDLE) {
        lws_set_timer_usecs(wsi, LWS_SET_TIMER_USEC_CANCEL);
        return;
    }
    if (c->state == ST_SEND) { /* from the last progress */
        lws_set_timer_usecs(wsi, (lws_usec_t)ms * LWS_US_PER_MS);
        return;
    }
    if (c->state == ST_BODY) {
        int64_t tick = (l->header_timeout_ms + 999) / 1000 * 500;
        ms -= (int64_t)(elapsed(&c->t0) * 1000);
        if (ms > tick)
            ms = tick;
    }
    lws_set_timer_usecs(wsi, (lws_usec_t)(ms > 0 ? ms : 0) * LWS_US_PER_MS);
}

/* The one place a connection changes state. */
static void move(verso_rest *srv, struct lws *wsi, conn *c, int state)
{
    srv->metrics.requests_reading +=
        (state == ST_BODY) - (c->state == ST_BODY); /* drained at stop */
    srv->metrics.answers_writing += (state == ST_SEND) - (c->state == ST_SEND);
    c->state = state;
    if (state == ST_DRAIN)
        c->drained = 0;
    arm(srv, wsi, c);
}

static int add_header(struct lws *wsi, enum lws_token_indexes tok, const char *v, size_t n,
                      unsigned char **p, unsigned char *end)
{
    return lws_add_http_header_by_token(wsi, tok, (const unsigned char *)v, (int)n, p, end);
}

static int add_cors(struct lws *wsi, const verso__resp *rs, unsigned char **p, unsigned char *end)
{
    verso_rest *srv = lws_context_user(lws_get_context(wsi));
    verso__header h[8];
    size_t n = verso__cors_headers(h, 8, &srv->cfg, rs);

    for (size_t i = 0; i < n; i++)
        if (lws_add_http_header_by_name(wsi, (const unsigned char *)h[i].name,
                                        (const unsigned char *)h[i].value, (int)strlen(h[i].value),
                                        p, end))
            return -1;
    return 0;
}

static int add_headers(struct lws *wsi, const verso__resp *rs, bool close, unsigned char **p,
                       unsigned char *end)
{
    char num[32];
    bool nobody = rs->status == 204 || rs->status == 304;
    const char *ct = rs->content_type ? rs->content_type : "application/json";
    long long len = rs->stream ? (long long)rs->stream->len : (long long)rs->body->len;

    if (lws_add_http_header_status(wsi, (unsigned)rs->status, p, end))
        return -1;
    if (!nobody && (add_header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ct, strlen(ct), p, end) ||
                    add_header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, num,
                               (size_t)snprintf(num, sizeof(num), "%lld", len), p, end)))
        return -1;
    if (rs->ranges && add_header(wsi, WSI_TOKEN_HTTP_ACCEPT_RANGES, "bytes", 5, p, end))
        return -1;
    if (rs->content_range[0] && add_header(wsi, WSI_TOKEN_HTTP_CONTENT_RANGE, rs->content_range,
                                           strlen(rs->content_range), p, end))
        return -1;
    if (rs->etag > 0 &&
        add_header(wsi, WSI_TOKEN_HTTP_ETAG, num,
                   (size_t)snprintf(num, sizeof(num), "\"%lld\"", (long long)rs->etag), p, end))
        return -1;
    if (rs->location->len &&
        add_header(wsi, WSI_TOKEN_HTTP_LOCATION, rs->location->data, rs->location->len, p, end))
        return -1;
    if (rs->link->len &&
        add_header(wsi, WSI_TOKEN_HTTP_LINK, rs->link->data, rs->link->len, p, end))
        return -1;
    if (rs->allow && add_header(wsi, WSI_TOKEN_HTTP_ALLOW, rs->allow, strlen(rs->allow), p, end))
        return -1;
    if (rs->retry_after > 0 &&
        add_header(wsi, WSI_TOKEN_HTTP_RETRY_AFTER, num,
                   (size_t)snprintf(num, sizeof(num), "%d", rs->retry_after), p, end))
        return -1;
    if (close && add_header(wsi, WSI_TOKEN_CONNECTION, "close", 5, p, end))
        return -1;
    return add_cors(wsi, rs, p, end) || lws_finalize_http_header(wsi, p, end) ? -1 : 0;
}

/* After an answer with Connection: close, the server ends its side (FIN) and
 * keeps reading until the client closes, so the client reads the whole
 * answer even when it was still sending a body (a reset would lose it).
 * Over TLS the client's own close, or the timeout, ends the connection. */
static void half_close(verso_rest *srv, struct lws *wsi, conn *c)
{
    if (srv->tls)
        return;
    c->shut = lws_partial_buffered(wsi);
    if (c->shut)
        lws_callback_on_writable(wsi);
    else
        shutdown(lws_get_socket_fd(wsi), SHUT_WR);
}

static int stream_more(verso_rest *srv, struct lws *wsi, conn *c);

int verso__http_writeable(verso_rest *srv, struct lws *wsi, void *pss)
{
    conn *c = pss;

    if (c && c->state == ST_SEND)
        return stream_more(srv, wsi, c);
    if (c && c->shut && !lws_partial_buffered(wsi)) {
        c->shut = false;
        half_close(srv, wsi, c);
    }
    return 0;
}

/* The 503 of a server out of memory, in a buffer of the stack. */
static int send_nomem(verso_rest *srv, struct lws *wsi, conn *c, const verso__resp *rs, bool close);

/* Writes the answer start..p, then half-closes or waits for the next request. */
static int write_answer(verso_rest *srv, struct lws *wsi, conn *c, unsigned char *start,
                        unsigned char *p, bool close)
{
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
        return -1;
    if (close) {
        half_close(srv, wsi, c);
        return 0;
    }
    move(srv, wsi, c, ST_IDLE);
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- streamed answers: a piece each time the socket takes more ---- */

#define STREAM_PIECE 65536

/* Tells the metrics and the access log about a streamed answer, and frees it. */
static void stream_record(verso_rest *srv, struct lws *wsi, conn *c)
{
    verso__metrics_record(&srv->metrics, c->route, c->status, elapsed(&c->t0), 1);
    verso__access_record(srv, wsi,
                         &(verso__access_entry){c->method, c->path.data, c->status, (size_t)c->sent,
                                                elapsed(&c->t0), c->role});
    c->stream->free(c->stream);
    c->stream = NULL;
}

/* The body was sent (or cannot be: broken, the row changed, the client
 * stalled; the connection then closes before its end). */
static int stream_end(verso_rest *srv, struct lws *wsi, conn *c, bool broken)
{
    stream_record(srv, wsi, c);
    move(srv, wsi, c, ST_IDLE);
    if (broken)
        return -1;
    if (c->close_after) {
        half_close(srv, wsi, c);
        return 0;
    }
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* A few pieces while the socket takes them without queueing. */
static int stream_more(verso_rest *srv, struct lws *wsi, conn *c)
{
    int64_t len = c->stream->len;

    verso_buf_clear(&srv->out);
    if (verso_buf_reserve(&srv->out, LWS_PRE + STREAM_PIECE) < 0)
        return stream_end(srv, wsi, c, true);
    for (int i = 0; i < 8 && c->sent < len && !(i && lws_send_pipe_choked(wsi)); i++) {
        size_t n = len - c->sent < STREAM_PIECE ? (size_t)(len - c->sent) : STREAM_PIECE;
        unsigned char *p = (unsigned char *)srv->out.data + LWS_PRE;
        if (c->stream->read(c->stream, p, n) < 0 ||
            lws_write(wsi, p, n,
                      c->sent + (int64_t)n == len ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) < 0)
            return stream_end(srv, wsi, c, true);
        c->sent += (int64_t)n;
    }
    /* ended once libwebsockets has written what it holds: a stop that
     * follows would drop it */
    if (c->sent == len && !lws_partial_buffered(wsi))
        return stream_end(srv, wsi, c, false);
    arm(srv, wsi, c);
    lws_callback_on_writable(wsi);
    return 0;
}

/* Writes the headers; the body follows in stream_more(). */
static int stream_start(verso_rest *srv, struct lws *wsi, conn *c, verso__resp *rs,
                        unsigned char *start, unsigned char *p, bool close)
{
    c->stream = rs->stream;
    rs->stream = NULL;
    c->sent = 0;
    c->status = rs->status;
    c->route = rs->route;
    c->close_after = close;
    move(srv, wsi, c, ST_SEND);
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
        return stream_end(srv, wsi, c, true);
    lws_callback_on_writable(wsi);
    return 0;
}

/* Writes the whole response; returns what the lws callback must return. */
static int answer(verso_rest *srv, struct lws *wsi, conn *c, verso__resp *rs, bool close)
{
    size_t room = 1024 + rs->location->len + rs->link->len;
    bool body = c->method != VERSO__HEAD && rs->status != 204 && rs->status != 304;
    unsigned char *start, *p;

    verso_buf_clear(&srv->out);
    if (rs->nomem || verso_buf_reserve(&srv->out, LWS_PRE + room + rs->body->len + 1) < 0)
        return send_nomem(srv, wsi, c, rs, close);
    start = p = (unsigned char *)srv->out.data + LWS_PRE;
    if (add_headers(wsi, rs, close, &p, start + room) < 0)
        return -1;
    if (rs->stream && body)
        return stream_start(srv, wsi, c, rs, start, p, close);
    if (body && rs->body->len) {
        memcpy(p, rs->body->data, rs->body->len);
        p += rs->body->len;
    }
    verso__metrics_record(&srv->metrics, rs->route, rs->status, elapsed(&c->t0), rs->rows);
    verso__access_record(srv, wsi,
                         &(verso__access_entry){c->method, c->path.data, rs->status,
                                                body ? rs->body->len : 0, elapsed(&c->t0),
                                                c->role});
    return write_answer(srv, wsi, c, start, p, close);
}

static int send_nomem(verso_rest *srv, struct lws *wsi, conn *c, const verso__resp *rs, bool close)
{
    static const char text[] = VERSO__NOMEM_BODY;
    unsigned char out[LWS_PRE + 1024 + sizeof(text)], *start = out + LWS_PRE, *p = start;
    verso_buf body = {(char *)text, sizeof(text) - 1, sizeof(text)}, none = {0};
    verso__resp r = {.status = 503,
                     .route = rs->route,
                     .body = &body,
                     .location = &none,
                     .link = &none,
                     .etag = -1};

    if (add_headers(wsi, &r, close, &p, start + 1024) < 0)
        return -1;
    if (c->method != VERSO__HEAD) {
        memcpy(p, text, sizeof(text) - 1);
        p += sizeof(text) - 1;
    }
    verso__metrics_record(&srv->metrics, r.route, r.status, elapsed(&c->t0), 0);
    verso__access_record(srv, wsi,
                         &(verso__access_entry){c->method, c->path.data, r.status,
                                                c->method != VERSO__HEAD ? sizeof(text) - 1 : 0,
                                                elapsed(&c->t0), c->role});
    return write_answer(srv, wsi, c, start, p, close);
}

/* The same; a streamed body (rs->stream) is taken over or freed. */
static int send_response(verso_rest *srv, struct lws *wsi, conn *c, verso__resp *rs, bool close)
{
    int rc = answer(srv, wsi, c, rs, close);

    if (rs->stream) /* HEAD, or no answer could be written */
        rs->stream->free(rs->stream);
    rs->stream = NULL;
    return rc;
}

static void resp_init(verso__resp *rs, verso_rest *srv)
{
    memset(rs, 0, sizeof(*rs));
    rs->status = 200;
    rs->etag = -1;
    rs->body = &srv->body;
    rs->location = &srv->location;
    rs->link = &srv->link;
    verso_buf_clear(&srv->body);
    verso_buf_clear(&srv->location);
    verso_buf_clear(&srv->link);
}

/* Answers with an error before the body was read: the connection closes once
 * the client's body is drained, so the client reads the answer. rc < 0: the
 * answer to that code (a full disk: 507), else status and msg. */
static int reject_rc(verso_rest *srv, struct lws *wsi, conn *c, int rc, int status, const char *msg)
{
    verso__resp rs;
    bool body_follows = c->state == ST_BODY;

    resp_init(&rs, srv);
    if (rc < 0)
        verso__error_rc(&rs, srv, rc, msg);
    else
        verso__error(&rs, status, "%s", msg);
    if (!body_follows)
        return send_response(srv, wsi, c, &rs, false);
    move(srv, wsi, c, ST_DRAIN);
    verso_buf_free(&c->body);
    verso__spool_close(&c->spool);
    return send_response(srv, wsi, c, &rs, true);
}

static int reject(verso_rest *srv, struct lws *wsi, conn *c, int status, const char *msg)
{
    return reject_rc(srv, wsi, c, 0, status, msg);
}

static int grow_params(verso_rest *srv, size_t n)
{
    verso__param *p;

    if (n <= srv->params_cap)
        return 0;
    if (!(p = verso__realloc(srv->params, n * sizeof(*p))))
        return VERSO_ENOMEM;
    srv->params = p;
    srv->params_cap = n;
    return 0;
}

/* Copies the URI arguments (already percent-decoded by lws) into srv->scratch
 * as "key\0value\0" pairs and indexes them. VERSO_EINVAL if one holds a NUL. */
static int read_params(verso_rest *srv, struct lws *wsi, size_t *nparams)
{
    size_t n = 0, total = (size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    verso_buf *sc = &srv->scratch;

    *nparams = 0;
    verso_buf_clear(sc);
    if (verso_buf_reserve(sc, total * 2 + 64) < 0)
        return VERSO_ENOMEM;
    for (int i = 0;; i++) {
        char *dst = sc->data + sc->len, *eq;
        int len = lws_hdr_copy_fragment(wsi, dst, (int)(sc->cap - sc->len - 2),
                                        WSI_TOKEN_HTTP_URI_ARGS, i);
        size_t used = (size_t)len + 1;
        if (len < 0)
            break;
        if (strlen(dst) != (size_t)len)
            return VERSO_EINVAL;
        if (grow_params(srv, n + 1) < 0)
            return VERSO_ENOMEM;
        if ((eq = strchr(dst, '=')))
            *eq = 0;
        else
            dst[used++] = 0;
        srv->params[n].key = dst;
        srv->params[n++].value = dst + strlen(dst) + 1;
        sc->len += used;
    }
    *nparams = n;
    return 0;
}

/* Copies a header value; NULL when absent, "" when longer than the buffer. */
static const char *header(struct lws *wsi, enum lws_token_indexes tok, char *buf, int len)
{
    int n = lws_hdr_total_length(wsi, tok);

    if (n <= 0)
        return NULL;
    if (n >= len || lws_hdr_copy(wsi, buf, len, tok) < 0)
        buf[0] = 0;
    return buf;
}

/* A header libwebsockets has no token for; NULL when absent. */
static const char *custom_header(struct lws *wsi, const char *name, char *buf, int len)
{
    int nlen = (int)strlen(name), n = lws_hdr_custom_length(wsi, name, nlen);

    if (n < 0)
        return NULL;
    if (n >= len || lws_hdr_custom_copy(wsi, buf, len, name, nlen) < 0)
        buf[0] = 0;
    return buf;
}

bool verso__utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text, *end = s + len;

    while (s < end) {
        unsigned c = *s, n = c < 0x80             ? 0
                             : (c & 0xe0) == 0xc0 ? 1
                             : (c & 0xf0) == 0xe0 ? 2
                             : (c & 0xf8) == 0xf0 ? 3
                                                  : 9;
        uint32_t cp = n == 0 ? c : n == 1 ? c & 0x1f : n == 2 ? c & 0x0f : c & 0x07;
        if (n == 9 || (size_t)(end - s) <= n)
            return false;
        for (unsigned i = 1; i <= n; i++) {
            if ((s[i] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i] & 0x3f);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        s += n + 1;
    }
    return true;
}

static bool str_valid(const char *s)
{
    return verso__utf8_valid(s, strlen(s));
}

static bool params_valid(const verso__param *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!str_valid(p[i].key) || !str_valid(p[i].value))
            return false;
    return true;
}

static int process(verso_rest *srv, struct lws *wsi, conn *c, bool close)
{
    char authz[512], ifm[64], ifnm[256], origin[256], acrm[32], ctype[128];
    verso__req rq = {.srv = srv, .method = c->method};
    verso__resp rs;
    int rc;
    char range[128];

    resp_init(&rs, srv);
    if ((rc = read_params(srv, wsi, &rq.nparams)) == VERSO_ENOMEM) {
        verso__error_nomem(&rs);
        verso_buf_clear(&c->body);
        verso__spool_close(&c->spool);
        return send_response(srv, wsi, c, &rs, close);
    }
    rq.params = srv->params;
    rq.path = c->path.data;
    rq.body = c->body.data ? c->body.data : (char *)"";
    rq.nbody = c->body.len;
    rq.if_match = header(wsi, WSI_TOKEN_HTTP_IF_MATCH, ifm, sizeof(ifm));
    rq.if_none_match = header(wsi, WSI_TOKEN_HTTP_IF_NONE_MATCH, ifnm, sizeof(ifnm));
    rq.origin = header(wsi, WSI_TOKEN_ORIGIN, origin, sizeof(origin));
    rq.acr_method = custom_header(wsi, "access-control-request-method:", acrm, sizeof(acrm));
    rq.content_type = header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ctype, sizeof(ctype));
    verso__auth_identify(&rq.auth, &srv->cfg,
                         header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof(authz)));
    c->role = verso__access_role(&rq.auth, &srv->cfg);
    if (rq.method == VERSO__HEAD)
        rq.method = VERSO__GET;
    rq.range = header(wsi, WSI_TOKEN_HTTP_RANGE, range, sizeof(range));
    verso__spool_seal(&c->spool);
    rq.spool_path = c->spool.path;
    rq.spool_len = c->spool.len;
    if (rc < 0 || !params_valid(rq.params, rq.nparams) || !str_valid(rq.path))
        verso__error(&rs, 400, "the URL is not valid UTF-8 or holds a NUL byte");
    else if (!verso__cors_preflight(&rq, &rs))
        verso__dispatch(&rq, &rs);
    /* An idle keep-alive connection does not keep a large body's memory. */
    if (c->body.cap > 65536)
        verso_buf_free(&c->body);
    verso_buf_clear(&c->body);
    verso__spool_close(&c->spool);
    return send_response(srv, wsi, c, &rs, close);
}

static int64_t content_length(struct lws *wsi)
{
    char buf[32];
    int64_t n = -1;

    if (header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, buf, sizeof(buf)) &&
        verso__parse_i64(&n, buf) < 0)
        return INT64_MAX;
    return n;
}

/* True for "chunked", the only transfer coding accepted. */
static bool is_chunked(const char *te)
{
    size_t n;

    te += strspn(te, " \t");
    for (n = strlen(te); n && (te[n - 1] == ' ' || te[n - 1] == '\t'); n--)
        ;
    return n == 7 && !strncasecmp(te, "chunked", 7);
}

/* ---- bodies spooled to a file (spool.c) ---- */

static bool wants_spool(struct lws *wsi, conn *c)
{
    char ct[128];

    return verso__spool_wanted(c->method, c->path.data,
                               header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE, ct, sizeof(ct)));
}

/* Nothing is spooled for a client without a token the server knows: it
 * would fill the disk before hearing 401. */
static int spool_start(verso_rest *srv, struct lws *wsi, conn *c, int64_t clen)
{
    char dir[4096], authz[512];
    verso__req rq = {.srv = srv};
    verso__resp rs = {.body = &srv->body, .location = &srv->location, .link = &srv->link};
    int rc;

    verso__auth_identify(&rq.auth, &srv->cfg,
                         header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, authz, sizeof(authz)));
    if (srv->cfg.ngrants && rq.auth.state != 1) {
        verso__error_auth(&rs, &rq, 401, NULL, VERSO__CAP_WRITE, "writing rows");
        return reject(srv, wsi, c, 401, rs.errmsg);
    }
    if (clen > srv->cfg.limits.max_blob)
        return reject(srv, wsi, c, 413, "request body too large (max-blob)");
    if ((rc = verso__spool_open(&c->spool, verso__spool_dir(dir, sizeof(dir), srv))) < 0)
        return reject_rc(srv, wsi, c, rc, 500, "cannot store the request body");
    return 0;
}

/* Writes what the chunked decoder left in c->body to the spool file. */
static int spool_flush(conn *c)
{
    int rc = c->body.len ? verso__spool_write(&c->spool, c->body.data, c->body.len) : 0;

    verso_buf_clear(&c->body);
    return rc;
}

static int spool_body(verso_rest *srv, struct lws *wsi, conn *c, const void *in, size_t len)
{
    int rc;

    if (c->spool.len + (int64_t)len > srv->cfg.limits.max_blob)
        return reject(srv, wsi, c, 413, "request body too large (max-blob)");
    if ((rc = verso__spool_write(&c->spool, in, len)) < 0)
        return reject_rc(srv, wsi, c, rc, 500, "cannot store the request body");
    return 0;
}

/* A client that sent "Expect: 100-continue" waits for this before it sends
 * its body (curl: a second), once the server means to read it. */
static int continue_body(struct lws *wsi)
{
    static const char k[] = "HTTP/1.1 100 Continue\r\n\r\n";
    unsigned char buf[LWS_PRE + sizeof(k)];
    char expect[32];

    if (!header(wsi, WSI_TOKEN_HTTP_EXPECT, expect, sizeof(expect)) ||
        strcasecmp(expect, "100-continue"))
        return 0;
    memcpy(buf + LWS_PRE, k, sizeof(k) - 1);
    return lws_write(wsi, buf + LWS_PRE, sizeof(k) - 1, LWS_WRITE_HTTP) < 0 ? -1 : 0;
}

int verso__http_request(verso_rest *srv, struct lws *wsi, void *pss, const char *uri)
{
    conn *c = pss;
    char tebuf[64];
    const char *te = header(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING, tebuf, sizeof(tebuf));
    int64_t clen;
    size_t urllen = strlen(uri) + (size_t)lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);

    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    if (c->armed) {
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        c->armed = false;
    }
    srv->metrics.requests_reading -= c->state == ST_BODY;
    if (c->state == ST_SEND) /* not expected: lws waits for the answer's end */
        verso__http_conn_free(srv, wsi, c);
    verso__spool_close(&c->spool);
    c->state = ST_IDLE;
    c->shut = false;
    c->role = NULL;
    c->method = method_of(wsi);
    verso_buf_clear(&c->path);
    verso_buf_clear(&c->body);
    bool nomem = verso_buf_puts(&c->path, uri) < 0;
    clen = content_length(wsi);
    c->chunked = false;
    memset(&c->ck, 0, sizeof(c->ck));
    /* lws put its own content timeout on the request before this callback:
     * the body's limit is ours, and ends with an answer (408). */
    if (c->method & (VERSO__POST | VERSO__PUT | VERSO__PATCH) && (clen > 0 || te)) {
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        move(srv, wsi, c, ST_BODY);
    }
    if (nomem)
        return reject(srv, wsi, c, 503, VERSO__NOMEM_MSG);
    if (urllen > srv->cfg.limits.max_url)
        return reject(srv, wsi, c, 414, "URL too long");
    /* Both headers, or another coding, would let two parsers see two different bodies. */
    if (te && (clen >= 0 || !is_chunked(te)))
        return reject(srv, wsi, c, 400,
                      "only Transfer-Encoding: chunked, without Content-Length, is accepted");
    c->chunked = te != NULL;
    if (c->state == ST_BODY && wants_spool(wsi, c)) {
        int rc = spool_start(srv, wsi, c, clen);
        return rc || c->state != ST_BODY ? rc : continue_body(wsi);
    }
    if (clen > (int64_t)srv->cfg.limits.max_body)
        return reject(srv, wsi, c, 413, "request body too large");
    if (c->state == ST_BODY)
        return continue_body(wsi);
    return process(srv, wsi, c, false);
}

/* libwebsockets cannot tell where a chunked body ends, so once it has, the
 * answer says Connection: close and the rest of the connection is drained. */
static int chunked_body(verso_rest *srv, struct lws *wsi, conn *c, const void *in, size_t len)
{
    size_t max = c->spool.path ? (size_t)(srv->cfg.limits.max_blob - c->spool.len)
                               : srv->cfg.limits.max_body;
    int st = verso__chunked_feed(&c->ck, &c->body, in, len, max), rc;

    if (!st && c->spool.path && (rc = spool_flush(c)) < 0)
        return reject_rc(srv, wsi, c, rc, 500, "cannot store the request body");
    if (st == 500)
        return reject(srv, wsi, c, 503, VERSO__NOMEM_MSG);
    if (st)
        return reject(srv, wsi, c, st,
                      st == 413 ? "request body too large" : "malformed chunked body");
    if (!verso__chunked_done(&c->ck))
        return 0;
    move(srv, wsi, c, ST_DRAIN);
    return process(srv, wsi, c, true);
}

int verso__http_body(verso_rest *srv, struct lws *wsi, void *pss, const void *in, size_t len)
{
    conn *c = pss;

    if (c->state == ST_DRAIN) {
        c->drained += len;
        return c->drained > 16 * srv->cfg.limits.max_body ? -1 : 0;
    }
    if (c->state != ST_BODY)
        return -1;
    if (c->chunked)
        return chunked_body(srv, wsi, c, in, len);
    if (c->spool.path)
        return spool_body(srv, wsi, c, in, len);
    if (c->body.len + len > srv->cfg.limits.max_body)
        return reject(srv, wsi, c, 413, "request body too large");
    if (verso_buf_append(&c->body, in, len) < 0)
        return reject(srv, wsi, c, 503, VERSO__NOMEM_MSG);
    return 0;
}

int verso__http_body_done(verso_rest *srv, struct lws *wsi, void *pss)
{
    conn *c = pss;

    if (c->state != ST_BODY)
        return -1;
    return process(srv, wsi, c, false);
}

int verso__http_timer(verso_rest *srv, struct lws *wsi, void *pss)
{
    conn *c = pss;
    char msg[96];

    if (!c || c->state == ST_IDLE)
        return 0;
    if (c->state == ST_DRAIN)
        return -1;
    if (c->state == ST_SEND) /* the client took nothing for body-timeout */
        return stream_end(srv, wsi, c, true);
    if (elapsed(&c->t0) * 1000 < srv->cfg.limits.body_timeout_ms) {
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        arm(srv, wsi, c);
        return 0;
    }
    snprintf(msg, sizeof(msg), "the request body did not arrive within %d ms",
             srv->cfg.limits.body_timeout_ms);
    return reject(srv, wsi, c, 408, msg);
}
