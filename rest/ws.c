/* rest/ws.c - WebSocket endpoints mounted by other modules: path and role
 * checks at the upgrade, message reassembly, and writes with LWS_PRE
 * headroom, all on the service thread. */
#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rest/dir.h"
#include "rest/internal.h"

struct verso_ws {
    struct lws *wsi;
    verso_rest *srv;
    const verso_ws_handler *h;
    void *conn;
    verso_buf rx;
    verso_buf tx;
    bool opened;
    bool closing;
    bool away; /* verso__ws_close_away() */
    bool too_big;
};

size_t verso__ws_pss_size(void)
{
    return sizeof(verso_ws);
}

static const verso_ws_handler *handler_of(struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);

    return p ? p->user : NULL;
}

/* The role check's answer for the upgrade request: 0, 401 or 403. */
static int role_status(verso_rest *srv, struct lws *wsi, const verso_ws_handler *h)
{
    char authz[512];
    verso__auth a;
    unsigned need = h->role ? verso__role_caps(h->role) : 0;
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

    if (h->role && !need)
        return 403;
    if (n >= (int)sizeof(authz) ||
        (n > 0 && lws_hdr_copy(wsi, authz, sizeof(authz), WSI_TOKEN_HTTP_AUTHORIZATION) < 0))
        return 401;
    verso__auth_identify(&a, &srv->cfg, n > 0 ? authz : NULL);
    if (srv->dir && lws_hdr_copy(wsi, authz, sizeof(authz), WSI_TOKEN_GET_URI) > 0)
        return verso__dir_ws_auth(srv->dir, authz, &a, need); /* tokens scoped to databases */
    return verso__auth_check(&a, &srv->cfg, NULL, NULL, need);
}

/* A handler's path matches uri exactly, or segment for segment where its
 * path holds "*" (a dir server's "/db/<name>/_sync": one segment). */
static bool path_match(const char *pattern, const char *uri)
{
    const char *star = strchr(pattern, '*');
    size_t pre = star ? (size_t)(star - pattern) : 0;
    const char *rest;

    if (!star)
        return !strcmp(pattern, uri);
    if (strncmp(pattern, uri, pre))
        return false;
    rest = uri + pre + strcspn(uri + pre, "/");
    return rest > uri + pre && !strcmp(rest, star + 1);
}

/* The upgrade request must target the handler's path and carry its role. */
static int filter(verso_rest *srv, struct lws *wsi, const verso_ws_handler *h)
{
    char uri[256];
    int n = lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI);

    if (n <= 0 || !path_match(h->path, uri))
        return -1;
    return role_status(srv, wsi, h) ? -1 : 0;
}

static const verso_ws_handler *handler_at(verso_rest *srv, struct lws *wsi)
{
    char uri[256];

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return NULL;
    for (size_t i = 0; i < srv->nhandlers; i++)
        if (path_match(srv->handlers[i].path, uri))
            return &srv->handlers[i];
    return NULL;
}

/* A name libwebsockets would bind a connection to: the HTTP protocol's or a handler's. */
static bool known_protocol(verso_rest *srv, const char *name, size_t n)
{
    for (size_t i = 0; i < srv->nhandlers + 1; i++)
        if (strlen(srv->protocols[i].name) == n && !strncmp(srv->protocols[i].name, name, n))
            return true;
    return false;
}

/* libwebsockets binds the upgrade to the first name of the client's
 * Sec-WebSocket-Protocol list that it knows, or to its HTTP protocol when
 * the list is absent: only h's own subprotocol may win. */
static bool picks_handler(verso_rest *srv, struct lws *wsi, const verso_ws_handler *h)
{
    char list[512];
    const char *p = list;

    if (lws_hdr_copy(wsi, list, sizeof(list), WSI_TOKEN_PROTOCOL) <= 0)
        return false;
    while (*p) {
        size_t n;
        p += strspn(p, " \t,");
        n = strcspn(p, ",");
        while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n && known_protocol(srv, p, n))
            return strlen(h->subprotocol) == n && !strncmp(h->subprotocol, p, n);
        p += strcspn(p, ",");
    }
    return false;
}

/* Writes status with the REST routes' JSON error body; lws then ends the
 * transaction. The request's HTTP version is not recorded yet at this stage,
 * so the answer is HTTP/1.0 and the connection closes after it. */
static int refuse(verso_rest *srv, struct lws *wsi, int status, const char *msg)
{
    verso__resp rs = {.body = &srv->body, .location = &srv->location, .link = &srv->link};
    unsigned char *start, *p, *end;
    char num[32];
    int n;

    verso__error(&rs, status, "%s", msg);
    verso_buf_clear(&srv->out);
    if (verso_buf_reserve(&srv->out, LWS_PRE + 512 + rs.body->len) < 0)
        return -1;
    start = p = (unsigned char *)srv->out.data + LWS_PRE;
    end = start + 512;
    n = snprintf(num, sizeof(num), "%zu", rs.body->len);
    if (lws_add_http_header_status(wsi, (unsigned)status, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE,
                                     (const unsigned char *)"application/json", 16, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH, (const unsigned char *)num,
                                     n, &p, end) ||
        lws_finalize_http_header(wsi, &p, end))
        return -1;
    memcpy(p, rs.body->data, rs.body->len);
    p += rs.body->len;
    verso__metrics_record(&srv->metrics, VERSO__R_WS, status, 0, 0);
    if (lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0)
        return -1;
    return 1;
}

/*
 * Runs on the HTTP side before lws picks a protocol, for every upgrade lws
 * would perform (websocket, h2c): each is answered here unless it opens a
 * mounted endpoint, with its subprotocol, for a token of its role. A refusal
 * gets a real answer (a client can tell a bad token from a network failure),
 * where the protocol filter below could only hang up. > 0: answered.
 *
 * The Upgrade value is read from the header table, not taken from the
 * callback's argument: lws still calls this after answering an upgrade it
 * does not know (403), with an argument pointing into a header table it may
 * have reset meanwhile (CVE-2025-11677). Without the header there is
 * nothing left to confirm: hang up.
 */
static int confirm_upgrade(verso_rest *srv, struct lws *wsi)
{
    const verso_ws_handler *h;
    char up[64], uri[256];
    char msg[320];
    int n = lws_hdr_total_length(wsi, WSI_TOKEN_UPGRADE), status;

    if (n <= 0)
        return -1;
    if (n >= (int)sizeof(up) || lws_hdr_copy(wsi, up, sizeof(up), WSI_TOKEN_UPGRADE) < 0 ||
        strcasecmp(up, "websocket"))
        return refuse(srv, wsi, 400, "only WebSocket upgrades are served");
    if (!(h = handler_at(srv, wsi)))
        return refuse(srv, wsi, 404, "no WebSocket endpoint at this path");
    if ((status = role_status(srv, wsi, h))) {
        snprintf(msg, sizeof(msg), "this WebSocket needs the role %s for every table (or admin)",
                 h->role ? h->role : "admin");
        return refuse(srv, wsi, status,
                      status == 401 ? "a bearer token this server knows is required: send the "
                                      "header \"Authorization: Bearer TOKEN\""
                                    : msg);
    }
    if (srv->dir && strchr(h->path, '*') &&
        lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) > 0 &&
        (status = verso__dir_upgrade(srv->dir, uri, msg, sizeof(msg))))
        return refuse(srv, wsi, status, msg);
    if (picks_handler(srv, wsi, h))
        return 0;
    snprintf(msg, sizeof(msg), "this endpoint needs the WebSocket subprotocol %s", h->subprotocol);
    return refuse(srv, wsi, 400, msg);
}

static int established(verso_rest *srv, struct lws *wsi, verso_ws *ws)
{
    /* The header time limit armed at accept does not apply to a live socket. */
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    memset(ws, 0, sizeof(*ws));
    ws->wsi = wsi;
    ws->srv = srv;
    ws->h = handler_of(wsi);
    if (!ws->h)
        return -1;
    if (ws->h->on_open && ws->h->on_open(ws, &ws->conn, ws->h->arg) < 0)
        return -1;
    ws->opened = true;
    srv->metrics.ws_open++;
    srv->metrics.ws_total++;
    return 0;
}

static int received(verso_ws *ws, const void *in, size_t len)
{
    int rc = 0;

    if (lws_frame_is_binary(ws->wsi)) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE, NULL, 0);
        return -1;
    }
    if (ws->rx.len + len > ws->srv->cfg.limits.max_ws_message) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, NULL, 0);
        return -1;
    }
    if (verso_buf_append(&ws->rx, in, len) < 0)
        return -1;
    if (!lws_is_final_fragment(ws->wsi) || lws_remaining_packet_payload(ws->wsi))
        return 0;
    if (ws->h->on_message)
        rc =
            ws->h->on_message(ws, ws->conn, ws->rx.data ? ws->rx.data : "", ws->rx.len, ws->h->arg);
    verso_buf_clear(&ws->rx);
    return rc < 0 ? -1 : 0;
}

static int writeable(verso_ws *ws)
{
    static const char away[] = "server stopping";

    if (ws->srv->going_away) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_GOINGAWAY, (unsigned char *)away,
                         sizeof(away) - 1);
        return -1;
    }
    if (ws->away) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_GOINGAWAY, NULL, 0);
        return -1;
    }
    if (ws->closing) {
        lws_close_reason(ws->wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
        return -1;
    }
    if (ws->h->on_writeable && ws->h->on_writeable(ws, ws->conn, ws->h->arg) < 0)
        return -1;
    return 0;
}

static void closed(verso_ws *ws)
{
    if (ws->opened && ws->h->on_close)
        ws->h->on_close(ws, ws->conn, ws->h->arg);
    if (ws->opened)
        ws->srv->metrics.ws_open--;
    ws->opened = false;
    verso_buf_free(&ws->rx);
    verso_buf_free(&ws->tx);
}

int verso__ws_callback(struct lws *wsi, int reason, void *user, void *in, size_t len)
{
    verso_rest *srv = lws_context_user(lws_get_context(wsi));
    verso_ws *ws = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(srv, wsi);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return handler_of(wsi) ? filter(srv, wsi, handler_of(wsi)) : -1;
    case LWS_CALLBACK_ESTABLISHED:
        return established(srv, wsi, ws);
    case LWS_CALLBACK_RECEIVE:
        return ws && ws->opened ? received(ws, in, len) : -1;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        return ws && ws->opened ? writeable(ws) : 0;
    case LWS_CALLBACK_CLOSED:
        if (ws)
            closed(ws);
        return 0;
    default:
        return 0;
    }
}

int verso_ws_write(verso_ws *ws, const void *data, size_t len)
{
    if (!ws || (!data && len))
        return VERSO_EINVAL;
    verso_buf_clear(&ws->tx);
    if (verso_buf_reserve(&ws->tx, LWS_PRE + len + 1) < 0)
        return VERSO_ENOMEM;
    if (len)
        memcpy(ws->tx.data + LWS_PRE, data, len);
    if (lws_write(ws->wsi, (unsigned char *)ws->tx.data + LWS_PRE, len, LWS_WRITE_TEXT) < 0)
        return VERSO_ENET;
    return 0;
}

bool verso_ws_choked(verso_ws *ws)
{
    return !ws || lws_send_pipe_choked(ws->wsi);
}

void verso_ws_want_write(verso_ws *ws)
{
    if (ws)
        lws_callback_on_writable(ws->wsi);
}

verso_rest *verso_ws_server(verso_ws *ws)
{
    return ws ? ws->srv : NULL;
}

void verso_ws_close(verso_ws *ws)
{
    if (!ws)
        return;
    ws->closing = true;
    lws_callback_on_writable(ws->wsi);
}

void verso__ws_close_away(verso_ws *ws)
{
    if (!ws)
        return;
    ws->away = true;
    lws_callback_on_writable(ws->wsi);
}

int verso__ws_uri(verso_ws *ws, char *out, size_t n)
{
    return lws_hdr_copy(ws->wsi, out, (int)n, WSI_TOKEN_GET_URI) > 0 ? 0 : VERSO_EINVAL;
}

void verso__ws_auth(verso_ws *ws, verso__auth *a)
{
    char authz[512];
    int n = lws_hdr_total_length(ws->wsi, WSI_TOKEN_HTTP_AUTHORIZATION);

    if (n >= (int)sizeof(authz) ||
        (n > 0 && lws_hdr_copy(ws->wsi, authz, sizeof(authz), WSI_TOKEN_HTTP_AUTHORIZATION) < 0))
        authz[0] = 0, n = 1; /* unknown: no token this server knows */
    verso__auth_identify(a, &ws->srv->cfg, n > 0 ? authz : NULL);
}
