/*
 * The live slave: its own thread serving a WebSocket client (wsc.c) to
 * the master; this file is the protocol. Messages are applied on that
 * thread as they arrive (the socket is not read meanwhile, which is the
 * flow control); a slave transaction is committed only when a changes
 * message ends at a master snapshot head (more == false), and then not
 * always at once: while more is already waiting on the socket, several
 * such states go into one transaction, committed once 50 ms
 * (COMMIT_EVERY_MS) or COMMIT_ROWS rows after the previous commit. After any
 * failure the connection is dropped, the open transaction rolled back,
 * and the slave reconnects with backoff and resumes from its stored
 * cursor.
 *
 * Two states say where the slave is, each moved by one function: the link
 * (verso_slave_link, link_move()) and, once the master said hello, the
 * subscription (sub_state, sub_move()), which decides what the master may
 * send (incoming[]) and what we send next (next_out()). Each link state
 * but WAITING has a deadline that the slave's own timer enforces: the
 * network reports refusals, resets and closes, but not every way a
 * connection can hang (a listener that accepts and never answers the
 * upgrade, a path that goes silent). Every end of an attempt - reported by the client
 * layer, a failed message, a deadline - arrives as the layer's one
 * on_ended(), and link_end() is the one path to WAITING and the next
 * attempt.
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

#include "sync/internal.h"

/* Where the subscription of the current link is. */
typedef enum sub_state {
    SUB_NONE,         /* no hello read on this link */
    SUB_DUE,          /* hello or resync read: our subscribe for rows is the next message */
    SUB_DUE_SNAPSHOT, /* the same, asking for a file snapshot (nothing of our own yet) */
    SUB_SNAPSHOT,     /* subscribed for a file snapshot: its chunks, until the last one */
    SUB_ROWS,         /* subscribed: schema and batches continuing from expected_from */
} sub_state;

struct verso_slave {
    pthread_t thread;
    pthread_mutex_t lock; /* guards st and the cond */
    pthread_cond_t cond;
    uint64_t jitter_seed; /* the slave's own random sequence for reconnect jitter */
    verso_slave_state st;
    int64_t behind_since_ms;
    atomic_int stop;

    verso_slave_options o;
    verso__sync_url url;
    char **tables;
    char name[64];
    verso_db *db;
    verso__sync_applier *ap;
    verso__blobfetch *blobs; /* long blobs, fetched on this thread while a batch applies */
    verso__sync_cancel cancel;
    verso__wsc *ws;
    verso__sync_snaprx snap;

    verso_slave_link link;
    sub_state sub;
    int64_t step_ms; /* when the link entered its current state */
    int64_t lives;   /* times the link went live */
    int retry_ms;
    int64_t next_connect_ms;
    int64_t retry_at_ms; /* next_connect_ms for other threads (lock) */
    int64_t last_tx_ms;
    bool conn_error;     /* last_error was set on this connection: keep it when it drops */
    bool disk_full;      /* the last apply failed for want of space (last_error says so) */
    bool force_reset;    /* the master asked for a full resynchronisation not committed yet */
    bool reset_pending;  /* the subscription is a full resynchronisation not committed yet */
    int64_t ack_version; /* to acknowledge once subscribed for rows; -1: nothing */
    bool commit_due;     /* the open transaction ends at a master state: due_to, due_head */
    int64_t due_to, due_head;
    int64_t committed_ms;   /* monotonic, the last commit (or the start of the open transaction) */
    int64_t committed_rows; /* the applier's rows at the last commit */
    int64_t expected_from;
    char master[37];      /* the identity of the latest hello, resync or snapshot */
    int64_t master_hb_ms; /* the master's heartbeat period (hello) */
    int64_t start_ms, progress_ms;
    verso__upstream up; /* verso_slave_mount() */
};

/* ---- the link and the subscription ---- */

#define TO(state) (1u << (state))

/*
 * Each state of a link: its name, the states it may move to, and
 * last_error when its deadline passes or the connection closes. A
 * WebSocket may open without the upgrade being reported first
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

/* The moves of a subscription; any state ends with its link (SUB_NONE). */
static const unsigned sub_next[] = {
    [SUB_NONE] = TO(SUB_NONE) | TO(SUB_DUE) | TO(SUB_DUE_SNAPSHOT),
    [SUB_DUE] = TO(SUB_NONE) | TO(SUB_ROWS),
    [SUB_DUE_SNAPSHOT] = TO(SUB_NONE) | TO(SUB_SNAPSHOT),
    [SUB_SNAPSHOT] = TO(SUB_NONE) | TO(SUB_ROWS) | TO(SUB_DUE_SNAPSHOT),
    [SUB_ROWS] = TO(SUB_NONE) | TO(SUB_DUE),
};

static inline bool sub_allowed(sub_state from, sub_state to)
{
    return sub_next[from] & TO(to);
}

/* What holds in every pair of states. */
static void check(const verso_slave *s)
{
    (void)s;
    assert(s->link >= VERSO_LINK_HELLO || s->sub == SUB_NONE);
    assert(s->link == VERSO_LINK_LIVE || s->sub == SUB_NONE || s->sub == SUB_DUE ||
           s->sub == SUB_DUE_SNAPSHOT);
    assert(s->sub == SUB_SNAPSHOT || !s->snap.file);
    assert(s->link != VERSO_LINK_WAITING || !verso__sync_applier_open(s->ap));
}

/* The only place the link changes state; a step's deadline counts from here. */
static void link_move(verso_slave *s, verso_slave_link to)
{
    assert(steps[s->link].next & TO(to));
    s->link = to;
    s->step_ms = verso__sync_mono_ms();
    pthread_mutex_lock(&s->lock);
    s->st.link = to;
    s->st.connected = to == VERSO_LINK_LIVE;
    s->st.attempts += to == VERSO_LINK_CONNECTING;
    s->st.reconnects += to == VERSO_LINK_LIVE && s->lives > 0;
    pthread_mutex_unlock(&s->lock);
    s->lives += to == VERSO_LINK_LIVE;
    check(s);
}

/* The client layer is asked for a writeable report (a detached slave has none). */
static void want_write(verso_slave *s)
{
    if (s->ws)
        verso__wsc_want_write(s->ws);
}

/* The only place the subscription changes state; a subscription due is sent at once. */
static void sub_move(verso_slave *s, sub_state to)
{
    bool ok = sub_allowed(s->sub, to); /* evaluated under NDEBUG too: no unused function */

    assert(ok);
    (void)ok;
    s->sub = to;
    check(s);
    if (to == SUB_DUE || to == SUB_DUE_SNAPSHOT)
        want_write(s);
}

/* ---- shared state ---- */

static void set_error(verso_slave *s, const char *fmt, const char *detail)
{
    s->conn_error = true;
    pthread_mutex_lock(&s->lock);
    snprintf(s->st.last_error, sizeof(s->st.last_error), fmt, detail);
    pthread_mutex_unlock(&s->lock);
}

/* Tells the application (verso_slave_options.on_event), on the slave's thread. */
static void emit(verso_slave *s, verso_slave_event_kind kind, const char *detail, int64_t rows)
{
    verso_slave_event e = {.kind = kind, .detail = detail ? detail : "", .rows = rows};

    if (!s->o.on_event)
        return;
    pthread_mutex_lock(&s->lock);
    e.cursor = s->st.cursor;
    e.master_head = s->st.master_head;
    pthread_mutex_unlock(&s->lock);
    s->o.on_event(&e, s->o.event_arg);
}

/* The phase moves; a catch-up starts from the cursor towards the head. Lock held. */
static void phase_locked(verso_slave *s, verso_sync_phase to)
{
    s->st.phase = to;
    if (to == VERSO_PHASE_CATCHUP) {
        s->st.catchup_from = s->st.cursor;
        s->st.catchup_target = s->st.master_head;
    }
    if (to != VERSO_PHASE_SNAPSHOT)
        s->st.snapshot_bytes = s->st.snapshot_total = 0;
}

static void phase(verso_slave *s, verso_sync_phase to)
{
    pthread_mutex_lock(&s->lock);
    phase_locked(s, to);
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
    if (s->st.received < s->st.cursor || committed)
        s->st.received = s->st.cursor;
    s->st.lag_versions = s->st.master_head - s->st.cursor;
    if (s->st.phase == VERSO_PHASE_CATCHUP && s->st.master_head > s->st.catchup_target)
        s->st.catchup_target = s->st.master_head;
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

/* Catching up and the head reached: the slave is live (said once per catch-up). */
static void caught_up(verso_slave *s)
{
    bool now_live;
    int64_t rows;

    pthread_mutex_lock(&s->lock);
    now_live =
        s->st.phase == VERSO_PHASE_CATCHUP && s->st.lag_versions == 0 && s->link == VERSO_LINK_LIVE;
    if (now_live)
        phase_locked(s, VERSO_PHASE_LIVE);
    rows = s->st.applied_rows;
    pthread_mutex_unlock(&s->lock);
    if (now_live)
        emit(s, VERSO_EVENT_CAUGHT_UP, NULL, rows);
}

static void progress(verso_slave *s, int64_t head, bool force)
{
    int64_t now = verso__sync_mono_ms();
    verso_sync_progress p = {0};

    if (!s->o.client.on_progress || (!force && now - s->progress_ms < 200))
        return;
    s->progress_ms = now;
    pthread_mutex_lock(&s->lock);
    p.cursor = s->st.cursor;
    p.phase = s->st.phase;
    p.snapshot_bytes = s->st.snapshot_bytes;
    p.snapshot_total = s->st.snapshot_total;
    p.snapshot_rows = s->st.snapshot_rows;
    p.catchup_from = s->st.catchup_from;
    p.catchup_target = s->st.catchup_target;
    p.received = s->st.received;
    pthread_mutex_unlock(&s->lock);
    p.rows = verso__sync_applier_rows(s->ap);
    p.master_head = head >= 0 ? head : p.catchup_target;
    p.elapsed_ms = now - s->start_ms;
    s->o.client.on_progress(&p, s->o.client.progress_arg);
}

/* We hold version of the master: say so. */
static void ack_later(verso_slave *s, int64_t version)
{
    s->ack_version = version;
    want_write(s);
}

/* The subscription's full resynchronisation is committed. */
static void reset_done(verso_slave *s)
{
    if (!s->reset_pending)
        return;
    s->reset_pending = false;
    s->force_reset = false;
    pthread_mutex_lock(&s->lock);
    s->st.resyncs++;
    pthread_mutex_unlock(&s->lock);
}

/* ---- incoming messages ---- */

/* Why a full resynchronisation is needed (verso__sync_need_reset() said so). */
static const char *resync_why(const verso_slave *s, const verso_cursor *c,
                              const verso__sync_hello *h)
{
    if (s->force_reset)
        return "the master asked for it";
    if (c->master[0] && strcmp(c->master, h->identity) != 0)
        return "the master's database is another one (identity changed)";
    if (c->version > h->head)
        return "the slave is ahead of the master's head (master restored from a backup?)";
    return "the slave is behind the master's horizon (pruned changes)";
}

static int on_hello(verso_slave *s, verso__sync_msg *m)
{
    verso__sync_hello h;
    verso_cursor c;
    bool snapshot;

    if (verso__sync_hello_read(&h, verso_json_root(m->doc)) < 0)
        return VERSO_EPROTO;
    memcpy(s->master, h.identity, sizeof(s->master));
    s->master_hb_ms = h.heartbeat_ms;
    s->ack_version = -1; /* the subscription's cursor says it */
    verso__sync_applier_abort(s->ap);
    s->commit_due = false;
    if (verso_db_cursor(&c, s->db) < 0)
        return VERSO_EDB;
    s->reset_pending = s->force_reset || verso__sync_need_reset(&c, s->master, h.head, h.horizon);
    if (s->reset_pending)
        emit(s, VERSO_EVENT_RESYNC, resync_why(s, &c, &h), 0);
    snapshot = (s->reset_pending || (!c.master[0] && c.version == 0)) && !s->tables &&
               verso__sync_snapshot_fits(s->db);
    s->expected_from = s->reset_pending ? 0 : c.version;
    publish(s, c.version, h.head, false);
    sub_move(s, snapshot ? SUB_DUE_SNAPSHOT : SUB_DUE);
    return 0;
}

/* A schema or changes while a file was asked for: the master declined, rows come instead. */
static void rows_instead(verso_slave *s)
{
    if (s->sub == SUB_SNAPSHOT)
        sub_move(s, SUB_ROWS);
}

static int on_schema(verso_slave *s, verso__sync_msg *m)
{
    verso__sync_schema schema;
    char why[160] = "";
    int rc;

    rows_instead(s);
    rc = verso__sync_schema_parse(
        &schema, cJSON_GetObjectItemCaseSensitive(verso_json_root(m->doc), "tables"), why,
        sizeof(why));
    if (rc < 0) {
        set_error(s, "schema: %s", why);
        return rc;
    }
    if ((rc = verso__sync_applier_set_schema(s->ap, &schema)) < 0)
        set_error(s, "%s", verso__sync_applier_errmsg(s->ap));
    return rc;
}

/* The file is in place: the subscription continues from its head. */
static int snapshot_installed(verso_slave *s)
{
    int64_t head = s->snap.head;

    int64_t rows = verso__sync_count_rows(s->db);

    sub_move(s, SUB_ROWS);
    s->expected_from = head;
    memcpy(s->master, s->snap.master, sizeof(s->master));
    reset_done(s);
    ack_later(s, head);
    if (s->o.client.on_apply) /* before waiters see the version, as for rows */
        s->o.client.on_apply(NULL, 0, head, true, s->o.client.apply_arg);
    publish(s, head, head, true);
    pthread_mutex_lock(&s->lock);
    s->st.snapshot_rows = rows;
    phase_locked(s, VERSO_PHASE_CATCHUP);
    pthread_mutex_unlock(&s->lock);
    emit(s, VERSO_EVENT_BOOTSTRAPPED, NULL, rows);
    progress(s, head, true);
    return 0;
}

static int on_snapshot(verso_slave *s, verso__sync_msg *m)
{
    int rc = verso__sync_snaprx_chunk(&s->snap, m);

    if (rc < 0 && s->snap.why[0])
        set_error(s, "%s", s->snap.why);
    if (rc == 0) {
        pthread_mutex_lock(&s->lock);
        s->st.snapshot_bytes = s->snap.offset;
        s->st.snapshot_total = s->snap.size;
        pthread_mutex_unlock(&s->lock);
        progress(s, -1, false);
    }
    return rc == 1 ? snapshot_installed(s) : rc;
}

/*
 * An apply that failed: its transaction is rolled back with the link, so
 * the cursor stays with the data. A full disk says so in words an operator
 * acts on; the link then ends and the backoff retries until space returns.
 */
static int apply_failed(verso_slave *s, int rc, const char *what)
{
    char msg[sizeof(s->st.last_error)];

    s->disk_full = rc == VERSO_EFULL;
    if (!s->disk_full) {
        set_error(s, what, verso__sync_applier_errmsg(s->ap));
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    snprintf(msg, sizeof(msg),
             "disk full: applying stopped at version %lld; free space, it resumes by itself",
             (long long)s->st.cursor);
    pthread_mutex_unlock(&s->lock);
    set_error(s, "%s", msg);
    return rc;
}

/* The first commit after a full disk ends that condition, and its message. */
static void disk_back(verso_slave *s)
{
    if (!s->disk_full)
        return;
    s->disk_full = false;
    pthread_mutex_lock(&s->lock);
    s->st.last_error[0] = '\0';
    pthread_mutex_unlock(&s->lock);
}

static int commit(verso_slave *s, int64_t to, int64_t head)
{
    int rc = verso__sync_applier_commit(s->ap, s->master, to);

    s->commit_due = false;
    if (rc < 0)
        return apply_failed(s, rc, "%s");
    s->committed_ms = verso__sync_mono_ms();
    s->committed_rows = verso__sync_applier_rows(s->ap);
    disk_back(s);
    reset_done(s);
    s->retry_ms = 0; /* progress: the next failure starts the backoff afresh */
    ack_later(s, to);
    publish(s, to, head, true);
    caught_up(s);
    return 0;
}

#define COMMIT_EVERY_MS 50
#define COMMIT_ROWS     4096

/* The open transaction ends at a master state (commit_due): whether to commit it now rather
 * than take the next state, already arriving, into it too. */
static bool commit_now(const verso_slave *s)
{
    return verso__sync_mono_ms() - s->committed_ms >= COMMIT_EVERY_MS ||
           verso__sync_applier_rows(s->ap) - s->committed_rows >= COMMIT_ROWS || !s->ws ||
           !verso__wsc_pending(s->ws);
}

/* Commits the master state the open transaction ends at, if it ends at one. */
static int commit_due(verso_slave *s)
{
    return s->commit_due ? commit(s, s->due_to, s->due_head) : 0;
}

/* An empty batch at the cursor we stored for this master: nothing to write. */
static bool holds(const verso_slave *s, size_t nentries, int64_t from, int64_t to, bool more)
{
    return !more && to == from && !s->reset_pending && !verso__sync_applier_open(s->ap) &&
           nentries == 0 && strcmp(s->st.master, s->master) == 0;
}

/* A batch continues where the previous one ended (protocol.md, "changes"); read: its
 * numbers are integers. */
static int in_sequence(verso_slave *s, bool read, int64_t from, int64_t to)
{
    if (!read || from != s->expected_from || to < from) {
        set_error(s, "%s", "changes out of sequence");
        return VERSO_EPROTO;
    }
    s->expected_from = to;
    return 0;
}

static int held(verso_slave *s, int64_t to, int64_t head)
{
    ack_later(s, to);
    publish(s, to, head, false);
    caught_up(s);
    return 0;
}

/* Before a batch's entries are applied: the open transaction goes on past
 * the master state it may have ended at. */
static void begin_apply(verso_slave *s)
{
    if (!verso__sync_applier_open(s->ap))
        s->committed_ms = verso__sync_mono_ms(); /* a new transaction: its clock starts */
    s->commit_due = false;
}

/* After a batch's entries were applied (rc). */
static int applied(verso_slave *s, int rc, int64_t to, int64_t head, bool more)
{
    if (rc < 0)
        return apply_failed(s, rc, "apply: %s");
    pthread_mutex_lock(&s->lock);
    s->st.received = to;
    pthread_mutex_unlock(&s->lock);
    progress(s, head, false);
    publish(s, -1, head, false);
    if (more)
        return 0;
    s->commit_due = true;
    s->due_to = to;
    s->due_head = head;
    return commit_now(s) ? commit(s, to, head) : 0;
}

static int on_changes(verso_slave *s, verso__sync_msg *m)
{
    const cJSON *msg = verso_json_root(m->doc);
    const cJSON *entries = cJSON_GetObjectItemCaseSensitive(msg, "entries");
    bool more = verso__sync_json_get_bool(msg, "more");
    int64_t from = 0, to = 0, head = 0;
    bool read = verso__sync_json_get_i64(&from, msg, "from") == 0 &&
                verso__sync_json_get_i64(&to, msg, "to") == 0 &&
                verso__sync_json_get_i64(&head, msg, "head") == 0;
    int rc;

    rows_instead(s);
    if ((rc = in_sequence(s, read, from, to)) < 0)
        return rc;
    if (holds(s, (size_t)cJSON_GetArraySize(entries), from, to, more))
        return held(s, to, head);
    begin_apply(s);
    rc = verso__sync_applier_entries(s->ap, m->doc, entries, s->reset_pending, from, to);
    m->doc = NULL; /* taken over */
    return applied(s, rc, to, head, more);
}

/* A changes message in the master's own form, read by the applier without
 * a JSON tree (scan.c); *taken false: another form, for on_changes(). */
static int on_scanned(verso_slave *s, const char *data, size_t len, bool *taken)
{
    int64_t from, to, head;
    bool more;
    size_t n;
    int rc;

    *taken = false;
    if (!(TO(s->sub) & (TO(SUB_SNAPSHOT) | TO(SUB_ROWS))) || verso__sync_scan_off ||
        (rc = verso__sync_applier_scan(s->ap, data, len)) == 0)
        return 0;
    *taken = true;
    if (rc < 0)
        return rc;
    verso__sync_applier_scanned_header(s->ap, &from, &to, &head, &more, &n);
    rows_instead(s);
    if ((rc = in_sequence(s, true, from, to)) < 0)
        return rc;
    if (holds(s, n, from, to, more))
        return held(s, to, head);
    begin_apply(s);
    return applied(s, verso__sync_applier_scanned(s->ap, s->reset_pending), to, head, more);
}

static int on_heartbeat(verso_slave *s, verso__sync_msg *m)
{
    int64_t head;

    if (verso__sync_json_get_i64(&head, verso_json_root(m->doc), "head") == 0 &&
        !verso__sync_applier_open(s->ap))
        publish(s, -1, head, false);
    return 0;
}

static int on_resync(verso_slave *s, verso__sync_msg *m)
{
    const char *id = verso__sync_json_get_str(verso_json_root(m->doc), "identity");

    /* the master may have changed identity since its hello: the cursor
     * committed after the resynchronisation belongs to this one */
    if (!id || strlen(id) != 36)
        return VERSO_EPROTO;
    memcpy(s->master, id, sizeof(s->master));
    emit(s, VERSO_EVENT_RESYNC, "the master asked for it (its database was replaced or went back)",
         0);
    s->ack_version = -1; /* of the former subscription */
    verso__sync_applier_abort(s->ap);
    s->commit_due = false;
    verso__sync_snaprx_discard(&s->snap);
    s->force_reset = true;
    s->reset_pending = true;
    s->expected_from = 0;
    sub_move(s, s->sub == SUB_SNAPSHOT ? SUB_DUE_SNAPSHOT : SUB_DUE);
    phase(s, VERSO_PHASE_CONNECTING);
    return 0;
}

static void link_end(verso_slave *s, const char *why);

static int on_error(verso_slave *s, verso__sync_msg *m)
{
    const char *msg = verso__sync_json_get_str(verso_json_root(m->doc), "message");

    set_error(s, "master: %s", msg ? msg : "error");
    if (s->ws) /* its on_ended() ends the link */
        verso__wsc_close(s->ws, 1000, "the master reported an error"); /* it closes as well */
    else
        link_end(s, "the master reported an error");
    return 0;
}

#define SUBSCRIBED (TO(SUB_SNAPSHOT) | TO(SUB_ROWS))
#define ANY        (~0u)

/* The master's messages and the subscription states that accept them. */
static const struct {
    const char *type;
    int (*fn)(verso_slave *s, verso__sync_msg *m);
    unsigned in;
} incoming[] = {
    {"hello", on_hello, TO(SUB_NONE)},
    {"schema", on_schema, SUBSCRIBED},
    {"changes", on_changes, SUBSCRIBED},
    {"snapshot", on_snapshot, TO(SUB_SNAPSHOT)},
    {"heartbeat", on_heartbeat, ANY},
    {"resync", on_resync, SUBSCRIBED},
    {"error", on_error, ANY},
};

static int dispatch(verso_slave *s, verso__sync_msg *m)
{
    if (!m->type)
        return VERSO_EPROTO;
    for (size_t i = 0; i < sizeof(incoming) / sizeof(incoming[0]); i++) {
        if (strcmp(incoming[i].type, m->type) != 0)
            continue;
        if (!(incoming[i].in & TO(s->sub))) {
            set_error(s, "%s out of sequence", m->type);
            return VERSO_EPROTO;
        }
        return incoming[i].fn(s, m);
    }
    return 0; /* a type added by a newer master is ignored (protocol.md) */
}

static int on_message(const char *data, size_t len, void *arg)
{
    verso_slave *s = arg;
    verso__sync_msg m;
    char why[100];
    bool taken;
    int rc = on_scanned(s, data, len, &taken);

    if (taken)
        return rc;
    rc = verso__sync_msg_read(&m, data, len, why, sizeof(why));
    if (rc == VERSO_EPROTO)
        set_error(s, "bad message: %s", why);
    if (rc == 0)
        rc = dispatch(s, &m);
    verso__sync_msg_free(&m);
    return rc;
}

/* ---- outgoing messages ---- */

/* Ours, but never longer than the master's: it drops us after three of its periods. */
static int64_t heartbeat_period(const verso_slave *s)
{
    return s->o.heartbeat_ms < s->master_hb_ms ? s->o.heartbeat_ms : s->master_hb_ms;
}

/* The subscription due; sending it makes the link live. */
static int subscribe(verso_slave *s, verso_buf *b)
{
    verso__sync_subscription sub = {.identity = "",
                                    .reset = s->reset_pending,
                                    .snapshot = s->sub == SUB_DUE_SNAPSHOT,
                                    .name = s->name,
                                    .tables = s->tables,
                                    .ntables = s->o.client.ntables};
    verso_cursor c;

    if (verso_db_cursor(&c, s->db) < 0)
        return VERSO_EDB;
    if (!s->reset_pending) {
        sub.identity = c.master;
        sub.cursor = c.version;
    }
    if (s->link == VERSO_LINK_HELLO) {
        link_move(s, VERSO_LINK_LIVE);
        emit(s, VERSO_EVENT_CONNECTED, s->master, 0);
    }
    sub_move(s, sub.snapshot ? SUB_SNAPSHOT : SUB_ROWS);
    phase(s, sub.snapshot ? VERSO_PHASE_SNAPSHOT : VERSO_PHASE_CATCHUP);
    progress(s, -1, true);
    return verso__sync_subscribe_json(b, &sub);
}

/*
 * The one place that decides what to send: the subscription once it is
 * due; once subscribed for rows, an ack of the last commit; otherwise a
 * heartbeat when nothing was sent for a period.
 */
static int next_out(verso_buf *b, void *arg)
{
    verso_slave *s = arg;
    int64_t now = verso__sync_mono_ms();
    int rc = 0;

    if (s->sub == SUB_DUE || s->sub == SUB_DUE_SNAPSHOT) {
        rc = subscribe(s, b);
    } else if (s->sub == SUB_ROWS && s->ack_version >= 0) {
        rc = verso_buf_printf(
            b, "{\"type\":\"ack\",\"version\":%lld,\"identity\":\"%s\",\"time\":%lld}",
            (long long)s->ack_version, s->master, (long long)verso_now_ms());
        s->ack_version = -1;
    } else if (now - s->last_tx_ms >= heartbeat_period(s)) {
        rc = verso_buf_printf(b, "{\"type\":\"heartbeat\",\"time\":%lld}",
                              (long long)verso_now_ms());
    }
    if (b->len)
        s->last_tx_ms = now;
    return rc;
}

/* ---- the link's life ---- */

/*
 * The one way out of a link, whatever ended it: the open transaction is
 * rolled back, a partial snapshot removed, and the next attempt scheduled
 * with backoff. why becomes last_error unless this connection already said
 * something more precise.
 */
/* A small generator of the slave's own (rand() is the application's). */
static uint64_t next_random(uint64_t *seed)
{
    *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
    return *seed >> 33;
}

static void link_end(verso_slave *s, const char *why)
{
    char last[sizeof(s->st.last_error)];
    bool was_live;
    int64_t jitter;

    verso__sync_snaprx_discard(&s->snap);
    verso__sync_applier_abort(s->ap);
    s->commit_due = false;
    sub_move(s, SUB_NONE);
    s->retry_ms = s->retry_ms ? s->retry_ms * 2 : s->o.retry_min_ms;
    if (s->retry_ms > s->o.retry_max_ms)
        s->retry_ms = s->o.retry_max_ms;
    jitter = (int64_t)(next_random(&s->jitter_seed) % (uint64_t)(s->retry_ms / 4 + 1));
    s->next_connect_ms = verso__sync_mono_ms() + s->retry_ms - jitter;
    pthread_mutex_lock(&s->lock);
    s->retry_at_ms = s->next_connect_ms;
    if (why && !s->conn_error) /* "connection closed" would hide the reason */
        snprintf(s->st.last_error, sizeof(s->st.last_error), "%s", why);
    phase_locked(s, VERSO_PHASE_CONNECTING);
    snprintf(last, sizeof(last), "%s", s->st.last_error);
    pthread_mutex_unlock(&s->lock);
    was_live = s->link == VERSO_LINK_LIVE;
    link_move(s, VERSO_LINK_WAITING);
    if (was_live)
        emit(s, VERSO_EVENT_DISCONNECTED, last, 0);
}

static const struct {
    unsigned status;
    const char *text;
} refusals[] = {
    {401, "not authorized (HTTP 401): check the replication token"},
    {403, "not authorized (HTTP 403): the replication token lacks the replicate role"},
};

/*
 * Every attempt ends here once. A master that answers the upgrade with 401
 * or 403 refuses our token: retrying soon cannot help, but the token may
 * be fixed in its configuration, so the slave keeps trying at its longest
 * interval.
 */
static void on_ended(verso__wsc_end how, const char *why, unsigned status, void *arg)
{
    verso_slave *s = arg;

    for (size_t i = 0; how == VERSO__WSC_FAILED && i < sizeof(refusals) / sizeof(refusals[0]);
         i++) {
        if (refusals[i].status == status) {
            set_error(s, "%s", refusals[i].text);
            s->retry_ms = s->o.retry_max_ms;
        }
    }
    link_end(s, how == VERSO__WSC_CLOSED ? steps[s->link].closed : why);
}

/* The TCP (and TLS) connection is up: the upgrade request goes out. */
static void on_upgrading(void *arg)
{
    verso_slave *s = arg;

    if (s->link == VERSO_LINK_CONNECTING)
        link_move(s, VERSO_LINK_UPGRADING);
}

static void on_open(void *arg)
{
    verso_slave *s = arg;

    s->master_hb_ms = s->o.heartbeat_ms; /* until hello says */
    s->last_tx_ms = verso__sync_mono_ms();
    link_move(s, VERSO_LINK_HELLO);
}

static void try_connect(verso_slave *s)
{
    s->conn_error = false;
    s->master_hb_ms = s->o.heartbeat_ms; /* until hello says */
    link_move(s, VERSO_LINK_CONNECTING);
    verso__wsc_connect(s->ws, VERSO_SYNC_PATH);
}

/* The current step took too long: live links by the master's silence, the others by their age. */
static bool expired(const verso_slave *s, int64_t now)
{
    if (s->link == VERSO_LINK_LIVE)
        return verso__wsc_silent_ms(s->ws) > 3 * s->master_hb_ms;
    return now > s->step_ms + s->o.connect_timeout_ms;
}

/* Periodic: the next attempt, each step's deadline, heartbeats. */
static void on_timer(void *arg)
{
    verso_slave *s = arg;
    int64_t now = verso__sync_mono_ms();

    if (s->link == VERSO_LINK_WAITING) {
        if (now >= s->next_connect_ms)
            try_connect(s);
    } else if (expired(s, now)) {
        set_error(s, "%s", steps[s->link].timeout);
        verso__wsc_kill(s->ws, steps[s->link].timeout);
    } else if (s->link == VERSO_LINK_LIVE && s->commit_due && commit_due(s) < 0) {
        verso__wsc_close(s->ws, 1011, "apply failed");
    } else if (s->link == VERSO_LINK_LIVE) {
        if (now - s->last_tx_ms >= heartbeat_period(s))
            verso__wsc_want_write(s->ws);
        /* A link that stayed up resets the backoff; one the master drops right
         * after the subscription (a schema mismatch, an error) keeps doubling it. */
        if (!verso__sync_applier_open(s->ap) && now - s->step_ms >= 1000)
            s->retry_ms = 0;
    }
    verso__wsc_timer(s->ws, 20);
}

static const verso__wsc_handler link_handler = {
    .on_upgrading = on_upgrading,
    .on_open = on_open,
    .on_message = on_message,
    .on_writeable = next_out,
    .on_ended = on_ended,
    .on_timer = on_timer,
};

static void *run(void *arg)
{
    verso_slave *s = arg;

    verso__wsc_timer(s->ws, 1);
    while (!atomic_load(&s->stop)) {
        verso__wsc_service(s->ws);
        /* the messages that were waiting are applied: commit what they led to */
        if (s->commit_due && !verso__wsc_pending(s->ws) && commit_due(s) < 0)
            verso__wsc_close(s->ws, 1011, "apply failed");
    }
    (void)commit_due(s); /* a master state already applied is worth keeping */
    verso__sync_applier_abort(s->ap);
    s->commit_due = false;
    return NULL;
}

/* ---- public API ---- */

/* The options with their defaults, the tables to follow, the name we give the master. */
static int copy_options(verso_slave *s, const verso_slave_options *opts)
{
    char host[48] = "slave";

    gethostname(host, sizeof(host) - 1);
    snprintf(s->name, sizeof(s->name), "%s:%ld", host, (long)getpid());
    if (opts->name && opts->name[0]) /* --name: a stable name for the master's list */
        verso__sync_copy_name(s->name, sizeof(s->name), opts->name);
    s->o = *opts;
    s->o.name = NULL; /* copied into s->name */
    s->o.heartbeat_ms = s->o.heartbeat_ms > 0 ? s->o.heartbeat_ms : 5000;
    s->o.retry_min_ms = s->o.retry_min_ms > 0 ? s->o.retry_min_ms : 100;
    s->o.retry_max_ms = s->o.retry_max_ms > 0 ? s->o.retry_max_ms : 5000;
    if (s->o.connect_timeout_ms <= 0)
        s->o.connect_timeout_ms = s->o.heartbeat_ms > INT_MAX / 3 ? INT_MAX : 3 * s->o.heartbeat_ms;
    s->o.client.tables = NULL; /* the copies below are used instead */
    s->o.client.token = NULL;  /* the client layer keeps its own */
    if (!opts->client.tables || !opts->client.ntables)
        return 0;
    if (!(s->tables = verso__calloc(opts->client.ntables, sizeof(char *))))
        return VERSO_ENOMEM;
    for (size_t i = 0; i < opts->client.ntables; i++) {
        if (!(s->tables[i] = verso__strdup(opts->client.tables[i])))
            return VERSO_ENOMEM;
    }
    return 0;
}

static void slave_free(verso_slave *s)
{
    verso__wsc_free(s->ws);
    verso__sync_applier_free(s->ap);
    verso__blobfetch_free(s->blobs);
    verso__sync_snaprx_discard(&s->snap);
    verso_db_close(s->db);
    for (size_t i = 0; s->tables && i < s->o.client.ntables; i++)
        verso__free(s->tables[i]);
    verso__free(s->tables);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    verso__free(s);
}

static verso_slave *slave_alloc(void)
{
    verso_slave *s = verso__calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    int ok;

    if (!s)
        return NULL;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ok = pthread_cond_init(&s->cond, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pthread_mutex_init(&s->lock, NULL) == 0) {
        s->ack_version = -1;
        /* slaves started together, in one process or many, spread out */
        s->jitter_seed =
            (uint64_t)verso__sync_mono_us() ^ (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)s;
        return s;
    }
    if (ok)
        pthread_cond_destroy(&s->cond);
    verso__free(s);
    return NULL;
}

/* A long blob is fetched on the slave's thread while its batch applies: the
 * socket is not read meanwhile, as for any apply (the flow control). */
static int blobs_new(verso_slave *s, const verso_slave_options *opts)
{
    verso__sync_blob_source src;
    int rc;

    s->cancel.flag = &s->stop;
    rc = verso__blobfetch_new(&s->blobs, &s->url, opts->client.token, opts->client.insecure,
                              opts->client.timeout_ms, verso_db_path(s->db), &s->cancel);
    if (rc < 0)
        return rc;
    verso__blobfetch_source(&src, s->blobs);
    verso__sync_applier_set_blobs(s->ap, &src);
    return 0;
}

/* The database, the applier and, unless opts is NULL (a detached slave), the client layer. */
static int open_parts(verso_slave *s, const char *db_path, const verso_slave_options *opts,
                      char *why, size_t whylen)
{
    char open_why[256] = "";
    verso_cursor c;
    int rc;

    if ((rc = verso_db_open(&s->db, db_path, &s->o.db, open_why, sizeof(open_why))) < 0) {
        verso__sync_why(why, whylen, "%s: %s", db_path, open_why);
        return rc;
    }
    verso__sync_snaprx_init(&s->snap, s->db);
    if ((rc = verso_db_cursor(&c, s->db)) < 0 ||
        (rc = verso__sync_applier_new(&s->ap, s->db, &s->o.client)) < 0 ||
        (opts && (rc = verso__wsc_new(&s->ws, &s->url, opts->client.token, opts->client.insecure,
                                      &link_handler, s)) < 0) ||
        (opts && (rc = blobs_new(s, opts)) < 0)) {
        verso__sync_why(why, whylen, "cannot start: %s", verso_strerror(rc));
        return rc;
    }
    s->st.cursor = s->st.master_head = c.version;
    memcpy(s->st.master, c.master, sizeof(s->st.master));
    return 0;
}

/* A slave with its options and database; url NULL: no client (detached). */
static int slave_make(verso_slave **out, const char *db_path, const char *url,
                      const verso_slave_options *opts, char *why, size_t whylen)
{
    static const verso_slave_options defaults = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s;
    int rc = 0;

    *out = NULL;
    verso__sync_why(why, whylen, "%s", "");
    if (!db_path || !(s = slave_alloc()))
        return db_path ? VERSO_ENOMEM : VERSO_EINVAL;
    opts = opts ? opts : &defaults;
    if (url && verso__sync_url_parse(&s->url, url) < 0) {
        verso__sync_why(why, whylen, "bad URL %s", url);
        rc = VERSO_EINVAL;
    }
    if (rc == 0 && (rc = copy_options(s, opts)) == 0)
        rc = open_parts(s, db_path, url ? opts : NULL, why, whylen);
    if (rc < 0) {
        slave_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int verso_slave_start(verso_slave **out, const char *db_path, const char *url,
                      const verso_slave_options *opts, char *why, size_t whylen)
{
    int rc;

    if (!url) {
        *out = NULL;
        verso__sync_why(why, whylen, "bad URL (null)");
        return VERSO_EINVAL;
    }
    if ((rc = slave_make(out, db_path, url, opts, why, whylen)) < 0)
        return rc;
    (*out)->start_ms = verso__sync_mono_ms();
    if (pthread_create(&(*out)->thread, NULL, run, *out) != 0) {
        slave_free(*out);
        *out = NULL;
        return VERSO_ENOMEM;
    }
    return 0;
}

void verso_slave_stop(verso_slave *s)
{
    if (!s)
        return;
    atomic_store(&s->stop, 1);
    verso__wsc_wake(s->ws);
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
    out->retry_in_ms = out->link == VERSO_LINK_WAITING && s->retry_at_ms > verso__sync_mono_ms()
                           ? s->retry_at_ms - verso__sync_mono_ms()
                           : 0;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

verso__upstream *verso__slave_upstream(verso_slave *s)
{
    return &s->up;
}

const char *verso__slave_name(const verso_slave *s)
{
    return s->name;
}

const char *verso_sync_phase_name(verso_sync_phase phase)
{
    static const char *const names[] = {"connecting", "snapshot", "catch-up", "live"};

    return (unsigned)phase < sizeof(names) / sizeof(names[0]) ? names[phase] : "?";
}

const char *verso_slave_event_name(verso_slave_event_kind kind)
{
    static const char *const names[] = {"connected", "bootstrapped", "caught up", "resync",
                                        "disconnected"};

    return (unsigned)kind < sizeof(names) / sizeof(names[0]) ? names[kind] : "?";
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

/* ---- a slave without a thread or a connection (internal.h) ---- */

/* A new attempt whose WebSocket is open at once: the master's hello is next. */
static void detached_connect(verso_slave *s)
{
    link_move(s, VERSO_LINK_CONNECTING);
    on_open(s);
}

int verso__slave_detached(verso_slave **out, const char *db_path, const verso_slave_options *opts,
                          char *why, size_t whylen)
{
    int rc = slave_make(out, db_path, NULL, opts, why, whylen);

    if (rc == 0)
        detached_connect(*out);
    return rc;
}

int verso__slave_receive(verso_slave *s, const char *data, size_t len, verso_buf *out)
{
    int rc = on_message(data, len, s);

    if (rc == 0)
        rc = commit_due(s); /* nothing else is waiting */
    if (rc < 0)             /* what the client layer does with a failed message */
        link_end(s, verso_strerror(rc));
    if (s->link == VERSO_LINK_WAITING)
        detached_connect(s);
    s->last_tx_ms = verso__sync_mono_ms(); /* no heartbeat: the caller decides the pace */
    verso_buf_clear(out);
    if (next_out(out, s) < 0)
        verso_buf_clear(out);
    return rc;
}

void verso__slave_detached_free(verso_slave *s)
{
    if (s)
        slave_free(s);
}
