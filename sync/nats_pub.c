/*
 * sync/nats_pub.c - the publisher: a master's change stream appended to a
 * JetStream stream (docs/protocol.md, "Through NATS JetStream").
 *
 * One thread reads the database from the version the stream holds up to
 * and publishes what it reads as a chain of "changes" messages, the last
 * one ending at the head of the read (a state of the master). It learns of
 * commits, by any process, from file events on the database (rest/watch.c)
 * with a slow poll behind them, as a live master does.
 *
 * The stream is the only memory of what was published: at start and after
 * any failure the publisher reads the stream's last changes message and
 * goes on from its Verso-To, so a restart or a lost acknowledgement never
 * duplicates nor skips. Every publish names the stream sequence it expects
 * to follow (ExpectLastSeq): a second writer on the stream makes it fail,
 * and the tail is read again. Nats-Msg-Id (identity:from:to) lets the
 * server drop a message sent twice within its duplicate window.
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

#define DEFAULT_CHUNK       1024
#define MAX_BODY            (512 * 1024) /* a message's body, unless one entry alone is longer */
#define POLL_MS             250          /* the check for commits when no file event came */
#define SNAP_PART           (256 * 1024)
#define DEFAULT_SNAP_MS     600000
#define MAX_SNAP_AGE_MS     (90LL * 24 * 3600 * 1000) /* beyond: no age limit */
#define DUPLICATE_WINDOW_NS (120LL * 1000000000LL)

struct verso_nats_publisher {
    pthread_t thread;
    bool started;
    pthread_mutex_t lock; /* st, wake and the cond */
    pthread_cond_t cond;  /* st.published moved, or a commit woke the thread */
    verso_nats_publish_state st;
    bool wake;
    atomic_int stop;

    verso_nats_publish_options o;
    char *path, *servers, *token;
    char stream[65], snap_stream[70];
    char prefix[136];
    char subj_changes[VERSO__NATS_SUBJECT_MAX], subj_master[VERSO__NATS_SUBJECT_MAX];
    char subj_snap[VERSO__NATS_SUBJECT_MAX]; /* "P.snap.>" */

    verso_db *db;
    verso__watch *watch;
    verso__nats_conn c;
    char identity[37]; /* of the database, as last read */
    int64_t published; /* the stream holds this identity's changes up to here */
    uint64_t last_seq; /* the stream's last sequence, as expected by the next publish */
    bool resumed;      /* the tail was read since the last failure */
    bool conflict;     /* the last failure was another writer's message in the stream */
    bool known;        /* published is the stream's position for this identity (a resume ran) */
    bool fatal;        /* stopped: another publisher, or a change the server cannot take */
    int retry_ms;
    uint64_t seed;
    int64_t snap_due_ms; /* monotonic; -1: no snapshots */
    verso_json *schema;  /* the tables the stream's last master message of ours announced */
    char why[256];
};

/* ---- shared state ---- */

static void set_error(verso_nats_publisher *p, const char *why)
{
    pthread_mutex_lock(&p->lock);
    verso__sync_copy_name(p->st.last_error, sizeof(p->st.last_error), why);
    pthread_mutex_unlock(&p->lock);
}

/* The stream holds the database's changes up to published, its last sequence is last_seq. */
static void set_published(verso_nats_publisher *p, int64_t head)
{
    pthread_mutex_lock(&p->lock);
    p->st.published = p->published;
    p->st.stream_seq = p->last_seq;
    if (head >= 0)
        p->st.head = head;
    memcpy(p->st.identity, p->identity, sizeof(p->st.identity));
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void set_connected(verso_nats_publisher *p, bool up)
{
    pthread_mutex_lock(&p->lock);
    p->st.connected = up;
    if (up)
        p->st.last_error[0] = 0;
    pthread_mutex_unlock(&p->lock);
}

static void on_file_event(void *arg)
{
    verso_nats_publisher *p = arg;

    pthread_mutex_lock(&p->lock);
    p->wake = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

/* Waits for a commit (a file event), at most ms. */
static void wait_commit(verso_nats_publisher *p, int ms)
{
    struct timespec t = verso__nats_deadline(ms);

    pthread_mutex_lock(&p->lock);
    while (!p->wake && !atomic_load(&p->stop))
        if (pthread_cond_timedwait(&p->cond, &p->lock, &t) != 0)
            break;
    p->wake = false;
    pthread_mutex_unlock(&p->lock);
}

/* ---- the streams ---- */

/* Whether the subject filter pat (NATS wildcards '*' and '>') takes subject. */
static bool covers(const char *pat, const char *subject)
{
    while (*pat && *subject) {
        const char *pe = strchr(pat, '.'), *se = strchr(subject, '.');
        size_t pl = pe ? (size_t)(pe - pat) : strlen(pat),
               sl = se ? (size_t)(se - subject) : strlen(subject);

        if (pl == 1 && pat[0] == '>')
            return true;
        if (!(pl == 1 && pat[0] == '*') && (pl != sl || memcmp(pat, subject, pl) != 0))
            return false;
        if (!pe || !se)
            return !pe && !se;
        pat = pe + 1;
        subject = se + 1;
    }
    return false;
}

static bool has_subject(const jsStreamConfig *sc, const char *subject)
{
    for (int i = 0; i < sc->SubjectsLen; i++)
        if (covers(sc->Subjects[i], subject))
            return true;
    return false;
}

/* An existing stream fits when it takes our subjects and keeps messages by limits. */
static int check_stream(const jsStreamConfig *sc, const char *const *subjects, int n, char *why,
                        size_t whylen)
{
    char list[256] = "";
    size_t len = 0;
    bool ok = sc->Retention == js_LimitsPolicy;

    for (int i = 0; i < n; i++)
        ok = ok && has_subject(sc, subjects[i]);
    if (ok)
        return 0;
    for (int i = 0; i < sc->SubjectsLen && len < sizeof(list); i++)
        len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s", i ? ", " : "",
                                sc->Subjects[i]);
    verso__sync_why(
        why, whylen,
        "stream %s exists with subjects [%s] and %s retention: it needs subjects %s%s%s "
        "and limits retention (use another --stream or --subject, or delete it)",
        sc->Name, list, sc->Retention == js_LimitsPolicy ? "limits" : "another", subjects[0],
        n > 1 ? " and " : "", n > 1 ? subjects[1] : "");
    return VERSO_ECONFLICT;
}

typedef struct stream_want {
    const char *name;
    const char *const *subjects;
    int nsubjects;
    int64_t max_age_ms, max_bytes, max_msgs;
    int replicas;
} stream_want;

static int create_stream(verso_nats_publisher *p, const stream_want *w, char *why, size_t whylen)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s;

    jsStreamConfig_Init(&sc);
    sc.Name = w->name;
    sc.Subjects = (const char **)w->subjects;
    sc.SubjectsLen = w->nsubjects;
    sc.Retention = js_LimitsPolicy;
    sc.Storage = js_FileStorage;
    sc.MaxAge = w->max_age_ms > 0 ? w->max_age_ms * 1000000LL : 0;
    sc.MaxBytes = w->max_bytes > 0 ? w->max_bytes : -1;
    sc.MaxMsgs = w->max_msgs > 0 ? w->max_msgs : -1;
    sc.MaxMsgsPerSubject = -1;
    sc.Replicas = w->replicas > 0 ? w->replicas : 1;
    sc.Duplicates = DUPLICATE_WINDOW_NS;
    sc.MaxMsgSize = -1; /* the server's max_payload (1 MiB by default) is the limit */
    s = js_AddStream(&si, p->c.js, &sc, NULL, &jerr);
    jsStreamInfo_Destroy(si);
    if (s == NATS_OK || jerr == JSStreamNameExistErr)
        return 0;
    verso__nats_why(why, whylen, "creating the stream", s, jerr);
    return jerr ? VERSO_ECONFLICT : verso__nats_rc(s);
}

/* Creates the stream when missing, else checks it fits. */
static int ensure_stream(verso_nats_publisher *p, const stream_want *w, char *why, size_t whylen)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus s = js_GetStreamInfo(&si, p->c.js, w->name, NULL, &jerr);
    int rc;

    if (s != NATS_OK && jerr != JSStreamNotFoundErr) {
        verso__nats_why(why, whylen, w->name, s, jerr);
        return verso__nats_rc(s);
    }
    if (s != NATS_OK)
        return create_stream(p, w, why, whylen);
    rc = check_stream(si->Config, w->subjects, w->nsubjects, why, whylen);
    jsStreamInfo_Destroy(si);
    return rc;
}

static int ensure_streams(verso_nats_publisher *p, char *why, size_t whylen)
{
    const char *subjects[] = {p->subj_changes, p->subj_master};
    const char *snap_subjects[] = {p->subj_snap};
    stream_want w = {p->stream,     subjects,     2, p->o.max_age_ms, p->o.max_bytes,
                     p->o.max_msgs, p->o.replicas};
    stream_want ws = {p->snap_stream, snap_subjects, 1, 0, -1, -1, p->o.replicas};
    int rc = ensure_stream(p, &w, why, whylen);

    if (rc < 0 || p->o.snapshot_every_ms < 0)
        return rc;
    /* three intervals: a follower reading the newest snapshot has time to finish */
    ws.max_age_ms = p->o.snapshot_every_ms <= MAX_SNAP_AGE_MS / 3 ? 3 * p->o.snapshot_every_ms : 0;
    return ensure_stream(p, &ws, why, whylen);
}

/* ---- publishing ---- */

typedef struct out_msg {
    const char *subject;
    const char *data;
    size_t len;
    const char *keys[6], *values[6];
    int nh;
    const char *msg_id;
    bool expect; /* ExpectLastSeq = p->last_seq */
} out_msg;

static void add_header(out_msg *m, const char *key, const char *value)
{
    m->keys[m->nh] = key;
    m->values[m->nh++] = value;
}

static int publish(verso_nats_publisher *p, const out_msg *om)
{
    natsMsg *m = NULL;
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    natsStatus s = natsMsg_Create(&m, om->subject, NULL, om->data, (int)om->len);

    for (int i = 0; s == NATS_OK && i < om->nh; i++)
        s = natsMsgHeader_Set(m, om->keys[i], om->values[i]);
    jsPubOptions_Init(&po);
    po.MsgId = om->msg_id;
    po.ExpectLastSeq = om->expect ? p->last_seq : 0;
    if (s == NATS_OK)
        s = js_PublishMsg(&pa, p->c.js, m, &po, &jerr);
    natsMsg_Destroy(m);
    if (s == NATS_OK) {
        if (om->expect) /* a message of the changes stream (not of the snapshot stream) */
            p->last_seq = pa->Sequence;
        jsPubAck_Destroy(pa);
        return 0;
    }
    p->conflict = jerr == JSStreamWrongLastSequenceErr;
    verso__nats_why(p->why, sizeof(p->why),
                    p->conflict ? "another writer on the stream" : "publish", s, jerr);
    return p->conflict ? VERSO_ECONFLICT : verso__nats_rc(s);
}

/* The tables of a master message's body (NULL when it has none). */
static verso_json *body_tables(const char *body, size_t len)
{
    verso_json *doc = NULL;

    if (verso_json_parse(&doc, body, len, 0, NULL, 0) < 0)
        return NULL;
    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "tables"))) {
        verso_json_free(doc);
        return NULL;
    }
    return doc;
}

static bool same_tables(const verso_json *a, const verso_json *b)
{
    return a && b &&
           cJSON_Compare(cJSON_GetObjectItemCaseSensitive(verso_json_root(a), "tables"),
                         cJSON_GetObjectItemCaseSensitive(verso_json_root(b), "tables"), true);
}

/* The master message's body: identity, the head its chain goes on from, the tables. */
static int master_body(verso_buf *b, verso_nats_publisher *p, int64_t head)
{
    int rc =
        verso_buf_printf(b,
                         "{\"type\":\"master\",\"identity\":\"%s\",\"head\":%lld,\"time\":%lld,"
                         "\"tables\":",
                         p->identity, (long long)head, (long long)verso_now_ms());

    if (rc == 0)
        rc = verso__sync_schema_json(b, p->db, NULL, 0);
    return rc == 0 ? verso_buf_puts(b, "}") : rc;
}

/*
 * A "<P>.master" message: this identity's chain goes on from head, with these tables. The
 * first of an identity has the id "<identity>:master"; one for a schema that changed later
 * "<identity>:master:<head>:<n>" (n: the stream's last sequence, unique).
 */
static int publish_master(verso_nats_publisher *p, int64_t head, bool first)
{
    char msg_id[96];
    verso_buf body = VERSO_BUF_INIT;
    out_msg m = {.subject = p->subj_master, .msg_id = msg_id, .expect = true};
    int rc = verso__db_schema_sync(NULL, p->db);

    if (rc == 0)
        rc = master_body(&body, p, head);
    if (first)
        snprintf(msg_id, sizeof(msg_id), "%s:master", p->identity);
    else
        snprintf(msg_id, sizeof(msg_id), "%s:master:%lld:%llu", p->identity, (long long)head,
                 (unsigned long long)p->last_seq);
    m.data = body.data;
    m.len = body.len;
    add_header(&m, VERSO__HDR_IDENTITY, p->identity);
    if (rc == 0 && (rc = publish(p, &m)) == 0) {
        p->published = head;
        verso_json_free(p->schema);
        p->schema = body_tables(body.data, body.len);
    } else if (rc != VERSO_ECONFLICT && rc != VERSO_ENET && rc != VERSO_ETIMEOUT) {
        verso__sync_why(p->why, sizeof(p->why), "master message: %s", verso_strerror(rc));
    }
    verso_buf_free(&body);
    return rc;
}

/* A master message is due when the tables changed since the last one (read before a chain). */
static int schema_check(verso_nats_publisher *p, int64_t head)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_json *now;
    bool same;
    int rc = verso_buf_puts(&b, "{\"tables\":");

    if (rc == 0)
        rc = verso__sync_schema_json(&b, p->db, NULL, 0);
    if (rc == 0)
        rc = verso_buf_puts(&b, "}");
    now = rc == 0 ? body_tables(b.data, b.len) : NULL;
    same = same_tables(now, p->schema);
    verso_json_free(now);
    verso_buf_free(&b);
    if (rc < 0)
        return rc;
    return same ? 0 : publish_master(p, head, false);
}

/* The identity a stream message names ("" when none). */
static void msg_identity(char out[37], natsMsg *m)
{
    const char *id = m ? verso__nats_hdr(m, VERSO__HDR_IDENTITY) : NULL;

    snprintf(out, 37, "%s", id && strlen(id) == 36 ? id : "");
}

/* Where this identity's chain goes on: from the last changes message of ours, or from the head
 * our master message announced; 0 when the stream has neither (a master message is due). */
static int tail_of_ours(bool *found, verso_nats_publisher *p, natsMsg *last_changes)
{
    natsMsg *mm = NULL;
    char id[37];
    int64_t head = 0;
    int rc;

    *found = false;
    msg_identity(id, last_changes);
    if (strcmp(id, p->identity) == 0) {
        *found = true;
        if (verso__nats_hdr_i64(&p->published, last_changes, VERSO__HDR_TO) < 0) {
            verso__sync_why(p->why, sizeof(p->why), "the stream's last changes message has no %s",
                            VERSO__HDR_TO);
            return VERSO_EPROTO;
        }
        return 0;
    }
    if ((rc = verso__nats_get_last(&mm, &p->c, p->stream, p->subj_master, p->why, sizeof(p->why))) <
        0)
        return rc;
    msg_identity(id, mm);
    if (mm && strcmp(id, p->identity) == 0 && verso__nats_master_read(id, &head, mm) == 0) {
        *found = true;
        p->published = head;
    }
    natsMsg_Destroy(mm);
    return 0;
}

/* Whether m's body is a changes message from..to (a sibling publisher's, not garbage). */
static bool changes_body(natsMsg *m, int64_t from, int64_t to)
{
    verso_json *doc = NULL;
    const cJSON *root;
    const char *type;
    int64_t f = -1, t = -1;
    bool ok;

    if (verso_json_parse(&doc, natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, NULL, 0) <
        0)
        return false;
    root = verso_json_root(doc);
    type = verso__sync_json_get_str(root, "type");
    ok = type && strcmp(type, "changes") == 0 && verso__sync_json_get_i64(&f, root, "from") == 0 &&
         verso__sync_json_get_i64(&t, root, "to") == 0 && f == from && t == to;
    verso_json_free(doc);
    return ok;
}

/* Whether m is a sibling publisher's changes message that continues our chain (from
 * published, within our database's head): its Verso-To is then our position. */
static bool continues(verso_nats_publisher *p, natsMsg *m, int64_t head, int64_t *to)
{
    const char *subject = natsMsg_GetSubject(m);
    char id[37];
    int64_t from = -1;

    msg_identity(id, m);
    return subject && strcmp(subject, p->subj_changes) == 0 && strcmp(id, p->identity) == 0 &&
           verso__nats_hdr_i64(&from, m, VERSO__HDR_FROM) == 0 &&
           verso__nats_hdr_i64(to, m, VERSO__HDR_TO) == 0 && from == p->published && *to > from &&
           *to <= head && verso__nats_chain_id(m, id, from, *to) && changes_body(m, from, *to);
}

#define MAX_SIBLING_READ 10000 /* messages read after our last to follow a sibling's chain */

/* Follows the chain sibling publishers of our database wrote in (seq, last]: every message
 * that continues our position moves it on (so what they published is not published again). */
static int follow_siblings(verso_nats_publisher *p, uint64_t seq, uint64_t last, int64_t head)
{
    if (last > seq && last - seq > MAX_SIBLING_READ)
        seq = last - MAX_SIBLING_READ;
    for (seq++; seq <= last; seq++) {
        natsMsg *m = NULL;
        int64_t to = -1;
        int rc = verso__nats_get(&m, &p->c, p->stream, seq, p->why, sizeof(p->why));
        if (rc < 0)
            return rc;
        if (m && continues(p, m, head, &to))
            p->published = to;
        natsMsg_Destroy(m);
    }
    return 0;
}

/*
 * After another writer's message (the publish expected another last sequence than the
 * stream's, which it knew as seq): a publisher of another database announced itself with a
 * master message (we stop: two databases cannot share a stream), sibling publishers of ours
 * went on (we go on from where their chain ends), or messages out of place were written (we
 * keep our position: followers skip them).
 */
static int after_conflict(verso_nats_publisher *p, uint64_t seq, int64_t head)
{
    natsMsg *mm = NULL;
    char id[37];
    int rc = verso__nats_get_last(&mm, &p->c, p->stream, p->subj_master, p->why, sizeof(p->why));

    msg_identity(id, mm);
    natsMsg_Destroy(mm);
    if (rc < 0)
        return rc;
    if (id[0] && strcmp(id, p->identity) != 0) {
        p->fatal = true;
        verso__sync_why(p->why, sizeof(p->why),
                        "another publisher (database %s) writes to stream %s: stopped", id,
                        p->stream);
        return VERSO_ECONFLICT;
    }
    return follow_siblings(p, seq, p->last_seq, head);
}

/* The tables the stream's last master message of ours announced (none: a master message
 * follows before the next chain). */
static int last_schema(verso_nats_publisher *p)
{
    natsMsg *mm = NULL;
    char id[37];
    int rc = verso__nats_get_last(&mm, &p->c, p->stream, p->subj_master, p->why, sizeof(p->why));

    verso_json_free(p->schema);
    p->schema = NULL;
    msg_identity(id, mm);
    if (rc == 0 && mm && strcmp(id, p->identity) == 0)
        p->schema = body_tables(natsMsg_GetData(mm), (size_t)natsMsg_GetDataLength(mm));
    natsMsg_Destroy(mm);
    return rc;
}

/* Reads the stream's tail: where to go on from (the resume rule). */
static int resume(verso_nats_publisher *p)
{
    verso_info info;
    natsMsg *last = NULL;
    uint64_t first, known_seq;
    bool found = false;
    int rc;

    if ((rc = verso_db_info(&info, p->db)) < 0) {
        verso__sync_why(p->why, sizeof(p->why), "%s", verso_db_errmsg(p->db));
        return rc;
    }
    if (strcmp(p->identity, info.identity) != 0)
        p->known = false; /* another database under the path */
    memcpy(p->identity, info.identity, sizeof(p->identity));
    known_seq = p->last_seq; /* the sequence our last publish expected or got */
    if ((rc = ensure_streams(p, p->why, sizeof(p->why))) < 0 ||
        (rc = verso__nats_stream_seqs(&first, &p->last_seq, &p->c, p->stream, p->why,
                                      sizeof(p->why))) < 0 ||
        (rc = verso__nats_get_last(&last, &p->c, p->stream, p->subj_changes, p->why,
                                   sizeof(p->why))) < 0)
        return rc;
    if (p->conflict && p->known) /* our position is known: the tail may not be ours */
        found = (rc = after_conflict(p, known_seq, info.head)) == 0;
    else
        rc = tail_of_ours(&found, p, last);
    natsMsg_Destroy(last);
    if (rc == 0 && !found) /* a stream never written: from 0, so followers need no bootstrap */
        rc = publish_master(p, p->last_seq == 0 ? 0 : info.head, true);
    else if (rc == 0)
        rc = last_schema(p);
    if (rc == 0 && p->published > info.head) {
        verso__sync_why(p->why, sizeof(p->why),
                        "the stream holds version %lld of database %s, beyond its head %lld "
                        "(a file restored from a backup?)",
                        (long long)p->published, p->identity, (long long)info.head);
        rc = VERSO_ECONFLICT;
    }
    if (rc < 0)
        return rc;
    p->conflict = false;
    p->resumed = p->known = true;
    set_published(p, info.head);
    set_connected(p, true);
    return 0;
}

/* One message of the chain being read. */
typedef struct chain {
    verso_feed *f;
    const verso_feed_entry *e; /* the pending entry */
    int more;                  /* 1: e holds one */
    int64_t from, head;
    verso_buf b;
    verso_buf entry; /* the pending entry, encoded (before the feed moves on) */
    bool encoded;
    int64_t n; /* entries in b */
} chain;

/* Encodes the pending entry once: whether it fits the message is known by its size. */
static int chain_encode(chain *ch)
{
    if (ch->encoded)
        return 0;
    verso_buf_clear(&ch->entry);
    ch->encoded = true;
    return verso_json_feed_entry(&ch->entry, ch->e);
}

static int chain_end(chain *ch, int64_t to, bool incomplete)
{
    return verso_buf_printf(
        &ch->b, "],\"from\":%lld,\"to\":%lld,\"more\":%s,\"head\":%lld,\"time\":%lld%s}",
        (long long)ch->from, (long long)to, ch->more == 1 ? "true" : "false", (long long)ch->head,
        (long long)verso_now_ms(), incomplete ? ",\"incomplete\":true" : "");
}

/* The next message: at most max entries and MAX_BODY bytes, unless one entry alone is longer. */
static int chain_msg(chain *ch, int max, int64_t *to)
{
    int rc = verso_buf_puts(&ch->b, "{\"type\":\"changes\",\"entries\":[");

    *to = ch->from;
    ch->n = 0;
    while (rc == 0 && ch->more == 1 && ch->n < max && (rc = chain_encode(ch)) == 0) {
        if (ch->n && ch->b.len + ch->entry.len + 1 > MAX_BODY)
            break; /* the entry opens the next message */
        rc = ch->n++ ? verso_buf_puts(&ch->b, ",") : 0;
        if (rc == 0)
            rc = verso_buf_append(&ch->b, ch->entry.data, ch->entry.len);
        *to = ch->e->version;
        ch->encoded = false;
        if (rc == 0 && (rc = verso_feed_next(&ch->e, ch->f)) >= 0)
            ch->more = rc, rc = 0;
    }
    if (ch->more != 1)
        *to = ch->head;
    return rc == 0 ? chain_end(ch, *to, false) : rc;
}

/*
 * One entry longer than the server takes in a message (its max_payload): the message says
 * so instead of carrying it ("incomplete", header Verso-Incomplete), and a follower reads that
 * state from the master (docs/protocol.md).
 */
static int chain_incomplete(verso_nats_publisher *p, chain *ch, int64_t to)
{
    verso_buf_clear(&ch->b);
    if (verso_buf_puts(&ch->b, "{\"type\":\"changes\",\"entries\":[") < 0 ||
        chain_end(ch, to, true) < 0)
        return VERSO_ENOMEM;
    verso__sync_why(p->why, sizeof(p->why),
                    "a change at version %lld is longer than the NATS server's max_payload "
                    "(%lld bytes): followers read it from the master",
                    (long long)to, (long long)natsConnection_GetMaxPayload(p->c.nc));
    return 1;
}

static int publish_changes(verso_nats_publisher *p, chain *ch, int64_t to)
{
    char from_s[24], to_s[24], msg_id[96];
    out_msg m = {.subject = p->subj_changes, .msg_id = msg_id, .expect = true};
    int rc = 0;

    if ((int64_t)ch->b.len > natsConnection_GetMaxPayload(p->c.nc) &&
        (rc = chain_incomplete(p, ch, to)) < 0)
        return rc;
    m.data = ch->b.data;
    m.len = ch->b.len;
    snprintf(from_s, sizeof(from_s), "%lld", (long long)ch->from);
    snprintf(to_s, sizeof(to_s), "%lld", (long long)to);
    snprintf(msg_id, sizeof(msg_id), "%s:%s:%s", p->identity, from_s, to_s);
    add_header(&m, VERSO__HDR_IDENTITY, p->identity);
    add_header(&m, VERSO__HDR_FROM, from_s);
    add_header(&m, VERSO__HDR_TO, to_s);
    add_header(&m, VERSO__HDR_MORE, ch->more == 1 ? "1" : "0");
    if (rc == 1)
        add_header(&m, VERSO__HDR_INCOMPLETE, "1");
    if ((rc = publish(p, &m)) < 0)
        return rc;
    p->published = ch->from = to;
    pthread_mutex_lock(&p->lock);
    p->st.messages++;
    pthread_mutex_unlock(&p->lock);
    set_published(p, ch->head);
    return 0;
}

/* Opens the read of what the stream lacks; *ch->f NULL when there is nothing (or the database
 * is another one: then the tail is read again). */
static int chain_open(verso_nats_publisher *p, chain *ch)
{
    verso_feed_options fo = VERSO_FEED_OPTIONS_INIT;
    int rc;

    fo.since = p->published;
    fo.blob_inline = VERSO_SYNC_BLOB_INLINE;
    if ((rc = verso__db_schema_sync(NULL, p->db)) == 0)
        rc = verso_feed_open(&ch->f, p->db, &fo);
    if (rc < 0) {
        verso__sync_why(p->why, sizeof(p->why), "reading changes since %lld: %s",
                        (long long)p->published,
                        rc == VERSO_EHORIZON ? "pruned (the database's horizon passed the stream)"
                                             : verso_db_errmsg(p->db));
        return rc;
    }
    ch->head = verso_feed_head(ch->f);
    ch->from = p->published;
    if (strcmp(verso_feed_identity(ch->f), p->identity) != 0 || ch->head < p->published)
        p->resumed = p->known = false; /* another database under the path: a master message */
    if (p->resumed && ch->head > p->published && (rc = schema_check(p, p->published)) < 0)
        p->resumed = false;
    if (!p->resumed || ch->head == p->published) {
        set_published(p, ch->head);
        verso_feed_close(ch->f);
        ch->f = NULL;
    }
    return rc;
}

/* Publishes what the database holds beyond the stream, as one chain. 1 when it did. */
static int publish_pending(verso_nats_publisher *p)
{
    chain ch = {0};
    int64_t to;
    int rc = chain_open(p, &ch);

    if (rc < 0 || !ch.f)
        return rc;
    rc = ch.more = verso_feed_next(&ch.e, ch.f);
    while (rc >= 0) {
        verso_buf_clear(&ch.b);
        if ((rc = chain_msg(&ch, p->o.chunk, &to)) < 0) {
            verso__sync_why(p->why, sizeof(p->why), "reading changes: %s", verso_strerror(rc));
            break;
        }
        if ((rc = publish_changes(p, &ch, to)) < 0 || ch.more != 1)
            break;
    }
    verso_feed_close(ch.f);
    verso_buf_free(&ch.b);
    verso_buf_free(&ch.entry);
    return rc < 0 ? rc : 1;
}

/* ---- snapshots into <NAME>_SNAP ---- */

static int snap_parts(verso_nats_publisher *p, const unsigned char *data, size_t size,
                      int64_t version, const char *hex)
{
    char subject[VERSO__NATS_SUBJECT_MAX], ver[24], part[24], parts[24], msg_id[96];
    size_t n = size ? (size + SNAP_PART - 1) / SNAP_PART : 1;
    int rc = 0;

    snprintf(subject, sizeof(subject), "%s.snap.%s.%lld", p->prefix, p->identity,
             (long long)version);
    snprintf(ver, sizeof(ver), "%lld", (long long)version);
    snprintf(parts, sizeof(parts), "%zu", n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        out_msg m = {
            .subject = subject, .data = (const char *)data + i * SNAP_PART, .msg_id = msg_id};
        m.len = i + 1 < n ? SNAP_PART : size - i * SNAP_PART;
        snprintf(part, sizeof(part), "%zu", i);
        snprintf(msg_id, sizeof(msg_id), "%s:snap:%s:%s", p->identity, ver, part);
        add_header(&m, VERSO__HDR_IDENTITY, p->identity);
        add_header(&m, VERSO__HDR_VERSION, ver);
        add_header(&m, VERSO__HDR_PART, part);
        add_header(&m, VERSO__HDR_PARTS, parts);
        add_header(&m, VERSO__HDR_SHA256, hex);
        rc = publish(p, &m);
    }
    return rc;
}

/* Purges the snapshots older than the one just stored: every subject of P.snap.> but its. */
static void snap_purge_older(verso_nats_publisher *p, int64_t version)
{
    jsStreamInfo *si = NULL;
    jsOptions jo;
    jsErrCode jerr = 0;
    char keep[VERSO__NATS_SUBJECT_MAX];

    snprintf(keep, sizeof(keep), "%s.snap.%s.%lld", p->prefix, p->identity, (long long)version);
    jsOptions_Init(&jo);
    jo.Stream.Info.SubjectsFilter = p->subj_snap;
    if (js_GetStreamInfo(&si, p->c.js, p->snap_stream, &jo, &jerr) != NATS_OK)
        return;
    for (int i = 0; si->State.Subjects && i < si->State.Subjects->Count; i++) {
        const char *s = si->State.Subjects->List[i].Subject;
        jsOptions po;
        if (strcmp(s, keep) == 0)
            continue;
        jsOptions_Init(&po);
        po.Stream.Purge.Subject = s;
        js_PurgeStream(p->c.js, p->snap_stream, &po, &jerr);
    }
    jsStreamInfo_Destroy(si);
}

static int snap_send_file(verso_nats_publisher *p, const char *file, int64_t version)
{
    unsigned char sum[32];
    char hex[65];
    struct stat sb;
    void *data = MAP_FAILED;
    int fd = open(file, O_RDONLY | O_CLOEXEC), rc = VERSO_EIO;

    if (fd >= 0 && fstat(fd, &sb) == 0 && sb.st_size > 0)
        data = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (data != MAP_FAILED) {
        verso__sha256(sum, data, (size_t)sb.st_size);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", sum[i]);
        rc = snap_parts(p, data, (size_t)sb.st_size, version, hex);
        munmap(data, (size_t)sb.st_size);
    } else {
        verso__sync_why(p->why, sizeof(p->why), "snapshot file %s: cannot read it", file);
    }
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Stores a file snapshot of the database in the snapshot stream when one is due. */
static int snapshot_maybe(verso_nats_publisher *p)
{
    char file[1100];
    int64_t version = 0;
    int rc;

    if (p->snap_due_ms < 0 || verso__sync_mono_ms() < p->snap_due_ms)
        return 0;
    verso__sync_snapshot_name(file, sizeof(file), p->path);
    rc = verso__snapshot_make(&version, p->path, file, p->why, sizeof(p->why));
    if (rc == 0)
        rc = snap_send_file(p, file, version);
    unlink(file);
    if (rc < 0)
        return rc;
    snap_purge_older(p, version);
    p->snap_due_ms =
        p->o.snapshot_every_ms > 0 ? verso__sync_mono_ms() + p->o.snapshot_every_ms : -1;
    pthread_mutex_lock(&p->lock);
    p->st.snapshots++;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* ---- the thread ---- */

/* One round: the tail read when needed, what the database holds beyond the stream, a snapshot
 * when due. 1 when something was published (look again at once). */
static int round_once(verso_nats_publisher *p)
{
    int rc;

    if (!verso__nats_connected(&p->c)) { /* libnats reconnects: read the tail again then */
        p->resumed = false;
        verso__sync_why(p->why, sizeof(p->why), "NATS connection lost: reconnecting");
        return VERSO_ENET;
    }
    rc = p->resumed ? 0 : resume(p);

    if (rc == 0)
        rc = publish_pending(p);
    if (rc >= 0 && !p->resumed)
        return 1; /* another database under the path: resume now */
    if (rc >= 0 && snapshot_maybe(p) < 0)
        rc = VERSO_ENET;
    return rc;
}

static void *run(void *arg)
{
    verso_nats_publisher *p = arg;

    while (!atomic_load(&p->stop) && !p->fatal) {
        int rc = round_once(p);

        if (rc < 0) {
            set_connected(p, false);
            set_error(p, p->why);
            p->resumed = false;
            p->retry_ms =
                verso__nats_backoff(p->retry_ms, p->o.retry_min_ms, p->o.retry_max_ms, &p->seed);
            if (!p->fatal)
                verso__nats_nap(&p->stop, p->retry_ms);
            continue;
        }
        p->retry_ms = 0;
        if (rc == 0)
            wait_commit(p, POLL_MS);
    }
    return NULL;
}

/* ---- start, stop ---- */

static int take_options(verso_nats_publisher *p, const verso_nats_publish_options *o, char *why,
                        size_t whylen)
{
    p->o = *o;
    p->o.chunk = o->chunk > 0 ? o->chunk : DEFAULT_CHUNK;
    p->o.retry_min_ms = o->retry_min_ms > 0 ? o->retry_min_ms : 100;
    p->o.retry_max_ms = o->retry_max_ms > 0 ? o->retry_max_ms : 5000;
    p->o.snapshot_every_ms = o->snapshot_every_ms == 0 ? DEFAULT_SNAP_MS : o->snapshot_every_ms;
    if (!verso__nats_stream_name_ok(o->stream)) {
        verso__sync_why(why, whylen, "bad stream name \"%s\": 1 to 64 letters, digits, '_' or '-'",
                        o->stream ? o->stream : "");
        return VERSO_EINVAL;
    }
    if (o->version > VERSO_OPTIONS_VERSION || (o->subject && !verso__nats_subject_ok(o->subject))) {
        verso__sync_why(why, whylen, "bad subject prefix \"%s\"", o->subject ? o->subject : "");
        return VERSO_EINVAL;
    }
    snprintf(p->stream, sizeof(p->stream), "%s", o->stream);
    snprintf(p->snap_stream, sizeof(p->snap_stream), "%s_SNAP", o->stream);
    snprintf(p->prefix, sizeof(p->prefix), "%s%s", o->subject ? "" : "verso.",
             o->subject ? o->subject : o->stream);
    snprintf(p->subj_changes, sizeof(p->subj_changes), "%s.changes", p->prefix);
    snprintf(p->subj_master, sizeof(p->subj_master), "%s.master", p->prefix);
    snprintf(p->subj_snap, sizeof(p->subj_snap), "%s.snap.>", p->prefix);
    p->snap_due_ms = p->o.snapshot_every_ms < 0 ? -1 : 0; /* one at start */
    return 0;
}

static void pub_free(verso_nats_publisher *p)
{
    verso__watch_stop(p->watch);
    verso__nats_close(&p->c);
    verso_json_free(p->schema);
    verso_db_close(p->db);
    verso__free(p->path);
    verso__free(p->servers);
    verso__free(p->token);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    verso__free(p);
}

static int pub_open(verso_nats_publisher *p, const char *db_path, const char *nats_url, char *why,
                    size_t whylen)
{
    char open_why[256] = "";
    verso_db_options dbo = p->o.db;
    int rc;

    dbo.must_exist = true;
    if (!(p->path = verso__strdup(db_path)) || !(p->servers = verso__strdup(nats_url)) ||
        (p->o.token && !(p->token = verso__strdup(p->o.token))))
        return VERSO_ENOMEM;
    p->o.token = p->token;
    if ((rc = verso_db_open(&p->db, db_path, &dbo, open_why, sizeof(open_why))) < 0) {
        verso__sync_why(why, whylen, "%s: %s", db_path, open_why);
        return rc;
    }
    if ((rc = verso__nats_connect(&p->c, p->servers, p->token, why, whylen)) < 0)
        return rc;
    if ((rc = ensure_streams(p, why, whylen)) < 0)
        return rc;
    if (verso__watch_start(&p->watch, db_path, on_file_event, p) < 0)
        p->watch = NULL; /* the poll alone */
    return 0;
}

int verso_nats_publish_start(verso_nats_publisher **out, const char *db_path, const char *nats_url,
                             const verso_nats_publish_options *o, char *why, size_t whylen)
{
    verso_nats_publisher *p;
    int rc;

    verso__sync_why(why, whylen, "%s", "");
    if (!out)
        return VERSO_EINVAL;
    *out = NULL;
    if (!db_path || !nats_url || !o) {
        verso__sync_why(why, whylen, "database path, NATS URL and options are required");
        return VERSO_EINVAL;
    }
    if (strncmp(nats_url, "nats://", 7) != 0) {
        verso__sync_why(why, whylen, "bad NATS URL %s: nats://HOST:PORT[,HOST:PORT...]", nats_url);
        return VERSO_EINVAL;
    }
    if (!(p = verso__calloc(1, sizeof(*p))))
        return VERSO_ENOMEM;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    p->seed = (uint64_t)verso__sync_mono_us() ^ (uint64_t)(uintptr_t)p;
    if ((rc = take_options(p, o, why, whylen)) == 0 &&
        (rc = pub_open(p, db_path, nats_url, why, whylen)) == 0 &&
        pthread_create(&p->thread, NULL, run, p) != 0)
        rc = VERSO_ENOMEM;
    if (rc < 0) {
        pub_free(p);
        return rc;
    }
    p->started = true;
    *out = p;
    return 0;
}

int verso_nats_publish_state_get(verso_nats_publish_state *out, verso_nats_publisher *p)
{
    if (!out || !p)
        return VERSO_EINVAL;
    pthread_mutex_lock(&p->lock);
    *out = p->st;
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int verso_nats_publish_wait(verso_nats_publisher *p, int64_t v, int timeout_ms)
{
    struct timespec t;
    int rc = 0;

    if (!p)
        return VERSO_EINVAL;
    t = verso__nats_deadline(timeout_ms);
    pthread_mutex_lock(&p->lock);
    while (p->st.published < v && rc == 0)
        rc = pthread_cond_timedwait(&p->cond, &p->lock, &t);
    rc = p->st.published >= v ? 0 : VERSO_ETIMEOUT;
    pthread_mutex_unlock(&p->lock);
    return rc;
}

void verso_nats_publish_stop(verso_nats_publisher *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_mutex_lock(&p->lock);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (p->started)
        pthread_join(p->thread, NULL);
    pub_free(p);
}

#else
typedef int verso__nats_pub_unused; /* ISO C wants a declaration */
#endif
