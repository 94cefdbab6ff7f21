/*
 * The pull's bootstrap: an empty database receives the master's file
 * snapshot over /_sync (much faster than rows for a large table), through
 * the client layer (wsc.c) and the snapshot receiver (receive.c) the live
 * slave uses. One connection and no retry: any failure leaves the
 * database untouched and the pull reads rows instead.
 *
 * The fetch is a state machine moved by fetch_move() only; each state but
 * DONE has a deadline (the pull's timeout per step before the file
 * flows, then three of the master's heartbeat periods of silence), and
 * done() is the one way to DONE, whatever ended the fetch: a message
 * (closing the connection), a failure or the end of the connection.
 */
#include <assert.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "sync/internal.h"

typedef enum fetch_state {
    FETCH_CONNECTING, /* TCP, TLS and the WebSocket upgrade */
    FETCH_HELLO,      /* the master's hello awaited */
    FETCH_DUE,        /* hello read: our subscribe asking for the file is next */
    FETCH_RECEIVING,  /* subscribed: the file's chunks, until the last one */
    FETCH_DONE,       /* result says how it ended */
} fetch_state;

#define TO(state) (1u << (state))

/* Each state: the states it may move to, and why it fails when its deadline passes. */
static const struct {
    unsigned next;
    const char *timeout;
} steps[] = {
    [FETCH_CONNECTING] = {TO(FETCH_HELLO) | TO(FETCH_DONE), "timed out connecting to the master"},
    [FETCH_HELLO] = {TO(FETCH_DUE) | TO(FETCH_DONE), "timed out waiting for the master's hello"},
    [FETCH_DUE] = {TO(FETCH_RECEIVING) | TO(FETCH_DONE), "timed out sending the subscription"},
    [FETCH_RECEIVING] = {TO(FETCH_DONE),
                         "timed out: no message from the master for three heartbeat periods"},
    [FETCH_DONE] = {0, NULL},
};

typedef struct fetch {
    verso__wsc *ws;
    verso_db *db;
    verso__sync_snaprx rx;
    fetch_state state;
    int result; /* in DONE: 1 installed, 0 declined, < 0 failed (why) */
    int timeout_ms;
    int64_t step_ms;    /* when the fetch entered its current state */
    int64_t last_tx_ms; /* when we last sent */
    int64_t hb_ms;      /* heartbeat period: ours, capped by the master's */
    const verso_sync_client *o;
    int64_t start_ms, progress_ms; /* for o->on_progress */
    char name[64];
    char why[200];
} fetch;

static void fetch_move(fetch *f, fetch_state to)
{
    assert(steps[f->state].next & TO(to));
    f->state = to;
    f->step_ms = verso__sync_mono_ms();
}

/* The one way to DONE; the first outcome is kept. */
static void done(fetch *f, int result, const char *why)
{
    if (f->state == FETCH_DONE)
        return;
    f->result = result;
    if (why)
        snprintf(f->why, sizeof(f->why), "%s", why);
    fetch_move(f, FETCH_DONE);
}

/* Done on a message that needs no answer: the connection closes normally. */
static void close_done(fetch *f, int result, const char *why)
{
    done(f, result, why);
    verso__wsc_close(f->ws, 1000, "done");
}

/* Only a database with nothing of its own and no cursor takes a file. */
static int on_hello(fetch *f, verso__sync_msg *m)
{
    verso__sync_hello h;
    verso_cursor c;

    if (verso__sync_hello_read(&h, verso_json_root(m->doc)) < 0)
        return VERSO_EPROTO;
    if (h.heartbeat_ms < f->hb_ms)
        f->hb_ms = h.heartbeat_ms;
    if (verso_db_cursor(&c, f->db) < 0)
        return VERSO_EDB;
    if (c.master[0] || c.version != 0 || !verso__sync_snapshot_fits(f->db)) {
        close_done(f, 0, NULL);
        return 0;
    }
    fetch_move(f, FETCH_DUE);
    verso__wsc_want_write(f->ws);
    return 0;
}

/* The file's bytes so far, about every 200 ms and at the last chunk. */
static void snapshot_progress(fetch *f, bool last)
{
    int64_t now = verso__sync_mono_ms();
    verso_sync_progress p = {.phase = VERSO_PHASE_SNAPSHOT, .snapshot_total = f->rx.size};

    if (!f->o->on_progress || (!last && now - f->progress_ms < 200))
        return;
    f->progress_ms = now;
    p.snapshot_bytes = last ? f->rx.size : f->rx.offset;
    p.elapsed_ms = now - f->start_ms;
    p.cursor = p.master_head = last ? f->rx.head : 0;
    f->o->on_progress(&p, f->o->progress_arg);
}

static int on_snapshot(fetch *f, verso__sync_msg *m)
{
    int rc = verso__sync_snaprx_chunk(&f->rx, m);

    if (rc >= 0)
        snapshot_progress(f, rc == 1);
    if (rc == 1)
        close_done(f, 1, NULL);
    else if (rc < 0 && f->rx.why[0])
        done(f, rc, f->rx.why);
    return rc < 0 ? rc : 0;
}

/* Rows instead of a file: the master declined (or its identity changed meanwhile). */
static int on_declined(fetch *f, verso__sync_msg *m)
{
    (void)m;
    close_done(f, 0, NULL);
    return 0;
}

static int on_error(fetch *f, verso__sync_msg *m)
{
    const char *msg = verso__sync_json_get_str(verso_json_root(m->doc), "message");
    char why[160];

    snprintf(why, sizeof(why), "master: %s", msg ? msg : "error");
    close_done(f, VERSO_ENET, why);
    return 0;
}

static int on_heartbeat(fetch *f, verso__sync_msg *m)
{
    (void)f;
    (void)m;
    return 0;
}

/* The master's messages and the states that accept them. */
static const struct {
    const char *type;
    int (*fn)(fetch *f, verso__sync_msg *m);
    unsigned in;
} incoming[] = {
    {"hello", on_hello, TO(FETCH_HELLO)},
    {"snapshot", on_snapshot, TO(FETCH_RECEIVING)},
    {"schema", on_declined, TO(FETCH_RECEIVING)},
    {"changes", on_declined, TO(FETCH_RECEIVING)},
    {"resync", on_declined, TO(FETCH_RECEIVING)},
    {"heartbeat", on_heartbeat, ~0u},
    {"error", on_error, ~0u},
};

static int dispatch(fetch *f, verso__sync_msg *m)
{
    for (size_t i = 0; m->type && i < sizeof(incoming) / sizeof(incoming[0]); i++) {
        if (strcmp(incoming[i].type, m->type) == 0)
            return incoming[i].in & TO(f->state) ? incoming[i].fn(f, m) : VERSO_EPROTO;
    }
    return m->type ? 0 : VERSO_EPROTO;
}

static int on_message(const char *data, size_t len, void *arg)
{
    fetch *f = arg;
    verso__sync_msg m;
    char why[160];
    int rc = verso__sync_msg_read(&m, data, len, why, sizeof(why));

    if (rc == 0)
        rc = dispatch(f, &m);
    verso__sync_msg_free(&m);
    if (rc < 0) /* the layer closes the connection */
        done(f, rc, why[0] ? why : verso_strerror(rc));
    return rc;
}

/* Our subscribe once it is due, else a heartbeat when nothing was sent for a period. */
static int next_out(verso_buf *b, void *arg)
{
    fetch *f = arg;
    int64_t now = verso__sync_mono_ms();
    verso__sync_subscription sub = {.identity = "", .snapshot = true, .name = f->name};
    int rc = 0;

    if (f->state == FETCH_DUE) {
        fetch_move(f, FETCH_RECEIVING);
        rc = verso__sync_subscribe_json(b, &sub);
    } else if (now - f->last_tx_ms >= f->hb_ms) {
        rc = verso_buf_printf(b, "{\"type\":\"heartbeat\",\"time\":%lld}",
                              (long long)verso_now_ms());
    }
    if (b->len)
        f->last_tx_ms = now;
    return rc;
}

static void on_open(void *arg)
{
    fetch *f = arg;

    f->last_tx_ms = verso__sync_mono_ms();
    fetch_move(f, FETCH_HELLO);
}

static void on_ended(verso__wsc_end how, const char *why, unsigned status, void *arg)
{
    (void)how;
    (void)status;
    done(arg, VERSO_ENET, why);
}

static bool expired(const fetch *f, int64_t now)
{
    if (f->state == FETCH_RECEIVING)
        return verso__wsc_silent_ms(f->ws) > 3 * f->hb_ms;
    return now > f->step_ms + f->timeout_ms;
}

static void on_timer(void *arg)
{
    fetch *f = arg;
    int64_t now = verso__sync_mono_ms();

    if (f->state != FETCH_DONE && expired(f, now))
        verso__wsc_kill(f->ws, steps[f->state].timeout);
    else if (f->state == FETCH_RECEIVING && now - f->last_tx_ms >= f->hb_ms)
        verso__wsc_want_write(f->ws);
    verso__wsc_timer(f->ws, 20);
}

static const verso__wsc_handler fetch_handler = {
    .on_upgrading = NULL,
    .on_open = on_open,
    .on_message = on_message,
    .on_writeable = next_out,
    .on_ended = on_ended,
    .on_timer = on_timer,
};

/* Runs the fetch until it is done or *stop is set. */
static int run(fetch *f, const verso__sync_cancel *stop)
{
    f->step_ms = verso__sync_mono_ms();
    verso__wsc_connect(f->ws, VERSO_SYNC_PATH);
    verso__wsc_timer(f->ws, 20);
    while (f->state != FETCH_DONE && !verso__sync_cancelled(stop))
        verso__wsc_service(f->ws);
    return f->state == FETCH_DONE ? f->result : VERSO_EINTERRUPTED;
}

int verso__sync_snapshot_fetch(int64_t *version, verso_db *db, const char *url,
                               const verso_sync_client *opts, const verso__sync_cancel *stop,
                               char *why, size_t whylen)
{
    fetch f = {.db = db,
               .hb_ms = 5000,
               .timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 10000,
               .o = opts,
               .start_ms = verso__sync_mono_ms()};
    verso__sync_url u;
    int rc;

    *version = 0;
    if ((rc = verso__sync_url_parse(&u, url)) < 0 ||
        (rc = verso__wsc_new(&f.ws, &u, opts->token, opts->insecure, &fetch_handler, &f)) < 0)
        return rc;
    verso__sync_snaprx_init(&f.rx, db);
    snprintf(f.name, sizeof(f.name), "pull:%ld", (long)getpid());
    rc = run(&f, stop);
    if (rc == 1)
        *version = f.rx.head;
    else if (rc < 0)
        verso__sync_why(why, whylen, "snapshot: %s", f.why[0] ? f.why : verso_strerror(rc));
    verso__wsc_free(f.ws);
    verso__sync_snaprx_discard(&f.rx);
    return rc;
}
