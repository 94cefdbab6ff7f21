/*
 * The slave against a hand-written master that speaks protocol.md only:
 * members and message types the slave does not know are ignored, the
 * stream is applied with the master's ids and versions, each slave commit
 * is acknowledged, and a batch that does not continue where the previous
 * one ended drops the link (and the slave reconnects and resumes); a
 * resynchronisation the master asked for is done once.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

#define ID "5e0a7c2e-3b8f-4d1e-9a6b-2f4c8d0e1a37"

typedef struct fake {
    atomic_int connections;
    atomic_llong acked;
    int bad_from; /* on the first connection, the second batch starts at a wrong version */
    int resync;   /* the first subscription is told to resync; the connection closes at the ack */
    atomic_int subscribes;
    atomic_int later_resets;   /* subscriptions with reset: true after the first connection */
    atomic_llong later_cursor; /* the cursor of the last one after the first connection */
} fake;

typedef struct fconn {
    int step; /* next message to send */
    bool subscribed;
    bool resync_sent;
    int64_t cursor; /* from the subscribe */
    int n;          /* connection number */
} fconn;

static const char *const hello =
    "{\"type\":\"hello\",\"protocol\":1,\"identity\":\"" ID "\",\"head\":3,\"horizon\":0,"
    "\"heartbeat_ms\":5000,\"time\":1,\"added_later\":{\"x\":[1,2]}}";
static const char *const unknown = "{\"type\":\"added_later\",\"anything\":true}";
static const char *const schema = "{\"type\":\"schema\",\"tables\":[{\"name\":\"t\",\"columns\":["
                                  "{\"name\":\"id\",\"type\":\"int64\",\"id\":true},"
                                  "{\"name\":\"version\",\"type\":\"int64\",\"version\":true},"
                                  "{\"name\":\"name\",\"type\":\"text\",\"notnull\":false}]}]}";
static const char *const batch1 =
    "{\"type\":\"changes\",\"entries\":[{\"table\":\"t\",\"id\":9007199254740993,\"version\":1,"
    "\"row\":{\"id\":9007199254740993,\"version\":1,\"name\":\"big\"},\"new_member\":1}],"
    "\"from\":0,\"to\":1,\"more\":true,\"head\":3,\"time\":2}";
static const char *const batch2 =
    "{\"type\":\"changes\",\"entries\":[{\"table\":\"t\",\"id\":2,\"version\":3,"
    "\"row\":{\"id\":2,\"version\":3,\"name\":\"two\"}}],"
    "\"from\":1,\"to\":3,\"more\":false,\"head\":3,\"time\":3}";
static const char *const resync = "{\"type\":\"resync\",\"reason\":\"identity\","
                                  "\"identity\":\"" ID "\",\"head\":3,\"horizon\":0}";
static const char *const batch2_gap =
    "{\"type\":\"changes\",\"entries\":[],\"from\":2,\"to\":3,\"more\":false,\"head\":3}";

static int f_open(verso_ws *ws, void **cp, void *arg)
{
    fake *f = arg;
    fconn *c = calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->n = atomic_fetch_add(&f->connections, 1);
    *cp = c;
    verso_ws_want_write(ws);
    return 0;
}

static int f_message(verso_ws *ws, void *cp, const void *data, size_t len, void *arg)
{
    fake *f = arg;
    fconn *c = cp;
    verso_json *doc = NULL;
    const char *type;
    int64_t v = 0;

    if (verso_json_parse(&doc, data, len, 0, NULL, 0) < 0)
        return -1;
    type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "type"));
    if (type && !strcmp(type, "subscribe")) {
        verso_json_int64(&c->cursor,
                         cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "cursor"));
        c->subscribed = true;
        if (c->n > 0) {
            atomic_fetch_add(&f->later_resets, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(
                                                   verso_json_root(doc), "reset")));
            atomic_store(&f->later_cursor, c->cursor);
        }
        atomic_fetch_add(&f->subscribes, 1);
        verso_ws_want_write(ws);
    } else if (type && !strcmp(type, "ack")) {
        verso_json_int64(&v, cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "version"));
        atomic_store(&f->acked, v);
        if (f->resync && c->n == 0 && v == 3)
            verso_ws_close(ws);
    }
    verso_json_free(doc);
    return 0;
}

static int send_text(verso_ws *ws, const char *text)
{
    return verso_ws_write(ws, text, strlen(text));
}

/* hello and an unknown message; once subscribed: schema and the batches
 * from the slave's cursor (a gap on the first connection if asked). */
static int f_writeable(verso_ws *ws, void *cp, void *arg)
{
    fake *f = arg;
    fconn *c = cp;
    const char *msg = NULL;

    switch (c->step) {
    case 0:
        msg = hello;
        break;
    case 1:
        msg = unknown;
        break;
    case 2:
        if (!c->subscribed)
            return 0; /* f_message asks for writeable again */
        if (f->resync && c->n == 0 && !c->resync_sent) {
            c->resync_sent = true;
            c->subscribed = false;
            return send_text(ws, resync) < 0 ? -1 : 0; /* the slave subscribes again */
        }
        msg = schema;
        break;
    case 3:
        msg = c->cursor == 0 ? batch1 : NULL;
        break;
    case 4:
        msg = c->cursor >= 3 ? NULL : (f->bad_from && c->n == 0) ? batch2_gap : batch2;
        break;
    default:
        return 0;
    }
    c->step++;
    if (msg && send_text(ws, msg) < 0)
        return -1;
    verso_ws_want_write(ws);
    return 0;
}

static void f_close(verso_ws *ws, void *cp, void *arg)
{
    (void)ws;
    (void)arg;
    free(cp);
}

static void start_fake(verso_rest **srv, fake *f, const char *dbpath, char *url, size_t n)
{
    static verso_ws_handler h = {VERSO_SYNC_PATH,
                                 VERSO_SYNC_SUBPROTOCOL,
                                 NULL,
                                 f_open,
                                 f_message,
                                 f_writeable,
                                 f_close,
                                 NULL};
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    ro.port = VERSO_REST_PORT_ANY;
    char why[256] = "";
    verso_db *db = h_open(dbpath);

    verso_db_close(db);
    h.arg = f;
    ro.db_path = dbpath;
    ro.ws_handlers = &h;
    ro.nws_handlers = 1;
    if (verso_rest_start(srv, NULL, &ro, why, sizeof(why)) < 0)
        fail_msg("fake master: %s", why);
    snprintf(url, n, "http://127.0.0.1:%d", verso_rest_port(*srv));
}

static void run_against_fake(bool bad_from)
{
    char fp[600], sp[600], url[64];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    fake f = {.bad_from = bad_from};
    verso_rest *srv = NULL;
    verso_slave *s = NULL;
    char why[256] = "", master[37];
    int64_t deadline;

    h_path(fp, sizeof(fp), bad_from ? "fake-gap.db" : "fake.db");
    h_path(sp, sizeof(sp), bad_from ? "fake-gap-slave.db" : "fake-slave.db");
    start_fake(&srv, &f, fp, url, sizeof(url));
    o.retry_min_ms = 10;
    o.retry_max_ms = 50;
    if (verso_slave_start(&s, sp, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    if (verso_slave_wait(s, 3, 10000) < 0)
        fail_msg("the slave did not apply the fake master's stream");
    deadline = h_now_ms() + 10000;
    while (atomic_load(&f.acked) < 3 && h_now_ms() < deadline)
        h_sleep_ms(5);
    assert_int_equal(atomic_load(&f.acked), 3);
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    verso_slave_stop(s);
    verso_rest_stop(srv);

    assert_int_equal(st.cursor, 3);
    assert_string_equal(st.master, ID);
    if (bad_from) { /* dropped at the gap, resumed from the stored cursor */
        assert_true(st.reconnects >= 1);
        assert_true(atomic_load(&f.connections) >= 2);
    } else {
        if (st.reconnects != 0)
            fail_msg("the slave dropped the link: %s", st.last_error);
        assert_int_equal(atomic_load(&f.connections), 1);
    }
    assert_int_equal(h_cursor(sp, master), 3);
    assert_string_equal(master, ID);
    assert_int_equal(h_count(sp, "t"), 2);
    assert_true(h_file_contains(sp, "big"));
    {
        sqlite3 *db = NULL;
        assert_int_equal(sqlite3_open_v2(sp, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(h_sql_int(db, "SELECT version FROM t WHERE id = ?", 9007199254740993LL),
                         1);
        assert_int_equal(h_sql_int(db, "SELECT version FROM t WHERE id = ?", 2), 3);
        sqlite3_close(db);
    }
}

static void test_fake_master_stream(void **state)
{
    (void)state;
    run_against_fake(false);
}

static void test_fake_master_gap_drops_link(void **state)
{
    (void)state;
    run_against_fake(true);
}

/* The master asks for a resynchronisation on the first subscription; once
 * the slave committed it, the link drops: the next connection resumes from
 * the cursor instead of resynchronising again. */
static void test_fake_master_resync_once(void **state)
{
    char fp[600], sp[600], url[64];
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    fake f = {.resync = 1};
    verso_rest *srv = NULL;
    verso_slave *s = NULL;
    char why[256] = "";
    int64_t deadline;

    (void)state;
    h_path(fp, sizeof(fp), "fake-resync.db");
    h_path(sp, sizeof(sp), "fake-resync-slave.db");
    start_fake(&srv, &f, fp, url, sizeof(url));
    o.retry_min_ms = 10;
    o.retry_max_ms = 50;
    if (verso_slave_start(&s, sp, url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    deadline = h_now_ms() + 10000;
    while (atomic_load(&f.subscribes) < 3 && h_now_ms() < deadline)
        h_sleep_ms(5);
    h_sleep_ms(100); /* what a second resynchronisation would have applied */
    assert_int_equal(verso_slave_state_get(&st, s), 0);
    verso_slave_stop(s);
    verso_rest_stop(srv);

    assert_true(atomic_load(&f.subscribes) >= 3);
    assert_true(atomic_load(&f.connections) >= 2);
    assert_int_equal(atomic_load(&f.later_resets), 0);
    assert_int_equal(atomic_load(&f.later_cursor), 3);
    assert_int_equal(st.resyncs, 1);
    assert_int_equal(st.cursor, 3);
    assert_int_equal(h_cursor(sp, NULL), 3);
}

/* A minimal WebSocket client on a plain socket: the upgrade, then one
 * masked text frame. Returns the socket (the caller closes it). */
static int ws_connect_send(int port, const char *text)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    unsigned char frame[512];
    char req[512], resp[1024];
    size_t n = strlen(text), len = 0, k;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ssize_t r;

    assert_true(fd >= 0 && n < 126);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(req, sizeof(req),
             "GET " VERSO_SYNC_PATH " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " VERSO_SYNC_SUBPROTOCOL
             "\r\n\r\n",
             port);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while (len + 1 < sizeof(resp) && (r = read(fd, resp + len, sizeof(resp) - 1 - len)) > 0) {
        len += (size_t)r;
        resp[len] = '\0';
        if (strstr(resp, "\r\n\r\n"))
            break;
    }
    assert_non_null(strstr(resp, " 101 "));
    frame[0] = 0x81; /* final text frame */
    frame[1] = 0x80 | (unsigned char)n;
    memcpy(frame + 2, "\x11\x22\x33\x44", 4);
    for (k = 0; k < n; k++)
        frame[6 + k] = (unsigned char)text[k] ^ frame[2 + k % 4];
    assert_int_equal(write(fd, frame, 6 + n), (ssize_t)(6 + n));
    return fd;
}

/* The slave names itself; the master's /_metrics escapes the name in its
 * label, so a name cannot break the exposition format or add a metric. */
static void test_master_escapes_slave_name(void **state)
{
    char mp[600];
    verso_buf body = VERSO_BUF_INIT;
    h_master m;
    int64_t deadline;
    int fd;

    (void)state;
    h_path(mp, sizeof(mp), "name-master.db");
    verso_db_close(h_open(mp));
    h_master_start(&m, mp, NULL);
    fd = ws_connect_send(m.port, "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"\","
                                 "\"name\":\"evil\\\"slave\\ninjected_metric 1\"}");
    deadline = h_now_ms() + 10000;
    do {
        verso_buf_clear(&body);
        assert_int_equal(h_http(&m, "GET", "/_metrics", NULL, &body), 200);
    } while (!strstr(body.data, "verso_sync_slaves 1\n") && h_now_ms() < deadline &&
             (h_sleep_ms(10), true));
    assert_non_null(strstr(body.data, "verso_sync_slaves 1\n"));
    assert_non_null(strstr(body.data, "{slave=\"evil\\\"slave\\ninjected_metric 1\",n=\"0\"}"));
    assert_null(strstr(body.data, "\ninjected_metric"));
    verso_buf_free(&body);
    close(fd);
    h_master_kill(&m, SIGTERM);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fake_master_stream),
        cmocka_unit_test(test_fake_master_gap_drops_link),
        cmocka_unit_test(test_fake_master_resync_once),
        cmocka_unit_test(test_master_escapes_slave_name),
    };

    H_MAIN_DISPATCH(argc, argv);
    h_init_dir("sync_proto");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
