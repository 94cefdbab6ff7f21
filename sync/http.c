/*
 * A minimal blocking HTTP GET client over libwebsockets (the library does
 * not depend on libcurl). One request at a time, on the caller's thread,
 * with its own lws context.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libwebsockets.h>

#include "rest/lwslog.h"
#include "sync/internal.h"

struct verso__sync_http {
    struct lws_context *ctx;
    verso__sync_url url;
    char *auth; /* "Bearer <token>" or NULL */
    bool insecure;
    int timeout_ms;
    struct lws *wsi; /* the request in progress; callbacks of older ones are ignored */
    bool connecting;
    verso_buf *body;
    verso__sync_http_sink sink; /* set: a 200's body goes there instead of body */
    void *sink_arg;
    int64_t length; /* the answer's Content-Length, -1 when it has none */
    int64_t rx_ms;  /* when bytes last arrived */
    int status;
    int rc;
    bool done;
    char cause[128];            /* why the request could not connect, in plain words */
    lws_sorted_usec_list_t sul; /* bounds each wait so timeouts and stop are noticed */
};

static void tick(lws_sorted_usec_list_t *sul)
{
    verso__sync_http *h = lws_container_of(sul, verso__sync_http, sul);

    lws_sul_schedule(h->ctx, 0, &h->sul, tick, 100000);
}

static int on_append_header(verso__sync_http *h, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = (unsigned char **)in, *end = (*p) + len;

    if (!h->auth)
        return 0;
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                       (const unsigned char *)h->auth, (int)strlen(h->auth), p, end)
               ? -1
               : 0;
}

static int on_receive(struct lws *wsi)
{
    char buf[LWS_PRE + 65536];
    char *p = buf + LWS_PRE;
    int n = (int)sizeof(buf) - LWS_PRE;

    return lws_http_client_read(wsi, &p, &n) < 0 ? -1 : 0;
}

static void finish(verso__sync_http *h, int rc)
{
    if (h->done)
        return;
    h->rc = rc;
    h->done = true;
}

/* lws's own text (its internals) becomes a plain cause. */
static void connection_error(verso__sync_http *h, const char *lws_why)
{
    char buf[128];

    snprintf(h->cause, sizeof(h->cause), "%s", verso__sync_lws_cause(lws_why, 0, buf, sizeof(buf)));
    finish(h, VERSO_ENET);
}

static int64_t content_length(struct lws *wsi)
{
    char buf[32];
    char *end;
    long long n;

    if (lws_hdr_copy(wsi, buf, sizeof(buf), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0)
        return -1;
    n = strtoll(buf, &end, 10);
    return end != buf && *end == '\0' && n >= 0 ? n : -1;
}

/* A 200's body goes to the sink when there is one; any other (an error's
 * JSON) to the buffer, at most 4 KiB of it then. */
static void received(verso__sync_http *h, const void *in, size_t len)
{
    int rc = 0;

    h->rx_ms = verso__sync_mono_ms();
    if (h->done)
        return;
    if (h->sink && h->status == 200)
        rc = h->sink(in, len, h->sink_arg);
    else if (h->body && (!h->sink || h->body->len + len <= 4096))
        rc = verso_buf_append(h->body, in, len);
    if (rc < 0)
        finish(h, rc);
}

static int http_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                   size_t len)
{
    verso__sync_http *h = lws_context_user(lws_get_context(wsi));

    if (wsi != h->wsi && !h->connecting && reason != LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER &&
        reason != LWS_CALLBACK_RECEIVE_CLIENT_HTTP)
        return lws_callback_http_dummy(wsi, reason, user, in, len);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        connection_error(h, in);
        return 0;
    case LWS_CALLBACK_ESTABLISHED_CLIENT_HTTP:
        h->status = (int)lws_http_client_http_response(wsi);
        h->length = content_length(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return on_append_header(h, wsi, in, len);
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP_READ:
        received(h, in, len);
        return 0;
    case LWS_CALLBACK_RECEIVE_CLIENT_HTTP:
        return on_receive(wsi);
    case LWS_CALLBACK_COMPLETED_CLIENT_HTTP:
        finish(h, 0);
        return -1; /* one request per connection: do not leave it idle on the server */
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
        finish(h, h->status ? 0 : VERSO_ENET);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols http_protocols[] = {
    {"verso-http-client", http_cb, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

int verso__sync_http_new(verso__sync_http **out, const verso__sync_url *u, const char *token,
                         bool insecure, int timeout_ms)
{
    struct lws_context_creation_info info;
    verso__sync_http *h = verso__calloc(1, sizeof(*h));
    int rc = VERSO_ENOMEM;

    *out = NULL;
    if (!h)
        return VERSO_ENOMEM;
    h->url = *u;
    h->insecure = insecure;
    h->timeout_ms = timeout_ms > 0 ? timeout_ms : 10000;
    if (token && *token) {
        size_t n = strlen(token) + 8;
        if (!(h->auth = verso__malloc(n)))
            goto done;
        snprintf(h->auth, n, "Bearer %s", token);
    }
    verso__lws_log_init();
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = http_protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = h;
    if (u->tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    rc = VERSO_ENET;
    if (!(h->ctx = lws_create_context(&info)))
        goto done;
    lws_sul_schedule(h->ctx, 0, &h->sul, tick, 100000);
    rc = 0;
    *out = h;
done:
    if (rc < 0)
        verso__sync_http_free(h);
    return rc;
}

void verso__sync_http_free(verso__sync_http *h)
{
    if (!h)
        return;
    if (h->ctx)
        lws_context_destroy(h->ctx);
    verso__free(h->auth);
    verso__free(h);
}

static int connect_get(verso__sync_http *h, const char *path)
{
    struct lws_client_connect_info ci;

    memset(&ci, 0, sizeof(ci));
    ci.context = h->ctx;
    ci.address = h->url.host;
    ci.port = h->url.port;
    ci.path = path;
    ci.host = h->url.host;
    ci.origin = h->url.host;
    ci.method = "GET";
    ci.protocol = http_protocols[0].name;
    if (h->url.tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (h->insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
    }
    h->connecting = true; /* callbacks may run inside the call, before it returns the wsi */
    h->wsi = lws_client_connect_via_info(&ci);
    h->connecting = false;
    if (!h->wsi && !h->done)
        snprintf(h->cause, sizeof(h->cause), "cannot connect");
    return h->wsi || h->done ? 0 : VERSO_ENET;
}

const char *verso__sync_http_cause(const verso__sync_http *h)
{
    return h->cause;
}

/* With a sink the deadline is timeout_ms without a byte; else for the whole answer. */
static bool overdue(const verso__sync_http *h, int64_t start)
{
    int64_t now = verso__sync_mono_ms();

    if (h->sink)
        return now > (h->rx_ms > start ? h->rx_ms : start) + h->timeout_ms;
    return now > start + h->timeout_ms;
}

static int request(verso_buf *body, int *status, verso__sync_http *h, const char *path_query,
                   const verso__sync_cancel *stop)
{
    verso_buf path = VERSO_BUF_INIT;
    int64_t start = verso__sync_mono_ms();
    int rc;

    verso_buf_clear(body);
    h->body = body;
    h->status = 0;
    h->length = -1;
    h->rx_ms = 0;
    h->rc = 0;
    h->done = false;
    h->cause[0] = '\0';
    if ((rc = verso_buf_printf(&path, "%s%s", h->url.prefix, path_query)) < 0)
        goto done;
    if ((rc = connect_get(h, path.data)) < 0)
        goto done;
    while (!h->done) {
        if (verso__sync_cancelled(stop)) {
            rc = VERSO_EINTERRUPTED;
            goto done;
        }
        if (overdue(h, start)) {
            rc = VERSO_ETIMEOUT;
            goto done;
        }
        lws_service(h->ctx, 0);
    }
    rc = h->rc;
    *status = h->status;
done:
    h->body = NULL;
    h->wsi = NULL;
    verso_buf_free(&path);
    return rc;
}

int verso__sync_http_get(verso_buf *body, int *status, verso__sync_http *h, const char *path_query,
                         const verso__sync_cancel *stop)
{
    h->sink = NULL;
    return request(body, status, h, path_query, stop);
}

int verso__sync_http_stream(int *status, int64_t *length, verso_buf *errbody, verso__sync_http *h,
                            const char *path_query, verso__sync_http_sink sink, void *arg,
                            const verso__sync_cancel *stop)
{
    int rc;

    h->sink = sink;
    h->sink_arg = arg;
    rc = request(errbody, status, h, path_query, stop);
    *length = h->length;
    h->sink = NULL;
    return rc;
}
