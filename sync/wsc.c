/*
 * The WebSocket client of sync/, the counterpart of rest/ws.c: the only
 * file of the slave side that sees libwebsockets. Its callback switch
 * turns lws's reasons into the handler's few calls.
 *
 * An attempt's life is wsc_state, moved by move() only. Each attempt has
 * a number carried by its wsi: lws keeps reporting about a wsi after the
 * attempt ended (it closes it, destroys it, or still had input), and those
 * reports are dropped here. end() is the one way out of an attempt, for
 * every reason lws gives and for ours, so the owner hears of each attempt's
 * end exactly once.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <libwebsockets.h>

#include "rest/lwslog.h"
#include "sync/internal.h"

typedef enum wsc_state {
    WSC_IDLE,       /* no attempt */
    WSC_CONNECTING, /* lws connects (TCP, TLS) */
    WSC_UPGRADING,  /* the upgrade request is out */
    WSC_OPEN,       /* the WebSocket is up */
} wsc_state;

#define TO(state) (1u << (state))

/* The moves each state allows; an upgrade may be answered without lws asking for headers. */
static const unsigned moves[] = {
    [WSC_IDLE] = TO(WSC_CONNECTING),
    [WSC_CONNECTING] = TO(WSC_UPGRADING) | TO(WSC_OPEN) | TO(WSC_IDLE),
    [WSC_UPGRADING] = TO(WSC_OPEN) | TO(WSC_IDLE),
    [WSC_OPEN] = TO(WSC_IDLE),
};

static inline bool allowed(wsc_state from, wsc_state to)
{
    return moves[from] & TO(to);
}

struct verso__wsc {
    struct lws_context *ctx;
    const verso__wsc_handler *h;
    void *arg;
    verso__sync_url url;
    char *auth; /* "Bearer <token>" or NULL */
    bool insecure;
    const char *subprotocol; /* asked for in the upgrade (static) */
    size_t max_message;      /* 0 = no limit */
    wsc_state state;
    struct lws *wsi;   /* of the current attempt, once lws named it */
    uintptr_t attempt; /* number of the current attempt, carried by its wsi */
    int64_t heard_ms;  /* when the peer was last heard from */
    verso_buf rx;      /* the message being reassembled */
    verso_buf msg;     /* the next message to send, from on_writeable */
    verso_buf tx;      /* msg with the headroom lws_write needs */
    lws_sorted_usec_list_t sul;
};

static void move(verso__wsc *c, wsc_state to)
{
    bool ok = allowed(c->state, to); /* evaluated under NDEBUG too: no unused function */

    assert(ok);
    (void)ok;
    c->state = to;
    if (to == WSC_IDLE)
        c->wsi = NULL;
}

/* The one way out of an attempt. */
static void end(verso__wsc *c, verso__wsc_end how, const char *why, unsigned status)
{
    if (c->state == WSC_IDLE)
        return;
    move(c, WSC_IDLE);
    c->h->on_ended(how, why, status, c->arg);
}

/* A report about the current attempt's wsi (lws may report before connect returns it). */
static bool current(const verso__wsc *c, struct lws *wsi)
{
    return c->state != WSC_IDLE && (uintptr_t)lws_get_opaque_user_data(wsi) == c->attempt;
}

/* The current attempt's wsi, now known: true, else false (a stale report). */
static bool claim(verso__wsc *c, struct lws *wsi)
{
    if (!current(c, wsi))
        return false;
    c->wsi = wsi;
    return true;
}

/* After a handler: a wsi whose attempt ended meanwhile closes (with the frame close() set). */
static int after(const verso__wsc *c, struct lws *wsi)
{
    return current(c, wsi) ? 0 : -1;
}

/* A handler failed: the attempt ends, the peer is told why. */
static int failed(verso__wsc *c, struct lws *wsi, int rc)
{
    verso__wsc_close(c,
                     rc == VERSO_EPROTO ? LWS_CLOSE_STATUS_PROTOCOL_ERR
                                        : LWS_CLOSE_STATUS_UNEXPECTED_CONDITION,
                     verso_strerror(rc));
    return after(c, wsi);
}

static int upgrading(verso__wsc *c, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = (unsigned char **)in, *lim = (*p) + len;

    if (c->state == WSC_CONNECTING)
        move(c, WSC_UPGRADING);
    if (c->h->on_upgrading)
        c->h->on_upgrading(c->arg);
    if (!c->auth || !current(c, wsi))
        return after(c, wsi);
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                       (const unsigned char *)c->auth, (int)strlen(c->auth), p, lim)
               ? -1
               : 0;
}

static int opened(verso__wsc *c, struct lws *wsi)
{
    move(c, WSC_OPEN);
    c->heard_ms = verso__sync_mono_ms();
    c->h->on_open(c->arg);
    return after(c, wsi);
}

static int received(verso__wsc *c, struct lws *wsi, const void *in, size_t len)
{
    int rc;

    c->heard_ms = verso__sync_mono_ms();
    if (c->max_message && c->rx.len + len > c->max_message) {
        verso__wsc_close(c, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return after(c, wsi);
    }
    if (verso_buf_append(&c->rx, in, len) < 0)
        return failed(c, wsi, VERSO_ENOMEM);
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    rc = c->h->on_message(c->rx.data ? c->rx.data : "", c->rx.len, c->arg);
    verso_buf_clear(&c->rx);
    c->heard_ms = verso__sync_mono_ms();
    return rc < 0 ? failed(c, wsi, rc) : after(c, wsi);
}

static int send_msg(verso__wsc *c, struct lws *wsi)
{
    verso_buf_clear(&c->tx);
    if (verso_buf_reserve(&c->tx, LWS_PRE + c->msg.len + 1) < 0)
        return VERSO_ENOMEM;
    memcpy(c->tx.data + LWS_PRE, c->msg.data, c->msg.len);
    if (lws_write(wsi, (unsigned char *)c->tx.data + LWS_PRE, c->msg.len, LWS_WRITE_TEXT) <
        (int)c->msg.len)
        return VERSO_ENET;
    return 0;
}

/* Sends what the owner has to send while the socket takes it. */
static int writeable(verso__wsc *c, struct lws *wsi)
{
    while (!lws_send_pipe_choked(wsi)) {
        int rc;
        verso_buf_clear(&c->msg);
        rc = c->h->on_writeable(&c->msg, c->arg);
        if (rc < 0 || !current(c, wsi))
            return rc < 0 ? failed(c, wsi, rc) : -1;
        if (c->msg.len == 0)
            return 0;
        if (send_msg(c, wsi) < 0) {
            end(c, VERSO__WSC_ENDED, "cannot send to the master", 0);
            return -1;
        }
    }
    lws_callback_on_writable(wsi);
    return 0;
}

/* A report about a wsi of an attempt already ended: it is closing, or is closed if it talks. */
static int stale(enum lws_callback_reasons reason)
{
    return reason == LWS_CALLBACK_CLIENT_RECEIVE || reason == LWS_CALLBACK_CLIENT_WRITEABLE ||
                   reason == LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER
               ? -1
               : 0;
}

static int connect_failed(verso__wsc *c, struct lws *wsi, const char *why)
{
    unsigned status = lws_http_client_http_response(wsi);
    char buf[128];

    end(c, VERSO__WSC_FAILED, verso__sync_lws_cause(why, status, buf, sizeof(buf)), status);
    return 0;
}

static int closed(verso__wsc *c)
{
    end(c, VERSO__WSC_CLOSED, "connection closed", 0);
    return 0;
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    verso__wsc *c = lws_context_user(lws_get_context(wsi));

    (void)user;
    if (!claim(c, wsi))
        return stale(reason);
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return upgrading(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        return opened(c, wsi);
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return received(c, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return writeable(c, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        return connect_failed(c, wsi, in);
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    case LWS_CALLBACK_WSI_DESTROY: /* whatever else ended it: the wsi must not outlive the attempt
                                    */
        return closed(c);
    default:
        return 0;
    }
}

static const struct lws_protocols protocols[] = {
    {VERSO_SYNC_SUBPROTOCOL, callback, 0, 262144, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static int create_context(verso__wsc *c)
{
    struct lws_context_creation_info info;

    /* Connection failures are reported once, by the owner: lws's warnings
     * would repeat them on stderr at every retry. */
    verso__lws_log_init();
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = c;
    if (c->url.tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    c->ctx = lws_create_context(&info);
    return c->ctx ? 0 : VERSO_ENET;
}

int verso__wsc_new(verso__wsc **out, const verso__sync_url *u, const char *token, bool insecure,
                   const verso__wsc_handler *h, void *arg)
{
    verso__wsc *c = verso__calloc(1, sizeof(*c));
    int rc = VERSO_ENOMEM;

    *out = NULL;
    if (!c)
        return VERSO_ENOMEM;
    c->url = *u;
    c->insecure = insecure;
    c->subprotocol = VERSO_SYNC_SUBPROTOCOL;
    c->h = h;
    c->arg = arg;
    if (token && *token) {
        size_t n = strlen(token) + 8;
        if (!(c->auth = verso__malloc(n)))
            goto done;
        snprintf(c->auth, n, "Bearer %s", token);
    }
    if ((rc = create_context(c)) < 0)
        goto done;
    *out = c;
done:
    if (rc < 0)
        verso__wsc_free(c);
    return rc;
}

void verso__wsc_free(verso__wsc *c)
{
    if (!c)
        return;
    c->state = WSC_IDLE; /* what lws reports while it destroys the context is stale */
    if (c->ctx) {
        lws_sul_cancel(&c->sul);
        lws_context_destroy(c->ctx);
    }
    verso_buf_free(&c->rx);
    verso_buf_free(&c->msg);
    verso_buf_free(&c->tx);
    verso__free(c->auth);
    verso__free(c);
}

static void connect_info(struct lws_client_connect_info *ci, verso__wsc *c, const char *path)
{
    memset(ci, 0, sizeof(*ci));
    ci->context = c->ctx;
    ci->address = c->url.host;
    ci->port = c->url.port;
    ci->path = path;
    ci->host = c->url.host;
    ci->origin = c->url.host;
    ci->protocol = c->subprotocol;
    ci->local_protocol_name = VERSO_SYNC_SUBPROTOCOL; /* our one lws_protocols entry */
    ci->opaque_user_data = (void *)c->attempt;
    if (c->url.tls) {
        ci->ssl_connection = LCCSCF_USE_SSL;
        if (c->insecure)
            ci->ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
    }
}

void verso__wsc_connect(verso__wsc *c, const char *path)
{
    struct lws_client_connect_info ci;
    uintptr_t attempt = ++c->attempt;
    struct lws *wsi;
    char full[600];

    snprintf(full, sizeof(full), "%s%s", c->url.prefix, path);
    connect_info(&ci, c, full);
    verso_buf_clear(&c->rx);
    move(c, WSC_CONNECTING);
    wsi = lws_client_connect_via_info(&ci);
    if (c->state == WSC_IDLE || c->attempt != attempt)
        return; /* lws reported the failure during the call: ended already */
    if (!wsi)
        end(c, VERSO__WSC_FAILED, "cannot connect", 0);
    else
        c->wsi = wsi;
}

void verso__wsc_limits(verso__wsc *c, const char *subprotocol, size_t max_message)
{
    c->subprotocol = subprotocol;
    c->max_message = max_message;
}

void verso__wsc_want_write(verso__wsc *c)
{
    if (c->state == WSC_OPEN && c->wsi)
        lws_callback_on_writable(c->wsi);
}

/*
 * Outside the wsi's callbacks lws closes it at its next writeable report,
 * which is stale by then and says so; a peer that does not take the frame
 * is dropped after 5 s.
 */
void verso__wsc_close(verso__wsc *c, int status, const char *why)
{
    if (c->state != WSC_OPEN || !c->wsi) {
        verso__wsc_kill(c, why);
        return;
    }
    lws_close_reason(c->wsi, (enum lws_close_status)status, (unsigned char *)why, strlen(why));
    lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, 5);
    lws_callback_on_writable(c->wsi);
    end(c, VERSO__WSC_ENDED, why, 0);
}

/* lws closes the wsi at its next timeout check, without a close frame. */
void verso__wsc_kill(verso__wsc *c, const char *why)
{
    if (c->wsi)
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
    end(c, VERSO__WSC_ENDED, why, 0);
}

int64_t verso__wsc_silent_ms(const verso__wsc *c)
{
    return verso__sync_mono_ms() - c->heard_ms;
}

static void fired(lws_sorted_usec_list_t *sul)
{
    verso__wsc *c = lws_container_of(sul, verso__wsc, sul);

    c->h->on_timer(c->arg);
}

void verso__wsc_timer(verso__wsc *c, int64_t ms)
{
    lws_sul_schedule(c->ctx, 0, &c->sul, fired, ms * 1000);
}

void verso__wsc_service(verso__wsc *c)
{
    lws_service(c->ctx, 0);
}

bool verso__wsc_pending(const verso__wsc *c)
{
    int n = 0;
    lws_sockfd_type fd = c->wsi ? lws_get_socket_fd(c->wsi) : -1;

    return fd >= 0 && ioctl(fd, FIONREAD, &n) == 0 && n > 0;
}

void verso__wsc_wake(verso__wsc *c)
{
    lws_cancel_service(c->ctx);
}
