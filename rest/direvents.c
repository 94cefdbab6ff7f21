/*
 * rest/direvents.c - the events WebSocket of a dir server (/_databases,
 * subprotocol verso-databases.1): at open the list of every database with
 * its identity and head, then one message per database created, changed
 * (new head or identity) or deleted, and a heartbeat after 5 s of silence.
 *
 * Where changes come from: the server's own writes (verso__dir_changed),
 * the admin routes (verso__dir_changed, verso__dir_deleted) and the DIR
 * watch (other processes). Each gives a name to look at ("hot"); the tick
 * looks at the file and compares its head and identity with what was
 * announced last ("known"), so a burst of commits to one database makes
 * at most one message per look. A commit becomes visible a moment after
 * its last write, so a hot name is looked at again for a while, at
 * growing gaps. Messages wait in one queue shared by the subscribers, each
 * with its own position; a subscriber that falls too far behind is
 * disconnected (it reconnects and gets the whole list again).
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "orm/service.h"
#include "rest/dirint.h"

#define HEARTBEAT_MS 5000
#define HOT_MS       600 /* how long a name is looked at again after its last event */
#define HOT_GAP_MIN  10  /* between two looks at one name */
#define HOT_GAP_MAX  200
#define QUEUE_MAX    4096 /* messages a subscriber may be behind */
#define WRITE_BURST  16
#define LIST_STEP    32 /* databases read per turn for an opening list: a closed one is opened */
#define SUBPROTOCOL  "verso-databases.1"

/* What the files of a database looked like (sizes, modification times in
 * ns; a -wal that is missing or empty is 0, 0: reading a closed database
 * creates an empty one): while they look the same, the database holds the
 * same commits, and a closed one need not be opened to say so. */
typedef struct filesig {
    int64_t db_size, db_mtime, wal_size, wal_mtime;
} filesig;

typedef struct known {
    char name[VERSO__DBNAME_MAX + 1];
    char identity[37];
    int64_t head;
    filesig sig;  /* at the last read */
    bool settled; /* sig can be trusted: no commit may have been on its way then */
} known;

typedef struct hot {
    char name[VERSO__DBNAME_MAX + 1];
    int64_t last_ms; /* its last event */
    int64_t next_ms; /* its next look */
    int64_t look_ms; /* its last look; 0 = none yet */
} hot;

typedef struct evmsg {
    struct evmsg *next;
    uint64_t seq;
    char name[VERSO__DBNAME_MAX + 1];
    size_t len;
    char text[];
} evmsg;

typedef struct evconn {
    struct evconn *next;
    verso_ws *ws;
    verso__auth auth;
    verso_buf list; /* the opening message, built LIST_STEP databases at a time */
    char (*names)[VERSO__DBNAME_MAX + 1]; /* the databases of DIR at open */
    size_t nnames, at, listed;            /* at: the next to list */
    bool listing;                         /* the list is not sent yet */
    uint64_t next_seq;
    int64_t last_tx_ms;
} evconn;

struct verso__direvents {
    known *k; /* sorted by name */
    size_t nk, capk;
    hot *h;
    size_t nh, caph;
    evmsg *first, *last;
    size_t nmsgs;
    uint64_t next_seq;
    evconn *conns;
    size_t nconns;
    uint64_t sent;  /* messages written, for /_metrics */
    uint64_t reads; /* heads read by opening a closed database */
};

/* ---- known databases ---- */

static size_t known_pos(const verso__direvents *e, const char *name, bool *found)
{
    size_t lo = 0, hi = e->nk;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(e->k[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static known *known_add(verso__direvents *e, size_t at, const char *name)
{
    if (e->nk == e->capk) {
        size_t cap = e->capk ? e->capk * 2 : 64;
        known *k = verso__realloc(e->k, cap * sizeof(*k));
        if (!k)
            return NULL;
        e->k = k;
        e->capk = cap;
    }
    memmove(&e->k[at + 1], &e->k[at], (e->nk - at) * sizeof(*e->k));
    e->nk++;
    memset(&e->k[at], 0, sizeof(*e->k));
    snprintf(e->k[at].name, sizeof(e->k[at].name), "%s", name);
    return &e->k[at];
}

static void known_remove(verso__direvents *e, size_t at)
{
    memmove(&e->k[at], &e->k[at + 1], (e->nk - at - 1) * sizeof(*e->k));
    e->nk--;
}

/* ---- the queue ---- */

static void push(verso__direvents *e, const char *name, const char *text, size_t len)
{
    evmsg *m;

    if (!e->nconns || !(m = verso__malloc(sizeof(*m) + len + 1)))
        return;
    m->next = NULL;
    m->seq = e->next_seq++;
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->len = len;
    memcpy(m->text, text, len + 1);
    if (e->last)
        e->last->next = m;
    else
        e->first = m;
    e->last = m;
    e->nmsgs++;
    for (evconn *c = e->conns; c; c = c->next)
        verso_ws_want_write(c->ws);
}

static void push_state(verso__direvents *e, const known *k)
{
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "{\"type\":\"database\",\"name\":\"%s\",\"identity\":\"%s\",\"head\":%lld}",
                     k->name, k->identity, (long long)k->head);

    push(e, k->name, text, (size_t)n);
}

static void push_deleted(verso__direvents *e, const char *name)
{
    char text[160];
    int n = snprintf(text, sizeof(text), "{\"type\":\"deleted\",\"name\":\"%s\"}", name);

    push(e, name, text, (size_t)n);
}

/* Drops the messages every subscriber has; cuts off one too far behind. */
static void trim(verso__direvents *e)
{
    uint64_t low = e->next_seq;

    for (evconn *c = e->conns; c; c = c->next) {
        if (e->next_seq - c->next_seq > QUEUE_MAX) {
            verso_ws_close(c->ws);
            c->next_seq = e->next_seq;
        }
        if (c->next_seq < low)
            low = c->next_seq;
    }
    while (e->first && e->first->seq < low) {
        evmsg *m = e->first;
        e->first = m->next;
        if (!e->first)
            e->last = NULL;
        e->nmsgs--;
        verso__free(m);
    }
}

/* ---- looking at a database ---- */

static bool file_exists(const verso__dir *d, const char *name)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s.db", d->path, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int64_t ns_of(const struct timespec *t)
{
    return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static bool sig_of(filesig *s, const verso__dir *d, const char *name)
{
    char path[4200];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s.db", d->path, name);
    if (stat(path, &st) < 0)
        return false;
    s->db_size = (int64_t)st.st_size;
    s->db_mtime = ns_of(&st.st_mtim);
    snprintf(path, sizeof(path), "%s/%s.db-wal", d->path, name);
    s->wal_size = s->wal_mtime = 0; /* none, or empty: no commit in it either way */
    if (stat(path, &st) == 0 && st.st_size > 0) {
        s->wal_size = (int64_t)st.st_size;
        s->wal_mtime = ns_of(&st.st_mtim);
    }
    return true;
}

static bool sig_equal(const filesig *a, const filesig *b)
{
    return a->db_size == b->db_size && a->db_mtime == b->db_mtime && a->wal_size == b->wal_size &&
           a->wal_mtime == b->wal_mtime;
}

/* A commit is visible a moment after its last write to the -wal: a read
 * made while the -wal was written lately may have missed one. */
static bool sig_settled(const filesig *s)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    return s->wal_size <= 0 || ns_of(&now) - s->wal_mtime >= (int64_t)HOT_MS * 1000000;
}

/* Reads name's head into its known entry (added when new); the entry, or
 * NULL when the database cannot be read now (being created, removed). A
 * closed database is opened for it only when its files changed since a
 * settled read. */
static known *refresh(verso__dir *d, const char *name, bool *changed)
{
    verso__direvents *e = d->events;
    bool open = verso__dir_find(d, name) != NULL, found, have;
    char identity[37] = "";
    int64_t head = 0;
    filesig sig;
    size_t at;
    known *k;

    *changed = false;
    have = sig_of(&sig, d, name);
    at = known_pos(e, name, &found);
    if (!open && found && have && e->k[at].settled && sig_equal(&sig, &e->k[at].sig))
        return &e->k[at];
    e->reads += !open;
    if (verso__dir_head(d, name, &head, identity, sizeof(identity)) < 0)
        return NULL;
    at = known_pos(e, name, &found);
    if (!found && !(k = known_add(e, at, name)))
        return NULL;
    k = &e->k[at];
    *changed = !found || k->head != head || strcmp(k->identity, identity);
    k->head = head;
    snprintf(k->identity, sizeof(k->identity), "%s", identity);
    k->sig = sig;
    k->settled = have && sig_settled(&sig);
    return k;
}

static void look(verso__dir *d, const char *name)
{
    verso__direvents *e = d->events;
    bool found, changed;
    size_t at = known_pos(e, name, &found);
    known *k;

    if (!file_exists(d, name)) {
        verso__dir_evict(d, name); /* its file is gone: nothing left to serve */
        if (found) {
            known_remove(e, at);
            push_deleted(e, name);
        }
        return;
    }
    if (!e->nconns) /* nobody listens: read it when someone does */
        return;
    if ((k = refresh(d, name, &changed)) && changed)
        push_state(e, k);
}

/* ---- hot names ---- */

static void mark_hot(const char *name, void *arg)
{
    verso__dir *d = arg;
    verso__direvents *e = d->events;
    int64_t now = verso__monotonic_ms();

    for (size_t i = 0; i < e->nh; i++) {
        if (!strcmp(e->h[i].name, name)) { /* soon, but not more often than HOT_GAP_MIN */
            hot *h = &e->h[i];
            int64_t next = h->look_ms + HOT_GAP_MIN > now ? h->look_ms + HOT_GAP_MIN : now;
            h->last_ms = now;
            h->next_ms = next < h->next_ms ? next : h->next_ms;
            return;
        }
    }
    if (e->nh == e->caph) {
        size_t cap = e->caph ? e->caph * 2 : 16;
        hot *h = verso__realloc(e->h, cap * sizeof(*h));
        if (!h)
            return; /* the slow tick and the next event look again */
        e->h = h;
        e->caph = cap;
    }
    snprintf(e->h[e->nh].name, sizeof(e->h[e->nh].name), "%s", name);
    e->h[e->nh].last_ms = e->h[e->nh].next_ms = now;
    e->h[e->nh].look_ms = 0;
    e->nh++;
}

static int mark_hot_scan(const char *name, void *arg)
{
    mark_hot(name, arg);
    return 0;
}

/* The watch lost events: every database is looked at. */
static void mark_all(verso__dir *d)
{
    verso__direvents *e = d->events;

    for (size_t i = 0; i < e->nk; i++)
        mark_hot(e->k[i].name, d);
    verso__dir_scan(d, mark_hot_scan, d);
}

/* Without subscribers a name is looked at once (was it removed?), not read. */
static void look_quiet(verso__dir *d)
{
    verso__direvents *e = d->events;

    for (size_t i = 0; i < e->nh; i++)
        look(d, e->h[i].name);
    e->nh = 0;
}

/* Looks at each hot name that is due: at once after its first event, then
 * at gaps of half the time since its last event (HOT_GAP_MIN to
 * HOT_GAP_MAX), until HOT_MS after it. The next look is due in the
 * returned ms (0: none). */
static int look_hot(verso__dir *d)
{
    verso__direvents *e = d->events;
    int64_t now = verso__monotonic_ms(), soonest = -1;
    size_t keep = 0;

    if (!e->nconns) {
        look_quiet(d);
        return 0;
    }
    for (size_t i = 0; i < e->nh; i++) {
        hot *h = &e->h[i];
        int64_t age = now - h->last_ms, gap = age / 2;
        if (now >= h->next_ms) {
            look(d, h->name);
            h->look_ms = now;
            if (age >= HOT_MS)
                continue;
            h->next_ms = now + (gap < HOT_GAP_MIN   ? HOT_GAP_MIN
                                : gap > HOT_GAP_MAX ? HOT_GAP_MAX
                                                    : gap);
        }
        e->h[keep++] = *h;
        if (soonest < 0 || h->next_ms - now < soonest)
            soonest = h->next_ms - now;
    }
    e->nh = keep;
    return soonest < 0 ? 0 : (int)(soonest > 0 ? soonest : 1);
}

void verso__direvents_tick(verso__dir *d)
{
    verso__direvents *e = d->events;
    int64_t now = verso__monotonic_ms();
    int gap;

    if (!e)
        return;
    if (verso__dirwatch_take(d->watch, mark_hot, d))
        mark_all(d);
    if ((gap = look_hot(d)) > 0)
        verso_rest_wake_after(d->srv, gap);
    for (evconn *c = e->conns; c; c = c->next)
        if (now - c->last_tx_ms >= HEARTBEAT_MS)
            verso_ws_want_write(c->ws);
    trim(e);
}

void verso__dir_changed(verso__dir *d, const char *name)
{
    if (!d || !d->events || !name || !verso__dbname_valid(name, strlen(name)))
        return;
    mark_hot(name, d);
    verso_rest_wake(d->srv);
}

void verso__dir_deleted(verso__dir *d, const char *name)
{
    verso__dir_changed(d, name);
}

/* ---- the WebSocket ---- */

/* Whether c's token may follow name: admin of the server, or the right to
 * replicate that database. */
static bool may_see(const verso__dir *d, const evconn *c, const char *name)
{
    const verso__config *cfg = &d->srv->cfg;

    return verso__auth_check(&c->auth, cfg, NULL, NULL, VERSO__CAP_ADMIN) == 0 ||
           verso__auth_check(&c->auth, cfg, name, NULL, VERSO__CAP_FEED) == 0;
}

static int collect(const char *name, void *arg)
{
    evconn *c = arg;

    if (c->nnames % 64 == 0) {
        void *p = verso__realloc(c->names, (c->nnames + 64) * sizeof(*c->names));
        if (!p)
            return VERSO_ENOMEM;
        c->names = p;
    }
    snprintf(c->names[c->nnames++], sizeof(*c->names), "%s", name);
    return 0;
}

static void conn_free(evconn *c)
{
    verso_buf_free(&c->list);
    verso__free(c->names);
    verso__free(c);
}

/* The list is built over several turns of the service thread (the first
 * one after a start opens every closed database), so other requests are
 * served meanwhile; changes from the open on wait in the queue after it. */
static int ev_open(verso_ws *ws, void **cp, void *arg)
{
    verso__dir *d = arg;
    verso__direvents *e = d->events;
    evconn *c = verso__calloc(1, sizeof(*c));

    if (!c)
        return -1;
    c->ws = ws;
    verso__ws_auth(ws, &c->auth);
    if (verso__dir_scan(d, collect, c) != 0 ||
        verso_buf_puts(&c->list, "{\"type\":\"databases\",\"databases\":[") < 0) {
        conn_free(c);
        return -1;
    }
    c->listing = true;
    c->next_seq = e->next_seq;
    c->last_tx_ms = verso__monotonic_ms();
    c->next = e->conns;
    e->conns = c;
    e->nconns++;
    *cp = c;
    verso_ws_want_write(ws);
    return 0;
}

/* Lists the next LIST_STEP databases; 1 when the list is complete. */
static int list_step(verso__dir *d, evconn *c)
{
    bool changed;
    known *k;

    for (size_t n = 0; c->at < c->nnames && n < LIST_STEP; c->at++) {
        const char *name = c->names[c->at];
        if (!may_see(d, c, name))
            continue;
        n++;
        if (!(k = refresh(d, name, &changed)))
            continue;
        if (verso_buf_printf(&c->list, "%s{\"name\":\"%s\",\"identity\":\"%s\",\"head\":%lld}",
                             c->listed++ ? "," : "", k->name, k->identity, (long long)k->head) < 0)
            return VERSO_ENOMEM;
    }
    if (c->at < c->nnames)
        return 0;
    return verso_buf_puts(&c->list, "]}") < 0 ? VERSO_ENOMEM : 1;
}

static int ev_message(verso_ws *ws, void *cp, const void *data, size_t len, void *arg)
{
    (void)ws;
    (void)cp;
    (void)data;
    (void)len;
    (void)arg;
    return 0; /* nothing is expected from the client */
}

static int send_text(evconn *c, const char *text, size_t len)
{
    if (verso_ws_write(c->ws, text, len) < 0)
        return -1;
    c->last_tx_ms = verso__monotonic_ms();
    return 0;
}

static int ev_writeable(verso_ws *ws, void *cp, void *arg)
{
    static const char beat[] = "{\"type\":\"heartbeat\"}";
    verso__dir *d = arg;
    verso__direvents *e = d->events;
    evconn *c = cp;
    int sent = 0;

    if (c->listing) {
        int rc = list_step(d, c);
        if (rc < 0)
            return -1;
        if (rc == 0) { /* more next turn: other requests are served meanwhile */
            verso_ws_want_write(ws);
            return 0;
        }
        if (send_text(c, c->list.data, c->list.len) < 0)
            return -1;
        verso_buf_free(&c->list);
        verso__free(c->names);
        c->names = NULL;
        c->listing = false;
        sent++;
    }
    for (evmsg *m = e->first; m && sent < WRITE_BURST && !verso_ws_choked(ws); m = m->next) {
        if (m->seq < c->next_seq)
            continue;
        c->next_seq = m->seq + 1;
        if (!may_see(d, c, m->name))
            continue;
        if (send_text(c, m->text, m->len) < 0)
            return -1;
        sent++;
    }
    if (!sent && verso__monotonic_ms() - c->last_tx_ms >= HEARTBEAT_MS &&
        send_text(c, beat, sizeof(beat) - 1) < 0)
        return -1;
    if (c->next_seq < e->next_seq)
        verso_ws_want_write(ws);
    e->sent += (uint64_t)sent;
    return 0;
}

static void ev_close(verso_ws *ws, void *cp, void *arg)
{
    verso__dir *d = arg;
    verso__direvents *e = d->events;
    evconn *c = cp;

    (void)ws;
    if (!c)
        return;
    for (evconn **pp = &e->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            e->nconns--;
            break;
        }
    }
    conn_free(c);
    trim(e);
}

verso_ws_handler verso__direvents_handler(verso__dir *d)
{
    return (verso_ws_handler){.path = VERSO__DIREVENTS_PATH,
                              .subprotocol = SUBPROTOCOL,
                              .role = "replicate",
                              .on_open = ev_open,
                              .on_message = ev_message,
                              .on_writeable = ev_writeable,
                              .on_close = ev_close,
                              .arg = d};
}

static void watch_fired(void *arg)
{
    verso_rest_wake(arg);
}

int verso__direvents_open(verso__dir *d)
{
    if (!(d->events = verso__calloc(1, sizeof(*d->events))))
        return VERSO_ENOMEM;
    /* without file events, the server still sees its own writes */
    if (verso__dirwatch_start(&d->watch, d->path, watch_fired, d->srv) == VERSO_ENOMEM)
        return VERSO_ENOMEM;
    return 0;
}

void verso__direvents_close(verso__dir *d)
{
    verso__direvents *e = d ? d->events : NULL;

    verso__dirwatch_stop(d ? d->watch : NULL);
    if (!e)
        return;
    while (e->conns) { /* the context is gone: nothing will close them */
        evconn *c = e->conns;
        e->conns = c->next;
        conn_free(c);
    }
    while (e->first) {
        evmsg *m = e->first;
        e->first = m->next;
        verso__free(m);
    }
    verso__free(e->k);
    verso__free(e->h);
    verso__free(e);
    d->events = NULL;
    d->watch = NULL;
}

void verso__direvents_stats_get(verso__direvents_stats *out, const verso__dir *d)
{
    const verso__direvents *e = d->events;

    memset(out, 0, sizeof(*out));
    out->subscribers = e ? e->nconns : 0;
    out->sent = e ? e->sent : 0;
    out->reads = e ? e->reads : 0;
    out->watch_events = verso__dirwatch_events(d->watch);
}
