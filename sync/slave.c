/*
 * The live slave: its own thread running a libwebsockets client context.
 * Messages are applied on that thread as they arrive (the socket is not
 * read meanwhile, which is the flow control); a slave transaction is
 * committed only when a changes message ends at a master snapshot head
 * (more == false). After any failure the connection is dropped, the open
 * transaction rolled back, and the slave reconnects with backoff and
 * resumes from its stored cursor.
 *
 * The link is a state machine (verso_slave_link) moved by link_move()
 * only. Each state but WAITING has a deadline that the slave's own timer
 * enforces: lws reports refusals, resets and closes, but not every way a
 * connection can hang (a listener that accepts and never answers the
 * upgrade, a path that goes silent), and after some of its own timeouts
 * it reports nothing a WebSocket client hears. Every end - an lws report,
 * a failed message, a deadline - goes through link_end(), the one path to
 * WAITING and the next attempt. Each attempt has a number carried by its
 * wsi: reports about an attempt already ended are ignored.
 */
#include <assert.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <libwebsockets.h>

#include "rest/lwslog.h"
#include "sync/internal.h"

struct verso_slave {
    pthread_t thread;
    pthread_mutex_t lock; /* guards st and the cond */
    pthread_cond_t cond;
    verso_slave_state st;
    int64_t behind_since_ms;
    atomic_int stop;

    verso_slave_options o;
    verso__sync_url url;
    char *auth;
    char **tables;
    char name[64];
    char *db_path;
    verso_db *db;
    verso__sync_applier *ap;

    struct lws_context *ctx;
    struct lws *wsi;   /* of the current attempt; NULL while waiting */
    uintptr_t attempt; /* number of the current attempt, carried by its wsi */
    lws_sorted_usec_list_t sul;
    verso_slave_link link;
    int64_t step_ms; /* when the link entered its current state */
    bool ever_live;
    int retry_ms;
    int64_t next_connect_ms;
    int64_t last_rx_ms;
    int64_t last_tx_ms;
    bool conn_error; /* last_error was set on this connection: keep it when it drops */
    verso_buf rx;
    verso_buf tx;
    bool subscribe_due;
    bool force_reset;
    bool reset_pending; /* the subscription is a full resync not yet begun */
    bool ack_due;       /* acknowledge ack_version (of master) */
    int64_t ack_version;
    int64_t expected_from;
    char master[37];
    int64_t master_head;
    int64_t master_horizon;
    int64_t master_hb_ms; /* the master's heartbeat period (hello) */
    int64_t start_ms, progress_ms;

    bool want_snapshot; /* ask for a file snapshot: empty db, every table */
    bool snapshot_only; /* verso__sync_snapshot_fetch: stop once installed */
    bool borrowed_db;
    int done; /* snapshot_only: 1 installed, 0 declined, < 0 error */
    bool finished;
    FILE *snap;
    char snap_path[700];
    int64_t snap_off;
};

static void finish(verso_slave *s, int rc)
{
    if (!s->snapshot_only || s->finished)
        return;
    s->done = rc;
    s->finished = true;
}

static void set_error(verso_slave *s, const char *fmt, const char *detail)
{
    s->conn_error = true;
    pthread_mutex_lock(&s->lock);
    snprintf(s->st.last_error, sizeof(s->st.last_error), fmt, detail);
    pthread_mutex_unlock(&s->lock);
}

/* Updates the shared state after the master's head or our cursor moved. */
static void publish(verso_slave *s, int64_t cursor, int64_t head, bool committed)
{
    int64_t now = verso__sync_mono_ms();

    pthread_mutex_lock(&s->lock);
    if (cursor >= 0)
        s->st.cursor = cursor;
    if (head >= 0)
        s->st.master_head = head;
    if (s->st.master_head < s->st.cursor)
        s->st.master_head = s->st.cursor;
    s->st.lag_versions = s->st.master_head - s->st.cursor;
    if (s->st.lag_versions == 0)
        s->behind_since_ms = 0;
    else if (s->behind_since_ms == 0)
        s->behind_since_ms = now;
    if (committed) {
        memcpy(s->st.master, s->master, sizeof(s->st.master)); /* the cursor's master */
        s->st.commits++;
        s->st.applied_rows = verso__sync_applier_rows(s->ap);
        pthread_cond_broadcast(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

static void want_write(verso_slave *s)
{
    if (s->wsi && s->link >= VERSO_LINK_HELLO)
        lws_callback_on_writable(s->wsi);
}

/* ---- incoming messages ---- */

static int on_hello(verso_slave *s, verso_json *doc)
{
    const cJSON *msg = verso_json_root(doc);
    const char *id = verso__sync_json_get_str(msg, "identity");
    verso_cursor c;

    if (!id || strlen(id) != 36 || verso__sync_json_get_i64(&s->master_head, msg, "head") < 0 ||
        verso__sync_json_get_i64(&s->master_horizon, msg, "horizon") < 0)
        return VERSO_EPROTO;
    memcpy(s->master, id, sizeof(s->master));
    s->ack_due = false; /* the subscription's cursor says it */
    if (verso__sync_json_get_i64(&s->master_hb_ms, msg, "heartbeat_ms") < 0 || s->master_hb_ms <= 0)
        s->master_hb_ms = 5000;
    verso__sync_applier_abort(s->ap);
    if (verso_cursor_get(&c, s->db) < 0)
        return VERSO_EDB;
    s->reset_pending =
        s->force_reset || verso__sync_need_reset(&c, s->master, s->master_head, s->master_horizon);
    s->force_reset = false;
    s->want_snapshot = (s->reset_pending || (!c.master[0] && c.version == 0)) && !s->tables &&
                       verso__sync_snapshot_fits(s->db);
    if (s->snapshot_only && !s->want_snapshot)
        finish(s, 0);
    s->expected_from = s->reset_pending ? 0 : c.version;
    s->subscribe_due = true;
    publish(s, c.version, s->master_head, false);
    return 0;
}

static int on_schema(verso_slave *s, verso_json *doc)
{
    verso__sync_schema schema;
    char why[160] = "";
    int rc;

    if (s->snapshot_only) {
        finish(s, 0); /* the master streams rows instead */
        return 0;
    }
    rc = verso__sync_schema_parse(&schema,
                                  cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "tables"),
                                  why, sizeof(why));
    if (rc < 0) {
        set_error(s, "schema: %s", why);
        return rc;
    }
    if ((rc = verso__sync_applier_set_schema(s->ap, &schema)) < 0)
        set_error(s, "%s", verso__sync_applier_errmsg(s->ap));
    return rc;
}

static void snapshot_discard(verso_slave *s)
{
    if (s->snap)
        fclose(s->snap);
    s->snap = NULL;
    s->snap_off = 0;
    if (s->snap_path[0])
        unlink(s->snap_path);
}

static int snapshot_installed(verso_slave *s, const char *master, int64_t head)
{
    bool reset = s->reset_pending;

    s->reset_pending = false;
    s->expected_from = head;
    memcpy(s->master, master, sizeof(s->master));
    if (reset) {
        pthread_mutex_lock(&s->lock);
        s->st.resyncs++;
        pthread_mutex_unlock(&s->lock);
    }
    s->ack_due = true;
    s->ack_version = head;
    if (s->o.client.on_apply) /* before waiters see the version, as for rows */
        s->o.client.on_apply(NULL, 0, head, true, s->o.client.apply_arg);
    publish(s, head, head, true);
    finish(s, 1);
    want_write(s);
    return 0;
}

/* A chunk of the master's file snapshot (msg: its members but data, given as
 * len bytes of base64 at b64); the last one installs it. */
static int snapshot_chunk(verso_slave *s, const cJSON *msg, const char *b64, size_t len)
{
    const char *master = verso__sync_json_get_str(msg, "identity");
    int64_t off, head;
    unsigned char *raw = NULL;
    size_t n = 0;
    char why[200] = "";
    int rc = VERSO_EPROTO;

    if (!s->want_snapshot || !b64 || !master || strlen(master) != 36 ||
        verso__sync_json_get_i64(&off, msg, "offset") < 0 || off != s->snap_off ||
        verso__sync_json_get_i64(&head, msg, "head") < 0)
        goto done;
    if (off == 0) {
        snapshot_discard(s);
        snprintf(s->snap_path, sizeof(s->snap_path), "%s.snapshot", s->db_path);
        if (!(s->snap = fopen(s->snap_path, "wb"))) {
            rc = VERSO_EIO;
            goto done;
        }
    }
    ptrdiff_t dl = verso_base64_decoded_len(b64, len);
    if (dl < 0 || !(raw = malloc((size_t)dl + 1)) || verso_base64_decode(raw, b64, len) < 0 ||
        fwrite(raw, 1, (size_t)dl, s->snap) != (size_t)dl)
        goto done;
    n = (size_t)dl;
    s->snap_off += (int64_t)n;
    rc = 0;
    if (verso__sync_json_get_bool(msg, "last")) {
        rc = fclose(s->snap) == 0 ? 0 : VERSO_EIO;
        s->snap = NULL;
        if (rc == 0)
            rc = verso__sync_snapshot_install(s->db, s->snap_path, master, head, why, sizeof(why));
        s->snap_off = 0;
        s->want_snapshot = false;
        if (rc == 0)
            rc = snapshot_installed(s, master, head);
        else
            set_error(s, "%s", why);
    }
done:
    free(raw);
    if (rc < 0) {
        snapshot_discard(s);
        finish(s, rc);
    }
    return rc;
}

static int on_snapshot(verso_slave *s, verso_json *doc)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "data");

    return snapshot_chunk(s, verso_json_root(doc), cJSON_IsString(data) ? data->valuestring : NULL,
                          verso_json_strlen(data));
}

/* First occurrence of key (n bytes) in msg (len bytes), or NULL. */
static const char *find(const char *msg, size_t len, const char *key, size_t n)
{
    for (const char *p = msg; p && (size_t)(msg + len - p) >= n;
         p = memchr(p + 1, key[0], (size_t)(msg + len - p - 1))) {
        if (memcmp(p, key, n) == 0)
            return p;
    }
    return NULL;
}

/*
 * The master writes "data" last: a snapshot message is parsed without
 * running a megabyte of base64 through the JSON parser (the decoder
 * checks every character). 1 = handled, 0 = not in that form.
 */
static int snapshot_fast(verso_slave *s, const char *msg, size_t len, int *rc)
{
    static const char prefix[] = "{\"type\":\"snapshot\",", key[] = ",\"data\":\"";
    const char *at;
    verso_buf head = VERSO_BUF_INIT;
    verso_json *doc = NULL;

    if (len < sizeof(prefix) || memcmp(msg, prefix, sizeof(prefix) - 1) != 0 ||
        memcmp(msg + len - 2, "\"}", 2) != 0 || !(at = find(msg, len, key, sizeof(key) - 1)))
        return 0;
    *rc = verso_buf_append(&head, msg, (size_t)(at - msg));
    if (*rc == 0)
        *rc = verso_buf_puts(&head, "}");
    if (*rc == 0 && verso_json_parse(&doc, head.data, head.len, 0, NULL) < 0)
        *rc = VERSO_EPROTO;
    if (*rc == 0) {
        const char *b64 = at + sizeof(key) - 1;
        *rc = snapshot_chunk(s, verso_json_root(doc), b64, (size_t)(msg + len - 2 - b64));
    }
    verso_json_free(doc);
    verso_buf_free(&head);
    return 1;
}

static int commit(verso_slave *s, int64_t to, int64_t head)
{
    bool reset = s->reset_pending;
    int rc = verso__sync_applier_commit(s->ap, s->master, to);

    if (rc < 0) {
        set_error(s, "%s", verso__sync_applier_errmsg(s->ap));
        return rc;
    }
    s->reset_pending = false;
    s->retry_ms = 0; /* progress: the next failure starts the backoff afresh */
    if (reset) {
        pthread_mutex_lock(&s->lock);
        s->st.resyncs++;
        pthread_mutex_unlock(&s->lock);
    }
    s->ack_due = true;
    s->ack_version = to;
    publish(s, to, head, true);
    want_write(s);
    return 0;
}

static void progress(verso_slave *s, int64_t head)
{
    int64_t now = verso__sync_mono_ms();
    verso_sync_progress p;

    if (!s->o.client.on_progress || now - s->progress_ms < 200)
        return;
    s->progress_ms = now;
    pthread_mutex_lock(&s->lock);
    p.cursor = s->st.cursor;
    pthread_mutex_unlock(&s->lock);
    p.rows = verso__sync_applier_rows(s->ap);
    p.master_head = head;
    p.elapsed_ms = now - s->start_ms;
    s->o.client.on_progress(&p, s->o.client.progress_arg);
}

static int on_changes(verso_slave *s, verso_json *doc)
{
    const cJSON *msg = verso_json_root(doc);
    int64_t from, to, head;
    bool more = verso__sync_json_get_bool(msg, "more");
    int rc;

    if (s->snapshot_only) {
        finish(s, s->finished ? s->done : 0);
        verso_json_free(doc);
        return 0;
    }
    if (s->link != VERSO_LINK_LIVE || verso__sync_json_get_i64(&from, msg, "from") < 0 ||
        verso__sync_json_get_i64(&to, msg, "to") < 0 ||
        verso__sync_json_get_i64(&head, msg, "head") < 0 || from != s->expected_from || to < from) {
        set_error(s, "%s", "changes out of sequence");
        verso_json_free(doc);
        return VERSO_EPROTO;
    }
    s->expected_from = to;
    if (!more && to == from && !s->reset_pending && !verso__sync_applier_open(s->ap) &&
        cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(msg, "entries")) == 0 &&
        strcmp(s->st.master, s->master) == 0) { /* we hold the head already: nothing to write */
        verso_json_free(doc);
        s->ack_due = true;
        s->ack_version = to;
        publish(s, to, head, false);
        want_write(s);
        return 0;
    }
    rc = verso__sync_applier_entries(s->ap, doc, cJSON_GetObjectItemCaseSensitive(msg, "entries"),
                                     s->reset_pending);
    if (rc < 0) {
        set_error(s, "apply: %s", verso__sync_applier_errmsg(s->ap));
        return rc;
    }
    progress(s, head);
    if (more) {
        publish(s, -1, head, false);
        return 0;
    }
    return commit(s, to, head);
}

static int on_heartbeat(verso_slave *s, verso_json *doc)
{
    int64_t head;

    if (verso__sync_json_get_i64(&head, verso_json_root(doc), "head") == 0 &&
        !verso__sync_applier_open(s->ap))
        publish(s, -1, head, false);
    return 0;
}

static int on_resync(verso_slave *s, verso_json *doc)
{
    const cJSON *msg = verso_json_root(doc);
    const char *id = verso__sync_json_get_str(msg, "identity");

    /* the master may have changed identity since its hello: the cursor
     * committed after the resynchronisation belongs to this one */
    if (!id || strlen(id) != 36)
        return VERSO_EPROTO;
    memcpy(s->master, id, sizeof(s->master));
    s->ack_due = false; /* of the former subscription */
    verso__sync_json_get_i64(&s->master_head, msg, "head");
    verso__sync_json_get_i64(&s->master_horizon, msg, "horizon");
    verso__sync_applier_abort(s->ap);
    s->force_reset = true;
    s->reset_pending = true;
    s->expected_from = 0;
    s->subscribe_due = true;
    return 0;
}

static int on_error(verso_slave *s, verso_json *doc)
{
    const char *m = verso__sync_json_get_str(verso_json_root(doc), "message");

    set_error(s, "master: %s", m ? m : "error");
    return VERSO_EPROTO;
}

typedef int (*msg_fn)(verso_slave *s, verso_json *doc);

static const struct {
    const char *type;
    msg_fn fn;
    bool takes_doc; /* the handler takes ownership of the document */
} incoming[] = {
    {"hello", on_hello, false},         {"schema", on_schema, false}, {"changes", on_changes, true},
    {"heartbeat", on_heartbeat, false}, {"resync", on_resync, false}, {"error", on_error, false},
    {"snapshot", on_snapshot, false},
};

static int handle_message(verso_slave *s, const char *data, size_t len)
{
    verso_json *doc = NULL;
    const char *type, *why = NULL;
    int rc = VERSO_EPROTO;

    if (snapshot_fast(s, data, len, &rc))
        return rc;
    if (verso_json_parse(&doc, data, len, 0, &why) < 0) {
        set_error(s, "bad message: %s", why ? why : "");
        return VERSO_EPROTO;
    }
    type = verso__sync_json_get_str(verso_json_root(doc), "type");
    if (type) /* a type added by a newer master is ignored (protocol.md) */
        rc = 0;
    for (size_t i = 0; type && i < sizeof(incoming) / sizeof(incoming[0]); i++) {
        if (strcmp(incoming[i].type, type) == 0) {
            rc = incoming[i].fn(s, doc);
            if (incoming[i].takes_doc)
                doc = NULL;
            break;
        }
    }
    verso_json_free(doc);
    return rc;
}

/* ---- the link ---- */

#define TO(state) (1u << (state))

/*
 * Each state of a link: its name, the states it may move to, and
 * last_error when its deadline passes or lws closes it. A connection can
 * be established without lws asking for upgrade headers first
 * (CONNECTING to HELLO).
 */
static const struct {
    const char *name;
    unsigned next;
    const char *timeout;
    const char *closed;
} steps[] = {
    [VERSO_LINK_WAITING] = {"waiting", TO(VERSO_LINK_CONNECTING), NULL, NULL},
    [VERSO_LINK_CONNECTING] = {"connecting",
                               TO(VERSO_LINK_UPGRADING) | TO(VERSO_LINK_HELLO) |
                                   TO(VERSO_LINK_WAITING),
                               "timed out connecting to the master", "cannot connect"},
    [VERSO_LINK_UPGRADING] = {"upgrading", TO(VERSO_LINK_HELLO) | TO(VERSO_LINK_WAITING),
                              "timed out: the master accepted the connection but did not answer "
                              "the WebSocket upgrade",
                              "connection closed before the WebSocket upgrade was answered"},
    [VERSO_LINK_HELLO] = {"hello", TO(VERSO_LINK_LIVE) | TO(VERSO_LINK_WAITING),
                          "timed out waiting for the master's hello",
                          "connection closed before the master's hello"},
    [VERSO_LINK_LIVE] = {"live", TO(VERSO_LINK_WAITING),
                         "timed out: no message from the master for three heartbeat periods",
                         "connection closed"},
};

/* The only place the link changes state; a step's deadline counts from here. */
static void link_move(verso_slave *s, verso_slave_link to)
{
    assert(steps[s->link].next & TO(to));
    assert(to != VERSO_LINK_WAITING || !s->wsi);
    s->link = to;
    s->step_ms = verso__sync_mono_ms();
    pthread_mutex_lock(&s->lock);
    s->st.link = to;
    s->st.connected = to == VERSO_LINK_LIVE;
    s->st.attempts += to == VERSO_LINK_CONNECTING;
    s->st.reconnects += to == VERSO_LINK_LIVE && s->ever_live;
    pthread_mutex_unlock(&s->lock);
    s->ever_live = s->ever_live || to == VERSO_LINK_LIVE;
}

/* When the current step fails: live links by the master's silence, the others by their age. */
static int64_t step_deadline(const verso_slave *s)
{
    if (s->link == VERSO_LINK_LIVE)
        return s->last_rx_ms + 3 * s->master_hb_ms;
    return s->step_ms + s->o.connect_timeout_ms;
}

/*
 * The one way out of a link, whatever ended it: the open transaction is
 * rolled back, the wsi forgotten (lws closes it, or link_kill() did), and
 * the next attempt scheduled with backoff. why becomes last_error unless
 * this connection already said something more precise.
 */
static void link_end(verso_slave *s, const char *why)
{
    int64_t jitter;

    if (s->link == VERSO_LINK_WAITING)
        return;
    finish(s, VERSO_ENET);
    snapshot_discard(s);
    verso__sync_applier_abort(s->ap);
    s->wsi = NULL;
    s->subscribe_due = false;
    verso_buf_clear(&s->rx);
    s->retry_ms = s->retry_ms ? s->retry_ms * 2 : s->o.retry_min_ms;
    if (s->retry_ms > s->o.retry_max_ms)
        s->retry_ms = s->o.retry_max_ms;
    jitter = rand() % (s->retry_ms / 4 + 1);
    s->next_connect_ms = verso__sync_mono_ms() + s->retry_ms - jitter;
    pthread_mutex_lock(&s->lock);
    if (why && !s->conn_error) /* "connection closed" would hide the reason */
        snprintf(s->st.last_error, sizeof(s->st.last_error), "%s", why);
    pthread_mutex_unlock(&s->lock);
    link_move(s, VERSO_LINK_WAITING);
}

/* A deadline passed: we end the link ourselves (lws closes the wsi at its next timeout check). */
static void link_kill(verso_slave *s, const char *why)
{
    if (s->wsi)
        lws_set_timeout(s->wsi, PENDING_TIMEOUT_USER_REASON_BASE, LWS_TO_KILL_ASYNC);
    set_error(s, "%s", why);
    link_end(s, why);
}

/* ---- outgoing messages ---- */

static int build_subscribe(verso_slave *s, verso_buf *b)
{
    verso_cursor c;
    int rc;

    if (verso_cursor_get(&c, s->db) < 0)
        return VERSO_EDB;
    rc = verso_buf_printf(
        b,
        "{\"type\":\"subscribe\",\"identity\":\"%s\",\"cursor\":%lld,"
        "\"reset\":%s,%s\"name\":",
        s->reset_pending ? "" : c.master, (long long)(s->reset_pending ? 0 : c.version),
        s->reset_pending ? "true" : "false", s->want_snapshot ? "\"snapshot\":true," : "");
    if (rc == 0)
        rc = verso_json_string(b, s->name, strlen(s->name));
    if (rc == 0 && s->tables) {
        rc = verso_buf_puts(b, ",\"tables\":[");
        for (size_t i = 0; rc == 0 && i < s->o.client.ntables; i++) {
            rc = i ? verso_buf_puts(b, ",") : 0;
            if (rc == 0)
                rc = verso_json_string(b, s->tables[i], strlen(s->tables[i]));
        }
        if (rc == 0)
            rc = verso_buf_puts(b, "]");
    }
    if (rc == 0)
        rc = verso_buf_puts(b, "}");
    return rc;
}

/* Ours, but never longer than the master's: it drops us after three of its periods. */
static int64_t heartbeat_period(const verso_slave *s)
{
    return s->o.heartbeat_ms < s->master_hb_ms ? s->o.heartbeat_ms : s->master_hb_ms;
}

static int next_out(verso_slave *s, verso_buf *b)
{
    verso_buf_clear(b);
    verso_buf_reserve(b, LWS_PRE + 256);
    b->len = LWS_PRE; /* headroom lws_write needs */
    if (s->subscribe_due) {
        s->subscribe_due = false;
        if (s->link == VERSO_LINK_HELLO)
            link_move(s, VERSO_LINK_LIVE);
        return build_subscribe(s, b);
    }
    if (s->ack_due) {
        s->ack_due = false;
        return verso_buf_printf(
            b, "{\"type\":\"ack\",\"version\":%lld,\"identity\":\"%s\",\"time\":%lld}",
            (long long)s->ack_version, s->master, (long long)verso_now_ms());
    }
    if (verso__sync_mono_ms() - s->last_tx_ms >= heartbeat_period(s))
        return verso_buf_printf(b, "{\"type\":\"heartbeat\",\"time\":%lld}",
                                (long long)verso_now_ms());
    b->len = 0;
    return 0;
}

static int on_writeable(verso_slave *s, struct lws *wsi)
{
    while (!lws_send_pipe_choked(wsi)) {
        if (next_out(s, &s->tx) < 0) {
            link_end(s, "out of memory");
            return -1;
        }
        if (s->tx.len <= LWS_PRE)
            return 0;
        if (lws_write(wsi, (unsigned char *)s->tx.data + LWS_PRE, s->tx.len - LWS_PRE,
                      LWS_WRITE_TEXT) < (int)(s->tx.len - LWS_PRE)) {
            link_end(s, "cannot send to the master");
            return -1;
        }
        s->last_tx_ms = verso__sync_mono_ms();
    }
    lws_callback_on_writable(wsi);
    return 0;
}

static int on_receive(verso_slave *s, struct lws *wsi, const void *in, size_t len)
{
    int rc;

    s->last_rx_ms = verso__sync_mono_ms();
    if (verso_buf_append(&s->rx, in, len) < 0) {
        link_end(s, "out of memory");
        return -1;
    }
    if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) > 0)
        return 0;
    rc = handle_message(s, s->rx.data, s->rx.len);
    verso_buf_clear(&s->rx);
    if (rc < 0) {
        link_end(s, verso_strerror(rc));
        return -1;
    }
    /* the master's silence is measured, not the time we took to apply */
    s->last_rx_ms = verso__sync_mono_ms();
    if (s->subscribe_due || s->ack_due)
        lws_callback_on_writable(wsi);
    return 0;
}

/* ---- connection lifecycle ---- */

static int append_auth(verso_slave *s, struct lws *wsi, void *in, size_t len)
{
    unsigned char **p = (unsigned char **)in, *end = (*p) + len;

    if (!s->auth)
        return 0;
    return lws_add_http_header_by_name(wsi, (const unsigned char *)"authorization:",
                                       (const unsigned char *)s->auth, (int)strlen(s->auth), p, end)
               ? -1
               : 0;
}

/* The TCP (and TLS) connection is up: lws composes the upgrade request. */
static int on_upgrading(verso_slave *s, struct lws *wsi, void *in, size_t len)
{
    if (s->link == VERSO_LINK_CONNECTING)
        link_move(s, VERSO_LINK_UPGRADING);
    return append_auth(s, wsi, in, len);
}

static void established(verso_slave *s)
{
    s->master_hb_ms = s->o.heartbeat_ms; /* until hello says */
    s->last_rx_ms = s->last_tx_ms = verso__sync_mono_ms();
    link_move(s, VERSO_LINK_HELLO);
}

static const struct {
    unsigned status;
    const char *text;
} refusals[] = {
    {401, "not authorized (HTTP 401): check the replication token"},
    {403, "not authorized (HTTP 403): the replication token lacks the replicate role"},
};

/*
 * A master that answers the upgrade with 401 or 403 refuses our token:
 * retrying soon cannot help, but the token may be fixed in its
 * configuration, so the slave keeps trying at its longest interval.
 */
static void connection_error(verso_slave *s, struct lws *wsi, const char *why)
{
    unsigned status = wsi ? lws_http_client_http_response(wsi) : 0;

    for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
        if (refusals[i].status == status) {
            set_error(s, "%s", refusals[i].text);
            s->retry_ms = s->o.retry_max_ms;
        }
    }
    link_end(s, why ? why : "connection failed");
}

/* A report about a wsi of an attempt already ended: it is closing, or is closed if it talks. */
static int stale(enum lws_callback_reasons reason)
{
    return reason == LWS_CALLBACK_CLIENT_RECEIVE || reason == LWS_CALLBACK_CLIENT_WRITEABLE ||
                   reason == LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER
               ? -1
               : 0;
}

static int ws_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len)
{
    verso_slave *s = lws_context_user(lws_get_context(wsi));

    (void)user;
    if (s->link == VERSO_LINK_WAITING || (uintptr_t)lws_get_opaque_user_data(wsi) != s->attempt)
        return stale(reason);
    s->wsi = wsi;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
        return on_upgrading(s, wsi, in, len);
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        established(s);
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        return on_receive(s, wsi, in, len);
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(s, wsi);
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        connection_error(s, wsi, in);
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    case LWS_CALLBACK_WSI_DESTROY: /* whatever else ended it: the wsi must not outlive the link */
        link_end(s, steps[s->link].closed);
        return 0;
    default:
        return 0;
    }
}

static const struct lws_protocols slave_protocols[] = {
    {VERSO_SYNC_SUBPROTOCOL, ws_cb, 0, 262144, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void try_connect(verso_slave *s)
{
    struct lws_client_connect_info ci;
    struct lws *wsi;
    char path[300];

    memset(&ci, 0, sizeof(ci));
    snprintf(path, sizeof(path), "%s%s", s->url.prefix, VERSO_SYNC_PATH);
    ci.context = s->ctx;
    ci.address = s->url.host;
    ci.port = s->url.port;
    ci.path = path;
    ci.host = s->url.host;
    ci.origin = s->url.host;
    ci.protocol = VERSO_SYNC_SUBPROTOCOL;
    ci.opaque_user_data = (void *)++s->attempt;
    if (s->url.tls) {
        ci.ssl_connection = LCCSCF_USE_SSL;
        if (s->o.client.insecure)
            ci.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK;
    }
    s->conn_error = false;
    s->master_hb_ms = s->o.heartbeat_ms; /* until hello says */
    link_move(s, VERSO_LINK_CONNECTING);
    wsi = lws_client_connect_via_info(&ci);
    if (s->link == VERSO_LINK_WAITING)
        return; /* lws reported the failure during the call: ended already */
    if (!wsi)
        link_end(s, "cannot connect");
    else
        s->wsi = wsi;
}

/* Periodic: the next attempt, each step's deadline, heartbeats. */
static void timer(lws_sorted_usec_list_t *sul)
{
    verso_slave *s = lws_container_of(sul, verso_slave, sul);
    int64_t now = verso__sync_mono_ms();

    if (s->link == VERSO_LINK_WAITING) {
        if (now >= s->next_connect_ms && !s->finished)
            try_connect(s);
    } else if (now > step_deadline(s)) {
        link_kill(s, steps[s->link].timeout);
    } else if (s->link == VERSO_LINK_LIVE) {
        if (now - s->last_tx_ms >= heartbeat_period(s))
            want_write(s);
        /* A link that stayed up resets the backoff; one the master drops right
         * after the subscription (a schema mismatch, an error) keeps doubling it. */
        if (!verso__sync_applier_open(s->ap) && now - s->step_ms >= 1000)
            s->retry_ms = 0;
    }
    lws_sul_schedule(s->ctx, 0, &s->sul, timer, 20000);
}

static void *run(void *arg)
{
    verso_slave *s = arg;

    lws_sul_schedule(s->ctx, 0, &s->sul, timer, 1000);
    while (!atomic_load(&s->stop))
        lws_service(s->ctx, 0);
    lws_sul_cancel(&s->sul);
    verso__sync_applier_abort(s->ap);
    return NULL;
}

/* ---- public API ---- */

static int copy_options(verso_slave *s, const char *db_path, const verso_slave_options *opts)
{
    const char *token = opts->client.token;

    s->o = *opts;
    s->o.heartbeat_ms = s->o.heartbeat_ms > 0 ? s->o.heartbeat_ms : 5000;
    s->o.retry_min_ms = s->o.retry_min_ms > 0 ? s->o.retry_min_ms : 100;
    s->o.retry_max_ms = s->o.retry_max_ms > 0 ? s->o.retry_max_ms : 5000;
    if (s->o.connect_timeout_ms <= 0)
        s->o.connect_timeout_ms = s->o.heartbeat_ms > INT_MAX / 3 ? INT_MAX : 3 * s->o.heartbeat_ms;
    if (!(s->db_path = strdup(db_path)))
        return VERSO_ENOMEM;
    if (token && *token) {
        size_t n = strlen(token) + 8;
        if (!(s->auth = malloc(n)))
            return VERSO_ENOMEM;
        snprintf(s->auth, n, "Bearer %s", token);
    }
    if (opts->client.tables && opts->client.ntables) {
        if (!(s->tables = calloc(opts->client.ntables, sizeof(char *))))
            return VERSO_ENOMEM;
        for (size_t i = 0; i < opts->client.ntables; i++) {
            if (!(s->tables[i] = strdup(opts->client.tables[i])))
                return VERSO_ENOMEM;
        }
    }
    s->o.client.tables = NULL; /* the copies above are used instead */
    s->o.client.token = NULL;
    return 0;
}

static int create_context(verso_slave *s)
{
    struct lws_context_creation_info info;

    /* Connection failures are reported once through last_error: lws's
     * warnings would repeat them on stderr at every retry. */
    verso__lws_log_init();
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = slave_protocols;
    info.gid = -1;
    info.uid = -1;
    info.user = s;
    if (s->url.tls)
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
    s->ctx = lws_create_context(&info);
    return s->ctx ? 0 : VERSO_ENET;
}

static void slave_free(verso_slave *s)
{
    if (s->ctx)
        lws_context_destroy(s->ctx);
    verso__sync_applier_free(s->ap);
    snapshot_discard(s);
    if (!s->borrowed_db)
        verso_db_close(s->db);
    for (size_t i = 0; s->tables && i < s->o.client.ntables; i++)
        free(s->tables[i]);
    free(s->tables);
    free(s->auth);
    free(s->db_path);
    verso_buf_free(&s->rx);
    verso_buf_free(&s->tx);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static int init_sync(verso_slave *s)
{
    pthread_condattr_t ca;
    int rc = 0;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_cond_init(&s->cond, &ca) != 0 || pthread_mutex_init(&s->lock, NULL) != 0)
        rc = VERSO_ENOMEM;
    pthread_condattr_destroy(&ca);
    return rc;
}

int verso_slave_start(verso_slave **out, const char *db_path, const char *url,
                      const verso_slave_options *opts, char *why, size_t whylen)
{
    static const verso_slave_options defaults = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s;
    verso_cursor c;
    char host[48] = "slave";
    int rc;

    *out = NULL;
    verso__sync_why(why, whylen, "%s", "");
    if (!db_path || !(s = calloc(1, sizeof(*s))))
        return db_path ? VERSO_ENOMEM : VERSO_EINVAL;
    if ((rc = init_sync(s)) < 0) {
        free(s);
        return rc;
    }
    if (verso__sync_url_parse(&s->url, url) < 0) {
        verso__sync_why(why, whylen, "bad URL %s", url ? url : "(null)");
        rc = VERSO_EINVAL;
        goto done;
    }
    if ((rc = copy_options(s, db_path, opts ? opts : &defaults)) < 0)
        goto done;
    gethostname(host, sizeof(host) - 1);
    snprintf(s->name, sizeof(s->name), "%s:%ld", host, (long)getpid());
    if ((rc = verso_db_open(&s->db, db_path, &s->o.db)) < 0) {
        verso__sync_why(why, whylen, "%s: %s", db_path, verso_open_errmsg());
        goto done;
    }
    if ((rc = verso_cursor_get(&c, s->db)) < 0 ||
        (rc = verso__sync_applier_new(&s->ap, s->db, &s->o.client)) < 0 ||
        (rc = create_context(s)) < 0) {
        verso__sync_why(why, whylen, "cannot start: %s", verso_strerror(rc));
        goto done;
    }
    s->st.cursor = s->st.master_head = c.version;
    s->start_ms = verso__sync_mono_ms();
    memcpy(s->st.master, c.master, sizeof(s->st.master));
    if (pthread_create(&s->thread, NULL, run, s) != 0) {
        rc = VERSO_ENOMEM;
        goto done;
    }
    *out = s;
done:
    if (rc < 0)
        slave_free(s);
    return rc;
}

void verso_slave_stop(verso_slave *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    lws_cancel_service(s->ctx);
    pthread_join(s->thread, NULL);
    slave_free(s);
}

int verso_slave_state_get(verso_slave_state *out, verso_slave *s)
{
    if (!out || !s)
        return VERSO_EINVAL;
    pthread_mutex_lock(&s->lock);
    *out = s->st;
    out->lag_ms = s->behind_since_ms ? verso__sync_mono_ms() - s->behind_since_ms : 0;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

const char *verso_slave_link_name(verso_slave_link link)
{
    return (unsigned)link < sizeof(steps) / sizeof(steps[0]) ? steps[link].name : "?";
}

int verso_slave_wait(verso_slave *s, int64_t version, int timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    if (!s)
        return VERSO_EINVAL;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (s->st.cursor < version && rc == 0)
        rc = pthread_cond_timedwait(&s->cond, &s->lock, &deadline);
    rc = s->st.cursor >= version ? 0 : VERSO_ETIMEOUT;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* ---- bootstrap of an empty database for the pull (same thread) ---- */

int verso__sync_snapshot_fetch(int64_t *version, verso_db *db, const char *url,
                               const verso_sync_client *opts, const volatile int *stop, char *why,
                               size_t whylen)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = calloc(1, sizeof(*s));
    int rc;

    *version = 0;
    if (!s)
        return VERSO_ENOMEM;
    if ((rc = init_sync(s)) < 0) {
        free(s);
        return rc;
    }
    s->db = db;
    s->borrowed_db = true;
    s->snapshot_only = true;
    o.client = *opts;
    o.client.on_apply = NULL;
    o.connect_timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000;
    snprintf(s->name, sizeof(s->name), "pull:%ld", (long)getpid());
    if ((rc = verso__sync_url_parse(&s->url, url)) < 0 ||
        (rc = copy_options(s, verso_db_path(db), &o)) < 0 ||
        (rc = verso__sync_applier_new(&s->ap, db, NULL)) < 0 || (rc = create_context(s)) < 0)
        goto done;
    try_connect(s);
    lws_sul_schedule(s->ctx, 0, &s->sul, timer, 20000);
    while (!s->finished && !(stop && *stop))
        lws_service(s->ctx, 0);
    rc = s->finished ? s->done : VERSO_EINTERRUPTED;
    if (rc == 1)
        *version = s->st.cursor;
    else if (rc < 0)
        verso__sync_why(why, whylen, "snapshot: %s",
                        s->st.last_error[0] ? s->st.last_error : verso_strerror(rc));
done:
    slave_free(s);
    return rc;
}
