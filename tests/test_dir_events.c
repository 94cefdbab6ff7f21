/*
 * The events WebSocket of a dir server (/_databases, subprotocol
 * verso-databases.1): the list at open, a message when a database is
 * written (through the server or by another handle on the file), created
 * or removed in DIR (seen through the one DIR watch), coalesced under a
 * burst of commits, and a heartbeat after 5 s of silence.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rest_common.h"

#define MAX_MSGS 4096

typedef struct evclient {
    pthread_t thread;
    struct lws_context *ctx;
    atomic_bool stop, established, closed, failed;
    pthread_mutex_t lock;
    char *msgs[MAX_MSGS];
    int n;
    verso_buf rx;
} evclient;

static char g_root[512], g_dir[600];
static verso_rest *g_srv;
static char g_base[64];

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

    nanosleep(&ts, NULL);
}

/* ---- the client, on a thread of its own ---- */

static int client_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                     size_t len)
{
    evclient *c = lws_get_opaque_user_data(wsi);

    (void)user;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        atomic_store(&c->established, true);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        verso_buf_append(&c->rx, in, len);
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
            return 0;
        pthread_mutex_lock(&c->lock);
        if (c->n < MAX_MSGS)
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

static const struct lws_protocols k_protocols[] = {
    {.name = "verso-databases.1", .callback = client_cb}, {0}};

static void *client_main(void *arg)
{
    evclient *c = arg;

    while (!atomic_load(&c->stop) && !atomic_load(&c->closed) && !atomic_load(&c->failed))
        lws_service(c->ctx, 0);
    return NULL;
}

static void client_start(evclient *c, const char *path)
{
    struct lws_context_creation_info info;
    struct lws_client_connect_info ci;

    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = k_protocols;
    c->ctx = lws_create_context(&info);
    assert_non_null(c->ctx);
    memset(&ci, 0, sizeof(ci));
    ci.context = c->ctx;
    ci.address = "127.0.0.1";
    ci.port = verso_rest_port(g_srv);
    ci.path = path;
    ci.host = "127.0.0.1";
    ci.origin = "127.0.0.1";
    ci.protocol = "verso-databases.1";
    ci.opaque_user_data = c;
    if (!lws_client_connect_via_info(&ci))
        atomic_store(&c->failed, true);
    pthread_create(&c->thread, NULL, client_main, c);
}

static void client_stop(evclient *c)
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

/* The first message from *from on of the type (and name, when not NULL)
 * within 10 s, parsed; *from moves past it. Fails the test otherwise. */
static cJSON *wait_msg(evclient *c, int *from, const char *type, const char *name)
{
    int64_t deadline = now_ms() + 10000;

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
        if (now_ms() > deadline)
            fail_msg("no %s message for %s within 10 s", type, name ? name : "-");
        sleep_ms(5);
    }
}

static int64_t head_in(const cJSON *j)
{
    return (int64_t)cJSON_GetObjectItem(j, "head")->valuedouble;
}

/* ---- the world ---- */

static void make_db(const char *name)
{
    char path[700];

    snprintf(path, sizeof(path), "%s/%s.db", g_dir, name);
    verso_db_close(rc_open(path));
}

static int setup(void **state)
{
    const char *tmp = getenv("VERSO_TEST_TMP");
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";

    (void)state;
    snprintf(g_root, sizeof(g_root), "%s/direvents_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(g_root));
    snprintf(g_dir, sizeof(g_dir), "%s/dir", g_root);
    assert_int_equal(mkdir(g_dir, 0700), 0);
    make_db("b");
    make_db("a");
    make_db("c");
    o.port = VERSO_REST_PORT_ANY;
    o.db_dir = g_dir;
    assert_int_equal(verso_rest_start(&g_srv, NULL, &o, why, sizeof(why)), 0);
    snprintf(g_base, sizeof(g_base), "http://127.0.0.1:%d", verso_rest_port(g_srv));
    return 0;
}

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

static int teardown(void **state)
{
    (void)state;
    verso_rest_stop(g_srv);
    nftw(g_root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static long post(const char *path, const char *body)
{
    char url[256];
    rt_resp r;
    long st;

    snprintf(url, sizeof(url), "%s%s", g_base, path);
    rt_request(&r, "POST", url, body, strlen(body), NULL);
    st = r.status;
    rt_resp_free(&r);
    return st;
}

static void assert_list(const cJSON *j, const char *const *names, size_t n)
{
    const cJSON *dbs = cJSON_GetObjectItem(j, "databases");

    assert_int_equal(cJSON_GetArraySize(dbs), (int)n);
    for (size_t i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(dbs, (int)i);
        assert_string_equal(cJSON_GetObjectItem(e, "name")->valuestring, names[i]);
        assert_int_equal(strlen(cJSON_GetObjectItem(e, "identity")->valuestring), 36);
        assert_true(cJSON_IsNumber(cJSON_GetObjectItem(e, "head")));
    }
}

/* ---- tests ---- */

static void test_list_then_changes(void **state)
{
    static const char *const abc[] = {"a", "b", "c"};
    evclient c;
    int at = 0;
    cJSON *j;
    char path[700];

    (void)state;
    client_start(&c, "/_databases");
    j = wait_msg(&c, &at, "databases", NULL);
    assert_list(j, abc, 3);
    cJSON_Delete(j);
    /* a write through the server */
    assert_int_equal(post("/db/a/items", "{\"name\":\"x\"}"), 201);
    j = wait_msg(&c, &at, "database", "a");
    assert_int_equal(head_in(j), 1);
    cJSON_Delete(j);
    /* a write by another handle on the file: seen through the DIR watch */
    snprintf(path, sizeof(path), "%s/b.db", g_dir);
    {
        verso_db *db = rc_open(path);
        rc_item it = {.name = "by-hand"};
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
        verso_db_close(db);
    }
    j = wait_msg(&c, &at, "database", "b");
    assert_int_equal(head_in(j), 1);
    cJSON_Delete(j);
    /* a database created in DIR, and one removed */
    make_db("d");
    j = wait_msg(&c, &at, "database", "d");
    assert_int_equal(head_in(j), 0);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "%s/c.db", g_dir);
    assert_int_equal(unlink(path), 0);
    j = wait_msg(&c, &at, "deleted", "c");
    cJSON_Delete(j);
    /* files that are not databases are not announced */
    snprintf(path, sizeof(path), "%s/.hidden.db", g_dir);
    make_db(".hidden");
    snprintf(path, sizeof(path), "%s/x.y.db", g_dir);
    make_db("x.y");
    assert_int_equal(post("/db/a/items", "{\"name\":\"y\"}"), 201);
    j = wait_msg(&c, &at, "database", "a");
    assert_int_equal(head_in(j), 2);
    cJSON_Delete(j);
    pthread_mutex_lock(&c.lock);
    for (int i = 0; i < c.n; i++) {
        assert_null(strstr(c.msgs[i], "hidden"));
        assert_null(strstr(c.msgs[i], "x.y"));
    }
    pthread_mutex_unlock(&c.lock);
    client_stop(&c);
    /* a new subscriber gets the list as it is now */
    {
        static const char *const abd[] = {"a", "b", "d"};
        client_start(&c, "/_databases");
        at = 0;
        j = wait_msg(&c, &at, "databases", NULL);
        assert_list(j, abd, 3);
        assert_int_equal(head_in(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "databases"), 0)), 2);
        cJSON_Delete(j);
        client_stop(&c);
    }
}

/* A burst of commits gives fewer messages than commits, the last one at the final head. */
static void test_coalesced(void **state)
{
    char path[700];
    evclient c;
    int at = 0, count = 0;
    int64_t last = -1, deadline;
    cJSON *j;
    verso_db *db;

    (void)state;
    client_start(&c, "/_databases");
    cJSON_Delete(wait_msg(&c, &at, "databases", NULL));
    snprintf(path, sizeof(path), "%s/a.db", g_dir);
    db = rc_open(path);
    for (int i = 0; i < 200; i++) {
        rc_item it = {.name = "burst"};
        assert_int_equal(verso_record_insert(db, &rc_item_def, &it), 0);
    }
    verso_db_close(db);
    deadline = now_ms() + 10000;
    while (last != 200 && now_ms() < deadline) {
        j = wait_msg(&c, &at, "database", "a");
        last = head_in(j);
        count++;
        cJSON_Delete(j);
    }
    assert_int_equal(last, 200);
    assert_true(count < 200);
    client_stop(&c);
}

static void test_heartbeat(void **state)
{
    evclient c;
    int at = 0;
    int64_t t0;

    (void)state;
    client_start(&c, "/_databases");
    cJSON_Delete(wait_msg(&c, &at, "databases", NULL));
    t0 = now_ms();
    cJSON_Delete(wait_msg(&c, &at, "heartbeat", NULL));
    assert_true(now_ms() - t0 >= 4000);
    client_stop(&c);
}

/* The upgrade needs the subprotocol; the path is exact. */
static void test_refusals(void **state)
{
    evclient c;

    (void)state;
    int64_t deadline = now_ms() + 10000;

    client_start(&c, "/_databases/x");
    while (!atomic_load(&c.failed) && !atomic_load(&c.closed) && !atomic_load(&c.established) &&
           now_ms() < deadline)
        sleep_ms(5);
    assert_false(atomic_load(&c.established));
    client_stop(&c);
    {
        char url[128];
        rt_resp r;
        snprintf(url, sizeof(url), "%s/_databases", g_base);
        const char *h[] = {
            "Upgrade: websocket", "Connection: Upgrade",
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", NULL};
        rt_request(&r, "GET", url, NULL, 0, h);
        assert_int_equal(r.status, 400);
        assert_non_null(strstr(r.body, "verso-databases.1"));
        rt_resp_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_list_then_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
    };

    lws_set_log_level(0, NULL);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
