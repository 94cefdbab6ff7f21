/*
 * The master side of live replication: a WebSocket endpoint mounted into
 * the REST server. Everything here runs on the REST service thread except
 * verso_sync_master_peers() and the commit hook (which only wakes it).
 *
 * An empty slave may ask for a file snapshot instead of rows: it is made
 * on a thread of its own (snapshot.c) and shared by the slaves that ask
 * while it is current; the service thread only streams it.
 *
 * Each slave has its own cursor. A message is produced only when the
 * connection is writeable and nothing of ours is pending in its send pipe:
 * the chunk is read in one read transaction, serialised, the read is
 * closed, and only then is the buffer written. A slow slave therefore
 * holds no lock and no memory beyond one message; it simply reads further
 * behind (catch-up) while the others follow the head.
 *
 * Commits are noticed by asking the ORM whether another connection
 * committed since the last look (verso__db_changed). The server runs the check when a file
 * event says the database was written (tick_on_change), at once for
 * commits through a watched handle, and on a slow tick as the fallback, so
 * an idle master does no work. Durations (heartbeats, silence, lag) are
 * measured on the monotonic clock; only the "time" members of messages and
 * connected_ms are wall-clock time.
 */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "orm/service.h"
#include "sync/internal.h"
#include "sync/ring.h"

/* One slave's connection: its state (verso__master_state, moved by move()
 * only) and what each state needs. */
typedef struct conn {
    struct conn *next;
    verso_ws *ws;
    verso__master_state state;
    bool schema_due;     /* SUBSCRIBED: the schema message is owed */
    bool batch_due;      /* SUBSCRIBED: a new subscription gets a batch even at the head */
    bool in_sequence;    /* SUBSCRIBED: the last message had more == true */
    bool reset;          /* SUBSCRIBED: the subscription is a full resynchronisation */
    int seq_len;         /* messages of the current sequence so far */
    int64_t seq_head;    /* SUBSCRIBED, in a sequence of its own reads: the snapshot head of the
                            last; messages from the ring say more until a boundary at or past it */
    int64_t seq_horizon; /* horizon of the subscription's first read (-1 before): later reads
                            may start below the horizon while it has not moved */
    char **tables;
    size_t ntables;
    int64_t cursor;          /* changes sent up to this version */
    int64_t acked;           /* acknowledged for identity; -1 = nothing yet */
    int64_t behind_since_ms; /* monotonic; 0 = caught up */
    int64_t last_rx_ms;      /* monotonic */
    int64_t last_tx_ms;      /* monotonic */
    int64_t sent_rows;
    int64_t connected_ms;   /* wall clock (Unix ms), for the peer list */
    uint64_t ring_seq;      /* SUBSCRIBED: the ring segment being sent (0: none) */
    size_t ring_next;       /* its next message */
    verso__sync_snap *snap; /* SNAPSHOT: the snapshot being sent */
    int64_t snap_off;
    char name[64];
    char identity[37];      /* the identity last announced to the slave (hello, resync, snapshot) */
    char resync_reason[32]; /* RESYNC, HELLO_RESYNC */
    char error_code[16];    /* CLOSING: subscribe, protocol, timeout */
    char error[160];        /* CLOSING */
} conn;

struct verso_sync_master {
    char *path;
    verso_db *db;                /* read handle; service thread only */
    verso__db_mark mark;         /* the file's versions at the last look */
    atomic_uint_fast64_t checks; /* looks, for /_metrics */
    verso_info info;
    verso_sync_master_options o;
    verso_ws_handler handler;
    /* What the server's options held before verso_sync_master_mount(): the
     * master adds to them and calls the earlier callbacks too. */
    verso_ws_handler *handlers; /* the earlier endpoints, then ours */
    verso_rest_options before;
    _Atomic(verso_rest *) srv;
    verso__sync_snap *last_snap; /* shared by slaves bootstrapping at the same head */
    pthread_mutex_t lock;        /* guards the list and the peer-visible fields (state too) */
    conn *conns;
    verso_buf out;
    verso__ring ring;                 /* recent commits, read and encoded once (service thread) */
    atomic_uint_fast64_t encodings;   /* changes reads encoded: ring segments and private reads */
    atomic_uint_fast64_t ring_sends;  /* messages sent from the ring */
    atomic_uint_fast64_t ring_merges; /* of them, messages that carried several segments */
    atomic_uint_fast64_t ring_joins;  /* messages that went on with a slave's own catch-up reads */
    int64_t swept_ms;                 /* when tick() last went through the slaves (monotonic) */
    bool moved; /* refresh() saw the database move since tick() last went through the slaves */
};

/* Wall-clock time, for the "time" members of messages. */
static int64_t unix_ms(void)
{
    return verso_now_ms();
}

/* For every duration: a step of the wall clock must not end links. */
static int64_t mono_ms(void)
{
    return verso__sync_mono_ms();
}

static void snapshot_end(conn *c);
static int ring_extend(verso_sync_master *m, verso_feed **keep);

/* ---- the connection's state ---- */

#ifndef NDEBUG
#define TO(s)        (1u << VERSO__MASTER_##s)
#define ON_SUBSCRIBE (TO(SUBSCRIBED) | TO(SNAPSHOT_DUE) | TO(RESYNC) | TO(CLOSING))

/* The moves allowed from each state (internal.h tells the story). */
static const unsigned allowed[VERSO__MASTER_NSTATES] = {
    [VERSO__MASTER_HELLO] = TO(IDLE) | TO(HELLO_RESYNC) | TO(CLOSING),
    [VERSO__MASTER_HELLO_RESYNC] = TO(RESYNC) | TO(HELLO_RESYNC) | TO(CLOSING),
    [VERSO__MASTER_IDLE] = ON_SUBSCRIBE,
    [VERSO__MASTER_RESYNC] = TO(IDLE) | ON_SUBSCRIBE,
    [VERSO__MASTER_SNAPSHOT_DUE] = TO(SNAPSHOT) | ON_SUBSCRIBE,
    [VERSO__MASTER_SNAPSHOT] = ON_SUBSCRIBE,
    [VERSO__MASTER_SUBSCRIBED] = ON_SUBSCRIBE,
    [VERSO__MASTER_CLOSING] = 0,
};

/* What holds in each state. */
static bool state_ok(const conn *c)
{
    switch (c->state) {
    case VERSO__MASTER_HELLO:
        return !c->snap && !c->identity[0];
    case VERSO__MASTER_HELLO_RESYNC:
        return !c->snap && !c->identity[0] && c->resync_reason[0];
    case VERSO__MASTER_IDLE:
        return !c->snap;
    case VERSO__MASTER_RESYNC:
        return !c->snap && c->resync_reason[0];
    case VERSO__MASTER_SNAPSHOT_DUE:
        return !c->snap && c->ntables == 0 && c->cursor == 0;
    case VERSO__MASTER_SNAPSHOT:
        return c->snap && c->ntables == 0;
    case VERSO__MASTER_SUBSCRIBED:
        return !c->snap && c->cursor >= 0 && (c->in_sequence || c->seq_len == 0);
    default:
        return c->state == VERSO__MASTER_CLOSING && !c->snap && c->error_code[0];
    }
}
#endif

/* The one place c's state changes; under m->lock (the peer list reads it). */
static void move_locked(conn *c, verso__master_state to)
{
    assert(allowed[c->state] & (1u << to));
    c->state = to;
    assert(state_ok(c));
}

static void move(verso_sync_master *m, conn *c, verso__master_state to)
{
    pthread_mutex_lock(&m->lock);
    move_locked(c, to);
    pthread_mutex_unlock(&m->lock);
}

bool verso__master_changes_due(const verso__master_facts *f)
{
    return f->state == VERSO__MASTER_SUBSCRIBED && (f->batch_due || f->in_sequence || f->behind);
}

/* A table tracked since the last look is announced before its rows: when
 * changes are due, the commit check runs first, then the changes go. */
static verso__master_next choose_subscribed(const verso__master_facts *f)
{
    if (f->schema_due)
        return VERSO__NEXT_SCHEMA;
    if (f->refreshed)
        return VERSO__NEXT_CHANGES;
    if (verso__master_changes_due(f))
        return VERSO__NEXT_REFRESH;
    return f->heartbeat_due ? VERSO__NEXT_HEARTBEAT : VERSO__NEXT_NONE;
}

verso__master_next verso__master_choose(const verso__master_facts *f)
{
    static const verso__master_next owed[VERSO__MASTER_NSTATES] = {
        [VERSO__MASTER_HELLO] = VERSO__NEXT_HELLO,
        [VERSO__MASTER_HELLO_RESYNC] = VERSO__NEXT_HELLO,
        [VERSO__MASTER_RESYNC] = VERSO__NEXT_RESYNC,
        [VERSO__MASTER_SNAPSHOT_DUE] = VERSO__NEXT_START,
        [VERSO__MASTER_CLOSING] = VERSO__NEXT_ERROR,
    };

    if ((unsigned)f->state >= VERSO__MASTER_NSTATES)
        return VERSO__NEXT_NONE;
    if (owed[f->state] != VERSO__NEXT_NONE)
        return owed[f->state];
    if (f->state == VERSO__MASTER_SUBSCRIBED)
        return choose_subscribed(f);
    if (f->state == VERSO__MASTER_SNAPSHOT && f->snap_ready) /* while copying, only heartbeats */
        return VERSO__NEXT_SNAPSHOT;
    return f->heartbeat_due ? VERSO__NEXT_HEARTBEAT : VERSO__NEXT_NONE;
}

/* ---- messages ---- */

static int msg_hello(verso_sync_master *m, conn *c, verso_buf *b)
{
    memcpy(c->identity, m->info.identity, sizeof(c->identity)); /* what the slave will assume */
    move(m, c, c->state == VERSO__MASTER_HELLO_RESYNC ? VERSO__MASTER_RESYNC : VERSO__MASTER_IDLE);
    return verso_buf_printf(b,
                            "{\"type\":\"hello\",\"protocol\":1,\"identity\":\"%s\",\"head\":%lld,"
                            "\"horizon\":%lld,\"heartbeat_ms\":%d,\"time\":%lld}",
                            m->info.identity, (long long)m->info.head, (long long)m->info.horizon,
                            m->o.heartbeat_ms, (long long)unix_ms());
}

static int msg_schema(verso_sync_master *m, conn *c, verso_buf *b)
{
    int rc = verso_buf_puts(b, "{\"type\":\"schema\",\"tables\":");

    c->schema_due = false;
    if (rc == 0)
        rc = verso__sync_schema_json(b, m->db, (const char *const *)c->tables, c->ntables);
    if (rc == 0)
        rc = verso_buf_puts(b, "}");
    return rc;
}

static int msg_heartbeat(verso_sync_master *m, conn *c, verso_buf *b)
{
    (void)c;
    return verso_buf_printf(b, "{\"type\":\"heartbeat\",\"head\":%lld,\"time\":%lld}",
                            (long long)m->info.head, (long long)unix_ms());
}

/* Ends RESYNC: the message goes, the slave may subscribe again. */
static int msg_resync(verso_sync_master *m, conn *c, verso_buf *b)
{
    pthread_mutex_lock(&m->lock);
    memcpy(c->identity, m->info.identity, sizeof(c->identity));
    move_locked(c, VERSO__MASTER_IDLE);
    pthread_mutex_unlock(&m->lock);
    return verso_buf_printf(b,
                            "{\"type\":\"resync\",\"reason\":\"%s\",\"identity\":\"%s\","
                            "\"head\":%lld,\"horizon\":%lld}",
                            c->resync_reason, m->info.identity, (long long)m->info.head,
                            (long long)m->info.horizon);
}

static int msg_error(verso_sync_master *m, conn *c, verso_buf *b)
{
    int rc = verso_buf_printf(b, "{\"type\":\"error\",\"code\":\"%s\",\"message\":", c->error_code);

    (void)m;
    if (rc == 0)
        rc = verso_json_string(b, c->error, strlen(c->error));
    if (rc == 0)
        rc = verso_buf_puts(b, "}");
    return rc;
}

/* The subscription (or snapshot) ends: the slave is told to resynchronise
 * at the next writeable. */
static void enter_resync(verso_sync_master *m, conn *c, const char *reason)
{
    c->in_sequence = false;
    c->seq_len = 0;
    c->seq_horizon = -1;
    c->ring_seq = 0;
    snprintf(c->resync_reason, sizeof(c->resync_reason), "%s", reason);
    move(m, c, VERSO__MASTER_RESYNC);
}

/* Ends the subscription and writes the resync message now (not again later). */
static int send_resync(verso_sync_master *m, conn *c, verso_buf *b, const char *reason)
{
    enter_resync(m, c, reason);
    return msg_resync(m, c, b);
}

/*
 * Ends the connection: an error message saying why, then the close (both
 * at the next writeable). Messages received meanwhile are ignored.
 */
static int fail_conn(verso_sync_master *m, conn *c, const char *code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Cuts s before a multi-byte character left incomplete at its end: the
 * text of an error ends with what the slave sent, cut to fit, and must stay
 * UTF-8 to be sent at all. */
static void cut_partial_char(char *s)
{
    size_t n = strlen(s), i = n, need;
    unsigned char lead;

    while (i > 0 && n - i < 3 && ((unsigned char)s[i - 1] & 0xc0) == 0x80)
        i--;
    if (i == 0 || (lead = (unsigned char)s[i - 1]) < 0xc0)
        return;
    need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
    if (n - (i - 1) < need)
        s[i - 1] = '\0';
}

static int fail_conn(verso_sync_master *m, conn *c, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->error, sizeof(c->error), fmt, ap);
    va_end(ap);
    cut_partial_char(c->error);
    snprintf(c->error_code, sizeof(c->error_code), "%s", code);
    snapshot_end(c);
    move(m, c, VERSO__MASTER_CLOSING);
    verso_ws_want_write(c->ws);
    return 0;
}

static bool refresh(verso_sync_master *m);

/*
 * A slave commits only when a read reaches its snapshot's head. Should the
 * writers outpace the reads, a fixed limit might never get there: within a
 * sequence the limit doubles every 8 messages, up to MAX_WIDE changes (or
 * the configured chunk if larger), so a read can take the whole backlog at
 * once while a message stays a few megabytes.
 */
#define MAX_WIDE 65536

static int64_t sequence_limit(const verso_sync_master *m, const conn *c)
{
    int shift = c->seq_len / 8 < 16 ? c->seq_len / 8 : 16;
    int64_t limit = (int64_t)m->o.chunk << shift,
            cap = m->o.chunk > MAX_WIDE ? m->o.chunk : MAX_WIDE;

    return limit < cap ? limit : cap;
}

/* Opens the feed at c's cursor; when the subscription cannot go on from
 * there, writes the resync message instead and gives no feed. */
static int changes_open(verso_feed **f, verso_sync_master *m, conn *c, verso_buf *b)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    const char *why = NULL;
    int rc;

    fo.since = c->cursor;
    fo.limit = sequence_limit(m, c);
    fo.tables = (const char *const *)c->tables;
    fo.ntables = c->ntables;
    fo.sequence_horizon = c->seq_horizon > 0 ? c->seq_horizon : 0;
    fo.blob_inline = VERSO_SYNC_BLOB_INLINE; /* longer blobs: {"blob_fetch":N}, fetched apart */
    if ((rc = verso_feed_open(f, m->db, &fo)) < 0)
        return rc == VERSO_EHORIZON ? send_resync(m, c, b, "horizon") : rc;
    if (c->seq_horizon < 0)
        c->seq_horizon = verso_feed_horizon(*f);
    if (strcmp(verso_feed_identity(*f), c->identity) != 0)
        why = "identity";
    else if (verso_feed_head(*f) < c->cursor)
        why = "ahead";
    if (why) {
        verso_feed_close(*f);
        *f = NULL;
        return send_resync(m, c, b, why);
    }
    return 0;
}

static int changes_entries(verso_buf *b, verso_feed *f, int64_t *n)
{
    const verso_feed_entry *e;
    int rc = verso_buf_puts(b, "{\"type\":\"changes\",\"entries\":[");

    while (rc == 0 && (rc = verso_feed_next(&e, f)) == 1) {
        rc = (*n)++ ? verso_buf_puts(b, ",") : 0;
        if (rc == 0)
            rc = verso_json_feed_entry(b, e);
    }
    return rc;
}

/* Moves c's cursor to the feed's and ends the message. */
static int changes_end(verso_sync_master *m, conn *c, verso_buf *b, verso_feed *f, int64_t from)
{
    int64_t head = verso_feed_head(f);

    pthread_mutex_lock(&m->lock); /* read by verso_sync_master_peers() */
    c->cursor = verso_feed_cursor(f);
    if (head > m->info.head)
        m->info.head = head;
    pthread_mutex_unlock(&m->lock);
    c->in_sequence = verso_feed_more(f);
    c->seq_len = c->in_sequence ? c->seq_len + 1 : 0;
    c->seq_head = c->in_sequence ? head : 0;
    return verso_buf_printf(b,
                            "],\"from\":%lld,\"to\":%lld,\"more\":%s,\"head\":%lld,"
                            "\"time\":%lld%s}",
                            (long long)from, (long long)c->cursor,
                            c->in_sequence ? "true" : "false", (long long)head,
                            (long long)unix_ms(), c->reset && from == 0 ? ",\"reset\":true" : "");
}

/* Whether c may be sent the ring's segments: every table, the master's identity, no reset. */
static bool ring_eligible(const verso_sync_master *m, const conn *c)
{
    return c->state == VERSO__MASTER_SUBSCRIBED && c->ntables == 0 && !c->reset &&
           m->ring.end >= 0 && strcmp(c->identity, m->ring.identity) == 0;
}

/* The ring's segment c continues, or the one starting at its cursor when it is at a boundary. */
static const verso__ring_seg *ring_segment(verso_sync_master *m, conn *c)
{
    const verso__ring_seg *s;

    if (c->ring_seq) {
        if (!(s = verso__ring_seq(&m->ring, c->ring_seq)))
            c->ring_seq = 0; /* evicted mid-way: the sequence goes on with reads of its own */
        return s;
    }
    if ((s = verso__ring_at(&m->ring, c->cursor))) {
        c->ring_next = 0;
        return s;
    }
    if (!c->in_sequence || !(s = verso__ring_within(&m->ring, c->cursor)))
        return NULL;
    /* a sequence of its own reached into the ring: on from the message holding its cursor */
    for (c->ring_next = 0; s->msgs[c->ring_next].to <= c->cursor; c->ring_next++)
        ;
    return s;
}

#define MERGE_BYTES ((size_t)256 << 10) /* one message of merged segments: at most this much */

/*
 * The ring's segments after s that can go with it in one message: each of
 * one message, together at most chunk entries and MERGE_BYTES. Slaves that
 * fall behind by several commits (the master busy with a thousand of them)
 * then get one message and one system call for all of them, not one per
 * commit: the more they lag, the larger the messages, so the lag stops
 * growing. Returns the last segment to take (s itself when none).
 */
static const verso__ring_seg *ring_merge_end(const verso_sync_master *m, const verso__ring_seg *s)
{
    const verso__ring_seg *last = s, *t;
    int64_t rows = s->msgs[0].rows;
    size_t bytes = s->msgs[0].len;

    if (s->nmsgs != 1)
        return s;
    while ((t = verso__ring_at(&m->ring, last->to)) && t->nmsgs == 1 &&
           rows + t->msgs[0].rows <= m->o.chunk && bytes + t->msgs[0].entries_len < MERGE_BYTES) {
        rows += t->msgs[0].rows;
        bytes += t->msgs[0].entries_len + 1;
        last = t;
    }
    return last;
}

/* One changes message (s->from, last->to] of the entries of the segments s..last. */
static int ring_merged(verso_sync_master *m, const verso__ring_seg *s, const verso__ring_seg *last,
                       verso_buf *b, int64_t *rows)
{
    const verso__ring_seg *t = s;
    int rc = verso_buf_append(b, s->msgs[0].data, s->msgs[0].entries_off);
    bool first = true;

    for (*rows = 0; rc == 0; t = verso__ring_at(&m->ring, t->to)) {
        const verso__ring_msg *msg = &t->msgs[0];
        if (msg->entries_len && !first)
            rc = verso_buf_puts(b, ",");
        if (rc == 0 && msg->entries_len)
            rc = verso_buf_append(b, msg->data + msg->entries_off, msg->entries_len);
        first = first && !msg->entries_len;
        *rows += msg->rows;
        if (t == last)
            break;
    }
    if (rc == 0)
        rc = verso_buf_printf(b,
                              "],\"from\":%lld,\"to\":%lld,\"more\":false,\"head\":%lld,"
                              "\"time\":%lld}",
                              (long long)s->from, (long long)last->to,
                              (long long)last->msgs[0].head, (long long)unix_ms());
    return rc < 0 ? VERSO_ENOMEM : 0;
}

/* c was sent msg of segment s (saying more, holding rows entries): 1. */
static int ring_sent(verso_sync_master *m, conn *c, const verso__ring_seg *s,
                     const verso__ring_msg *msg, bool more, int64_t rows)
{
    c->batch_due = false;
    pthread_mutex_lock(&m->lock);
    c->cursor = msg->to;
    c->sent_rows += rows;
    pthread_mutex_unlock(&m->lock);
    c->in_sequence = more;
    c->seq_len = more ? c->seq_len + 1 : 0;
    c->seq_head = more ? c->seq_head : 0;
    c->ring_seq = msg->more ? s->seq : 0;
    atomic_fetch_add(&m->ring_sends, 1);
    return 1;
}

/*
 * The entries of msg above c's cursor, as a message of c's own: from its
 * cursor, and more while c's own reads went further than msg (a sequence
 * that reached into the ring commits only at a boundary at or past the
 * head of its last read: before it, rows it read past its cursor are not
 * yet matched by the ring's). *more and *rows: what it says and holds.
 */
static int ring_tail(const conn *c, const verso__ring_msg *msg, verso_buf *b, bool *more,
                     int64_t *rows)
{
    int64_t j = 0;
    int rc;

    while (j < msg->rows && msg->vers[j] <= c->cursor)
        j++;
    *more = msg->more || c->seq_head > msg->to;
    *rows = msg->rows - j;
    rc = verso_buf_append(b, msg->data, msg->entries_off);
    if (rc == 0 && j < msg->rows)
        rc = verso_buf_append(b, msg->data + msg->offs[j],
                              msg->entries_off + msg->entries_len - msg->offs[j]);
    if (rc == 0)
        rc = verso_buf_printf(b,
                              "],\"from\":%lld,\"to\":%lld,\"more\":%s,\"head\":%lld,"
                              "\"time\":%lld}",
                              (long long)c->cursor, (long long)msg->to, *more ? "true" : "false",
                              (long long)msg->head, (long long)unix_ms());
    return rc < 0 ? VERSO_ENOMEM : 0;
}

/* Sends c the next message of the ring already encoded, if it can continue from there: 1.
 * At a segment's start, the segments after it that fit go in the same message. */
static int ring_send(verso_sync_master *m, conn *c, verso_buf *b)
{
    const verso__ring_seg *s = ring_eligible(m, c) ? ring_segment(m, c) : NULL;
    const verso__ring_seg *last =
        s && c->ring_next == 0 && !c->in_sequence ? ring_merge_end(m, s) : s;
    const verso__ring_msg *msg;
    int64_t rows = 0;
    bool more;

    if (!s)
        return 0;
    msg = &s->msgs[c->ring_next];
    if (c->in_sequence && !c->ring_seq) { /* a sequence of its own goes on from the ring */
        if (ring_tail(c, msg, b, &more, &rows) < 0)
            return VERSO_ENOMEM;
        atomic_fetch_add(&m->ring_joins, 1);
        c->ring_next++;
        return ring_sent(m, c, s, msg, more, rows);
    }
    if (last != s) {
        if (ring_merged(m, s, last, b, &rows) < 0)
            return VERSO_ENOMEM;
        atomic_fetch_add(&m->ring_merges, 1);
        s = last;
        msg = &s->msgs[0];
        c->ring_next = 1;
    } else if (c->seq_head > msg->to) { /* still short of where its own reads went */
        if (ring_tail(c, msg, b, &more, &rows) < 0)
            return VERSO_ENOMEM;
        c->ring_next++;
        return ring_sent(m, c, s, msg, more, rows);
    } else {
        c->ring_next++;
        rows = msg->rows;
        if (verso_buf_append(b, msg->data, msg->len) < 0)
            return VERSO_ENOMEM;
    }
    return ring_sent(m, c, s, msg, msg->more, rows);
}

/*
 * Reads one chunk from c's cursor into b as a changes message: from the
 * ring when c's cursor is one of its boundaries, else by a read of c's
 * own. That read shares the snapshot of the ring's newest segment, so a
 * read that reaches its head leaves c at the ring's end: from then on c is
 * served from the ring.
 */
static int msg_changes(verso_sync_master *m, conn *c, verso_buf *b)
{
    verso_feed *f = NULL, *rf = NULL;
    int64_t from = c->cursor, n = 0;
    int rc;

    if ((rc = ring_send(m, c, b)) != 0)
        return rc < 0 ? rc : 0;
    if (c->ntables == 0 && !c->reset && (rc = ring_extend(m, &rf)) < 0)
        return rc;
    if ((rc = ring_send(m, c, b)) != 0) {
        verso_feed_close(rf);
        return rc < 0 ? rc : 0;
    }
    c->batch_due = false;
    atomic_fetch_add(&m->encodings, 1);
    if ((rc = changes_open(&f, m, c, b)) < 0 || !f) {
        verso_feed_close(rf);
        return rc;
    }
    if ((rc = changes_entries(b, f, &n)) == 0)
        rc = changes_end(m, c, b, f, from);
    verso_feed_close(f);
    verso_feed_close(rf);
    if (rc == 0)
        verso__crashpoint("master.changes.built");
    if (!c->in_sequence)
        c->reset = false;
    pthread_mutex_lock(&m->lock);
    c->sent_rows += n;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* ---- the ring: each commit read and encoded once for every slave ---- */

/* Whether a subscription could be served from the ring: else it is not kept up. */
static bool ring_wanted(const verso_sync_master *m)
{
    for (const conn *c = m->conns; c; c = c->next)
        if (c->state == VERSO__MASTER_SUBSCRIBED && c->ntables == 0 && !c->reset)
            return true;
    return false;
}

/* Ends the message of the entries so far: (from, to], more when the segment goes on. */
static int ring_msg_end(verso__ring_msg *msg, verso_buf *b, int64_t from, int64_t head)
{
    int rc = verso_buf_printf(b,
                              "],\"from\":%lld,\"to\":%lld,\"more\":%s,\"head\":%lld,"
                              "\"time\":%lld}",
                              (long long)from, (long long)msg->to, msg->more ? "true" : "false",
                              (long long)head, (long long)unix_ms());

    msg->data = b->data; /* taken over */
    msg->len = b->len;
    *b = (verso_buf)VERSO_BUF_INIT;
    return rc;
}

/* Notes where msg's next entry (its rows-th) starts and its version. */
static int ring_index(verso__ring_msg *msg, size_t off, int64_t version)
{
    size_t n = (size_t)msg->rows;

    if (n == msg->index_cap) {
        size_t cap = n ? 2 * n : 16;
        size_t *o = verso__realloc(msg->offs, cap * sizeof(*o));
        int64_t *v;
        if (!o)
            return VERSO_ENOMEM;
        msg->offs = o;
        if (!(v = verso__realloc(msg->vers, cap * sizeof(*v))))
            return VERSO_ENOMEM;
        msg->vers = v;
        msg->index_cap = cap;
    }
    msg->offs[n] = off;
    msg->vers[n] = version;
    return 0;
}

/* One message of at most chunk entries from f, starting with *e (the feed's pending entry). */
static int ring_msg(verso__ring_msg *msg, verso_feed *f, const verso_feed_entry **e, int *more,
                    int64_t from, int chunk)
{
    verso_buf b = VERSO_BUF_INIT;
    int rc = verso_buf_puts(&b, "{\"type\":\"changes\",\"entries\":[");

    msg->to = from;
    msg->entries_off = b.len;
    while (rc == 0 && *more == 1 && msg->rows < chunk) {
        rc = msg->rows ? verso_buf_puts(&b, ",") : 0;
        if (rc == 0)
            rc = ring_index(msg, b.len, (*e)->version);
        msg->rows++;
        if (rc == 0)
            rc = verso_json_feed_entry(&b, *e);
        for (size_t i = 0; i < (*e)->ncolumns; i++) /* {"blob_fetch":N}: see verso__ring_at() */
            msg->fetches |= (*e)->values[i].type == VERSO_BLOB && !(*e)->values[i].u.b.p &&
                            (*e)->values[i].u.b.n > 0;
        msg->to = (*e)->version;
        if (rc == 0 && (rc = verso_feed_next(e, f)) >= 0)
            *more = rc, rc = 0;
    }
    msg->more = *more == 1;
    if (!msg->more)
        msg->to = verso_feed_head(f);
    msg->entries_len = b.len - msg->entries_off;
    msg->head = verso_feed_head(f);
    if (rc == 0)
        rc = ring_msg_end(msg, &b, from, verso_feed_head(f));
    verso_buf_free(&b);
    return rc;
}

/* Encodes what f reads, (ring end, head], as the ring's next segment. */
static int ring_encode(verso_sync_master *m, verso_feed *f)
{
    const verso_feed_entry *e = NULL;
    verso__ring_msg *msgs = NULL, *grown;
    int64_t from = m->ring.end, head = verso_feed_head(f);
    size_t n = 0;
    int more = verso_feed_next(&e, f), rc = more < 0 ? more : 0;

    while (rc == 0 && (n == 0 || msgs[n - 1].more)) {
        if (!(grown = verso__realloc(msgs, (n + 1) * sizeof(*msgs)))) {
            rc = VERSO_ENOMEM;
            break;
        }
        msgs = grown;
        memset(&msgs[n], 0, sizeof(*msgs));
        rc = ring_msg(&msgs[n], f, &e, &more, n ? msgs[n - 1].to : from, m->o.chunk);
        n++;
    }
    if (rc < 0) {
        verso__ring_msgs_free(msgs, n);
        return rc;
    }
    atomic_fetch_add(&m->encodings, 1);
    pthread_mutex_lock(&m->lock);
    if (head > m->info.head)
        m->info.head = head;
    pthread_mutex_unlock(&m->lock);
    if ((rc = verso__ring_add(&m->ring, from, head, msgs, n)) == 0)
        verso__crashpoint("master.changes.built"); /* encoded, not yet sent to anyone */
    return rc;
}

/*
 * Brings the ring up to the head in one read transaction: (end, head] as
 * one segment. With keep, the read stays open in *keep (or NULL) for the
 * caller, whose own feed then shares its snapshot.
 */
static int ring_extend(verso_sync_master *m, verso_feed **keep)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    verso_feed *f = NULL;
    int rc;

    if (keep)
        *keep = NULL;
    if (!keep && !ring_wanted(m)) {
        verso__ring_clear(&m->ring); /* nobody to share it with: no work per commit */
        return 0;
    }
    if (m->ring.end < 0 || strcmp(m->ring.identity, m->info.identity) != 0) {
        verso__ring_clear(&m->ring);
        m->ring.end = m->info.head; /* a snapshot head: a state of the master */
        memcpy(m->ring.identity, m->info.identity, sizeof(m->ring.identity));
    }
    fo.since = m->ring.end;
    fo.blob_inline = VERSO_SYNC_BLOB_INLINE;
    if ((rc = verso_feed_open(&f, m->db, &fo)) < 0) {
        verso__ring_clear(&m->ring); /* e.g. pruned past its end: restarts at the head */
        return rc == VERSO_EHORIZON ? 0 : rc;
    }
    if (strcmp(verso_feed_identity(f), m->ring.identity) != 0 || verso_feed_head(f) < m->ring.end)
        verso__ring_clear(&m->ring); /* another database under it: check_cursors() tells slaves */
    else if (verso_feed_head(f) > m->ring.end)
        rc = ring_encode(m, f);
    if (rc == 0 && keep)
        *keep = f;
    else
        verso_feed_close(f);
    return rc;
}

/* ---- file snapshots for empty slaves ---- */

#define SNAP_CHUNK (768 * 1024) /* raw bytes per message (1 MiB of base64) */

static void snapshot_end(conn *c)
{
    verso__sync_snap_unref(c->snap);
    c->snap = NULL;
}

/* Ends SNAPSHOT_DUE: shares the last snapshot if it is still being made or
 * still at the head, else starts one. */
static int snapshot_start(verso_sync_master *m, conn *c, verso_buf *b)
{
    int64_t size, head;
    int fd, st = m->last_snap ? verso__sync_snap_state(m->last_snap, &fd, &size, &head) : -1;

    (void)b;
    if (st == 0 || (st == 1 && head == m->info.head)) {
        verso__sync_snap_ref(m->last_snap);
    } else {
        verso__sync_snap_unref(m->last_snap);
        m->last_snap = NULL;
        if ((st = verso__sync_snap_start(&m->last_snap, m->path)) < 0)
            return st;
        verso__sync_snap_ref(m->last_snap);
    }
    c->snap = m->last_snap;
    c->snap_off = 0;
    move(m, c, VERSO__MASTER_SNAPSHOT);
    return 0;
}

/* The last chunk went: c goes on as a subscription from the snapshot's head. */
static void snapshot_done(verso_sync_master *m, conn *c, int64_t head)
{
    snapshot_end(c);
    c->schema_due = true;
    c->batch_due = true;
    c->reset = false;
    c->ring_seq = 0;
    pthread_mutex_lock(&m->lock);
    c->cursor = head;
    c->acked = -1; /* until the slave says it installed it */
    memcpy(c->identity, m->info.identity, sizeof(c->identity));
    move_locked(c, VERSO__MASTER_SUBSCRIBED);
    pthread_mutex_unlock(&m->lock);
}

/* The chunk at c->snap_off into *raw (the caller frees it); *n its length. */
static int snapshot_read(unsigned char **raw, ssize_t *n, const conn *c, int fd, int64_t size)
{
    int rc = 0;

    *n = -1;
    if ((*raw = verso__malloc(SNAP_CHUNK)))
        *n = pread(fd, *raw, SNAP_CHUNK, (off_t)c->snap_off);
    if (*n < 0 || (*n == 0 && c->snap_off < size)) {
        rc = *raw ? VERSO_EIO : VERSO_ENOMEM;
        verso__free(*raw);
        *raw = NULL;
    }
    return rc;
}

static int msg_snapshot(verso_sync_master *m, conn *c, verso_buf *b)
{
    unsigned char *raw = NULL;
    int64_t size = 0, head = 0;
    ssize_t n = 0;
    int fd = -1, rc = verso__sync_snap_state(c->snap, &fd, &size, &head);
    bool last;

    if (rc <= 0)
        return rc; /* still copying (nothing to send yet) or failed */
    if ((rc = snapshot_read(&raw, &n, c, fd, size)) < 0)
        return rc;
    last = c->snap_off + n >= size;
    rc = verso_buf_printf(b,
                          "{\"type\":\"snapshot\",\"identity\":\"%s\",\"head\":%lld,"
                          "\"size\":%lld,\"offset\":%lld,\"last\":%s,\"data\":\"",
                          m->info.identity, (long long)head, (long long)size,
                          (long long)c->snap_off, last ? "true" : "false");
    if (rc == 0)
        rc = verso_base64_encode(b, raw, (size_t)n);
    verso__free(raw);
    if (rc == 0)
        rc = verso_buf_puts(b, "\"}");
    c->snap_off += n;
    if (rc == 0 && last)
        snapshot_done(m, c, head);
    return rc;
}

/* ---- what to send next ---- */

static bool heartbeat_due(const verso_sync_master *m, const conn *c)
{
    return mono_ms() - c->last_tx_ms >= m->o.heartbeat_ms;
}

static verso__master_facts facts_of(const verso_sync_master *m, const conn *c, bool refreshed)
{
    int64_t size, head;
    int fd;

    return (verso__master_facts){
        .state = c->state,
        .schema_due = c->schema_due,
        .batch_due = c->batch_due,
        .in_sequence = c->in_sequence,
        .behind = c->cursor < m->info.head,
        .refreshed = refreshed,
        .snap_ready = c->snap && verso__sync_snap_state(c->snap, &fd, &size, &head) != 0,
        .heartbeat_due = heartbeat_due(m, c),
    };
}

static bool changes_due(const verso_sync_master *m, const conn *c)
{
    verso__master_facts f = {.state = c->state,
                             .batch_due = c->batch_due,
                             .in_sequence = c->in_sequence,
                             .behind = c->cursor < m->info.head};

    return verso__master_changes_due(&f);
}

/* The ring's next segment for c was read after the look that announced its tables: c needs no
 * look of its own (a thousand slaves, one look per commit). */
static int step_refresh(verso_sync_master *m, conn *c, verso_buf *b)
{
    (void)b;
    if (!ring_eligible(m, c) || !ring_segment(m, c))
        refresh(m);
    return 0;
}

typedef int (*step_fn)(verso_sync_master *m, conn *c, verso_buf *b);

static const step_fn steps[VERSO__NEXT_COUNT] = {
    [VERSO__NEXT_ERROR] = msg_error,         [VERSO__NEXT_HELLO] = msg_hello,
    [VERSO__NEXT_RESYNC] = msg_resync,       [VERSO__NEXT_START] = snapshot_start,
    [VERSO__NEXT_SNAPSHOT] = msg_snapshot,   [VERSO__NEXT_SCHEMA] = msg_schema,
    [VERSO__NEXT_REFRESH] = step_refresh,    [VERSO__NEXT_CHANGES] = msg_changes,
    [VERSO__NEXT_HEARTBEAT] = msg_heartbeat,
};

/*
 * Builds the next message into b; 0 with b empty when there is nothing to
 * send. START and REFRESH write nothing: the choice is made again after
 * them (twice at most, since neither comes back at once).
 */
static int next_message(verso_sync_master *m, conn *c, verso_buf *b)
{
    verso__master_next next;
    bool refreshed = false;
    int rc = 0;

    verso_buf_clear(b);
    for (int i = 0; rc == 0 && b->len == 0 && i < 3; i++) {
        verso__master_facts f = facts_of(m, c, refreshed);
        assert(state_ok(c));
        if ((next = verso__master_choose(&f)) == VERSO__NEXT_NONE)
            break;
        rc = steps[next](m, c, b);
        refreshed = refreshed || next == VERSO__NEXT_REFRESH;
    }
    return rc;
}

/* Whether next_message() would send c something now. */
static bool owed(const verso_sync_master *m, const conn *c)
{
    verso__master_facts f = facts_of(m, c, false);

    return verso__master_choose(&f) != VERSO__NEXT_NONE;
}

/* ---- incoming messages ---- */

static void free_tables(conn *c)
{
    for (size_t i = 0; i < c->ntables; i++)
        verso__free(c->tables[i]);
    verso__free(c->tables);
    c->tables = NULL;
    c->ntables = 0;
}

static int copy_tables(verso_sync_master *m, conn *c, const cJSON *tables, verso_buf *err)
{
    const cJSON *t;
    int n = cJSON_GetArraySize(tables);

    free_tables(c);
    if (!cJSON_IsArray(tables) || n == 0)
        return 0;
    if (!(c->tables = verso__calloc((size_t)n, sizeof(char *))))
        return VERSO_ENOMEM;
    cJSON_ArrayForEach(t, tables)
    {
        if (!verso_json_cstr(t) || !verso_db_table(m->db, t->valuestring)) {
            verso_buf_printf(err, "unknown table %s", verso_json_cstr(t) ? t->valuestring : "?");
            return VERSO_ENOTFOUND;
        }
        if (!(c->tables[c->ntables] = verso__strdup(t->valuestring)))
            return VERSO_ENOMEM;
        c->ntables++;
    }
    return 0;
}

/* The slave's name, cut to fit on a character boundary: it is valid UTF-8
 * (it came out of the JSON parser) and must stay so in status and metrics. */
static void copy_name(char *dst, size_t cap, const char *name)
{
    size_t n = strlen(name);

    if (n >= cap)
        for (n = cap - 1; n && ((unsigned char)name[n] & 0xc0) == 0x80; n--)
            ;
    memcpy(dst, name, n);
    dst[n] = 0;
}

/* Why the subscription cannot continue from its cursor, or NULL. */
static const char *resync_reason(const verso_sync_master *m, const char *identity, int64_t cursor)
{
    if (identity[0] ? strcmp(identity, m->info.identity) != 0 : cursor > 0)
        return "identity"; /* an empty identity is an empty slave: cursor 0 */
    if (cursor > m->info.head)
        return "ahead";
    if (cursor > 0 && cursor < m->info.horizon)
        return "horizon";
    return NULL;
}

/* Reads a subscription's cursor and tables; on a mistake ends the
 * connection and gives 1. */
static int subscribe_parse(int64_t *cursor, verso_sync_master *m, conn *c, const cJSON *msg)
{
    verso_buf err = VERSO_BUF_INIT;
    int rc = 0;

    if (verso__sync_json_get_i64(cursor, msg, "cursor") < 0 || *cursor < 0)
        verso_buf_puts(&err, "subscribe needs a cursor");
    else if (copy_tables(m, c, cJSON_GetObjectItemCaseSensitive(msg, "tables"), &err) < 0 &&
             err.len == 0)
        verso_buf_puts(&err, "out of memory");
    if (err.len > 0) {
        fail_conn(m, c, "subscribe", "%s", err.data);
        rc = 1;
    }
    verso_buf_free(&err);
    return rc;
}

/* Where a valid subscription leads; *reason says why a resync (or NULL). */
static verso__master_state subscribe_to(const char **reason, const verso_sync_master *m,
                                        const conn *c, const cJSON *msg, const char *identity,
                                        int64_t cursor)
{
    /* the identity changed since it was announced (or the hello is still due): the slave
     * would commit for the former one */
    bool stale = strcmp(c->identity, m->info.identity) != 0;

    *reason = stale ? "identity" : c->reset ? NULL : resync_reason(m, identity, cursor);
    /* a whole-file snapshot only serves an empty slave following every table */
    if (!stale && verso__sync_json_get_bool(msg, "snapshot") && cursor == 0 && c->ntables == 0)
        return VERSO__MASTER_SNAPSHOT_DUE;
    if (!*reason)
        return VERSO__MASTER_SUBSCRIBED;
    if (c->state == VERSO__MASTER_HELLO || c->state == VERSO__MASTER_HELLO_RESYNC)
        return VERSO__MASTER_HELLO_RESYNC;
    return VERSO__MASTER_RESYNC; /* a resync not yet sent is answered by this one */
}

static int on_subscribe(verso_sync_master *m, verso_ws *ws, conn *c, const cJSON *msg)
{
    const char *identity = verso__sync_json_get_str(msg, "identity");
    const char *name = verso__sync_json_get_str(msg, "name");
    const char *reason = NULL;
    int64_t cursor = 0;
    verso__master_state to;

    (void)ws;
    if (subscribe_parse(&cursor, m, c, msg) != 0)
        return 0;
    identity = identity ? identity : "";
    if ((c->reset = verso__sync_json_get_bool(msg, "reset"))) /* from scratch */
        cursor = 0;
    to = subscribe_to(&reason, m, c, msg, identity, cursor);
    snapshot_end(c);
    c->schema_due = true;
    c->batch_due = true; /* even at the head: the slave learns it is there */
    c->in_sequence = false;
    c->seq_len = 0;
    c->ring_seq = 0;
    snprintf(c->resync_reason, sizeof(c->resync_reason), "%s", reason ? reason : "");
    pthread_mutex_lock(&m->lock); /* the peer list reads these */
    if (name)
        copy_name(c->name, sizeof(c->name), name);
    c->cursor = cursor;
    /* what the slave holds of this master: its cursor, if it names this identity */
    c->acked = !c->reset && identity[0] && !reason ? cursor : -1;
    c->behind_since_ms = 0;
    move_locked(c, to);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

/* Counts an acknowledgement of the current subscription; one beyond what
 * was sent on it (so beyond the head) ends the connection. */
static int on_ack(verso_sync_master *m, verso_ws *ws, conn *c, const cJSON *msg)
{
    const char *identity = verso__sync_json_get_str(msg, "identity");
    int64_t v;

    (void)ws;
    if (verso__sync_json_get_i64(&v, msg, "version") < 0 || v < 0)
        return fail_conn(m, c, "protocol", "ack needs an integer version >= 0");
    if (c->state != VERSO__MASTER_SUBSCRIBED || (identity && strcmp(identity, c->identity) != 0))
        return 0; /* a subscription that ended (resync), or another master's version */
    if (v > c->cursor)
        return fail_conn(m, c, "protocol", "ack of version %lld: only %lld was sent (head %lld)",
                         (long long)v, (long long)c->cursor, (long long)m->info.head);
    pthread_mutex_lock(&m->lock);
    if (v > c->acked)
        c->acked = v;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

static int on_heartbeat(verso_sync_master *m, verso_ws *ws, conn *c, const cJSON *msg)
{
    (void)m;
    (void)ws;
    (void)c;
    (void)msg;
    return 0;
}

typedef int (*msg_fn)(verso_sync_master *m, verso_ws *ws, conn *c, const cJSON *msg);

static const struct {
    const char *type;
    msg_fn fn;
} incoming[] = {
    {"subscribe", on_subscribe},
    {"ack", on_ack},
    {"heartbeat", on_heartbeat},
};

static int ws_message(verso_ws *ws, void *cp, const void *data, size_t len, void *arg)
{
    verso_sync_master *m = arg;
    conn *c = cp;
    verso_json *doc = NULL;
    const char *type = NULL;
    size_t i = 0, n = sizeof(incoming) / sizeof(incoming[0]);
    int rc = 0;

    c->last_rx_ms = mono_ms();
    if (c->state == VERSO__MASTER_CLOSING) /* the connection is ending */
        return 0;
    if ((rc = verso_json_parse(&doc, data, len, 8, NULL, 0)) == VERSO_ENOMEM)
        return fail_conn(m, c, "memory", "out of memory reading a message");
    if (rc < 0)
        return fail_conn(m, c, "protocol", "a message is not a JSON object");
    type = verso__sync_json_get_str(verso_json_root(doc), "type");
    while (type && i < n && strcmp(incoming[i].type, type) != 0)
        i++;
    if (type && i < n)
        rc = incoming[i].fn(m, ws, c, verso_json_root(doc));
    else
        rc = fail_conn(m, c, "protocol", "unknown message type %.40s", type ? type : "(none)");
    verso_json_free(doc);
    if (rc == 0 && owed(m, c)) /* an ack at the head owes nothing: no turn of the loop for it */
        verso_ws_want_write(ws);
    return rc;
}

/* ---- connection lifecycle ---- */

static int ws_open(verso_ws *ws, void **cp, void *arg)
{
    verso_sync_master *m = arg;
    conn *c = verso__calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->ws = ws;
    c->seq_horizon = -1;
    c->state = VERSO__MASTER_HELLO;
    c->connected_ms = unix_ms();
    c->last_rx_ms = c->last_tx_ms = mono_ms();
    snprintf(c->name, sizeof(c->name), "slave");
    pthread_mutex_lock(&m->lock);
    c->next = m->conns;
    m->conns = c;
    pthread_mutex_unlock(&m->lock);
    *cp = c;
    verso_ws_want_write(ws);
    return 0;
}

static void ws_close(verso_ws *ws, void *cp, void *arg)
{
    verso_sync_master *m = arg;
    conn *c = cp;

    (void)ws;
    if (!c)
        return;
    pthread_mutex_lock(&m->lock);
    for (conn **pp = &m->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    snapshot_end(c);
    free_tables(c);
    verso__free(c);
}

#define MAX_BURST    4
#define SNAP_POLL_MS 1 /* while a snapshot is being copied, which raises no event */

static int ws_writeable(verso_ws *ws, void *cp, void *arg)
{
    verso_sync_master *m = arg;
    conn *c = cp;
    int rc = 0;

    /* a few messages per turn: a slave catching up must not hold the thread */
    for (int sent = 0; sent < MAX_BURST && !verso_ws_choked(ws); sent++) {
        if ((rc = next_message(m, c, &m->out)) < 0)
            return -1;
        if (m->out.len == 0)
            break;
        if (verso_ws_write(ws, m->out.data, m->out.len) < 0)
            return -1;
        verso__crashpoint("master.ws.queued");
        c->last_tx_ms = mono_ms();
        if (c->state == VERSO__MASTER_CLOSING) {
            verso_ws_close(ws);
            return 0;
        }
    }
    if (verso_ws_choked(ws) || changes_due(m, c) || (c->snap && c->snap_off > 0))
        verso_ws_want_write(ws);
    else if (c->snap) /* still being copied: look again soon */
        verso_rest_wake_after(verso_ws_server(ws), SNAP_POLL_MS);
    return 0;
}

/* ---- the tick: notice commits (ours, other handles', other processes') ---- */

/*
 * The database under the subscriptions changed identity (a slave master
 * that resynchronised takes a new one) or went back below a cursor (a
 * restored file): those slaves are told to resynchronise now, not at
 * their next reconnection, since a caught-up slave asks for nothing.
 */
static void check_cursors(verso_sync_master *m)
{
    for (conn *c = m->conns; c; c = c->next) {
        bool other = strcmp(c->identity, m->info.identity) != 0;
        if (c->state != VERSO__MASTER_SUBSCRIBED && c->state != VERSO__MASTER_SNAPSHOT)
            continue;
        if (!other && c->cursor <= m->info.head)
            continue;
        snapshot_end(c);
        enter_resync(m, c, other ? "identity" : "ahead");
        verso_ws_want_write(c->ws);
    }
}

/* The database's identity and head as read now. */
static void take_info(verso_sync_master *m, const verso_info *info)
{
    if (strcmp(info->identity, m->info.identity) != 0 || info->head < m->info.head) {
        verso__sync_snap_unref(m->last_snap); /* a copy of the former database */
        m->last_snap = NULL;
    }
    pthread_mutex_lock(&m->lock);
    m->info = *info;
    pthread_mutex_unlock(&m->lock);
    check_cursors(m);
}

/* Looks for commits; true when the database moved. */
static bool refresh(verso_sync_master *m)
{
    bool data, schema;
    verso_info info;

    atomic_fetch_add(&m->checks, 1);
    (void)verso__db_changed(&data, &schema, m->db, &m->mark); /* on error both: look again */
    if (!data)
        return false;
    /* the mark moved: a look that fails must be made again at the next tick */
    if (schema) /* segments encoded under the former schema: slaves read on their own again */
        verso__ring_clear(&m->ring);
    if (schema && verso_db_refresh_schema(m->db) == 0) {
        for (conn *c = m->conns; c; c = c->next)
            c->schema_due = c->state == VERSO__MASTER_SUBSCRIBED;
    } else if (schema) {
        m->mark = VERSO__DB_MARK_INIT;
    }
    if (verso_db_info(&info, m->db) == 0)
        take_info(m, &info);
    else
        m->mark = VERSO__DB_MARK_INIT;
    if (ring_extend(m, NULL) < 0)
        verso__ring_clear(&m->ring); /* slaves read on their own until the next commit */
    m->moved = true;
    return true;
}

static void update_lag(verso_sync_master *m, conn *c, int64_t now)
{
    pthread_mutex_lock(&m->lock);
    if (c->acked >= m->info.head)
        c->behind_since_ms = 0;
    else if (c->behind_since_ms == 0)
        c->behind_since_ms = now;
    pthread_mutex_unlock(&m->lock);
}

/* How long c has been behind; 0 once its ack reached the head, even
 * before the next tick clears behind_since_ms. Under m->lock. */
static int64_t lag_ms(const verso_sync_master *m, const conn *c, int64_t now)
{
    return c->acked < m->info.head && c->behind_since_ms ? now - c->behind_since_ms : 0;
}

#define SWEEP_MS 20 /* the longest a tick that found no commit skips the slaves */

static void tick(verso_rest *srv, void *arg)
{
    verso_sync_master *m = arg;
    int64_t now = mono_ms();

    if (m->before.on_tick)
        m->before.on_tick(srv, m->before.tick_arg);
    atomic_store(&m->srv, srv);
    /* A look that found nothing new costs nothing per slave: the file watch looks again and
     * again after other processes' writes, and a thousand slaves would make each look a
     * thousand. Heartbeats, timeouts and lag times are swept at least every SWEEP_MS. */
    refresh(m);
    bool sweep = m->moved || now - m->swept_ms >= SWEEP_MS || now < m->swept_ms;
    m->swept_ms = sweep ? now : m->swept_ms;
    m->moved = false;
    for (conn *c = m->conns; c; c = c->next) {
        if (!sweep) {
            if (c->snap) /* a snapshot being copied is looked at every tick */
                verso_ws_want_write(c->ws);
            continue;
        }
        update_lag(m, c, now);
        if (now - c->last_rx_ms > 3 * (int64_t)m->o.heartbeat_ms &&
            c->state != VERSO__MASTER_CLOSING) {
            fail_conn(m, c, "timeout", "nothing received for three heartbeat periods (%d ms)",
                      3 * m->o.heartbeat_ms);
            continue;
        }
        if (changes_due(m, c) || c->schema_due || heartbeat_due(m, c) || c->snap)
            verso_ws_want_write(c->ws);
    }
}

/* ---- status and metrics ---- */

static int status_json(verso_buf *out, void *arg)
{
    verso_sync_master *m = arg;
    int64_t now = mono_ms();
    size_t mark = out->len;
    int rc = m->before.status_json ? m->before.status_json(out, m->before.status_arg) : 0;

    if (rc == 0 && out->len > mark)
        rc = verso_buf_puts(out, ",");
    if (rc == 0)
        rc = verso_buf_puts(out, "\"replication\":{\"slaves\":[");
    bool first = true;

    pthread_mutex_lock(&m->lock);
    for (conn *c = m->conns; rc == 0 && c; c = c->next) {
        if (c->state != VERSO__MASTER_SUBSCRIBED)
            continue;
        rc = verso_buf_printf(out, "%s{\"name\":", first ? "" : ",");
        if (rc == 0)
            rc = verso_json_string(out, c->name, strlen(c->name));
        if (rc == 0)
            rc = verso_buf_printf(
                out, ",\"cursor\":%lld,\"acked\":%lld,\"lag_versions\":%lld,\"lag_ms\":%lld}",
                (long long)c->cursor, (long long)c->acked,
                (long long)(m->info.head > c->acked ? m->info.head - c->acked : 0),
                (long long)lag_ms(m, c, now));
        first = false;
    }
    pthread_mutex_unlock(&m->lock);
    if (rc == 0)
        rc = verso_buf_puts(out, "]}");
    return rc;
}

/* A Prometheus label value: the slave chose its name, so \, " and newlines are escaped. */
static int label_value(verso_buf *out, const char *v)
{
    int rc = 0;

    for (; rc == 0 && *v; v++) {
        if (*v == '\\' || *v == '"')
            rc = verso_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            rc = verso_buf_puts(out, "\\n");
        else
            rc = verso_buf_append(out, v, 1);
    }
    return rc;
}

/* One sample of family k for slave p (the n label keeps equal names apart). */
static int metrics_peer(verso_buf *out, const verso_sync_peer *p, size_t i, int k)
{
    static const char *const names[] = {"verso_sync_slave_lag_versions",
                                        "verso_sync_slave_lag_seconds"};
    int rc = verso_buf_printf(out, "%s{slave=\"", names[k]);

    if (rc == 0)
        rc = label_value(out, p->name);
    if (rc == 0 && k == 0)
        rc = verso_buf_printf(out, "\",n=\"%zu\"} %lld\n", i, (long long)p->lag_versions);
    else if (rc == 0)
        rc = verso_buf_printf(out, "\",n=\"%zu\"} %.15g\n", i, p->lag_ms / 1000.0);
    return rc;
}

static const char k_lag_help[2][160] = {
    "# HELP verso_sync_slave_lag_versions Master versions a slave has not acknowledged.\n"
    "# TYPE verso_sync_slave_lag_versions gauge\n",
    "# HELP verso_sync_slave_lag_seconds How long a slave has been behind; 0 when caught up.\n"
    "# TYPE verso_sync_slave_lag_seconds gauge\n",
};

static int metrics_text(verso_buf *out, void *arg)
{
    verso_sync_master *m = arg;
    verso_sync_peer *peers = NULL;
    size_t n = 0;
    int rc = m->before.metrics_text ? m->before.metrics_text(out, m->before.metrics_arg) : 0;

    if (rc < 0)
        return rc;
    rc = verso_sync_master_peers(&peers, &n, m);

    if (rc == 0)
        rc = verso_buf_printf(out,
                              "# HELP verso_sync_slaves Live slaves subscribed now.\n"
                              "# TYPE verso_sync_slaves gauge\nverso_sync_slaves %zu\n"
                              "# HELP verso_sync_commit_checks_total Checks for new commits to "
                              "push.\n# TYPE verso_sync_commit_checks_total counter\n"
                              "verso_sync_commit_checks_total %llu\n"
                              "# HELP verso_sync_encodings_total Reads of changes encoded: one "
                              "per commit shared by every slave at the head, plus slaves' own.\n"
                              "# TYPE verso_sync_encodings_total counter\n"
                              "verso_sync_encodings_total %llu\n"
                              "# HELP verso_sync_ring_sends_total Messages sent from the ring of "
                              "encoded commits.\n# TYPE verso_sync_ring_sends_total counter\n"
                              "verso_sync_ring_sends_total %llu\n"
                              "# HELP verso_sync_ring_merged_total Messages from the ring that "
                              "carried several commits to a slave behind.\n"
                              "# TYPE verso_sync_ring_merged_total counter\n"
                              "verso_sync_ring_merged_total %llu\n"
                              "# HELP verso_sync_ring_joins_total Messages from the ring that "
                              "went on with a slave's own catch-up reads.\n"
                              "# TYPE verso_sync_ring_joins_total counter\n"
                              "verso_sync_ring_joins_total %llu\n",
                              n, (unsigned long long)atomic_load(&m->checks),
                              (unsigned long long)atomic_load(&m->encodings),
                              (unsigned long long)atomic_load(&m->ring_sends),
                              (unsigned long long)atomic_load(&m->ring_merges),
                              (unsigned long long)atomic_load(&m->ring_joins));
    for (int k = 0; rc == 0 && k < 2; k++) { /* a family's samples follow its TYPE line */
        rc = verso_buf_puts(out, k_lag_help[k]);
        for (size_t i = 0; rc == 0 && i < n; i++)
            rc = metrics_peer(out, &peers[i], i, k);
    }
    verso_free(peers);
    return rc;
}

/* ---- public API ---- */

static int prepare(verso_sync_master *m, char *why, size_t whylen)
{
    bool data, schema;
    int rc;

    m->mark = VERSO__DB_MARK_INIT;
    if ((rc = verso__db_changed(&data, &schema, m->db, &m->mark)) < 0 ||
        (rc = verso_db_info(&m->info, m->db)) < 0) {
        verso__sync_why(why, whylen, "%s", verso_db_errmsg(m->db));
        return rc == VERSO_ENOMEM ? rc : VERSO_EDB;
    }
    return 0;
}

static void set_options(verso_sync_master_options *o, const verso_sync_master_options *opts)
{
    if (opts)
        *o = *opts;
    o->chunk = o->chunk > 0 ? o->chunk : 5000;
    o->heartbeat_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : 5000;
    o->poll_ms = o->poll_ms > 0 ? o->poll_ms : 250;
    o->ring_segments = o->ring_segments > 0 ? o->ring_segments : 4096;
    o->ring_bytes = o->ring_bytes > 0 ? o->ring_bytes : (int64_t)64 << 20;
}

int verso_sync_master_new(verso_sync_master **out, const char *db_path,
                          const verso_sync_master_options *opts, char *why, size_t whylen)
{
    char open_why[256] = "";
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    verso_sync_master *m;
    int rc;

    *out = NULL;
    if (!db_path)
        return VERSO_EINVAL;
    if (!(m = verso__calloc(1, sizeof(*m))))
        return VERSO_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    set_options(&m->o, opts);
    if ((rc = verso__ring_init(&m->ring, (size_t)m->o.ring_segments, (size_t)m->o.ring_bytes)) < 0)
        goto done;
    dbo.must_exist = true;
    if (!(m->path = verso__strdup(db_path))) {
        rc = VERSO_ENOMEM;
        goto done;
    }
    if ((rc = verso_db_open(&m->db, db_path, &dbo, open_why, sizeof(open_why))) < 0) {
        verso__sync_why(why, whylen, "%s: %s", db_path, open_why);
        goto done;
    }
    if ((rc = prepare(m, why, whylen)) < 0)
        goto done;
    verso__sync_snapshot_sweep(db_path); /* what a killed master left */
    m->handler = (verso_ws_handler){VERSO_SYNC_PATH, VERSO_SYNC_SUBPROTOCOL, "replicate", ws_open,
                                    ws_message,      ws_writeable,           ws_close,    m};
    *out = m;
done:
    if (rc < 0)
        verso_sync_master_close(m);
    return rc;
}

int verso_sync_master_mount(verso_sync_master *m, verso_rest_options *ro)
{
    int tick_ms = m->o.poll_ms < m->o.heartbeat_ms / 4 ? m->o.poll_ms : m->o.heartbeat_ms / 4;
    verso_ws_handler *h;

    if (m->handlers || (ro->nws_handlers && !ro->ws_handlers))
        return VERSO_EINVAL; /* mounted once, into one server */
    if (!(h = verso__calloc(ro->nws_handlers + 1, sizeof(*h))))
        return VERSO_ENOMEM;
    for (size_t i = 0; i < ro->nws_handlers; i++)
        h[i] = ro->ws_handlers[i];
    h[ro->nws_handlers] = m->handler;
    m->handlers = h;
    m->before = *ro;
    ro->ws_handlers = h;
    ro->nws_handlers++;
    ro->on_tick = tick;
    ro->tick_arg = m;
    ro->tick_on_change = true;
    /* the slow poll, and often enough for heartbeats and silence checks */
    tick_ms = tick_ms > 0 ? tick_ms : 1;
    if (!m->before.on_tick || m->before.tick_ms <= 0 || tick_ms < m->before.tick_ms)
        ro->tick_ms = tick_ms;
    ro->status_json = status_json;
    ro->status_arg = m;
    ro->metrics_text = metrics_text;
    ro->metrics_arg = m;
    return 0;
}

static void commit_hook(verso_db *db, const verso_change *changes, size_t n, void *arg)
{
    verso_sync_master *m = arg;
    verso_rest *srv = atomic_load(&m->srv);

    (void)db;
    (void)changes;
    (void)n;
    if (srv)
        verso_rest_wake(srv);
}

int verso_sync_master_watch(verso_sync_master *m, verso_db *db)
{
    return verso_db_on_commit(db, commit_hook, m);
}

int verso_sync_master_unwatch(verso_sync_master *m, verso_db *db)
{
    return verso_db_on_commit_remove(db, commit_hook, m);
}

/* Under m->lock. */
static void peer_fill(verso_sync_peer *p, const verso_sync_master *m, const conn *c, int64_t now)
{
    snprintf(p->name, sizeof(p->name), "%s", c->name);
    p->cursor = c->cursor;
    p->acked = c->acked;
    p->lag_versions = m->info.head > c->acked ? m->info.head - c->acked : 0;
    p->lag_ms = lag_ms(m, c, now);
    p->sent_rows = c->sent_rows;
    p->connected_ms = c->connected_ms;
}

int verso_sync_master_peers(verso_sync_peer **out, size_t *n, verso_sync_master *m)
{
    int64_t now = mono_ms();
    size_t count = 0, i = 0;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&m->lock);
    for (conn *c = m->conns; c; c = c->next)
        count += c->state == VERSO__MASTER_SUBSCRIBED;
    if (count && !(*out = verso__calloc(count, sizeof(**out)))) {
        pthread_mutex_unlock(&m->lock);
        return VERSO_ENOMEM;
    }
    for (conn *c = m->conns; c && i < count; c = c->next) {
        if (c->state == VERSO__MASTER_SUBSCRIBED)
            peer_fill(&(*out)[i++], m, c, now);
    }
    *n = i;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void verso_sync_master_close(verso_sync_master *m)
{
    if (!m)
        return;
    while (m->conns) {
        conn *c = m->conns;
        m->conns = c->next;
        snapshot_end(c);
        free_tables(c);
        verso__free(c);
    }
    verso__sync_snap_unref(m->last_snap);
    verso__ring_free(&m->ring);
    verso_db_close(m->db);
    verso__free(m->path);
    verso_buf_free(&m->out);
    verso__free(m->handlers);
    pthread_mutex_destroy(&m->lock);
    verso__free(m);
}

/* ---- a connection driven by hand (internal.h) ---- */

const verso_ws_handler *verso__master_handler(verso_sync_master *m)
{
    return &m->handler;
}

void verso__master_counts(verso_sync_master *m, uint64_t *encodings, uint64_t *ring_sends)
{
    *encodings = atomic_load(&m->encodings);
    *ring_sends = atomic_load(&m->ring_sends);
}

int verso__master_conn_next(verso_sync_master *m, void *cp, verso_buf *b)
{
    conn *c = cp;
    int rc = next_message(m, c, b);

    if (rc < 0 || b->len == 0)
        return rc;
    c->last_tx_ms = mono_ms();
    return c->state == VERSO__MASTER_CLOSING ? 1 : 0;
}
