/*
 * dir_common.h - shared by the tests/test_dir_*.c programs (included, not
 * linked, as rest_common.h): a temporary DIR with databases of the table
 * "items", a dir server on it in the test process, HTTP calls with an
 * optional token, and a client of the events WebSocket on a thread of its
 * own that keeps every message it hears.
 */
#ifndef VERSO_TEST_DIR_COMMON_H
#define VERSO_TEST_DIR_COMMON_H

#include <ftw.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rest_common.h"

#define DC_MAX_MSGS 4096

typedef struct dc_world {
    char root[512]; /* a temporary directory */
    char dir[600];  /* root/dir: DIR */
    verso_rest *srv;
    char base[64];
} dc_world;

static dc_world DC;

static inline int64_t dc_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline void dc_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* DIR/<name>.db with the table items. */
static inline void dc_make_db(const char *name)
{
    char path[700];

    snprintf(path, sizeof(path), "%s/%s.db", DC.dir, name);
    verso_db_close(rc_open(path));
}

/* A new root and DIR. */
static inline void dc_make_dirs(const char *tag)
{
    const char *tmp = getenv("VERSO_TEST_TMP");

    memset(&DC, 0, sizeof(DC));
    snprintf(DC.root, sizeof(DC.root), "%s/%s_XXXXXX", tmp && *tmp ? tmp : "/tmp", tag);
    assert_non_null(mkdtemp(DC.root));
    snprintf(DC.dir, sizeof(DC.dir), "%s/dir", DC.root);
    assert_int_equal(mkdir(DC.dir, 0700), 0);
}

/* The server on DIR; o may be NULL. */
static inline void dc_start(verso_rest_options *o)
{
    verso_rest_options d = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    if (!o)
        o = &d;
    o->port = VERSO_REST_PORT_ANY;
    o->db_dir = DC.dir;
    if (verso_rest_start(&DC.srv, NULL, o, why, sizeof(why)) < 0)
        fail_msg("dir server: %s", why);
    snprintf(DC.base, sizeof(DC.base), "http://127.0.0.1:%d", verso_rest_port(DC.srv));
}

static inline int dc_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static inline void dc_stop(void)
{
    verso_rest_stop(DC.srv);
    DC.srv = NULL;
    nftw(DC.root, dc_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* A request with token (NULL: none) and content type (NULL: none). */
static inline long dc_call(rt_resp *r, const char *method, const char *path, const char *token,
                           const char *ctype, const char *body, size_t nbody)
{
    char url[8192], auth[160], ct[160];
    const char *h[3] = {NULL, NULL, NULL};
    int n = 0;

    if (token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        h[n++] = auth;
    }
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        h[n++] = ct;
    }
    snprintf(url, sizeof(url), "%s%s", DC.base, path);
    rt_request(r, method, url, body, body ? nbody : 0, h);
    return r->status;
}

static inline long dc_status(const char *method, const char *path, const char *token,
                             const char *body)
{
    rt_resp r;
    long st = dc_call(&r, method, path, token, NULL, body, body ? strlen(body) : 0);

    rt_resp_free(&r);
    return st;
}

/* ---- the events client ---- */

typedef struct dc_events {
    pthread_t thread;
    struct lws_context *ctx;
    atomic_bool stop, established, closed, failed;
    pthread_mutex_t lock;
    char *msgs[DC_MAX_MSGS];
    int n;
    verso_buf rx;
    const char *token;
} dc_events;

static inline int dc_events_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                               void *in, size_t len)
{
    dc_events *c = lws_get_opaque_user_data(wsi);

    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        if (c->token) {
            char v[160];
            int n = snprintf(v, sizeof(v), "Bearer %s", c->token);
            unsigned char **p = in;
            if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (unsigned char *)v,
                                             n, p, *p + len))
                return -1;
        }
        return 0;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        atomic_store(&c->established, true);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        verso_buf_append(&c->rx, in, len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        pthread_mutex_lock(&c->lock);
        if (c->n < DC_MAX_MSGS)
            c->msgs[c->n++] = strndup(c->rx.data ? c->rx.data : "", c->rx.len);
        pthread_mutex_unlock(&c->lock);
        verso_buf_clear(&c->rx);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        atomic_store(&c->failed, true);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        atomic_store(&c->closed, true);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols dc_protocols[] = {
    {.name = "verso-databases.1", .callback = dc_events_cb}, {0}};

static inline void *dc_events_main(void *arg)
{
    dc_events *c = arg;

    while (!atomic_load(&c->stop) && !atomic_load(&c->closed) && !atomic_load(&c->failed))
        lws_service(c->ctx, 0);
    return NULL;
}

/* Connects to path (the events WebSocket: "/_databases") with token (NULL: none). */
static inline void dc_events_start(dc_events *c, const char *path, const char *token)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;

    memset(c, 0, sizeof(*c));
    c->token = token;
    pthread_mutex_init(&c->lock, NULL);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = dc_protocols;
    c->ctx = lws_create_context(&info);
    assert_non_null(c->ctx);
    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.address = "127.0.0.1";
    ci.port = verso_rest_port(DC.srv);
    ci.path = path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.protocol = "verso-databases.1";
    ci.opaque_user_data = c;
    if (!lws_client_connect_via_info(&ci))
        atomic_store(&c->failed, true);
    pthread_create(&c->thread, NULL, dc_events_main, c);
}

static inline void dc_events_stop(dc_events *c)
{
    atomic_store(&c->stop, true);
    lws_cancel_service(c->ctx);
    pthread_join(c->thread, NULL);
    lws_context_destroy(c->ctx);
    for (int i = 0; i < c->n; i++)
        free(c->msgs[i]);
    verso_buf_free(&c->rx);
    pthread_mutex_destroy(&c->lock);
}

/* Waits (10 s at most) until the connection is established or refused; whether it is. */
static inline bool dc_events_wait_open(dc_events *c)
{
    int64_t deadline = dc_now_ms() + 10000;

    while (!atomic_load(&c->established) && !atomic_load(&c->failed) && !atomic_load(&c->closed) &&
           dc_now_ms() < deadline)
        dc_sleep_ms(5);
    return atomic_load(&c->established);
}

/* The first message from *from on of the type (and name, when not NULL)
 * within 10 s, parsed; *from moves past it. Fails the test otherwise. */
static inline cJSON *dc_wait_msg(dc_events *c, int *from, const char *type, const char *name)
{
    int64_t deadline = dc_now_ms() + 10000;

    for (;;) {
        pthread_mutex_lock(&c->lock);
        for (; *from < c->n; (*from)++) {
            cJSON *j = cJSON_Parse(c->msgs[*from]);
            cJSON *t = cJSON_GetObjectItem(j, "type"), *nm = cJSON_GetObjectItem(j, "name");
            assert_non_null(t);
            if (!strcmp(t->valuestring, type) &&
                (!name || (nm && !strcmp(nm->valuestring, name)))) {
                (*from)++;
                pthread_mutex_unlock(&c->lock);
                return j;
            }
            cJSON_Delete(j);
        }
        pthread_mutex_unlock(&c->lock);
        if (dc_now_ms() > deadline)
            fail_msg("no %s message for %s within 10 s", type, name ? name : "-");
        dc_sleep_ms(5);
    }
}

static inline int64_t dc_head_in(const cJSON *j)
{
    return (int64_t)cJSON_GetObjectItem(j, "head")->valuedouble;
}

/* The names of the list message j, comma-separated, into out. */
static inline const char *dc_list_names(char *out, size_t n, const cJSON *j)
{
    const cJSON *e;

    out[0] = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "databases"))
        snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "",
                 cJSON_GetObjectItem(e, "name")->valuestring);
    return out;
}

#endif
