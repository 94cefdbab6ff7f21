/* The WebSocket seam that sync/ builds on: a handler mounted through
 * verso_rest_options echoes messages back to a libwebsockets client; the
 * tick and wake callbacks, status_json and metrics_text, the role check at
 * the upgrade, and the message size limit. */
#include <arpa/inet.h>
#include <libwebsockets.h>
#include <netinet/in.h>
#include <pthread.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdatomic.h>
#include <time.h>

#include "rest_common.h"
#include "verso/sync.h"

/* ---- server side: an echo endpoint ---- */

typedef struct echo_conn {
    verso_buf queue[64];
    size_t head, tail;
} echo_conn;

static atomic_int g_opens, g_closes, g_ticks;

static int echo_open(verso_ws *ws, void **conn, void *arg)
{
    (void)ws;
    (void)arg;
    if (!(*conn = calloc(1, sizeof(echo_conn))))
        return -1;
    atomic_fetch_add(&g_opens, 1); /* each one is matched by an echo_close() */
    return 0;
}

static int echo_message(verso_ws *ws, void *conn, const void *data, size_t len, void *arg)
{
    echo_conn *c = conn;
    verso_buf *b = &c->queue[c->tail++ % 64];

    (void)arg;
    verso_buf_clear(b);
    if (verso_buf_append(b, data, len) < 0)
        return -1;
    verso_ws_want_write(ws);
    return 0;
}

static int echo_writeable(verso_ws *ws, void *conn, void *arg)
{
    echo_conn *c = conn;

    (void)arg;
    while (c->head != c->tail && !verso_ws_choked(ws)) {
        verso_buf *b = &c->queue[c->head++ % 64];
        if (verso_ws_write(ws, b->data, b->len) < 0)
            return -1;
    }
    if (c->head != c->tail)
        verso_ws_want_write(ws);
    return 0;
}

static void echo_close(verso_ws *ws, void *conn, void *arg)
{
    echo_conn *c = conn;

    (void)ws;
    (void)arg;
    for (size_t i = 0; i < 64; i++)
        verso_buf_free(&c->queue[i]);
    free(c);
    atomic_fetch_add(&g_closes, 1);
}

static void on_tick(verso_rest *srv, void *arg)
{
    (void)srv;
    (void)arg;
    atomic_fetch_add(&g_ticks, 1);
}

static int status_json(verso_buf *out, void *arg)
{
    (void)arg;
    return verso_buf_puts(out, "\"echo\":{\"ok\":true}");
}

static int metrics_text(verso_buf *out, void *arg)
{
    (void)arg;
    return verso_buf_puts(out, "# TYPE verso_echo_test gauge\nverso_echo_test 1\n");
}

static const verso_ws_handler k_handlers[] = {
    {.path = "/_echo",
     .subprotocol = "verso-echo",
     .on_open = echo_open,
     .on_message = echo_message,
     .on_writeable = echo_writeable,
     .on_close = echo_close},
    {.path = "/_guarded",
     .subprotocol = "verso-guarded",
     .role = "replicate",
     .on_open = echo_open,
     .on_message = echo_message,
     .on_writeable = echo_writeable,
     .on_close = echo_close},
};

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};

    nanosleep(&t, NULL);
}

/* ---- client side ---- */

typedef struct h_env_like {
    int port;
} h_env_like;

typedef struct client {
    const size_t *sizes; /* messages to send */
    size_t nsizes, sent, echoed;
    int pause_ms; /* idle time after the first echo */
    int64_t resume_at;
    struct lws *wsi;
    verso_buf rx;
    bool established, failed, closed, mismatch;
} client;

static void fill(unsigned char *p, size_t n, size_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)('a' + (i * 7 + seed) % 26);
}

static int client_write(struct lws *wsi, client *c)
{
    size_t n = c->sizes[c->sent];
    unsigned char *buf = malloc(LWS_PRE + n + 1);
    int rc;

    fill(buf + LWS_PRE, n, c->sent);
    rc = lws_write(wsi, buf + LWS_PRE, n, LWS_WRITE_TEXT);
    free(buf);
    c->sent++;
    if (c->pause_ms && c->sent == 1)
        c->resume_at = verso_now_ms() + c->pause_ms;
    else if (c->sent < c->nsizes)
        lws_callback_on_writable(wsi);
    return rc < 0 ? -1 : 0;
}

static void client_receive(struct lws *wsi, client *c, const void *in, size_t len)
{
    verso_buf_append(&c->rx, in, len);
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
        return;
    unsigned char *want = malloc(c->rx.len + 1);
    fill(want, c->rx.len, c->echoed);
    if (c->echoed >= c->nsizes || c->rx.len != c->sizes[c->echoed] ||
        memcmp(want, c->rx.data, c->rx.len))
        c->mismatch = true;
    free(want);
    c->echoed++;
    verso_buf_clear(&c->rx);
}

static const char *g_token;

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    client *c = lws_get_opaque_user_data(wsi);

    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (g_token) {
            char v[128];
            int n = snprintf(v, sizeof(v), "Bearer %s", g_token);
            unsigned char **p = in;
            if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)v,
                                             n, p, *p + len))
                return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = true;
        c->wsi = wsi;
        lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return c->sent < c->nsizes ? client_write(wsi, c) : 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        client_receive(wsi, c, in, len);
        return c->echoed == c->nsizes ? -1 : 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        c->failed = true;
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        c->closed = true;
        return 0;
    default:
        return 0;
    }
}

/* Connects to path with subprotocol, sends the messages, runs until the
 * connection ends (bounded by a 20 s safety limit). */
static void run_client(client *c, int port, const char *path, const char *proto)
{
    struct lws_protocols protocols[] = {{.name = proto, .callback = client_cb}, {0}};
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;
    struct lws_context *ctx;
    int64_t deadline = verso_now_ms() + 20000;

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    ctx = lws_create_context(&info);
    assert_non_null(ctx);
    memset(&ci, 0, sizeof(ci));
    ci.context = ctx;
    ci.address = "127.0.0.1";
    ci.port = port;
    ci.path = path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.protocol = proto;
    ci.opaque_user_data = c;
    if (!lws_client_connect_via_info(&ci))
        c->failed = true;
    while (!c->failed && !c->closed && verso_now_ms() < deadline) {
        if (!c->resume_at) {
            lws_service(ctx, 0);
            continue;
        }
        lws_service(ctx, -1); /* do not wait: the pause is timed here */
        pause_ms(5);
        if (verso_now_ms() >= c->resume_at) {
            c->resume_at = 0;
            lws_callback_on_writable(c->wsi);
        }
    }
    lws_context_destroy(ctx);
    verso_buf_free(&c->rx);
}

static rc_env g_env;

static int setup(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;

    (void)state;
    o.ws_handlers = k_handlers;
    o.nws_handlers = 2;
    o.on_tick = on_tick;
    o.tick_ms = 0;
    o.status_json = status_json;
    o.metrics_text = metrics_text;
    o.limits.max_ws_message = 300000;
    rc_start_with(&g_env, "rest_ws", &o);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rc_stop(&g_env);
    return 0;
}

static void test_echo(void **state)
{
    static const size_t sizes[] = {1, 100, 5, 70000, 200000, 3, 0, 1000};
    client c = {.sizes = sizes, .nsizes = sizeof(sizes) / sizeof(sizes[0])};
    int opens = atomic_load(&g_opens);

    (void)state;
    run_client(&c, verso_rest_port(g_env.srv), "/_echo", "verso-echo");
    assert_true(c.established);
    assert_false(c.failed);
    assert_false(c.mismatch);
    assert_int_equal(c.echoed, c.nsizes);
    assert_int_equal(atomic_load(&g_opens), opens + 1);
}

/* A WebSocket idle for longer than the header time limit (1 s) stays open. */
static void test_idle_websocket_survives_header_timeout(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    static const size_t sizes[] = {10, 20};
    client c = {.sizes = sizes, .nsizes = 2, .pause_ms = 2500};
    verso_rest *srv = NULL;
    char why[128];

    (void)state;
    o.ws_handlers = k_handlers;
    o.nws_handlers = 2;
    o.db_path = g_env.path;
    o.limits.header_timeout_ms = 1000;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    run_client(&c, verso_rest_port(srv), "/_echo", "verso-echo");
    assert_true(c.established);
    assert_int_equal(c.echoed, 2);
    assert_false(c.mismatch);
    verso_rest_stop(srv);
}

/* Waits (at most 5 s) until the server closed every WebSocket it opened; the close count. */
static int wait_all_closed(void)
{
    int64_t deadline = verso_now_ms() + 5000;
    int closes;

    while ((closes = atomic_load(&g_closes)) != atomic_load(&g_opens) && verso_now_ms() < deadline)
        pause_ms(5);
    assert_int_equal(closes, atomic_load(&g_opens));
    return closes;
}

static void test_message_too_big_closes(void **state)
{
    static const size_t sizes[] = {10, 400000, 10};
    client c = {.sizes = sizes, .nsizes = 3};
    int closes;

    (void)state;
    closes = wait_all_closed(); /* earlier tests' connections may still be closing */
    run_client(&c, verso_rest_port(g_env.srv), "/_echo", "verso-echo");
    assert_true(c.established);
    assert_true(c.closed);
    assert_int_equal(c.echoed, 1);
    assert_int_equal(wait_all_closed(), closes + 1);
}

static void test_wrong_path_refused(void **state)
{
    static const size_t sizes[] = {1};
    client c = {.sizes = sizes, .nsizes = 1};

    (void)state;
    run_client(&c, verso_rest_port(g_env.srv), "/_other", "verso-echo");
    assert_false(c.established);
}

static void test_wake_runs_tick(void **state)
{
    int before = atomic_load(&g_ticks);

    (void)state;
    verso_rest_wake(g_env.srv);
    for (int i = 0; i < 500 && atomic_load(&g_ticks) == before; i++)
        pause_ms(2);
    assert_true(atomic_load(&g_ticks) > before);
}

static void test_status_and_metrics_extras(void **state)
{
    rt_resp r;
    cJSON *j;

    (void)state;
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_status", NULL, NULL), 200);
    j = rc_json(&r);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "echo"), "ok")));
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_info", NULL, NULL), 200);
    j = rc_json(&r);
    assert_non_null(cJSON_GetObjectItem(j, "echo"));
    assert_non_null(cJSON_GetObjectItem(j, "tables"));
    cJSON_Delete(j);
    rt_resp_free(&r);
    assert_int_equal(rc_call(&r, &g_env, "GET", "/_metrics", NULL, NULL), 200);
    assert_non_null(strstr(r.body, "verso_echo_test 1\n"));
    assert_non_null(strstr(r.body, "verso_websockets_total "));
    rt_resp_free(&r);
}

/* A handler with a role: refused without the token, served with it. */
static void test_role_checked_at_upgrade(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    static const size_t sizes[] = {42};
    client c = {.sizes = sizes, .nsizes = 1}, d = {.sizes = sizes, .nsizes = 1};
    char why[128], *cfg;
    verso_rest *srv = NULL;

    (void)state;
    /* sha256("repl-secret") */
    cfg = rc_write_file("rest_ws.conf", "token "
                                        "bd85747ec61de103b97888b9eec32b9a616ce9681532af03"
                                        "8164ff120dafecfc replicate\n");
    o.ws_handlers = k_handlers;
    o.nws_handlers = 2;
    o.db_path = g_env.path;
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    g_token = NULL;
    run_client(&c, verso_rest_port(srv), "/_guarded", "verso-guarded");
    assert_false(c.established);
    g_token = "repl-secret";
    run_client(&d, verso_rest_port(srv), "/_guarded", "verso-guarded");
    g_token = NULL;
    assert_true(d.established);
    assert_int_equal(d.echoed, 1);
    assert_false(d.mismatch);
    verso_rest_stop(srv);
    free(cfg);
}

/* ---- a raw client: the answer to a refused upgrade, byte for byte ---- */

static const char *find_ci(const char *hay, const char *needle)
{
    for (size_t n = strlen(needle); *hay; hay++)
        if (!strncasecmp(hay, needle, n))
            return hay;
    return NULL;
}

/* Reads one HTTP answer (headers and a Content-Length body) into buf. */
static size_t read_answer(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    const char *eoh = NULL, *cl;
    ssize_t n;

    while (len + 1 < cap && (n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        buf[len] = '\0';
        if (!eoh && (eoh = strstr(buf, "\r\n\r\n")))
            eoh += 4;
        cl = eoh ? find_ci(buf, "content-length:") : NULL;
        if (cl && cl < eoh && len >= (size_t)(eoh - buf) + strtoul(cl + 15, NULL, 10))
            break;
    }
    buf[len] = '\0';
    return len;
}

static void raw_upgrade_as(int port, const char *path, const char *proto, const char *token,
                           char *ans, size_t cap);

/* Sends a WebSocket upgrade for path (token NULL = none) on a new connection
 * and reads the answer into ans. */
static void raw_upgrade(int port, const char *path, const char *token, char *ans, size_t cap)
{
    raw_upgrade_as(port, path, "verso-guarded", token, ans, cap);
}

static void raw_upgrade_proto(int port, const char *path, const char *proto, char *ans, size_t cap)
{
    raw_upgrade_as(port, path, proto, NULL, ans, cap);
}

static void raw_upgrade_as(int port, const char *path, const char *proto, const char *token,
                           char *ans, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    char req[1024], auth[160] = "";
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n%s\r\n",
                 path, proto, auth);
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    read_answer(fd, ans, cap);
    close(fd);
}

static int health(int port)
{
    char url[64];
    rt_resp r;
    int status;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/_health", port);
    rt_request(&r, "GET", url, NULL, 0, NULL);
    status = (int)r.status;
    rt_resp_free(&r);
    return status;
}

/* The status code of an answer ("HTTP/1.x NNN ..."), 0 if none. */
static int status_of(const char *ans)
{
    return strncmp(ans, "HTTP/1.", 7) == 0 && ans[8] == ' ' ? atoi(ans + 9) : 0;
}

static void assert_refused(const char *ans, int status, const char *code)
{
    cJSON *j;
    const char *body = strstr(ans, "\r\n\r\n");

    assert_int_equal(status_of(ans), status);
    assert_non_null(find_ci(ans, "content-type: application/json"));
    assert_null(find_ci(ans, "sec-websocket-accept"));
    assert_non_null(body);
    j = cJSON_Parse(body + 4);
    assert_non_null(j);
    assert_string_equal(rc_error_code(j), code);
    cJSON_Delete(j);
}

/* The replication endpoint is added to a server's own endpoints and
 * callbacks, not written over them: both WebSockets work, both status
 * members and metrics appear, and the server's own tick still runs. */
static void test_sync_master_mount_adds(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_sync_master *m = NULL;
    static const size_t sizes[] = {5};
    client c = {.sizes = sizes, .nsizes = 1};
    verso_rest *srv = NULL;
    char why[128], ans[1024];
    int ticks;
    rt_resp r;
    h_env_like env;

    (void)state;
    o.port = VERSO_REST_PORT_ANY;
    o.db_path = g_env.path;
    o.ws_handlers = k_handlers;
    o.nws_handlers = 2;
    o.on_tick = on_tick;
    o.tick_ms = 20;
    o.status_json = status_json;
    o.metrics_text = metrics_text;
    assert_int_equal(verso_sync_master_new(&m, g_env.path, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso_sync_master_mount(m, &o), 0);
    assert_int_equal(verso_sync_master_mount(m, &o), VERSO_EINVAL); /* once */
    assert_int_equal(o.nws_handlers, 3);
    assert_true(o.tick_ms <= 20);
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    env = (h_env_like){verso_rest_port(srv)};
    run_client(&c, env.port, "/_echo", "verso-echo");
    assert_int_equal(c.echoed, 1);
    raw_upgrade_proto(env.port, "/_sync", "verso-sync.1", ans, sizeof(ans));
    assert_int_equal(status_of(ans), 101);
    ticks = atomic_load(&g_ticks);
    for (int i = 0; i < 300 && atomic_load(&g_ticks) < ticks + 3; i++)
        pause_ms(10);
    assert_true(atomic_load(&g_ticks) >= ticks + 3);
    {
        char url[96];
        cJSON *j;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/_status", env.port);
        assert_int_equal(rt_request(&r, "GET", url, NULL, 0, NULL), 0);
        j = cJSON_Parse(r.body);
        assert_non_null(j);
        assert_non_null(cJSON_GetObjectItem(j, "echo"));
        assert_non_null(cJSON_GetObjectItem(j, "replication"));
        cJSON_Delete(j);
        rt_resp_free(&r);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/_metrics", env.port);
        assert_int_equal(rt_request(&r, "GET", url, NULL, 0, NULL), 0);
        assert_non_null(strstr(r.body, "verso_echo_test 1\n"));
        assert_non_null(strstr(r.body, "verso_sync_slaves "));
        rt_resp_free(&r);
    }
    verso_rest_stop(srv);
    verso_sync_master_close(m);
}

/* ---- on_close runs on the service thread, also when the server stops ---- */

static pthread_t g_service;
static atomic_int g_thread_opens, g_thread_closes, g_closed_elsewhere;

static int thread_open(verso_ws *ws, void **conn, void *arg)
{
    (void)conn;
    (void)arg;
    g_service = pthread_self();
    atomic_fetch_add(&g_thread_opens, 1);
    verso_ws_want_write(ws);
    return 0;
}

/* Writes until the peer, which never reads, chokes the connection: the close
 * frame of a stopping server cannot go out either. */
static int thread_flood(verso_ws *ws, void *conn, void *arg)
{
    static char chunk[65536];

    (void)conn;
    (void)arg;
    while (!verso_ws_choked(ws))
        if (verso_ws_write(ws, chunk, sizeof(chunk)) < 0)
            return -1;
    verso_ws_want_write(ws);
    return 0;
}

static void thread_close(verso_ws *ws, void *conn, void *arg)
{
    (void)ws;
    (void)conn;
    (void)arg;
    if (!pthread_equal(pthread_self(), g_service))
        atomic_fetch_add(&g_closed_elsewhere, 1);
    atomic_fetch_add(&g_thread_closes, 1);
}

static const verso_ws_handler k_thread_handler[] = {
    {.path = "/_t",
     .subprotocol = "verso-t",
     .on_open = thread_open,
     .on_writeable = thread_flood,
     .on_close = thread_close},
};

/* Opens a WebSocket on /_t and returns the socket, never read again. */
static int raw_websocket(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct timeval tv = {5, 0};
    char req[512], ans[1024];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    n = snprintf(req, sizeof(req),
                 "GET /_t HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: verso-t\r\n\r\n");
    assert_int_equal(send(fd, req, (size_t)n, 0), n);
    n = (int)recv(fd, ans, sizeof(ans) - 1, 0);
    assert_true(n > 12);
    ans[n] = '\0';
    assert_int_equal(status_of(ans), 101);
    return fd;
}

/* rest.h promises that callbacks run on the service thread: so does
 * on_close of connections still open when the server stops, whether the
 * peer answers the close frame or never reads again. */
static void test_on_close_on_service_thread_at_stop(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    verso_rest *srv = NULL;
    char why[128];
    int fds[3];

    (void)state;
    o.ws_handlers = k_thread_handler;
    o.nws_handlers = 1;
    o.db_path = g_env.path;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    for (int i = 0; i < 3; i++)
        fds[i] = raw_websocket(verso_rest_port(srv));
    for (int i = 0; i < 500 && atomic_load(&g_thread_opens) < 3; i++)
        pause_ms(10);
    assert_int_equal(atomic_load(&g_thread_opens), 3);
    verso_rest_stop(srv); /* the raw peers never answer the close frame */
    assert_int_equal(atomic_load(&g_thread_closes), 3);
    assert_int_equal(atomic_load(&g_closed_elsewhere), 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

/* A refused upgrade gets an HTTP answer with the REST error body (401 without
 * a token, 403 with a token whose role does not allow it), and the server
 * goes on serving. */
static void test_refused_upgrade_answers_http(void **state)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.port = VERSO_REST_PORT_ANY;
    char why[128], *cfg, ans[4096];
    verso_rest *srv = NULL;
    int port;

    (void)state;
    /* sha256("repl-secret") replicate, sha256("read-secret") read */
    cfg = rc_write_file("rest_ws_refused.conf",
                        "token bd85747ec61de103b97888b9eec32b9a616ce9681532af038164ff120dafecfc "
                        "replicate\n"
                        "token f0fd6c09405cb6d3707d04067d8509cb924e62ae66fa02067c2bc467b0d721e4 "
                        "read\n");
    o.ws_handlers = k_handlers;
    o.nws_handlers = 2;
    o.db_path = g_env.path;
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, NULL, &o, why, sizeof(why)), 0);
    port = verso_rest_port(srv);
    raw_upgrade(port, "/_guarded", NULL, ans, sizeof(ans));
    assert_refused(ans, 401, "unauthorized");
    assert_int_equal(health(port), 200);
    raw_upgrade(port, "/_guarded", "wrong-secret", ans, sizeof(ans));
    assert_refused(ans, 401, "unauthorized");
    assert_int_equal(health(port), 200);
    raw_upgrade(port, "/_guarded", "read-secret", ans, sizeof(ans));
    assert_refused(ans, 403, "forbidden");
    assert_int_equal(health(port), 200);
    raw_upgrade(port, "/_guarded", "repl-secret", ans, sizeof(ans));
    assert_int_equal(status_of(ans), 101);
    verso_rest_stop(srv);
    free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_echo),
        cmocka_unit_test(test_message_too_big_closes),
        cmocka_unit_test(test_idle_websocket_survives_header_timeout),
        cmocka_unit_test(test_wrong_path_refused),
        cmocka_unit_test(test_wake_runs_tick),
        cmocka_unit_test(test_status_and_metrics_extras),
        cmocka_unit_test(test_role_checked_at_upgrade),
        cmocka_unit_test(test_refused_upgrade_answers_http),
        cmocka_unit_test(test_on_close_on_service_thread_at_stop),
        cmocka_unit_test(test_sync_master_mount_adds),
    };
    lws_set_log_level(0, NULL);
    return cmocka_run_group_tests(tests, setup, teardown);
}
