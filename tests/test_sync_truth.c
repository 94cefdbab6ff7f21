/*
 * What a master says is true, and a slave follows every state it can be
 * in. A raw WebSocket client (plain socket, protocol.md only) plays the
 * slave where the test needs to control what is acknowledged and when:
 *  - acked is only what the slave acknowledged for the current identity:
 *    not the head as soon as a file snapshot is queued, not an ack beyond
 *    what was sent (a protocol error), not an ack for another identity;
 *  - a subscription at the head gets one empty batch, so a slave reset
 *    against an empty, recreated master commits the empty state at once;
 *  - every close the master initiates is a close frame with its code;
 *  - the pull checks that each /_changes answer continues from the cursor
 *    it asked for (a fake HTTP master orders members as protocol.md's
 *    example and has columns named cursor and more).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>

#include "sync_harness.h"

/* ---- a raw WebSocket client ---- */

typedef struct wsc {
    int fd;
    verso_buf in; /* bytes received and not yet parsed */
} wsc;

/* One message: opcode 1 (text, in text) or 8 (close, code in code; -1 without a status). */
typedef struct wmsg {
    int opcode;
    int code;
    verso_buf text;
} wmsg;

static int wsc_fill(wsc *c, int64_t deadline)
{
    char buf[65536];
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int64_t left = deadline - h_now_ms();
    ssize_t n;

    if (left <= 0 || poll(&p, 1, (int)left) <= 0)
        return -1; /* timed out */
    n = read(c->fd, buf, sizeof(buf));
    if (n <= 0)
        return 0; /* end of stream */
    verso_buf_append(&c->in, buf, (size_t)n);
    return 1;
}

static void wsc_connect(wsc *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[512];
    const char *end = NULL;
    int64_t deadline = h_now_ms() + 10000;

    memset(c, 0, sizeof(*c));
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(req, sizeof(req),
             "GET " VERSO_SYNC_PATH " HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " VERSO_SYNC_SUBPROTOCOL
             "\r\n\r\n",
             port);
    assert_int_equal(write(c->fd, req, strlen(req)), (ssize_t)strlen(req));
    while (!end) {
        verso_buf_append(&c->in, "", 0);
        if (c->in.data)
            c->in.data[c->in.len] = '\0';
        if (c->in.data && (end = strstr(c->in.data, "\r\n\r\n")))
            break;
        if (wsc_fill(c, deadline) <= 0)
            fail_msg("no answer to the WebSocket upgrade");
    }
    assert_non_null(strstr(c->in.data, " 101 "));
    {
        size_t used = (size_t)(end + 4 - c->in.data);
        memmove(c->in.data, c->in.data + used, c->in.len - used);
        c->in.len -= used;
    }
}

static void wsc_close(wsc *c)
{
    close(c->fd);
    verso_buf_free(&c->in);
}

/* Sends one masked frame. */
static void wsc_frame(wsc *c, int opcode, const char *data, size_t n)
{
    unsigned char *f = malloc(n + 14), mask[4] = {0x12, 0x34, 0x56, 0x78};
    size_t k = 0;

    assert_non_null(f);
    f[k++] = (unsigned char)(0x80 | opcode);
    if (n < 126) {
        f[k++] = (unsigned char)(0x80 | n);
    } else {
        f[k++] = 0x80 | 126;
        f[k++] = (unsigned char)(n >> 8);
        f[k++] = (unsigned char)n;
    }
    memcpy(f + k, mask, 4);
    k += 4;
    for (size_t i = 0; i < n; i++)
        f[k + i] = (unsigned char)data[i] ^ mask[i % 4];
    assert_int_equal(write(c->fd, f, k + n), (ssize_t)(k + n));
    free(f);
}

static void wsc_send(wsc *c, const char *text)
{
    wsc_frame(c, 1, text, strlen(text));
}

/*
 * The next message (continuation frames joined, pings skipped): 1 with *m
 * filled, 0 when the connection ended without a close frame, -1 on timeout.
 */
static int wsc_next(wsc *c, wmsg *m, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    verso_buf_clear(&m->text);
    m->opcode = 0;
    m->code = -1;
    for (;;) {
        const unsigned char *b = (const unsigned char *)c->in.data;
        size_t have = c->in.len, hl = 2;
        uint64_t n;
        int r;
        if (have >= 2) {
            n = b[1] & 0x7f;
            if (n == 126)
                hl = 4;
            else if (n == 127)
                hl = 10;
            if (have >= hl) {
                if (hl == 4)
                    n = ((uint64_t)b[2] << 8) | b[3];
                else if (hl == 10)
                    for (int i = 0; i < 8; i++)
                        n = (i ? n << 8 : 0) | b[2 + i];
                if (have >= hl + n) {
                    int op = b[0] & 0x0f;
                    bool fin = b[0] & 0x80;
                    if (op == 8) {
                        m->opcode = 8;
                        m->code = n >= 2 ? (b[hl] << 8) | b[hl + 1] : -1;
                    } else if (op == 1 || op == 0) {
                        verso_buf_append(&m->text, (const char *)b + hl, (size_t)n);
                        m->opcode = fin ? 1 : 0;
                    }
                    memmove(c->in.data, c->in.data + hl + n, have - hl - (size_t)n);
                    c->in.len -= hl + (size_t)n;
                    if (m->opcode == 8 || m->opcode == 1) {
                        verso_buf_append(&m->text, "", 0);
                        return 1;
                    }
                    continue;
                }
            }
        }
        if ((r = wsc_fill(c, deadline)) <= 0)
            return r;
    }
}

/* The next text message's type (heartbeats skipped); doc receives it. "close"
 * for a close frame (code in *code), "eof" for a bare drop, "timeout". */
static const char *wsc_type(wsc *c, verso_json **doc, int *code, int timeout_ms)
{
    static char type[32];
    wmsg m = {0};
    int64_t deadline = h_now_ms() + timeout_ms;

    *doc = NULL;
    for (;;) {
        int r = wsc_next(c, &m, (int)(deadline - h_now_ms()));
        const char *t;
        if (r <= 0) {
            verso_buf_free(&m.text);
            return r == 0 ? "eof" : "timeout";
        }
        if (m.opcode == 8) {
            if (code)
                *code = m.code;
            verso_buf_free(&m.text);
            return "close";
        }
        if (verso_json_parse(doc, m.text.data, m.text.len, 0, NULL, 0) < 0)
            fail_msg("not JSON from the master: %.200s", m.text.data);
        t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(verso_json_root(*doc), "type"));
        assert_non_null(t);
        if (strcmp(t, "heartbeat") != 0) {
            snprintf(type, sizeof(type), "%s", t);
            verso_buf_free(&m.text);
            return type;
        }
        verso_json_free(*doc);
        *doc = NULL;
    }
}

/* Reads until a message of type want; fails on anything else but those in skip. */
static verso_json *wsc_expect(wsc *c, const char *want, const char *skip)
{
    verso_json *doc = NULL;
    int code = 0;

    for (;;) {
        const char *t = wsc_type(c, &doc, &code, 10000);
        if (!strcmp(t, want))
            return doc;
        if (!doc || !skip || !strstr(skip, t))
            fail_msg("expected %s from the master, got %s (code %d)", want, t, code);
        verso_json_free(doc);
    }
}

static int64_t jint(const verso_json *doc, const char *name)
{
    int64_t v = 0;

    if (verso_json_int64(&v, cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), name)) < 0)
        fail_msg("no integer %s", name);
    return v;
}

static bool jbool(const verso_json *doc, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), name));
}

static const char *jstr(const verso_json *doc, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), name));
}

/* ---- the master's view ---- */

/* The slave called name in /_status: its acked and lag_versions. false if not listed. */
static bool status_of(const h_master *m, const char *name, int64_t *acked, int64_t *lag)
{
    verso_buf body = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    const cJSON *sl, *slaves;
    bool found = false;

    assert_int_equal(h_http(m, "GET", "/_status", NULL, &body), 200);
    assert_int_equal(verso_json_parse(&doc, body.data, body.len, 0, NULL, 0), 0);
    slaves = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "replication"), "slaves");
    cJSON_ArrayForEach(sl, slaves)
    {
        const char *n = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sl, "name"));
        if (n && !strcmp(n, name)) {
            assert_int_equal(verso_json_int64(acked, cJSON_GetObjectItemCaseSensitive(sl, "acked")),
                             0);
            assert_int_equal(
                verso_json_int64(lag, cJSON_GetObjectItemCaseSensitive(sl, "lag_versions")), 0);
            found = true;
        }
    }
    verso_json_free(doc);
    verso_buf_free(&body);
    return found;
}

/* Waits (bounded) until name is listed with acked >= at_least (or listed at all). */
static bool wait_status(const h_master *m, const char *name, int64_t at_least, int64_t *acked,
                        int64_t *lag)
{
    int64_t deadline = h_now_ms() + 10000;

    do {
        if (status_of(m, name, acked, lag) && *acked >= at_least)
            return true;
        h_sleep_ms(10);
    } while (h_now_ms() < deadline);
    return false;
}

static bool wait_unlisted(const h_master *m, const char *name)
{
    int64_t deadline = h_now_ms() + 10000, a, l;

    while (status_of(m, name, &a, &l)) {
        if (h_now_ms() > deadline)
            return false;
        h_sleep_ms(10);
    }
    return true;
}

static void make_master(const char *path, uint64_t seed, int ntx)
{
    verso_db *db = h_open(path);

    h_seed(seed);
    h_orm_workload(db, ntx, 5);
    verso_db_close(db);
}

static void identity_of(const char *path, char id[37])
{
    verso_db *db = h_open(path);

    snprintf(id, 37, "%s", verso_db_identity(db));
    verso_db_close(db);
}

/* Subscribes from 0 as name and reads until the batch that reaches the head. */
static int64_t subscribe_to_head(wsc *c, const char *name)
{
    char sub[200];
    verso_json *doc;
    int64_t to = -1;

    verso_json_free(wsc_expect(c, "hello", NULL));
    snprintf(sub, sizeof(sub),
             "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"\",\"name\":\"%s\"}", name);
    wsc_send(c, sub);
    verso_json_free(wsc_expect(c, "schema", NULL));
    do {
        doc = wsc_expect(c, "changes", "schema");
        to = jint(doc, "to");
        if (!jbool(doc, "more"))
            break;
        verso_json_free(doc);
    } while (true);
    verso_json_free(doc);
    return to;
}

/* ---- acks ---- */

/* A bootstrapping slave is not caught up until it acknowledges the snapshot's head. */
static void test_snapshot_not_acked_before_the_slave_says_so(void **state)
{
    char mp[600];
    h_master m;
    wsc c;
    verso_json *doc;
    int64_t head, acked = -2, lag = -2;

    (void)state;
    h_path(mp, sizeof(mp), "boot-master.db");
    make_master(mp, 41, 30);
    head = h_head(mp);
    h_master_start(&m, mp, NULL);
    wsc_connect(&c, m.port);
    verso_json_free(wsc_expect(&c, "hello", NULL));
    wsc_send(&c, "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"\",\"snapshot\":true,"
                 "\"name\":\"boot\"}");
    do {
        doc = wsc_expect(&c, "snapshot", NULL);
        if (jbool(doc, "last"))
            break;
        verso_json_free(doc);
    } while (true);
    assert_int_equal(jint(doc, "head"), head);
    verso_json_free(doc);
    /* every chunk is queued; the slave has installed and committed nothing */
    if (!wait_status(&m, "boot", -1, &acked, &lag))
        fail_msg("the bootstrapping slave is not listed");
    assert_int_equal(acked, -1);
    assert_int_equal(lag, head + 1);
    {
        char ack[100];
        snprintf(ack, sizeof(ack), "{\"type\":\"ack\",\"version\":%lld}", (long long)head);
        wsc_send(&c, ack);
    }
    assert_true(wait_status(&m, "boot", head, &acked, &lag));
    assert_int_equal(acked, head);
    assert_int_equal(lag, 0);
    wsc_close(&c);
    h_master_kill(&m, SIGTERM);
}

/* An ack beyond what was sent is a protocol error (error message, close
 * frame); an ack tagged with another identity is not counted. */
static void test_acks_are_checked(void **state)
{
    char mp[600], id[37], msg[200];
    h_master m;
    wsc c;
    verso_json *doc;
    int64_t head, to, acked = -2, lag = -2;
    int code = 0;

    (void)state;
    h_path(mp, sizeof(mp), "ack-master.db");
    make_master(mp, 42, 20);
    head = h_head(mp);
    identity_of(mp, id);
    h_master_start(&m, mp, NULL);
    wsc_connect(&c, m.port);
    to = subscribe_to_head(&c, "acker");
    assert_int_equal(to, head);
    assert_true(wait_status(&m, "acker", -1, &acked, &lag));
    assert_int_equal(acked, -1); /* an empty slave holds nothing of this master yet */
    assert_int_equal(lag, head + 1);

    /* an ack for another master's identity: ignored; then a true one */
    snprintf(msg, sizeof(msg),
             "{\"type\":\"ack\",\"version\":%lld,"
             "\"identity\":\"00000000-1111-2222-3333-444444444444\"}",
             (long long)head);
    wsc_send(&c, msg);
    snprintf(msg, sizeof(msg), "{\"type\":\"ack\",\"version\":1,\"identity\":\"%s\"}", id);
    wsc_send(&c, msg);
    assert_true(wait_status(&m, "acker", 1, &acked, &lag));
    assert_int_equal(acked, 1);
    assert_int_equal(lag, head - 1);

    /* beyond the head */
    snprintf(msg, sizeof(msg), "{\"type\":\"ack\",\"version\":%lld}", (long long)head + 1);
    wsc_send(&c, msg);
    doc = wsc_expect(&c, "error", NULL);
    assert_string_equal(jstr(doc, "code"), "protocol");
    verso_json_free(doc);
    assert_string_equal(wsc_type(&c, &doc, &code, 10000), "close");
    assert_int_equal(code, 1000);
    assert_true(wait_unlisted(&m, "acker"));
    wsc_close(&c);
    h_master_kill(&m, SIGTERM);
}

/* ---- subscriptions at the head ---- */

/* Subscribed at the head: one empty batch comes at once (before any
 * heartbeat); with reset against an empty master it carries reset. An
 * empty identity goes with cursor 0 only. */
static void test_subscription_at_head_gets_an_empty_batch(void **state)
{
    const char *extra[] = {"--heartbeat", "3000", NULL};
    char mp[600], ep[600], id[37], sub[300];
    h_master m, e;
    wsc c;
    verso_json *doc;
    int64_t head;

    (void)state;
    h_path(mp, sizeof(mp), "head-master.db");
    h_path(ep, sizeof(ep), "head-empty.db");
    make_master(mp, 43, 10);
    head = h_head(mp);
    identity_of(mp, id);
    h_master_start(&m, mp, extra);

    wsc_connect(&c, m.port);
    verso_json_free(wsc_expect(&c, "hello", NULL));
    snprintf(sub, sizeof(sub),
             "{\"type\":\"subscribe\",\"cursor\":%lld,\"identity\":\"%s\",\"name\":\"at-head\"}",
             (long long)head, id);
    wsc_send(&c, sub);
    verso_json_free(wsc_expect(&c, "schema", NULL));
    {
        int code = 0;
        const char *t = wsc_type(&c, &doc, &code, 2000); /* before the first heartbeat */
        if (strcmp(t, "changes") != 0)
            fail_msg("a subscription at the head got %s, not an empty batch", t);
    }
    assert_int_equal(jint(doc, "from"), head);
    assert_int_equal(jint(doc, "to"), head);
    assert_false(jbool(doc, "more"));
    assert_int_equal(
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "entries")), 0);
    verso_json_free(doc);
    wsc_close(&c);

    /* an empty identity with a cursor: the cursor belongs to no master */
    wsc_connect(&c, m.port);
    verso_json_free(wsc_expect(&c, "hello", NULL));
    wsc_send(&c, "{\"type\":\"subscribe\",\"cursor\":3,\"identity\":\"\"}");
    doc = wsc_expect(&c, "resync", NULL);
    assert_string_equal(jstr(doc, "reason"), "identity");
    assert_string_equal(jstr(doc, "identity"), id);
    verso_json_free(doc);
    wsc_close(&c);
    h_master_kill(&m, SIGTERM);

    /* reset against an empty master: the reset batch, from 0 to 0 */
    verso_db_close(h_open(ep));
    h_master_start(&e, ep, extra);
    wsc_connect(&c, e.port);
    verso_json_free(wsc_expect(&c, "hello", NULL));
    wsc_send(&c, "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"\",\"reset\":true}");
    verso_json_free(wsc_expect(&c, "schema", NULL));
    {
        int code = 0;
        const char *t = wsc_type(&c, &doc, &code, 2000);
        if (strcmp(t, "changes") != 0)
            fail_msg("a reset at head 0 got %s, not the reset batch", t);
    }
    assert_int_equal(jint(doc, "from"), 0);
    assert_int_equal(jint(doc, "to"), 0);
    assert_true(jbool(doc, "reset"));
    verso_json_free(doc);
    wsc_close(&c);
    h_master_kill(&e, SIGTERM);
}

/* The master's identity changes between its hello and the subscription
 * (a file replaced, a cascaded master that resynchronised): the slave is
 * told at once, not left to commit the new master's rows under the
 * identity hello announced. */
static void test_identity_change_before_subscribe(void **state)
{
    char mp[600], old_id[37], sql[200];
    const char *now = NULL;
    h_master m;
    wsc c, probe;
    verso_json *doc;
    sqlite3 *s = NULL;
    int64_t deadline;

    (void)state;
    h_path(mp, sizeof(mp), "stale-master.db");
    make_master(mp, 47, 5);
    identity_of(mp, old_id);
    h_master_start(&m, mp, NULL);
    wsc_connect(&c, m.port);
    doc = wsc_expect(&c, "hello", NULL);
    assert_string_equal(jstr(doc, "identity"), old_id);
    verso_json_free(doc);

    assert_int_equal(sqlite3_open(mp, &s), SQLITE_OK);
    sqlite3_busy_timeout(s, 5000);
    snprintf(sql, sizeof(sql), "UPDATE _verso_meta SET value = '%s' WHERE key = 'identity'",
             "99999999-8888-4777-8666-555555555555");
    assert_int_equal(sqlite3_exec(s, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(s);
    deadline = h_now_ms() + 10000; /* until a new connection's hello says so */
    do {
        wsc_connect(&probe, m.port);
        doc = wsc_expect(&probe, "hello", NULL);
        now = strcmp(jstr(doc, "identity"), old_id) ? "changed" : NULL;
        verso_json_free(doc);
        wsc_close(&probe);
    } while (!now && h_now_ms() < deadline && (h_sleep_ms(5), true));
    assert_non_null(now);

    wsc_send(&c, "{\"type\":\"subscribe\",\"cursor\":0,\"identity\":\"\",\"name\":\"stale\"}");
    doc = wsc_expect(&c, "resync", NULL);
    assert_string_equal(jstr(doc, "reason"), "identity");
    assert_string_equal(jstr(doc, "identity"), "99999999-8888-4777-8666-555555555555");
    verso_json_free(doc);
    wsc_close(&c);
    h_master_kill(&m, SIGTERM);
}

/* A master recreated with no rows: a live slave resynchronises to the
 * empty state at once, not at the new master's first commit, and the
 * master lists it at lag 0 only once it acknowledged that state. */
static void test_live_follows_an_empty_recreated_master(void **state)
{
    char mp[600], sp[600], pp[600], id[37], master[37], why[256] = "", slave_name[64];
    char host[48] = "slave";
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave_state st;
    verso_pull_result res;
    verso_slave *s = NULL;
    verso_db *pdb;
    h_master m;
    int64_t deadline, acked = -2, lag = -2;
    int port;

    (void)state;
    h_path(mp, sizeof(mp), "empty-master.db");
    h_path(sp, sizeof(sp), "empty-slave.db");
    h_path(pp, sizeof(pp), "empty-pull.db");
    make_master(mp, 44, 30);
    gethostname(host, sizeof(host) - 1);
    snprintf(slave_name, sizeof(slave_name), "%s:%ld", host, (long)getpid());
    h_master_start(&m, mp, NULL);
    port = m.port;
    o.retry_min_ms = 20;
    o.retry_max_ms = 200;
    if (verso_slave_start(&s, sp, m.url, &o, why, sizeof(why)) < 0)
        fail_msg("slave: %s", why);
    assert_int_equal(verso_slave_wait(s, h_head(mp), 20000), 0);
    pdb = h_open(pp);
    assert_int_equal(verso_sync_pull(&res, pdb, m.url, NULL, why, sizeof(why)), 0);
    verso_db_close(pdb);
    assert_true(h_count(pp, "items") > 0);

    h_master_kill(&m, SIGTERM);
    h_remove_db(mp);
    verso_db_close(h_open(mp)); /* new identity, head 0, no row */
    identity_of(mp, id);
    h_master_start_port(&m, mp, port);

    deadline = h_now_ms() + 20000;
    do {
        h_sleep_ms(10);
        assert_int_equal(verso_slave_state_get(&st, s), 0);
    } while (strcmp(st.master, id) != 0 && h_now_ms() < deadline);
    if (strcmp(st.master, id) != 0)
        fail_msg("the slave still follows the former master (%s; last error '%s')", st.master,
                 st.last_error);
    assert_int_equal(st.cursor, 0);
    assert_int_equal(st.resyncs, 1);
    assert_int_equal(h_count(sp, "items"), 0);
    assert_int_equal(h_count(sp, "accounts"), 0);
    assert_int_equal(h_cursor(sp, master), 0);
    assert_string_equal(master, id);
    /* the master's view: acked 0, the head of its identity */
    if (!wait_status(&m, slave_name, 0, &acked, &lag))
        fail_msg("the resynchronised slave is not listed with its ack");
    assert_int_equal(acked, 0);
    assert_int_equal(lag, 0);
    verso_slave_stop(s);

    /* the pull does the same */
    pdb = h_open(pp);
    assert_int_equal(verso_sync_pull(&res, pdb, m.url, NULL, why, sizeof(why)), 0);
    verso_db_close(pdb);
    assert_true(res.resynced);
    assert_int_equal(h_count(pp, "items"), 0);
    assert_int_equal(h_cursor(pp, master), 0);
    assert_string_equal(master, id);
    h_master_kill(&m, SIGTERM);
}

/* ---- closes ---- */

/* Sends text (binary when bin) on a fresh subscription-less connection and
 * returns the close code the master sends; fails on a bare drop. */
static int close_code_after(const h_master *m, const char *text, bool bin, const char *expect_error)
{
    verso_json *doc = NULL;
    int code = -2;
    const char *t;
    wsc c;

    wsc_connect(&c, m->port);
    verso_json_free(wsc_expect(&c, "hello", NULL));
    if (text)
        wsc_frame(&c, bin ? 2 : 1, text, strlen(text));
    if (expect_error) {
        doc = wsc_expect(&c, "error", NULL);
        assert_string_equal(jstr(doc, "code"), expect_error);
        verso_json_free(doc);
    }
    t = wsc_type(&c, &doc, &code, 10000);
    if (strcmp(t, "close") != 0)
        fail_msg("after %s the master sent %s, not a close frame", text ? text : "silence", t);
    wsc_close(&c);
    return code;
}

static void test_master_closes_with_a_close_frame(void **state)
{
    const char *extra[] = {"--heartbeat", "200", NULL};
    char mp[600];
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "close-master.db");
    make_master(mp, 45, 3);
    h_master_start(&m, mp, extra);
    /* the master's own closes: an error message saying why, then 1000 */
    assert_int_equal(close_code_after(&m,
                                      "{\"type\":\"subscribe\",\"cursor\":0,\"tables\":[\"nope\"]}",
                                      false, "subscribe"),
                     1000);
    assert_int_equal(close_code_after(&m, "{\"type\":\"subscribe\"}", false, "subscribe"), 1000);
    assert_int_equal(close_code_after(&m, "not json", false, "protocol"), 1000);
    assert_int_equal(close_code_after(&m, "{\"type\":\"gossip\"}", false, "protocol"), 1000);
    assert_int_equal(close_code_after(&m, "{\"type\":\"ack\"}", false, "protocol"), 1000);
    assert_int_equal(close_code_after(&m, NULL, false, "timeout"), 1000); /* 3 heartbeats */
    /* the server's WebSocket layer: a binary frame */
    assert_int_equal(close_code_after(&m, "{}", true, NULL), 1003);
    /* the server stopping: 1001 (going away) on every open WebSocket */
    {
        verso_json *doc = NULL;
        int code = -2;
        wsc a, b;
        wsc_connect(&a, m.port);
        wsc_connect(&b, m.port);
        verso_json_free(wsc_expect(&a, "hello", NULL));
        verso_json_free(wsc_expect(&b, "hello", NULL));
        kill(m.pid, SIGTERM);
        assert_string_equal(wsc_type(&a, &doc, &code, 10000), "close");
        assert_int_equal(code, 1001);
        code = -2;
        assert_string_equal(wsc_type(&b, &doc, &code, 10000), "close");
        assert_int_equal(code, 1001);
        wsc_close(&a);
        wsc_close(&b);
    }
    h_master_kill(&m, SIGTERM);
}

/* ---- /_changes parameters, as protocol.md states them ---- */

static void test_changes_parameters(void **state)
{
    static const struct {
        const char *query;
        long status;
    } cases[] = {{"/_changes?limit=0", 400},        {"/_changes?limit=-1", 400},
                 {"/_changes?since=x", 400},        {"/_changes?tables=,", 400},
                 {"/_changes?tables=nope", 404},    {"/_changes?tables=", 200},
                 {"/_changes?limit=1&since=0", 200}};
    char mp[600];
    verso_buf all = VERSO_BUF_INIT, empty = VERSO_BUF_INIT;
    h_master m;

    (void)state;
    h_path(mp, sizeof(mp), "params-master.db");
    make_master(mp, 46, 5);
    h_master_start(&m, mp, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long st = h_http(&m, "GET", cases[i].query, NULL, NULL);
        if (st != cases[i].status)
            fail_msg("%s: HTTP %ld, protocol.md says %ld", cases[i].query, st, cases[i].status);
    }
    /* each message names the parameter at fault and what it takes */
    assert_int_equal(h_http(&m, "GET", "/_changes?limit=0", NULL, &all), 400);
    assert_non_null(strstr(all.data, "limit must be a positive integer"));
    verso_buf_clear(&all);
    assert_int_equal(h_http(&m, "GET", "/_changes?since=-3", NULL, &all), 400);
    assert_non_null(strstr(all.data, "since must be a non-negative integer"));
    verso_buf_clear(&all);
    /* an empty tables= is no filter at all */
    assert_int_equal(h_http(&m, "GET", "/_changes?since=0", NULL, &all), 200);
    assert_int_equal(h_http(&m, "GET", "/_changes?since=0&tables=", NULL, &empty), 200);
    assert_string_equal(all.data, empty.data);
    verso_buf_free(&all);
    verso_buf_free(&empty);
    h_master_kill(&m, SIGTERM);
}

/* ---- the pull checks what each answer continues from ---- */

#define FAKE_ID "6a1c2b3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"

typedef struct fake_http {
    int fd;
    int port;
    int mode; /* 0: answers continue from since; 1: answers always start from 0 */
    atomic_int stop;
    pthread_t thread;
} fake_http;

/* The table t has columns named cursor and more; rows carry them. */
static const char fake_info[] =
    "{\"identity\":\"" FAKE_ID "\",\"head\":4,\"horizon\":0,\"tables\":[{\"name\":\"t\","
    "\"columns\":[{\"name\":\"id\",\"type\":\"int64\",\"id\":true},"
    "{\"name\":\"version\",\"type\":\"int64\",\"version\":true},"
    "{\"name\":\"cursor\",\"type\":\"int64\"},{\"name\":\"more\",\"type\":\"bool\"}]}]}";

/* members in protocol.md's order: cursor and more before changes */
static void fake_changes(verso_buf *b, int64_t since, int mode)
{
    int64_t from = mode == 1 ? 0 : since, to = from + 2 < 4 ? from + 2 : 4;

    verso_buf_printf(b,
                     "{\"identity\":\"" FAKE_ID "\",\"head\":4,\"horizon\":0,\"since\":%lld,"
                     "\"cursor\":%lld,\"more\":%s,\"changes\":[",
                     (long long)from, (long long)to, to < 4 ? "true" : "false");
    for (int64_t v = from + 1; v <= to; v++)
        verso_buf_printf(b,
                         "%s{\"table\":\"t\",\"id\":%lld,\"version\":%lld,\"row\":{\"id\":%lld,"
                         "\"version\":%lld,\"cursor\":999,\"more\":true}}",
                         v > from + 1 ? "," : "", (long long)v, (long long)v, (long long)v,
                         (long long)v);
    verso_buf_puts(b, "]}");
}

static void fake_answer(fake_http *f, int fd)
{
    char req[4096];
    size_t len = 0;
    ssize_t n;
    verso_buf body = VERSO_BUF_INIT, out = VERSO_BUF_INIT;
    const char *since;
    int status = 200;

    while (len + 1 < sizeof(req) && (n = read(fd, req + len, sizeof(req) - 1 - len)) > 0) {
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[len] = '\0';
    if (!strncmp(req, "GET /_info ", 11))
        verso_buf_puts(&body, fake_info);
    else if (!strncmp(req, "GET /_changes?", 14) && (since = strstr(req, "since=")))
        fake_changes(&body, strtoll(since + 6, NULL, 10), f->mode);
    else
        status = 404, verso_buf_puts(&body, "{}");
    verso_buf_printf(&out,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, body.len, body.data);
    if (write(fd, out.data, out.len) < 0)
        status = 0;
    verso_buf_free(&body);
    verso_buf_free(&out);
    shutdown(fd, SHUT_WR);
    while (read(fd, req, sizeof(req)) > 0) {
    }
    close(fd);
}

static void *fake_run(void *arg)
{
    fake_http *f = arg;

    while (!atomic_load(&f->stop)) {
        struct pollfd p = {.fd = f->fd, .events = POLLIN};
        int fd;
        if (poll(&p, 1, 50) <= 0)
            continue;
        if ((fd = accept(f->fd, NULL, NULL)) >= 0)
            fake_answer(f, fd);
    }
    return NULL;
}

static void fake_start(fake_http *f, int mode)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t al = sizeof(a);

    f->mode = mode;
    atomic_store(&f->stop, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((f->fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(f->fd, 16), 0);
    assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void fake_stop(fake_http *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->thread, NULL);
    close(f->fd);
}

static void test_pull_checks_each_answer_continues(void **state)
{
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    char sp[600], bp[600], url[64], why[256] = "";
    verso_pull_result res;
    verso_db *db;
    fake_http f;

    (void)state;
    h_path(sp, sizeof(sp), "fake-pull.db");
    h_path(bp, sizeof(bp), "fake-pull-bad.db");
    c.chunk = 2;

    fake_start(&f, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
    assert_int_equal(verso_db_open(&db, sp, NULL, NULL, 0), 0);
    if (verso_sync_pull(&res, db, url, &c, why, sizeof(why)) < 0)
        fail_msg("pull from the fake master: %s", why);
    verso_db_close(db);
    fake_stop(&f);
    assert_int_equal(res.cursor, 4);
    assert_int_equal(h_count(sp, "t"), 4); /* none skipped by a row's "cursor" member */

    fake_start(&f, 1); /* every answer starts from 0, whatever was asked */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", f.port);
    assert_int_equal(verso_db_open(&db, bp, NULL, NULL, 0), 0);
    assert_int_equal(verso_sync_pull(&res, db, url, &c, why, sizeof(why)), VERSO_EPROTO);
    assert_non_null(strstr(why, "since"));
    verso_db_close(db);
    fake_stop(&f);
    assert_int_equal(res.cursor, 0);
    assert_true(h_count(bp, "t") <= 0); /* nothing committed */
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_not_acked_before_the_slave_says_so),
        cmocka_unit_test(test_acks_are_checked),
        cmocka_unit_test(test_subscription_at_head_gets_an_empty_batch),
        cmocka_unit_test(test_identity_change_before_subscribe),
        cmocka_unit_test(test_live_follows_an_empty_recreated_master),
        cmocka_unit_test(test_master_closes_with_a_close_frame),
        cmocka_unit_test(test_changes_parameters),
        cmocka_unit_test(test_pull_checks_each_answer_continues),
    };

    H_MAIN_DISPATCH(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    h_init_dir("sync_truth");
    {
        int failed = cmocka_run_group_tests(tests, NULL, NULL);
        h_remove_dir(failed);
        return failed;
    }
}
