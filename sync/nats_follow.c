/*
 * sync/nats_follow.c - the follower: a slave that applies a JetStream
 * stream written by a publisher (nats_pub.c) instead of a master's /_sync.
 *
 * Its position is its cursor, as any slave's: a committed master version
 * of the stream's current identity (the last "<P>.master" message). It
 * finds the message whose range holds the cursor by a binary search on
 * stream sequences (messages are read by sequence, their headers compared),
 * then reads the stream from there through an ordered consumer. Entries at
 * or below the cursor are skipped (the database has them): that is how it
 * joins the stream after a bootstrap, at a version inside a message. The
 * slave transaction is committed only at a message with more false, the
 * cursor in the same transaction. Whatever goes wrong (a gap, a message it
 * cannot read, the server gone) drops the open transaction and the search
 * starts again from the committed cursor, after a backoff.
 *
 * A database of another identity, or whose cursor the stream no longer
 * reaches (retention), is brought up to date from the master over HTTP
 * (verso_sync_pull(): a file snapshot for an empty database, a catch-up or
 * full resynchronisation otherwise), or, without a master or when it cannot
 * be reached, from the newest complete snapshot of the snapshot stream.
 */
#include "verso/nats.h"

#ifdef VERSO_HAVE_NATS

#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "orm/service.h"
#include "rest/internal.h"
#include "sync/nats.h"

#define NEXT_WAIT_MS  250  /* one wait for the next message; the stop flag is read between */
#define IDLE_CHECK_MS 2000 /* no message for this long: the stream's tail is compared */

/* What a step tells the loop: go on, look for the position again, or pull from the master. */
enum { GO_ON = 0, RELOCATE = 1, PULL = 2 };

struct verso_nats_follower {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* st, behind_since_ms, the cond */
    pthread_cond_t cond;  /* a commit */
    verso_slave_state st;
    int64_t behind_since_ms;
    atomic_int stop;

    verso_nats_follow_options o;
    char *master_url, *nats_token, *token;
    char name[64];
    char servers[1024], stream[65], snap_stream[70], prefix[136];
    char subj_changes[VERSO__NATS_SUBJECT_MAX], subj_master[VERSO__NATS_SUBJECT_MAX];

    verso_db *db;
    verso__sync_applier *ap;
    verso__blobfetch *blobs;
    verso__sync_cancel cancel;
    verso__nats_conn c;
    natsSubscription *sub;

    char identity[37]; /* the stream's identity (its last master message) */
    int64_t cursor;    /* committed */
    int64_t expected;  /* the from of the next message; -1: the first after a search */
    uint64_t seen_seq; /* the stream sequence last handled */
    int64_t lives;     /* subscriptions made */
    int odd;           /* messages out of place in a row (out_of_place()) */
    bool pull_first;   /* the next round starts with a pull from the master */
    bool resync_due;   /* a bootstrap under way counts as a resynchronisation */
    bool reset_first;  /* a database never replicated follows the stream from 0: its first
                          transaction is a full reset (rows of its own tables go) */
    bool fatal;        /* stopped: what is wrong needs the operator (last_error) */
    int retry_ms;
    uint64_t seed;
    char why[256];
    verso__upstream up;
};

/* ---- shared state ---- */

static void set_error(verso_nats_follower *f, const char *why)
{
    pthread_mutex_lock(&f->lock);
    verso__sync_copy_name(f->st.last_error, sizeof(f->st.last_error), why);
    pthread_mutex_unlock(&f->lock);
}

static void emit(verso_nats_follower *f, verso_slave_event_kind kind, const char *detail,
                 int64_t rows)
{
    verso_slave_event e = {.kind = kind, .detail = detail ? detail : "", .rows = rows};

    if (!f->o.slave.on_event)
        return;
    pthread_mutex_lock(&f->lock);
    e.cursor = f->st.cursor;
    e.master_head = f->st.master_head;
    pthread_mutex_unlock(&f->lock);
    f->o.slave.on_event(&e, f->o.slave.event_arg);
}

static void set_link(verso_nats_follower *f, verso_slave_link link)
{
    pthread_mutex_lock(&f->lock);
    f->st.attempts += link == VERSO_LINK_CONNECTING && f->st.link != VERSO_LINK_CONNECTING;
    f->st.reconnects += link == VERSO_LINK_LIVE && f->lives > 0;
    f->st.link = link;
    f->st.connected = link == VERSO_LINK_LIVE;
    if (link != VERSO_LINK_LIVE && f->st.phase != VERSO_PHASE_SNAPSHOT)
        f->st.phase = VERSO_PHASE_CONNECTING;
    pthread_mutex_unlock(&f->lock);
    f->lives += link == VERSO_LINK_LIVE;
}

static void set_phase(verso_nats_follower *f, verso_sync_phase phase)
{
    pthread_mutex_lock(&f->lock);
    f->st.phase = phase;
    if (phase != VERSO_PHASE_SNAPSHOT)
        f->st.snapshot_bytes = f->st.snapshot_total = 0;
    if (phase == VERSO_PHASE_CATCHUP) {
        f->st.catchup_from = f->st.cursor;
        f->st.catchup_target = f->st.master_head;
    }
    pthread_mutex_unlock(&f->lock);
}

/* The cursor or the head seen moved (committed: a commit, waiters are woken). */
static void publish(verso_nats_follower *f, int64_t head, bool committed)
{
    pthread_mutex_lock(&f->lock);
    f->st.cursor = f->cursor;
    if (head > f->st.master_head)
        f->st.master_head = head;
    if (f->st.master_head < f->cursor)
        f->st.master_head = f->cursor;
    if (committed || f->st.received < f->cursor)
        f->st.received = f->cursor;
    f->st.lag_versions = f->st.master_head - f->cursor;
    if (f->st.lag_versions == 0)
        f->behind_since_ms = 0;
    else if (f->behind_since_ms == 0)
        f->behind_since_ms = verso__sync_mono_ms();
    if (committed) {
        memcpy(f->st.master, f->identity, sizeof(f->st.master));
        f->st.commits++;
        f->st.applied_rows = verso__sync_applier_rows(f->ap);
        pthread_cond_broadcast(&f->cond);
    }
    pthread_mutex_unlock(&f->lock);
}

/* Caught up with the stream (nothing pending): live, said once per catch-up. */
static void caught_up(verso_nats_follower *f)
{
    bool now;
    int64_t rows;

    pthread_mutex_lock(&f->lock);
    now = f->st.phase == VERSO_PHASE_CATCHUP;
    if (now)
        f->st.phase = VERSO_PHASE_LIVE;
    rows = f->st.applied_rows;
    pthread_mutex_unlock(&f->lock);
    if (now)
        emit(f, VERSO_EVENT_CAUGHT_UP, NULL, rows);
}

/* Reads the committed cursor back from the database. */
static int read_cursor(verso_nats_follower *f, verso_cursor *c)
{
    int rc = verso_db_cursor(c, f->db);

    if (rc < 0)
        verso__sync_why(f->why, sizeof(f->why), "%s", verso_db_errmsg(f->db));
    else
        f->cursor = c->version;
    return rc;
}

/* ---- bootstrap: from the master over HTTP, or from the snapshot stream ---- */

static bool should_stop(void *arg)
{
    return atomic_load(&((verso_nats_follower *)arg)->stop) != 0;
}

/* Brings the database up to the master's head by a pull (snapshot, catch-up or resync). */
static int pull_master(verso_nats_follower *f)
{
    verso_sync_client cl = f->o.slave.client;
    verso_pull_result res;
    int rc;

    cl.should_stop = should_stop;
    cl.stop_arg = f;
    rc = verso_sync_pull(&res, f->db, f->master_url, &cl, f->why, sizeof(f->why));
    if (rc < 0)
        return rc;
    if (res.snapshot) {
        pthread_mutex_lock(&f->lock);
        f->st.snapshot_rows = res.snapshot_rows;
        pthread_mutex_unlock(&f->lock);
        emit(f, VERSO_EVENT_BOOTSTRAPPED, NULL, res.snapshot_rows);
    }
    if (res.resynced) {
        pthread_mutex_lock(&f->lock);
        f->st.resyncs++;
        pthread_mutex_unlock(&f->lock);
    }
    f->cursor = res.cursor;
    publish(f, res.master_head, true);
    pthread_mutex_lock(&f->lock);
    memcpy(f->st.master, res.master,
           sizeof(f->st.master)); /* the cursor's, maybe not the stream's */
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/* The snapshot's bytes so far, and its size as far as its parts tell (256 KiB each). */
static void snap_progress(verso_nats_follower *f, int n, int64_t parts)
{
    pthread_mutex_lock(&f->lock);
    f->st.snapshot_bytes += n;
    f->st.snapshot_total = parts * 256 * 1024;
    if (f->st.snapshot_total < f->st.snapshot_bytes)
        f->st.snapshot_total = f->st.snapshot_bytes;
    pthread_mutex_unlock(&f->lock);
}

/* Reads the parts of the snapshot on subject into file; 0 when complete and intact. */
static int snap_read_parts(verso_nats_follower *f, const char *subject, int64_t parts,
                           const char *sha, FILE *file)
{
    natsSubscription *sub = NULL;
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;
    int rc = 0;

    jsSubOptions_Init(&so);
    so.Stream = f->snap_stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverAll;
    if ((s = js_SubscribeSync(&sub, f->c.js, subject, NULL, &so, &jerr)) != NATS_OK) {
        verso__nats_why(f->why, sizeof(f->why), "reading the snapshot stream", s, jerr);
        return verso__nats_rc(s);
    }
    for (int64_t i = 0; rc == 0 && i < parts && !atomic_load(&f->stop); i++) {
        natsMsg *m = NULL;
        int64_t part = -1;
        const char *h;
        if ((s = natsSubscription_NextMsg(&m, sub, 5000)) != NATS_OK) {
            verso__nats_why(f->why, sizeof(f->why), "reading the snapshot stream", s, 0);
            rc = verso__nats_rc(s);
            break;
        }
        h = verso__nats_hdr(m, VERSO__HDR_SHA256);
        if (verso__nats_hdr_i64(&part, m, VERSO__HDR_PART) < 0 || part != i || !h ||
            strcmp(h, sha) != 0) {
            verso__sync_why(f->why, sizeof(f->why), "snapshot %s: part %lld out of order", subject,
                            (long long)i);
            rc = VERSO_EPROTO;
        } else if (fwrite(natsMsg_GetData(m), 1, (size_t)natsMsg_GetDataLength(m), file) !=
                   (size_t)natsMsg_GetDataLength(m)) {
            verso__sync_why(f->why, sizeof(f->why), "writing the snapshot: disk full?");
            rc = VERSO_EIO;
        } else {
            snap_progress(f, natsMsg_GetDataLength(m), parts);
        }
        natsMsg_Destroy(m);
    }
    verso__nats_sub_end(&f->c, sub);
    return atomic_load(&f->stop) ? VERSO_EINTERRUPTED : rc;
}

/* Whether the file's SHA-256 is hex. */
static bool snap_intact(const char *path, const char *hex)
{
    unsigned char sum[32], want[32];
    struct stat sb;
    void *data = MAP_FAILED;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    bool ok = false;

    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0)
        data = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data != MAP_FAILED) {
        verso__sha256(sum, data, (size_t)sb.st_size);
        ok = verso__hex32(want, hex, strlen(hex)) == 0 && memcmp(sum, want, 32) == 0;
        munmap(data, (size_t)sb.st_size);
    }
    if (fd >= 0)
        close(fd);
    return ok;
}

/* The newest snapshot of the identity: its subject's last message tells version, parts, sum. */
static int snap_newest(verso_nats_follower *f, char *subject, size_t n, int64_t *version,
                       int64_t *parts, char sha[65])
{
    jsStreamInfo *si = NULL;
    jsOptions jo;
    jsErrCode jerr = 0;
    char filter[VERSO__NATS_SUBJECT_MAX];
    natsMsg *m = NULL;
    const char *h;
    int rc;

    snprintf(filter, sizeof(filter), "%s.snap.%s.*", f->prefix, f->identity);
    jsOptions_Init(&jo);
    jo.Stream.Info.SubjectsFilter = filter;
    *version = -1;
    if (js_GetStreamInfo(&si, f->c.js, f->snap_stream, &jo, &jerr) != NATS_OK)
        return VERSO_ENOTFOUND;
    for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++) {
        const char *s = si->State.Subjects->List[i].Subject, *dot = strrchr(s, '.');
        int64_t v = dot ? strtoll(dot + 1, NULL, 10) : -1;
        if (v > *version && (int64_t)si->State.Subjects->List[i].Msgs > 0) {
            *version = v;
            snprintf(subject, n, "%s", s);
        }
    }
    jsStreamInfo_Destroy(si);
    if (*version < 0)
        return VERSO_ENOTFOUND;
    if ((rc = verso__nats_get_last(&m, &f->c, f->snap_stream, subject, f->why, sizeof(f->why))) <
            0 ||
        !m)
        return rc < 0 ? rc : VERSO_ENOTFOUND;
    h = verso__nats_hdr(m, VERSO__HDR_SHA256);
    rc = verso__nats_hdr_i64(parts, m, VERSO__HDR_PARTS) == 0 && h && strlen(h) == 64
             ? 0
             : VERSO_EPROTO;
    if (rc == 0)
        memcpy(sha, h, 65);
    natsMsg_Destroy(m);
    return rc;
}

/* Installs the newest complete snapshot of the stream's identity (an empty database only). */
static int snap_from_stream(verso_nats_follower *f)
{
    char subject[VERSO__NATS_SUBJECT_MAX], sha[65], file[1100];
    int64_t version = 0, parts = 0;
    FILE *fp;
    int rc;

    if (!verso__sync_snapshot_fits(f->db)) {
        verso__sync_why(f->why, sizeof(f->why),
                        "the database holds data of another master: resynchronising it needs "
                        "--master (the snapshot stream serves empty databases only)");
        return VERSO_ESTATE;
    }
    if ((rc = snap_newest(f, subject, sizeof(subject), &version, &parts, sha)) < 0) {
        if (rc == VERSO_ENOTFOUND)
            verso__sync_why(f->why, sizeof(f->why), "no snapshot of database %s in stream %s yet",
                            f->identity, f->snap_stream);
        return rc;
    }
    set_phase(f, VERSO_PHASE_SNAPSHOT);
    verso__sync_snapshot_name(file, sizeof(file), verso_db_path(f->db));
    if (!(fp = fopen(file, "wb"))) {
        verso__sync_why(f->why, sizeof(f->why), "cannot write the snapshot file %s", file);
        return VERSO_EIO;
    }
    rc = snap_read_parts(f, subject, parts, sha, fp);
    if (fclose(fp) != 0 && rc == 0)
        rc = VERSO_EIO;
    if (rc == 0 && !snap_intact(file, sha)) {
        verso__sync_why(f->why, sizeof(f->why), "snapshot %s: its SHA-256 does not match", subject);
        rc = VERSO_EPROTO;
    }
    if (rc == 0)
        rc =
            verso__sync_snapshot_install(f->db, file, f->identity, version, f->why, sizeof(f->why));
    else
        unlink(file);
    if (rc < 0)
        return rc;
    f->cursor = version;
    pthread_mutex_lock(&f->lock);
    f->st.snapshot_rows = verso__sync_count_rows(f->db);
    pthread_mutex_unlock(&f->lock);
    publish(f, version, true);
    if (f->o.slave.client.on_apply)
        f->o.slave.client.on_apply(NULL, 0, version, true, f->o.slave.client.apply_arg);
    emit(f, VERSO_EVENT_BOOTSTRAPPED, NULL, f->st.snapshot_rows);
    return 0;
}

/* Brings the database to a state of the stream's identity: pull, else the snapshot stream. */
static int bootstrap(verso_nats_follower *f)
{
    int rc = VERSO_ENET;

    char pull_why[sizeof(f->why)] = "";

    set_phase(f, VERSO_PHASE_SNAPSHOT);
    if (f->master_url && (rc = pull_master(f)) < 0)
        memcpy(pull_why, f->why, sizeof(pull_why));
    if (!f->master_url || rc == VERSO_ENET || rc == VERSO_ETIMEOUT)
        rc = snap_from_stream(f);
    if (rc < 0 && pull_why[0]) { /* both failed: say why the master could not help either */
        char snap_why[sizeof(f->why)];
        memcpy(snap_why, f->why, sizeof(snap_why));
        verso__sync_why(f->why, sizeof(f->why), "master %s: %s; %s", f->master_url, pull_why,
                        snap_why);
    }
    set_phase(f, VERSO_PHASE_CONNECTING);
    return rc;
}

/* ---- the position ---- */

static bool is_master(const verso_nats_follower *f, natsMsg *m)
{
    const char *subject = natsMsg_GetSubject(m);

    return subject && strcmp(subject, f->subj_master) == 0;
}

/*
 * What the search reads of a message. Points of the chain are the identity's messages in a
 * publisher's form (their Nats-Msg-Id): its master messages (from = to = their head) and its
 * changes messages. Anything else (another identity, or a message of ours written by
 * something else: a gap, garbage) is no point: the search steps over it.
 */
typedef struct probe {
    int kind;  /* -2 none, -1 no point, 0 master message, 1 changes */
    bool mine; /* Verso-Identity is the identity's (a point or not) */
    int64_t from, to;
} probe;

static void probe_read(probe *pr, verso_nats_follower *f, natsMsg *m)
{
    const char *id = verso__nats_hdr(m, VERSO__HDR_IDENTITY);
    char mid[37];

    pr->mine = id && strcmp(id, f->identity) == 0;
    if (!pr->mine)
        return;
    if (is_master(f, m)) {
        if (verso__nats_master_id(m, f->identity) &&
            verso__nats_master_read(mid, &pr->from, m) == 0 && strcmp(mid, f->identity) == 0)
            pr->kind = 0;
        pr->to = pr->from;
    } else if (verso__nats_hdr_i64(&pr->from, m, VERSO__HDR_FROM) == 0 &&
               verso__nats_hdr_i64(&pr->to, m, VERSO__HDR_TO) == 0 && pr->to >= pr->from &&
               verso__nats_chain_id(m, f->identity, pr->from, pr->to)) {
        pr->kind = 1;
    }
}

static int probe_at(probe *pr, verso_nats_follower *f, uint64_t seq)
{
    natsMsg *m = NULL;
    int rc = verso__nats_get(&m, &f->c, f->stream, seq, f->why, sizeof(f->why));

    pr->kind = -2;
    pr->mine = false;
    pr->from = pr->to = -1;
    if (rc < 0 || !m)
        return rc;
    pr->kind = -1;
    probe_read(pr, f, m);
    natsMsg_Destroy(m);
    return 0;
}

/* The first sequence in [lo, hi] holding a message of the identity (they form the stream's
 * tail: the identity's master message and its chain are the newest). */
static int first_of_identity(uint64_t *out, verso_nats_follower *f, uint64_t lo, uint64_t hi)
{
    probe pr;
    int rc;

    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((rc = probe_at(&pr, f, mid)) < 0)
            return rc;
        if (pr.mine)
            hi = mid;
        else
            lo = mid + 1;
    }
    *out = lo;
    return 0;
}

#define MAX_STEP_OVER 256 /* messages that are no point stepped over in one look */

/* The first point of the chain in [seq, hi] (*at 0: none, or too many messages that are
 * no point). */
static int point_from(uint64_t *at, probe *pr, verso_nats_follower *f, uint64_t seq, uint64_t hi)
{
    int rc;

    *at = 0;
    for (int n = 0; seq <= hi && n < MAX_STEP_OVER; seq++, n++) {
        if ((rc = probe_at(pr, f, seq)) < 0)
            return rc;
        if (pr->kind >= 0) {
            *at = seq;
            return 0;
        }
    }
    return 0;
}

/* The last point in [lo, hi] whose from is at or below the cursor (*best 0: none). Points are
 * in the order of their from; what lies between them is stepped over. */
static int last_point_at_cursor(uint64_t *best, verso_nats_follower *f, uint64_t lo, uint64_t hi)
{
    probe pr;
    uint64_t at;
    int rc;

    *best = 0;
    while (lo <= hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if ((rc = point_from(&at, &pr, f, mid, hi)) < 0)
            return rc;
        if (at && pr.from <= f->cursor) {
            *best = at;
            lo = at + 1;
        } else if (mid == lo) {
            break;
        } else {
            hi = mid - 1;
        }
    }
    return 0;
}

/* The stream's tail: the head as far as it knows. */
static int note_tail(verso_nats_follower *f, uint64_t last)
{
    probe pr;
    int rc = probe_at(&pr, f, last);

    if (rc < 0)
        return rc;
    pthread_mutex_lock(&f->lock);
    if (pr.kind >= 0 && pr.to > f->st.master_head)
        f->st.master_head = pr.to;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

/*
 * The sequence to read from: the last point of the identity whose from is at or below the
 * cursor. PULL when the stream cannot continue the cursor: it holds nothing of the identity
 * at or below it (retention), or a hole (the point found ends at or below the cursor and the
 * next point starts above it: the message from the cursor is not in the stream).
 */
static int find_start(uint64_t *start, verso_nats_follower *f)
{
    uint64_t first, last, lo, best, next = 0;
    probe pr, nx;
    int rc;

    if ((rc = verso__nats_stream_seqs(&first, &last, &f->c, f->stream, f->why, sizeof(f->why))) < 0)
        return rc;
    if (last == 0 || (rc = first_of_identity(&lo, f, first, last)) < 0)
        return last == 0 ? PULL : rc;
    if ((rc = last_point_at_cursor(&best, f, lo, last)) < 0)
        return rc;
    if (!best)
        return PULL; /* retention dropped the messages after the cursor */
    if ((rc = probe_at(&pr, f, best)) < 0 ||
        (best < last && (rc = point_from(&next, &nx, f, best + 1, last)) < 0))
        return rc;
    if (pr.kind < 0)
        return PULL; /* gone since */
    if (pr.to <= f->cursor && best < last && next) {
        verso__sync_why(f->why, sizeof(f->why),
                        "the stream has no message from version %lld (a hole before %lld)",
                        (long long)f->cursor, (long long)nx.from);
        return PULL;
    }
    *start = pr.kind == 1 && pr.to > f->cursor ? best : best + 1;
    return note_tail(f, last);
}

/* The tables a master message announces become the applier's (checked or created at the
 * next transaction). */
static int take_schema(verso_nats_follower *f, natsMsg *m)
{
    verso__sync_schema schema = {0};
    verso_json *doc = NULL;
    const cJSON *tables;
    int rc =
        verso_json_parse(&doc, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL, 0);

    if (rc < 0)
        return VERSO_EPROTO;
    tables = cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "tables");
    if (tables)
        rc = verso__sync_schema_parse(&schema, tables, f->why, sizeof(f->why));
    verso_json_free(doc);
    if (rc == 0 && tables)
        rc = verso__sync_applier_set_schema(f->ap, &schema);
    verso__sync_schema_free(&schema);
    return rc;
}

/* Without a master message (retention dropped it): the identity of the last changes message;
 * the tables stay what they were. */
static int identity_of_changes(verso_nats_follower *f)
{
    natsMsg *m = NULL;
    const char *id;
    int rc = verso__nats_get_last(&m, &f->c, f->stream, f->subj_changes, f->why, sizeof(f->why));

    id = m ? verso__nats_hdr(m, VERSO__HDR_IDENTITY) : NULL;
    if (rc == 0 && id && strlen(id) == 36)
        memcpy(f->identity, id, 37);
    else if (rc == 0)
        rc = VERSO_ENOTFOUND;
    natsMsg_Destroy(m);
    if (rc == VERSO_ENOTFOUND)
        verso__sync_why(f->why, sizeof(f->why),
                        "stream %s has no master message yet: is a publisher running?", f->stream);
    return rc;
}

/* The identity the stream follows now (its last master message); with schema, its tables
 * become the applier's. */
static int stream_master(verso_nats_follower *f, bool schema)
{
    natsMsg *m = NULL;
    int64_t head;
    int rc = verso__nats_get_last(&m, &f->c, f->stream, f->subj_master, f->why, sizeof(f->why));

    if (rc < 0)
        return rc;
    if (!m)
        return identity_of_changes(f);
    rc = verso__nats_master_read(f->identity, &head, m);
    if (rc == 0 && schema)
        rc = take_schema(f, m);
    natsMsg_Destroy(m);
    if (rc < 0)
        verso__sync_why(f->why, sizeof(f->why), "stream %s: unreadable master message", f->stream);
    return rc;
}

static int stream_identity(verso_nats_follower *f)
{
    return stream_master(f, false);
}

/* ---- applying ---- */

/* Drops the entries at or below the cursor (the database has them). */
static void skip_held(cJSON *entries, int64_t cursor)
{
    cJSON *e = entries ? entries->child : NULL;

    while (e) {
        cJSON *next = e->next;
        int64_t v = 0;
        if (verso__sync_json_get_i64(&v, e, "version") == 0 && v <= cursor)
            cJSON_Delete(cJSON_DetachItemViaPointer(entries, e));
        e = next;
    }
}

/* A message's headers, checked against its body. */
typedef struct chunk {
    int64_t from, to;
    bool more;
} chunk;

static int read_headers(chunk *c, natsMsg *m)
{
    const char *more = verso__nats_hdr(m, VERSO__HDR_MORE);

    if (verso__nats_hdr_i64(&c->from, m, VERSO__HDR_FROM) < 0 ||
        verso__nats_hdr_i64(&c->to, m, VERSO__HDR_TO) < 0 || !more ||
        (strcmp(more, "1") != 0 && strcmp(more, "0") != 0) || c->to < c->from)
        return VERSO_EPROTO;
    c->more = more[0] == '1';
    return 0;
}

static bool body_matches(const cJSON *root, const chunk *c)
{
    const char *type = verso__sync_json_get_str(root, "type");
    int64_t from = -1, to = -1;

    return type && strcmp(type, "changes") == 0 &&
           verso__sync_json_get_i64(&from, root, "from") == 0 &&
           verso__sync_json_get_i64(&to, root, "to") == 0 && from == c->from && to == c->to &&
           verso__sync_json_get_bool(root, "more") == c->more &&
           cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "entries"));
}

/* Why an apply failed: a long blob without a master to fetch it from stops the follower. */
static int apply_failed(verso_nats_follower *f, int rc, natsMsg *m)
{
    const char *body = natsMsg_GetData(m);

    verso__sync_applier_abort(f->ap);
    f->expected = -1;
    if (!f->master_url && body && strstr(body, "{\"blob_fetch\":")) {
        f->fatal = true;
        verso__sync_why(f->why, sizeof(f->why),
                        "a change holds a long blob (blob_fetch): following this stream needs "
                        "--master to fetch blobs");
        return VERSO_EPROTO;
    }
    verso__sync_why(f->why, sizeof(f->why), "apply: %s", verso__sync_applier_errmsg(f->ap));
    if (rc == VERSO_ENOMEM || rc == VERSO_EFULL || rc == VERSO_EDB || !f->master_url)
        return rc;
    f->pull_first = true; /* a blob gone by, a table the follower lacks: the master has it */
    return PULL;
}

static int commit_at(verso_nats_follower *f, int64_t to, natsMsg *m)
{
    int rc = verso__sync_applier_commit(f->ap, f->identity, to);

    if (rc < 0)
        return apply_failed(f, rc, m);
    f->cursor = to;
    f->retry_ms = 0;
    f->reset_first = false;
    publish(f, to, true);
    return 0;
}

/* Where the message goes: applied, ignored (a duplicate), or a gap (RELOCATE). */
static int placed(verso_nats_follower *f, const chunk *c, bool *skip)
{
    *skip = false;
    if (f->expected < 0) { /* the first after a search: it holds the cursor */
        if (c->to <= f->cursor)
            return *skip = true, GO_ON;
        if (c->from > f->cursor)
            return RELOCATE;
        return GO_ON;
    }
    if (c->to <= f->cursor && !verso__sync_applier_open(f->ap))
        return *skip = true, GO_ON; /* a duplicate */
    return c->from == f->expected ? GO_ON : RELOCATE;
}

/*
 * A message of our identity that does not fit where it is: no readable headers, a body that
 * is not the changes message its headers announce, or one that does not continue the chain.
 * Written by something else than a publisher (the one that writes the chain goes on after
 * it), it is skipped; several in a row are a real gap: the open transaction goes, and the
 * position is searched again from the cursor.
 */
#define MAX_ODD 16

static int out_of_place(verso_nats_follower *f, const char *what)
{
    char why[sizeof(f->why)];

    snprintf(why, sizeof(why), "%s", what);
    if (++f->odd <= MAX_ODD) {
        verso__sync_why(f->why, sizeof(f->why), "skipped a stream message: %s", why);
        return GO_ON;
    }
    verso__sync_applier_abort(f->ap);
    f->odd = 0;
    verso__sync_why(f->why, sizeof(f->why), "%s", why);
    return VERSO_EPROTO;
}

/* A message's entries are in the open transaction: the chain goes on, or commits. */
static int applied(verso_nats_follower *f, natsMsg *m, const chunk *c)
{
    f->expected = c->to;
    f->odd = 0;
    pthread_mutex_lock(&f->lock);
    f->st.received = c->to;
    pthread_mutex_unlock(&f->lock);
    return c->more ? GO_ON : commit_at(f, c->to, m);
}

static int not_its_headers(verso_nats_follower *f, const chunk *c)
{
    char what[128];

    snprintf(what, sizeof(what),
             "stream message (%lld, %lld]: not a changes message matching its headers",
             (long long)c->from, (long long)c->to);
    return out_of_place(f, what);
}

/*
 * The fast path (scan.c) of a message in the publisher's own form, read without a JSON tree;
 * not when the message must be cut (joining inside it) or opens a reset. *taken false: the
 * general path reads it.
 */
static int apply_scanned(verso_nats_follower *f, natsMsg *m, const chunk *c, bool *taken)
{
    int64_t from, to, head;
    bool more;
    size_t n;
    int rc;

    *taken = false;
    if (verso__sync_scan_off || f->reset_first ||
        (!verso__sync_applier_open(f->ap) && c->from < f->cursor))
        return 0;
    rc = verso__sync_applier_scan(f->ap, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m));
    if (rc <= 0)
        return rc;
    *taken = true;
    verso__sync_applier_scanned_header(f->ap, &from, &to, &head, &more, &n);
    if (from != c->from || to != c->to || more != c->more)
        return not_its_headers(f, c);
    if ((rc = verso__sync_applier_scanned(f->ap, false)) < 0)
        return apply_failed(f, rc, m);
    return applied(f, m, c);
}

static int apply_msg(verso_nats_follower *f, natsMsg *m, const chunk *c)
{
    verso_json *doc = NULL;
    cJSON *entries;
    int64_t from = c->from;
    bool taken;
    int rc = apply_scanned(f, m, c, &taken);

    if (rc < 0 || taken)
        return rc;
    rc = verso_json_parse(&doc, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL, 0);
    if (rc < 0 || !body_matches(verso_json_root(doc), c)) {
        verso_json_free(doc);
        return not_its_headers(f, c);
    }
    entries = cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "entries");
    if (!verso__sync_applier_open(f->ap) && c->from < f->cursor) {
        skip_held(entries, f->cursor); /* joining inside the message */
        from = f->cursor;
    }
    rc = verso__sync_applier_entries(f->ap, doc, entries, f->reset_first, from, c->to);
    if (rc < 0)
        return apply_failed(f, rc, m);
    return applied(f, m, c);
}

/* Whether the stream's master is another database now (its master message says so). */
static int master_changed(bool *changed, verso_nats_follower *f)
{
    char was[37];
    int rc;

    memcpy(was, f->identity, sizeof(was));
    rc = stream_identity(f);
    *changed = rc == 0 && strcmp(was, f->identity) != 0;
    if (rc == 0 && *changed)
        memcpy(f->identity, was, sizeof(was)); /* align() reads it again */
    return rc;
}

/* A message of another identity: a new master (RELOCATE: resync), or a foreign one, ignored. */
static int foreign(verso_nats_follower *f)
{
    bool changed = false;
    int rc = master_changed(&changed, f);

    if (rc < 0 || !changed)
        return rc;
    verso__sync_applier_abort(f->ap);
    return RELOCATE;
}

/* A message without a change too long for the stream: the state is read from the master. */
static int incomplete(verso_nats_follower *f, const chunk *c)
{
    verso__sync_applier_abort(f->ap);
    f->expected = -1;
    if (!f->master_url) {
        f->fatal = true;
        verso__sync_why(f->why, sizeof(f->why),
                        "the change at version %lld is too long for the stream's messages: "
                        "following this stream needs --master to read it",
                        (long long)c->to);
        return VERSO_ETOOBIG;
    }
    f->pull_first = true;
    verso__sync_why(f->why, sizeof(f->why),
                    "the change at version %lld is too long for the stream: read from the master",
                    (long long)c->to);
    return PULL;
}

/* A message of the identity without a publisher's Nats-Msg-Id: something else wrote it; it is
 * no part of the chain and is stepped over (it does not count as a gap either). */
static int not_published(verso_nats_follower *f, const char *what)
{
    verso__sync_why(f->why, sizeof(f->why),
                    "skipped a stream message: %s without a publisher's Nats-Msg-Id", what);
    return GO_ON;
}

static int on_msg(verso_nats_follower *f, natsMsg *m)
{
    jsMsgMetaData *meta = NULL;
    const char *id = verso__nats_hdr(m, VERSO__HDR_IDENTITY);
    char what[160];
    chunk c;
    bool skip;
    int rc;

    if (natsMsg_GetMetaData(&meta, m) == NATS_OK) {
        f->seen_seq = meta->Sequence.Stream;
        jsMsgMetaData_Destroy(meta);
    }
    if (!id || strcmp(id, f->identity) != 0)
        return foreign(f);
    if (is_master(f, m) && !verso__nats_master_id(m, f->identity))
        return not_published(f, "a master message");
    if (is_master(f, m))
        return take_schema(f, m) < 0 ? VERSO_EPROTO : GO_ON; /* the tables from here on */
    if (read_headers(&c, m) < 0)
        return out_of_place(f, "no readable Verso- headers");
    if (!verso__nats_chain_id(m, f->identity, c.from, c.to))
        return not_published(f, "a changes message");
    if ((rc = placed(f, &c, &skip)) == RELOCATE) {
        snprintf(what, sizeof(what),
                 "gap in the stream: a message from %lld where %lld was expected",
                 (long long)c.from, (long long)(f->expected < 0 ? f->cursor : f->expected));
        return out_of_place(f, what);
    }
    if (skip)
        return GO_ON;
    publish(f, c.to, false);
    if ((id = verso__nats_hdr(m, VERSO__HDR_INCOMPLETE)) && !strcmp(id, "1"))
        return incomplete(f, &c);
    return apply_msg(f, m, &c);
}

/* ---- the subscription ---- */

static int subscribe(verso_nats_follower *f, uint64_t start)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    natsStatus s;

    jsSubOptions_Init(&so);
    so.Stream = f->stream;
    so.Ordered = true;
    so.Config.DeliverPolicy = js_DeliverByStartSequence;
    so.Config.OptStartSeq = start;
    if ((s = js_SubscribeSync(&f->sub, f->c.js, f->subj_changes, NULL, &so, &jerr)) != NATS_OK) {
        verso__nats_why(f->why, sizeof(f->why), "subscribing to the stream", s, jerr);
        return verso__nats_rc(s);
    }
    f->expected = -1;
    f->odd = 0;
    f->seen_seq = start - 1;
    set_link(f, VERSO_LINK_LIVE);
    set_phase(f, VERSO_PHASE_CATCHUP);
    emit(f, VERSO_EVENT_CONNECTED, f->identity, 0);
    return 0;
}

static void unsubscribe(verso_nats_follower *f)
{
    bool was = f->sub != NULL;

    verso__sync_applier_abort(f->ap);
    verso__nats_sub_end(&f->c, f->sub);
    f->sub = NULL;
    if (was && f->st.link == VERSO_LINK_LIVE)
        emit(f, VERSO_EVENT_DISCONNECTED, f->why, 0);
}

/* Nothing arrived for a while: RELOCATE when the stream has what we lack (a consumer lost with
 * its server) or a new master; caught up otherwise. */
static int idle_check(verso_nats_follower *f)
{
    natsMsg *m = NULL;
    bool changed = false;
    int64_t from = -1, to = -1;
    const char *id;
    int rc = master_changed(&changed, f);

    if (rc < 0 || changed)
        return rc < 0 ? rc : RELOCATE;
    if ((rc = verso__nats_get_last(&m, &f->c, f->stream, f->subj_changes, f->why, sizeof(f->why))) <
        0)
        return rc;
    id = m ? verso__nats_hdr(m, VERSO__HDR_IDENTITY) : NULL;
    if (!id || strcmp(id, f->identity) != 0 || verso__nats_hdr_i64(&from, m, VERSO__HDR_FROM) < 0 ||
        verso__nats_hdr_i64(&to, m, VERSO__HDR_TO) < 0 ||
        !verso__nats_chain_id(m, f->identity, from, to))
        to = -1; /* not a publisher's message of ours: no sign of what we lack */
    natsMsg_Destroy(m);
    if (to > (f->expected > f->cursor ? f->expected : f->cursor))
        return RELOCATE;
    if (!verso__sync_applier_open(f->ap))
        caught_up(f);
    return GO_ON;
}

static int consume(verso_nats_follower *f)
{
    int64_t idle_since = verso__sync_mono_ms();
    int rc = GO_ON;

    while (rc == GO_ON && !atomic_load(&f->stop)) {
        natsMsg *m = NULL;
        jsMsgMetaData *meta = NULL;
        natsStatus s = natsSubscription_NextMsg(&m, f->sub, NEXT_WAIT_MS);
        if (s == NATS_TIMEOUT && !verso__nats_connected(&f->c)) {
            verso__sync_why(f->why, sizeof(f->why), "NATS connection lost: reconnecting");
            return VERSO_ENET;
        }
        if (s == NATS_TIMEOUT) {
            if (verso__sync_mono_ms() - idle_since >= IDLE_CHECK_MS) {
                idle_since = verso__sync_mono_ms();
                rc = idle_check(f);
            }
            continue;
        }
        if (s != NATS_OK) {
            verso__nats_why(f->why, sizeof(f->why), "reading the stream", s, 0);
            return verso__nats_rc(s);
        }
        idle_since = verso__sync_mono_ms();
        rc = on_msg(f, m);
        if (rc == GO_ON && !verso__sync_applier_open(f->ap) &&
            natsMsg_GetMetaData(&meta, m) == NATS_OK) {
            if (meta->NumPending == 0)
                caught_up(f);
            jsMsgMetaData_Destroy(meta);
        }
        natsMsg_Destroy(m);
    }
    return rc;
}

/* ---- the thread ---- */

/* Brings the database to the stream's identity when it holds another (or nothing). */
static int align(verso_nats_follower *f)
{
    verso_cursor c;
    int64_t resyncs = f->st.resyncs; /* this thread is the only writer */
    bool fresh;
    int rc;

    f->reset_first = false;
    if ((rc = stream_master(f, true)) < 0 || (rc = read_cursor(f, &c)) < 0)
        return rc;
    if (strcmp(c.master, f->identity) == 0 && !f->pull_first)
        return 0;
    fresh = !c.master[0] && !f->pull_first;
    if (c.master[0] && strcmp(c.master, f->identity) != 0) {
        emit(f, VERSO_EVENT_RESYNC, "the stream's master is another database (identity changed)",
             0);
        f->resync_due = true;
    }
    rc = bootstrap(f);
    if (rc < 0 && fresh) { /* no bootstrap at hand: the stream may hold its identity from 0 */
        f->reset_first = true;
        return 0;
    }
    f->pull_first = false;
    if (rc < 0 || (rc = read_cursor(f, &c)) < 0)
        return rc;
    if (strcmp(c.master, f->identity) != 0) {
        verso__sync_why(f->why, sizeof(f->why),
                        "the master is database %s but the stream follows %s: waiting for the "
                        "publisher",
                        c.master[0] ? c.master : "(none)", f->identity);
        return VERSO_ESTATE;
    }
    pthread_mutex_lock(&f->lock);
    f->st.resyncs += f->resync_due && f->st.resyncs == resyncs;
    pthread_mutex_unlock(&f->lock);
    f->resync_due = false;
    return 0;
}

/* One session: connected, aligned, positioned, subscribed, consuming until something ends it. */
static int session(verso_nats_follower *f)
{
    uint64_t start = 0;
    int rc = 0, tries = 0;

    set_link(f, VERSO_LINK_CONNECTING);
    if (!f->c.nc &&
        (rc = verso__nats_connect(&f->c, f->servers, f->nats_token, f->why, sizeof(f->why))) < 0)
        return rc;
    for (;; tries++) {
        if ((rc = align(f)) < 0 || (rc = find_start(&start, f)) < 0)
            return rc;
        if (rc == GO_ON)
            break;
        if (tries == 2 || (!f->master_url && !verso__sync_snapshot_fits(f->db))) {
            verso__sync_why(f->why, sizeof(f->why),
                            "the stream does not hold the changes after version %lld (it "
                            "starts later, or retention dropped them)%s",
                            (long long)f->cursor,
                            f->master_url ? "" : ": following it needs --master");
            return VERSO_EHORIZON;
        }
        if (!f->reset_first) {
            emit(f, VERSO_EVENT_RESYNC,
                 "the stream no longer holds the changes after the cursor (retention)", 0);
            f->resync_due = true;
        }
        f->pull_first = true; /* the cursor is behind what the stream holds: bootstrap again */
    }
    if ((rc = subscribe(f, start)) < 0)
        return rc;
    rc = consume(f);
    return rc == PULL ? RELOCATE : rc;
}

static void *run(void *arg)
{
    verso_nats_follower *f = arg;

    while (!atomic_load(&f->stop) && !f->fatal) {
        int rc = session(f);

        unsubscribe(f);
        if (rc >= 0 || atomic_load(&f->stop))
            continue; /* RELOCATE: search again at once */
        set_error(f, f->why);
        set_link(f, VERSO_LINK_WAITING);
        if (f->c.nc && natsConnection_IsClosed(f->c.nc))
            verso__nats_close(&f->c); /* libnats reconnects an open one by itself */
        f->retry_ms = verso__nats_backoff(f->retry_ms, f->o.slave.retry_min_ms,
                                          f->o.slave.retry_max_ms, &f->seed);
        pthread_mutex_lock(&f->lock);
        f->st.retry_in_ms = f->retry_ms;
        pthread_mutex_unlock(&f->lock);
        verso__nats_nap(&f->stop, f->retry_ms);
    }
    set_link(f, VERSO_LINK_WAITING);
    return NULL;
}

/* ---- start, stop ---- */

static int copy_strings(verso_nats_follower *f, const verso_nats_follow_options *o)
{
    f->o = *o;
    if ((o->master_url && !(f->master_url = verso__strdup(o->master_url))) ||
        (o->nats_token && !(f->nats_token = verso__strdup(o->nats_token))) ||
        (o->slave.client.token && !(f->token = verso__strdup(o->slave.client.token))))
        return VERSO_ENOMEM;
    f->o.master_url = f->master_url;
    f->o.nats_token = f->nats_token;
    f->o.slave.client.token = f->token;
    f->o.slave.client.tables = NULL; /* the stream carries every table */
    f->o.slave.client.ntables = 0;
    f->o.slave.retry_min_ms = o->slave.retry_min_ms > 0 ? o->slave.retry_min_ms : 100;
    f->o.slave.retry_max_ms = o->slave.retry_max_ms > 0 ? o->slave.retry_max_ms : 5000;
    if (o->slave.name && *o->slave.name)
        verso__sync_copy_name(f->name, sizeof(f->name), o->slave.name);
    else
        snprintf(f->name, sizeof(f->name), "nats:%ld", (long)getpid());
    return 0;
}

static int parse_url(verso_nats_follower *f, const char *url, char *why, size_t whylen)
{
    char subject[129];

    if (!url || verso__nats_url_parse(url, f->servers, sizeof(f->servers), f->stream,
                                      sizeof(f->stream), subject, sizeof(subject)) < 0) {
        verso__sync_why(why, whylen,
                        "bad stream URL %s: nats://HOST:PORT[,HOST:PORT...]/STREAM[?subject=P]",
                        url ? url : "(null)");
        return VERSO_EINVAL;
    }
    snprintf(f->snap_stream, sizeof(f->snap_stream), "%s_SNAP", f->stream);
    snprintf(f->prefix, sizeof(f->prefix), "%s%s", subject[0] ? "" : "verso.",
             subject[0] ? subject : f->stream);
    snprintf(f->subj_changes, sizeof(f->subj_changes), "%s.changes", f->prefix);
    snprintf(f->subj_master, sizeof(f->subj_master), "%s.master", f->prefix);
    return 0;
}

static int blobs_new(verso_nats_follower *f, char *why, size_t whylen)
{
    verso__sync_blob_source src;
    verso__sync_url u;
    int rc;

    if (!f->master_url)
        return 0;
    if (verso__sync_url_parse(&u, f->master_url) < 0) {
        verso__sync_why(why, whylen, "bad master URL %s", f->master_url);
        return VERSO_EINVAL;
    }
    f->cancel.flag = &f->stop;
    rc = verso__blobfetch_new(&f->blobs, &u, f->token, f->o.slave.client.insecure,
                              f->o.slave.client.timeout_ms, verso_db_path(f->db), &f->cancel);
    if (rc < 0)
        return rc;
    verso__blobfetch_source(&src, f->blobs);
    verso__sync_applier_set_blobs(f->ap, &src);
    return 0;
}

static int open_parts(verso_nats_follower *f, const char *db_path, char *why, size_t whylen)
{
    char open_why[256] = "";
    verso_cursor c;
    int rc;

    if ((rc = verso_db_open(&f->db, db_path, &f->o.slave.db, open_why, sizeof(open_why))) < 0) {
        verso__sync_why(why, whylen, "%s: %s", db_path, open_why);
        return rc;
    }
    if ((rc = verso_db_cursor(&c, f->db)) < 0 ||
        (rc = verso__sync_applier_new(&f->ap, f->db, &f->o.slave.client)) < 0) {
        verso__sync_why(why, whylen, "cannot start: %s", verso_strerror(rc));
        return rc;
    }
    f->cursor = f->st.cursor = f->st.master_head = f->st.received = c.version;
    memcpy(f->st.master, c.master, sizeof(f->st.master));
    return blobs_new(f, why, whylen);
}

static void follower_free(verso_nats_follower *f)
{
    verso__nats_sub_end(&f->c, f->sub);
    verso__nats_close(&f->c);
    verso__blobfetch_free(f->blobs);
    verso__sync_applier_free(f->ap);
    verso_db_close(f->db);
    verso__free(f->master_url);
    verso__free(f->nats_token);
    verso__free(f->token);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    verso__free(f);
}

int verso_nats_follow_start(verso_nats_follower **out, const char *db_path, const char *url,
                            const verso_nats_follow_options *o, char *why, size_t whylen)
{
    static const verso_nats_follow_options defaults = VERSO_NATS_FOLLOW_OPTIONS_INIT;
    verso_nats_follower *f;
    int rc;

    verso__sync_why(why, whylen, "%s", "");
    if (!out)
        return VERSO_EINVAL;
    *out = NULL;
    o = o ? o : &defaults;
    if (!db_path || o->version > VERSO_OPTIONS_VERSION) {
        verso__sync_why(why, whylen, "a database path is required");
        return VERSO_EINVAL;
    }
    if (!(f = verso__calloc(1, sizeof(*f))))
        return VERSO_ENOMEM;
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->seed = (uint64_t)verso__sync_mono_us() ^ (uint64_t)(uintptr_t)f;
    f->expected = -1;
    if ((rc = parse_url(f, url, why, whylen)) == 0 && (rc = copy_strings(f, o)) == 0 &&
        (rc = open_parts(f, db_path, why, whylen)) == 0 &&
        pthread_create(&f->thread, NULL, run, f) != 0)
        rc = VERSO_ENOMEM;
    if (rc < 0) {
        follower_free(f);
        return rc;
    }
    f->started = true;
    *out = f;
    return 0;
}

int verso_nats_follow_state_get(verso_slave_state *out, verso_nats_follower *f)
{
    if (!out || !f)
        return VERSO_EINVAL;
    pthread_mutex_lock(&f->lock);
    *out = f->st;
    out->lag_ms = f->behind_since_ms ? verso__sync_mono_ms() - f->behind_since_ms : 0;
    if (out->link != VERSO_LINK_WAITING)
        out->retry_in_ms = 0;
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int verso_nats_follow_wait(verso_nats_follower *f, int64_t version, int timeout_ms)
{
    struct timespec t;
    int rc = 0;

    if (!f)
        return VERSO_EINVAL;
    t = verso__nats_deadline(timeout_ms);
    pthread_mutex_lock(&f->lock);
    while (f->st.cursor < version && rc == 0)
        rc = pthread_cond_timedwait(&f->cond, &f->lock, &t);
    rc = f->st.cursor >= version ? 0 : VERSO_ETIMEOUT;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int follower_state(verso_slave_state *out, void *self)
{
    return verso_nats_follow_state_get(out, self);
}

int verso_nats_follow_mount(verso_nats_follower *f, verso_rest_options *ro)
{
    if (!f)
        return VERSO_EINVAL;
    f->up.state = follower_state;
    f->up.self = f;
    f->up.name = f->name;
    return verso__upstream_mount(&f->up, ro);
}

void verso_nats_follow_stop(verso_nats_follower *f)
{
    if (!f)
        return;
    atomic_store(&f->stop, 1);
    if (f->started)
        pthread_join(f->thread, NULL);
    follower_free(f);
}

#else
typedef int verso__nats_follow_unused; /* ISO C wants a declaration */
#endif
