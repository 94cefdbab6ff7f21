/* rest/server.c - server lifecycle: options, the libwebsockets context, the
 * service thread, ticks and wake-ups. The lws callback switch lives here and
 * only dispatches. */
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "orm/service.h"
#include "rest/dir.h"
#include "rest/internal.h"
#include "rest/lwslog.h"

typedef struct tick {
    lws_sorted_usec_list_t sul;  /* every tick_ms */
    lws_sorted_usec_list_t once; /* verso_rest_wake_after() */
    verso_rest *srv;
} tick;

static void why_set(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (!why || !whylen)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

static void run_tick(verso_rest *srv)
{
    if (srv->opts.on_tick)
        srv->opts.on_tick(srv, srv->opts.tick_arg);
}

static void tick_fired(lws_sorted_usec_list_t *sul)
{
    tick *t = lws_container_of(sul, tick, sul);

    run_tick(t->srv);
    lws_sul_schedule(t->srv->ctx, 0, &t->sul, tick_fired,
                     (lws_usec_t)t->srv->opts.tick_ms * LWS_US_PER_MS);
}

static void once_fired(lws_sorted_usec_list_t *sul)
{
    tick *t = lws_container_of(sul, tick, once);

    run_tick(t->srv);
}

static void on_cancelled(verso_rest *srv)
{
    verso__reload_apply(srv);
    if (atomic_exchange(&srv->woken, 0))
        run_tick(srv);
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                         size_t len)
{
    verso_rest *srv = lws_context_user(lws_get_context(wsi));

    switch (reason) {
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
        verso__http_arm_timeout(srv, wsi, user);
        break;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: /* every upgrade is checked by ws.c */
        return verso__ws_callback(wsi, (int)reason, user, in, len);
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: /* a WebSocket bound to the HTTP protocol */
    case LWS_CALLBACK_ESTABLISHED:
        return -1;
    case LWS_CALLBACK_HTTP:
        return verso__http_request(srv, wsi, user, in);
    case LWS_CALLBACK_HTTP_BODY:
        return verso__http_body(srv, wsi, user, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return verso__http_body_done(srv, wsi, user);
    case LWS_CALLBACK_HTTP_WRITEABLE:
        return verso__http_writeable(srv, wsi, user);
    case LWS_CALLBACK_TIMER:
        return verso__http_timer(srv, wsi, user);
    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        verso__http_conn_free(srv, wsi, user);
        break;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        on_cancelled(srv);
        return 0;
    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    return verso__ws_callback(wsi, (int)reason, user, in, len);
}

static bool is_loopback(const char *host)
{
    unsigned char a[16];

    if (inet_pton(AF_INET, host, a) == 1)
        return a[0] == 127;
    if (inet_pton(AF_INET6, host, a) == 1)
        return !memcmp(a, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1", 16);
    return false;
}

/* *dst = copy of src when src is given. */
static int override(char **dst, const char *src)
{
    char *copy;

    if (!src)
        return 0;
    if (!(copy = verso__strdup(src)))
        return VERSO_ENOMEM;
    verso__free(*dst);
    *dst = copy;
    return 0;
}

/* First address of host in family, as text; false if it has none. */
static bool resolve(char *out, size_t n, const char *host, int family)
{
    struct addrinfo hints, *res = NULL;
    bool ok;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = family;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return false;
    ok =
        getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)n, NULL, 0, NI_NUMERICHOST) == 0;
    freeaddrinfo(res);
    return ok;
}

/* libwebsockets binds addresses and interface names, not host names: a name
 * such as "localhost" becomes its address (IPv4 first), so that the loopback
 * check sees what is bound. Anything else is left to libwebsockets. */
static int numeric_host(char **host)
{
    char num[INET6_ADDRSTRLEN];
    unsigned char a[16];

    if (inet_pton(AF_INET, *host, a) == 1 || inet_pton(AF_INET6, *host, a) == 1)
        return 0;
    if (!resolve(num, sizeof(num), *host, AF_INET) && !resolve(num, sizeof(num), *host, AF_INET6))
        return 0;
    return override(host, num);
}

/* The options' CORS origins replace the config file's. */
static int merge_origins(verso__config *c, const verso_rest_options *o, char *why, size_t whylen)
{
    int rc = 0;

    if (!o->ncors_origins)
        return 0;
    if (!o->cors_origins) {
        why_set(why, whylen, "cors_origins is NULL but ncors_origins is %zu", o->ncors_origins);
        return VERSO_EINVAL;
    }
    for (size_t i = 0; i < c->norigins; i++)
        verso__free(c->origins[i]);
    c->norigins = 0;
    for (size_t i = 0; rc == 0 && i < o->ncors_origins; i++)
        rc = verso__config_add_origin(c, o->cors_origins[i] ? o->cors_origins[i] : "", why, whylen);
    return rc;
}

static int merge_options(verso_rest *srv, const verso_rest_options *o, char *why, size_t whylen)
{
    verso__config *c = &srv->cfg;
    int rc = 0;

    c->port = -1;
    if (o->port < VERSO_REST_PORT_ANY || o->port > 65535) {
        why_set(why, whylen, "port %d is not a TCP port (0 to 65535)", o->port);
        return VERSO_EINVAL;
    }
    if (o->config_path && (rc = verso__config_load(c, o->config_path, why, whylen)) < 0)
        return rc;
    if ((rc = merge_origins(c, o, why, whylen)) < 0)
        return rc;
    verso__limits_merge(&c->limits, &o->limits);
    verso__limits_defaults(&c->limits);
    if (o->port > 0)
        c->port = o->port;
    else if (o->port == VERSO_REST_PORT_ANY)
        c->port = 0;
    else if (c->port < 0) /* 0: the config file's, else the default */
        c->port = VERSO_REST_PORT_DEFAULT;
    if (override(&c->host, o->host   ? o->host
                           : c->host ? NULL
                                     : "127.0.0.1") < 0 ||
        override(&c->tls_cert, o->tls_cert) < 0 || override(&c->tls_key, o->tls_key) < 0 ||
        numeric_host(&c->host) < 0)
        return VERSO_ENOMEM;
    if (!c->ngrants && !is_loopback(c->host)) {
        why_set(why, whylen,
                "refusing to serve on non-loopback address %s without an access token: "
                "add a 'token' line to the config file",
                c->host);
        return VERSO_EAUTH;
    }
    if (!c->tls_cert != !c->tls_key) {
        why_set(why, whylen, "TLS needs both a certificate and a key");
        return VERSO_EINVAL;
    }
    return 0;
}

void verso__budget_begin(verso_rest *srv)
{
    verso__budget_set(srv->db, verso__monotonic_ms() + srv->cfg.limits.query_budget_ms);
}

void verso__budget_end(verso_rest *srv)
{
    verso__budget_set(srv->db, 0);
}

static int open_db(verso_rest *srv, char *why, size_t whylen)
{
    char open_why[256] = "";
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    int rc;

    o.must_exist = true;
    o.busy_timeout_ms = srv->cfg.limits.query_budget_ms;
    if ((rc = verso_db_open(&srv->db, srv->db_path, &o, open_why, sizeof(open_why))) < 0) {
        why_set(why, whylen, "cannot open database %s: %s", srv->db_path, open_why);
        return rc;
    }
    return 0;
}

/* The file watch's commit signals, polled by this loop (adopt_signals). */
static int signal_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                           size_t len)
{
    verso_rest *srv = lws_context_user(lws_get_context(wsi));

    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (srv->watch && verso__watch_signalled(srv->watch))
            run_tick(srv);
        return 0;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
    case LWS_CALLBACK_PROTOCOL_INIT:
    case LWS_CALLBACK_PROTOCOL_DESTROY:
    case LWS_CALLBACK_GET_THREAD_ID:
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
    case LWS_CALLBACK_WSI_CREATE:
    case LWS_CALLBACK_WSI_DESTROY:
    case LWS_CALLBACK_RAW_ADOPT_FILE:
        return 0;
    default: /* nothing else is bound to this protocol */
        return -1;
    }
}

static int make_protocols(verso_rest *srv, const verso_rest_options *o)
{
    size_t n = o->nws_handlers;

    srv->protocols = verso__calloc(n + 3, sizeof(*srv->protocols));
    srv->handlers = verso__calloc(n ? n : 1, sizeof(*srv->handlers));
    if (!srv->protocols || !srv->handlers)
        return VERSO_ENOMEM;
    srv->protocols[0].name = "http";
    srv->protocols[0].callback = http_callback;
    srv->protocols[0].per_session_data_size = verso__http_pss_size();
    for (size_t i = 0; i < n; i++) {
        if (!o->ws_handlers[i].path || !o->ws_handlers[i].subprotocol)
            return VERSO_EINVAL;
        srv->handlers[i] = o->ws_handlers[i];
        srv->protocols[i + 1].name = srv->handlers[i].subprotocol;
        srv->protocols[i + 1].callback = ws_callback;
        srv->protocols[i + 1].per_session_data_size = verso__ws_pss_size();
        srv->protocols[i + 1].rx_buffer_size = 65536;
        srv->protocols[i + 1].user = &srv->handlers[i];
    }
    srv->protocols[n + 1].name = "verso-commit-signal"; /* adopt_signals(): no WebSocket's */
    srv->protocols[n + 1].callback = signal_callback;
    srv->nhandlers = n;
    return 0;
}

/* True if the file is readable and holds the PEM marker. Checked before
 * libwebsockets sees the file: its failure path leaks the TLS context. */
static bool pem_has(const char *path, const char *marker)
{
    char line[256];
    bool found = false;
    FILE *f = fopen(path, "r");

    while (f && !found && fgets(line, sizeof(line), f))
        found = strstr(line, "-----BEGIN ") && strstr(line, marker);
    if (f)
        fclose(f);
    return found;
}

static int check_tls_files(const verso__config *c, char *why, size_t whylen)
{
    if (!c->tls_cert)
        return 0;
    if (!pem_has(c->tls_cert, "CERTIFICATE-----") || !pem_has(c->tls_key, "PRIVATE KEY-----")) {
        why_set(why, whylen, "TLS needs a readable PEM certificate (%s) and private key (%s)",
                c->tls_cert, c->tls_key);
        return VERSO_ENET;
    }
    return 0;
}

/*
 * The largest TCP segment the server sends. On loopback the MSS is ~64 KB, as large as the
 * window a receiver that reads slowly offers (a slave reads its socket only between applies:
 * the flow control). Linux's sender then waits for a window of a whole segment, the receiver
 * announces none larger than the one it already did, and only the persist timer's probe, 200 ms
 * later, moves the data: a slave that fell behind stalled for 200 ms at a time while the
 * master's socket held a megabyte. A quarter of the window a drained receiver offers always
 * fits. Real networks have an MTU far below this and are unaffected.
 */
#define MAX_SEGMENT 16384

/* Whether fd is a listening TCP socket on port. */
static bool listens_on(int fd, int port)
{
    struct sockaddr_storage a;
    socklen_t n = sizeof(a);
    int v = 0;
    socklen_t vn = sizeof(v);

    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vn) < 0 || !v)
        return false;
    vn = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &vn) < 0 || v != IPPROTO_TCP)
        return false;
    if (getsockname(fd, (struct sockaddr *)&a, &n) < 0)
        return false;
    if (a.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&a)->sin_port) == port;
    if (a.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&a)->sin6_port) == port;
    return false;
}

/* Caps fd's segment size if it is a listening TCP socket on port. */
static void cap_listener(int fd, int port)
{
    int mss = MAX_SEGMENT;

    if (listens_on(fd, port))
        (void)setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss));
}

/*
 * Caps the segment size of the connections the server accepts: set on the listening sockets,
 * which they inherit it from (libwebsockets 4.1 does not hand those out, so they are found
 * among the process's descriptors by their port).
 */
static void cap_segments(const verso_rest *srv)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    if (!d) { /* no /proc: the lowest descriptors, where a new context's sockets are */
        for (int fd = 3; fd < 4096; fd++)
            cap_listener(fd, srv->port);
        return;
    }
    while ((e = readdir(d))) {
        int fd = atoi(e->d_name);
        if (fd > 2 && fd != dirfd(d))
            cap_listener(fd, srv->port);
    }
    closedir(d);
}

static int make_context(verso_rest *srv, char *why, size_t whylen)
{
    struct lws_context_creation_info info;
    const verso_rest_limits *l = &srv->cfg.limits;
    size_t hdr = l->max_url + 8192;

    verso__lws_log_init();
    memset(&info, 0, sizeof(info));
    info.port = srv->cfg.port;
    info.iface = srv->cfg.host;
    info.protocols = srv->protocols;
    info.user = srv;
    info.alpn = "http/1.1";
    info.max_http_header_data = (unsigned short)(hdr > 65535 ? 65535 : hdr);
    info.timeout_secs = (unsigned)(l->header_timeout_ms + 999) / 1000;
    info.keepalive_timeout = (int)info.timeout_secs;
    info.timeout_secs_ah_idle = info.timeout_secs;
    info.options = LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND;
    if (!strchr(srv->cfg.host, ':'))
        info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
    if (srv->cfg.tls_cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->cfg.tls_cert;
        info.ssl_private_key_filepath = srv->cfg.tls_key;
        srv->tls = true;
    }
    srv->ctx = lws_create_context(&info);
    if (!srv->ctx || !(srv->vhost = lws_get_vhost_by_name(srv->ctx, "default"))) {
        why_set(why, whylen, "cannot listen on %s:%d%s", srv->cfg.host, srv->cfg.port,
                srv->tls ? " (or the TLS certificate/key is unusable)" : "");
        return VERSO_ENET;
    }
    srv->port = lws_get_vhost_listen_port(srv->vhost);
    cap_segments(srv);
    return 0;
}

static int start_tick(verso_rest *srv)
{
    tick *t;

    if (!srv->opts.on_tick)
        return 0;
    if (!(t = verso__calloc(1, sizeof(*t))))
        return VERSO_ENOMEM;
    t->srv = srv;
    srv->tick_sul = t;
    if (srv->opts.tick_ms > 0)
        lws_sul_schedule(srv->ctx, 0, &t->sul, tick_fired,
                         (lws_usec_t)srv->opts.tick_ms * LWS_US_PER_MS);
    return 0;
}

static void watch_fired(void *arg)
{
    verso_rest_wake(arg);
}

/*
 * A commit made through verso is seen by this loop itself (a copy of the
 * watch's signal descriptor, adopted as a raw file): one thread hop less
 * than through the watch's thread. Before the service thread starts. If
 * libwebsockets refuses it, the watch's thread goes on doing it.
 */
static void adopt_signals(verso_rest *srv)
{
    int fd = srv->watch ? verso__watch_signal_fd(srv->watch) : -1;
    lws_sock_file_fd_type u;

    if (fd < 0 || (fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
        return;
    u.filefd = fd;
    if (lws_adopt_descriptor_vhost(srv->vhost, LWS_ADOPT_RAW_FILE_DESC, u, "verso-commit-signal",
                                   NULL))
        verso__watch_signals_elsewhere(srv->watch);
    else
        close(fd);
}

/* Without file events (see verso__watch_start) the server runs on its ticks alone. */
static void start_watch(verso_rest *srv)
{
    if (srv->opts.on_tick && srv->opts.tick_on_change && srv->db_path)
        verso__watch_start(&srv->watch, srv->db_path, watch_fired, srv);
}

/* On stop, every open WebSocket is closed with a close frame (1001, going
 * away) rather than dropped: the service runs on until they are closed or
 * for at most a second. */
static void wake_fired(lws_sorted_usec_list_t *sul)
{
    (void)sul;
}

/* On stop, requests whose body is still arriving are read and answered
 * first, and streamed answers sent, for at most 10 s: a client is not cut
 * off mid-upload or mid-download. */
static void drain_requests(verso_rest *srv)
{
    lws_sorted_usec_list_t wake;
    int64_t t0 = verso__monotonic_ms();

    memset(&wake, 0, sizeof(wake));
    while ((srv->metrics.requests_reading || srv->metrics.answers_writing) &&
           verso__monotonic_ms() - t0 < 10000) {
        lws_sul_schedule(srv->ctx, 0, &wake, wake_fired, 50 * LWS_US_PER_MS);
        if (lws_service(srv->ctx, 0) < 0)
            break;
    }
    lws_sul_schedule(srv->ctx, 0, &wake, wake_fired, LWS_SET_TIMER_USEC_CANCEL);
}

static void close_websockets(verso_rest *srv)
{
    lws_sorted_usec_list_t wake;
    struct timespec t0, t;

    if (!srv->metrics.ws_open)
        return;
    memset(&wake, 0, sizeof(wake));
    srv->going_away = true;
    for (size_t i = 0; i < srv->nhandlers; i++)
        lws_callback_on_writable_all_protocol(srv->ctx, &srv->protocols[i + 1]);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do { /* the timer bounds each wait when a peer never answers */
        lws_sul_schedule(srv->ctx, 0, &wake, wake_fired, 50 * LWS_US_PER_MS);
        if (lws_service(srv->ctx, 0) < 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (srv->metrics.ws_open &&
             (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 1000);
    lws_sul_schedule(srv->ctx, 0, &wake, wake_fired, LWS_SET_TIMER_USEC_CANCEL);
}

/* The context is destroyed on the service thread, so every callback,
 * on_close included, runs there. Other threads only wake it, under
 * ctx_lock and while ctx_alive: none is inside lws_cancel_service() once the
 * destruction starts. */
static void *service_main(void *arg)
{
    verso_rest *srv = arg;

    while (!atomic_load(&srv->stop))
        if (lws_service(srv->ctx, 0) < 0)
            break;
    close_websockets(srv);
    drain_requests(srv);
    pthread_mutex_lock(&srv->ctx_lock);
    srv->ctx_alive = false;
    pthread_mutex_unlock(&srv->ctx_lock);
    lws_context_destroy(srv->ctx);
    srv->ctx = NULL;
    return NULL;
}

/* Wakes the service thread if its context still runs. Any thread. */
static void wake_service(verso_rest *srv)
{
    pthread_mutex_lock(&srv->ctx_lock);
    if (srv->ctx_alive)
        lws_cancel_service(srv->ctx);
    pthread_mutex_unlock(&srv->ctx_lock);
}

/* Spool files of servers that died (spool.c). */
static void sweep_spool(const verso_rest *srv)
{
    char dir[4096];

    verso__spool_sweep(verso__spool_dir(dir, sizeof(dir), srv));
}

/* The part of a server that answers requests: options, config, database. */
static int rest_new(verso_rest **out, verso_db *db, const verso_rest_options *opts, char *why,
                    size_t whylen)
{
    verso_rest *srv = NULL;
    const char *path;
    int rc = 0;

    *out = NULL;
    why_set(why, whylen, "invalid arguments");
    path = opts && opts->db_path ? opts->db_path : db ? verso_db_path(db) : NULL;
    if (!opts || !path == !opts->db_dir || opts->version > VERSO_OPTIONS_VERSION) {
        if (opts && path && opts->db_dir)
            why_set(why, whylen, "a database (db or db_path) or a directory (db_dir), not both");
        return VERSO_EINVAL;
    }
    if (!(srv = verso__calloc(1, sizeof(*srv))))
        return VERSO_ENOMEM;
    pthread_mutex_init(&srv->ctx_lock, NULL);
    pthread_cond_init(&srv->reload_done, NULL);
    srv->opts = *opts;
    srv->metrics.started_ms = verso_now_ms();
    if (opts->db_dir) {
        if ((rc = merge_options(srv, opts, why, whylen)) == 0)
            rc = verso__dir_open(srv, why, whylen);
    } else if (!(srv->db_path = verso__strdup(path)))
        rc = VERSO_ENOMEM;
    else if ((rc = merge_options(srv, opts, why, whylen)) == 0)
        rc = open_db(srv, why, whylen);
    if (rc < 0) {
        verso_rest_stop(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

int verso__rest_open_offline(verso_rest **out, verso_db *db, const verso_rest_options *opts,
                             char *why, size_t whylen)
{
    int rc = rest_new(out, db, opts, why, whylen);

    if (rc == 0)
        why_set(why, whylen, "%s", "");
    return rc;
}

int verso_rest_start(verso_rest **out, verso_db *db, const verso_rest_options *opts, char *why,
                     size_t whylen)
{
    verso_rest *srv = NULL;
    int rc = 0;

    if (!out) {
        why_set(why, whylen, "invalid arguments");
        return VERSO_EINVAL;
    }
    if ((rc = rest_new(&srv, db, opts, why, whylen)) < 0) {
        *out = NULL;
        return rc;
    }
    if ((rc = make_protocols(srv, &srv->opts)) < 0) {
        why_set(why, whylen, "bad WebSocket handler");
        goto done;
    }
    if ((rc = check_tls_files(&srv->cfg, why, whylen)) < 0 ||
        (rc = make_context(srv, why, whylen)) < 0 || (rc = start_tick(srv)) < 0)
        goto done;
    pthread_mutex_lock(&srv->ctx_lock); /* the watcher's thread wakes it from now on */
    srv->ctx_alive = true;
    pthread_mutex_unlock(&srv->ctx_lock);
    sweep_spool(srv);
    start_watch(srv);
    adopt_signals(srv);
    if (pthread_create(&srv->thread, NULL, service_main, srv)) {
        rc = VERSO_ENOMEM;
        goto done;
    }
    srv->thread_started = 1;
    why_set(why, whylen, "%s", "");
done:
    if (rc < 0) {
        verso_rest_stop(srv);
        srv = NULL;
    }
    *out = srv;
    return rc;
}

void verso_rest_stop(verso_rest *srv)
{
    if (!srv)
        return;
    /* The service ends first (routes read the watcher's figures), then the
     * watcher: its wake-ups meanwhile find the context gone (ctx_alive). */
    if (srv->thread_started) {
        atomic_store(&srv->stop, 1);
        wake_service(srv);
        pthread_join(srv->thread, NULL);
    }
    pthread_mutex_lock(&srv->ctx_lock);
    srv->ctx_alive = false;
    pthread_mutex_unlock(&srv->ctx_lock);
    verso__watch_stop(srv->watch);
    if (srv->ctx) /* never served */
        lws_context_destroy(srv->ctx);
    verso__dir_close(srv->dir);
    pthread_mutex_destroy(&srv->ctx_lock);
    pthread_cond_destroy(&srv->reload_done);
    verso_db_close(srv->db);
    verso__config_free(&srv->cfg);
    verso__free(srv->tick_sul);
    verso__free(srv->protocols);
    verso__free(srv->handlers);
    verso__free(srv->db_path);
    verso_buf_free(&srv->out);
    verso_buf_free(&srv->body);
    verso_buf_free(&srv->location);
    verso_buf_free(&srv->link);
    verso_buf_free(&srv->scratch);
    verso__free(srv->params);
    verso__free(srv);
}

int verso_rest_port(const verso_rest *srv)
{
    return srv ? srv->port : -1;
}

const char *verso_rest_host(const verso_rest *srv)
{
    return srv ? srv->cfg.host : NULL;
}

bool verso_rest_tls(const verso_rest *srv)
{
    return srv && srv->tls;
}

void verso_rest_wake(verso_rest *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->woken, 1);
    wake_service(srv);
}

void verso_rest_wake_after(verso_rest *srv, int ms)
{
    tick *t = srv ? srv->tick_sul : NULL;

    if (t)
        lws_sul_schedule(srv->ctx, 0, &t->once, once_fired,
                         (lws_usec_t)(ms > 0 ? ms : 0) * LWS_US_PER_MS);
}

verso_db *verso_rest_db(verso_rest *srv)
{
    return srv ? srv->db : NULL;
}
