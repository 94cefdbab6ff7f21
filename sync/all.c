/*
 * The --all slave: every database of a `verso serve --dir` into one
 * directory. One thread keeps the events link (the WebSocket on
 * /_databases, through wsc.c) and turns what it hears into the table of
 * databases; a pool of workers takes the databases that are due from that
 * table and runs an ordinary verso_sync_pull() on each, one at a time per
 * database. The table is the one shared state (a mutex and a condition);
 * neither side waits on the network while holding it.
 *
 * A database is due when the master announced an identity or head unlike
 * what the last good pull found (seq != done_seq: announcements are
 * counted, so a master that keeps announcing a head it does not have
 * causes one pull per announcement, not a loop). Due databases are served
 * oldest first; a failed one waits its own backoff.
 *
 * Names come from the network: each is checked against the naming rule
 * before it is stored or joined to a path, and one that fails is reported
 * in a printable, cut form and otherwise ignored.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "rest/databases.h"
#include "sync/all.h"

static const char *const k_event_names[] = {
    [VERSO_ALL_CONNECTED] = "connected", [VERSO_ALL_DISCONNECTED] = "disconnected",
    [VERSO_ALL_CREATED] = "created",     [VERSO_ALL_PULLED] = "pulled",
    [VERSO_ALL_REMOVED] = "removed",     [VERSO_ALL_KEPT] = "kept",
    [VERSO_ALL_FAILED] = "failed",       [VERSO_ALL_IGNORED] = "ignored",
    [VERSO_ALL_ERROR] = "error",
};

const char *verso_sync_all_event_name(verso_sync_all_event_kind kind)
{
    if ((unsigned)kind >= sizeof(k_event_names) / sizeof(k_event_names[0]))
        return "?";
    return k_event_names[kind];
}

/* ---- names and paths ---- */

/* One rule with the server's (rest/dbnames.c). */
bool verso__all_name_ok(const char *name, size_t len)
{
    return verso__dbname_valid(name, len);
}

void verso__all_printable(char *out, size_t n, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 5 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    }
    if (o + 5 < n || len == 0)
        out[o] = '\0';
    else
        snprintf(out + (o > n - 4 ? n - 4 : o), 4, "...");
}

/* dir/<name>.db, or dir/.verso-new-<name>.db for a copy being made. */
static void db_path(char *out, size_t n, const verso_sync_all *a, const char *name, bool temp)
{
    snprintf(out, n, "%s/%s%s.db", a->dir, temp ? VERSO__ALL_TEMP_PREFIX : "", name);
}

/* Removes a database file and its companions. */
static void remove_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[VERSO__ALL_PATH_MAX + 16];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* ---- the event queue: filled under the lock, told outside it, in order ---- */

void verso__all_queue(verso_sync_all *a, verso_sync_all_event_kind kind, const char *name,
                      const char *detail, int64_t cursor, int64_t head, int64_t rows)
{
    verso__all_ev *e;

    if (!a->o.on_event)
        return;
    if (a->nev == a->capev) {
        size_t cap = a->capev ? a->capev * 2 : 16;
        verso__all_ev *q = verso__realloc(a->evq, cap * sizeof(*q));
        if (!q)
            return; /* an event lost for want of memory; the state still says it */
        a->evq = q;
        a->capev = cap;
    }
    e = &a->evq[a->nev++];
    e->kind = kind;
    snprintf(e->name, sizeof(e->name), "%s", name ? name : "");
    snprintf(e->detail, sizeof(e->detail), "%s", detail ? detail : "");
    e->cursor = cursor;
    e->head = head;
    e->rows = rows;
}

void verso__all_flush(verso_sync_all *a)
{
    if (!a->o.on_event)
        return;
    pthread_mutex_lock(&a->emit_lock);
    for (;;) {
        verso__all_ev e;
        verso_sync_all_event out;

        pthread_mutex_lock(&a->lock);
        if (a->evhead == a->nev) {
            a->evhead = a->nev = 0;
            pthread_mutex_unlock(&a->lock);
            break;
        }
        e = a->evq[a->evhead++];
        pthread_mutex_unlock(&a->lock);
        out = (verso_sync_all_event){e.kind, e.name, e.detail, e.cursor, e.head, e.rows};
        a->o.on_event(&out, a->o.event_arg);
    }
    pthread_mutex_unlock(&a->emit_lock);
}

/* ---- the table of databases (lock held) ---- */

static int rec_cmp(const void *key, const void *elem)
{
    return strcmp(key, (*(verso__all_rec *const *)elem)->name);
}

verso__all_rec *verso__all_find(verso_sync_all *a, const char *name)
{
    verso__all_rec **r;

    if (!a->nrecs)
        return NULL;
    r = bsearch(name, a->recs, a->nrecs, sizeof(*a->recs), rec_cmp);
    return r ? *r : NULL;
}

/* The record of name (valid), made when missing; NULL for want of memory. */
verso__all_rec *verso__all_get(verso_sync_all *a, const char *name)
{
    verso__all_rec *r = verso__all_find(a, name);
    size_t at = 0;

    if (r)
        return r;
    if (a->nrecs == a->caprecs) {
        size_t cap = a->caprecs ? a->caprecs * 2 : 64;
        verso__all_rec **p = verso__realloc(a->recs, cap * sizeof(*p));
        if (!p)
            return NULL;
        a->recs = p;
        a->caprecs = cap;
    }
    if (!(r = verso__calloc(1, sizeof(*r))))
        return NULL;
    snprintf(r->name, sizeof(r->name), "%s", name);
    while (at < a->nrecs && strcmp(a->recs[at]->name, name) < 0)
        at++;
    memmove(&a->recs[at + 1], &a->recs[at], (a->nrecs - at) * sizeof(*a->recs));
    a->recs[at] = r;
    a->nrecs++;
    return r;
}

static void rec_drop(verso_sync_all *a, verso__all_rec *r)
{
    for (size_t i = 0; i < a->nrecs; i++) {
        if (a->recs[i] == r) {
            memmove(&a->recs[i], &a->recs[i + 1], (a->nrecs - i - 1) * sizeof(*a->recs));
            a->nrecs--;
            break;
        }
    }
    verso__free(r);
}

/* The local copy is at what the master announced. */
static bool matches(const verso__all_rec *r)
{
    return r->listed && r->master[0] && !strcmp(r->master, r->identity) && r->cursor == r->head;
}

static bool due(const verso__all_rec *r)
{
    return r->listed && r->seq != r->done_seq;
}

void verso__all_announce(verso_sync_all *a, verso__all_rec *r, const char *identity, int64_t head)
{
    bool changed = !r->listed || strcmp(r->identity, identity) != 0 || r->head != head;

    r->listed = true;
    r->gone = false;
    if (!changed)
        return;
    snprintf(r->identity, sizeof(r->identity), "%s", identity);
    r->head = head;
    r->seq++;
    if (!r->running && matches(r)) {
        r->done_seq = r->seq;
        r->due_ms = 0;
        return;
    }
    if (!r->due_ms)
        r->due_ms = verso__sync_mono_ms();
    pthread_cond_broadcast(&a->work);
}

/*
 * A database the master no longer lists, with no pull running: its copy
 * being made is removed (ours, incomplete), its file removed when it is a
 * replica (a file without a cursor is somebody's, kept) unless
 * keep_deleted; it is no longer followed.
 */
static void settle(verso_sync_all *a, verso__all_rec *r)
{
    char path[VERSO__ALL_PATH_MAX];

    if (r->temp) {
        db_path(path, sizeof(path), a, r->name, true);
        remove_files(path);
    }
    if (r->local && a->o.keep_deleted) {
        verso__all_queue(a, VERSO_ALL_KEPT, r->name, "deleted on the master; kept (keep-deleted)",
                         r->cursor, r->head, 0);
    } else if (r->local && !r->master[0]) {
        verso__all_queue(a, VERSO_ALL_KEPT, r->name,
                         "not listed by the master; kept: the file is not a replica", r->cursor,
                         r->head, 0);
    } else if (r->local) {
        db_path(path, sizeof(path), a, r->name, false);
        remove_files(path);
        a->st.removed++;
        verso__all_queue(a, VERSO_ALL_REMOVED, r->name, "deleted on the master", r->cursor, r->head,
                         0);
    }
    rec_drop(a, r);
}

void verso__all_gone(verso_sync_all *a, verso__all_rec *r)
{
    r->listed = false;
    r->gone = true;
    atomic_store(&r->cancel, true);
    if (!r->running)
        settle(a, r);
}

/* ---- the workers ---- */

/* The due database waiting longest whose backoff is over; *wait_ms: until the next one. */
static verso__all_rec *pick(verso_sync_all *a, int64_t now, int64_t *wait_ms)
{
    verso__all_rec *best = NULL;

    *wait_ms = 1000;
    for (size_t i = 0; i < a->nrecs; i++) {
        verso__all_rec *r = a->recs[i];
        if (r->running || !due(r))
            continue;
        if (r->retry_at_ms > now) {
            if (r->retry_at_ms - now < *wait_ms)
                *wait_ms = r->retry_at_ms - now;
            continue;
        }
        if (!best || r->due_ms < best->due_ms)
            best = r;
    }
    return best;
}

typedef struct job {
    verso_sync_all *a;
    verso__all_rec *r; /* kept while running: never dropped then */
    char name[VERSO__ALL_NAME_MAX + 1];
    bool temp; /* the copy is made under the temporary name */
    uint64_t seq;
} job;

static bool job_stop(void *arg)
{
    const job *j = arg;

    return atomic_load(&j->a->stop) || atomic_load(&j->r->cancel);
}

/* A complete copy becomes dir/<name>.db: never over a file that is there. */
static int install(const job *j, char *why, size_t whylen)
{
    char tmp[VERSO__ALL_PATH_MAX], final[VERSO__ALL_PATH_MAX], wal[VERSO__ALL_PATH_MAX + 8];
    struct stat st;

    db_path(tmp, sizeof(tmp), j->a, j->name, true);
    db_path(final, sizeof(final), j->a, j->name, false);
    snprintf(wal, sizeof(wal), "%s-wal", tmp);
    if (stat(wal, &st) == 0 && st.st_size > 0) {
        verso__sync_why(why, whylen, "the new copy was not checkpointed when closed");
        return VERSO_EIO;
    }
    if (link(tmp, final) < 0) {
        verso__sync_why(why, whylen, "cannot rename the new copy to %s: %s", final,
                        errno == EEXIST ? "a file of that name appeared" : strerror(errno));
        return errno == EEXIST ? VERSO_ECONFLICT : VERSO_EIO;
    }
    remove_files(tmp);
    return 0;
}

static int job_pull(job *j, verso_pull_result *res, char *why, size_t whylen)
{
    verso_sync_all *a = j->a;
    verso_sync_client c = a->o.client;
    char path[VERSO__ALL_PATH_MAX], url[VERSO__ALL_PATH_MAX], open_why[256] = "";
    verso_db *db = NULL;
    int rc;

    c.should_stop = job_stop;
    c.stop_arg = j;
    db_path(path, sizeof(path), a, j->name, j->temp);
    snprintf(url, sizeof(url), "%s/db/%s", a->url, j->name);
    memset(res, 0, sizeof(*res));
    if ((rc = verso_db_open(&db, path, NULL, open_why, sizeof(open_why))) < 0) {
        verso__sync_why(why, whylen, "%s", open_why);
        return rc;
    }
    rc = verso_sync_pull(res, db, url, &c, why, whylen);
    verso_db_close(db);
    if (rc == 0 && j->temp)
        rc = install(j, why, whylen);
    return rc;
}

static void backoff(verso_sync_all *a, verso__all_rec *r, int64_t now)
{
    int64_t jitter;

    r->retry_ms = r->retry_ms ? r->retry_ms * 2 : a->o.retry_min_ms;
    if (r->retry_ms > a->o.retry_max_ms)
        r->retry_ms = a->o.retry_max_ms;
    jitter = (int64_t)(verso__all_random(a) % (uint64_t)(r->retry_ms / 4 + 1));
    r->retry_at_ms = now + r->retry_ms - jitter;
}

static void finished_ok(verso_sync_all *a, const job *j, const verso_pull_result *res)
{
    verso__all_rec *r = j->r;
    int64_t rows = res->rows + res->snapshot_rows;

    r->cursor = res->cursor;
    snprintf(r->master, sizeof(r->master), "%s", res->master);
    r->failures = 0;
    r->retry_ms = 0;
    r->retry_at_ms = 0;
    r->last_error[0] = '\0';
    r->done_seq = j->seq;
    if (matches(r))
        r->done_seq = r->seq;
    a->st.pulls++;
    if (j->temp) {
        r->temp = false;
        r->local = true;
        a->st.created++;
    }
    verso__all_queue(a, j->temp ? VERSO_ALL_CREATED : VERSO_ALL_PULLED, r->name,
                     res->snapshot ? "file snapshot" : (res->resynced ? "full resync" : ""),
                     r->cursor, r->head, rows);
}

/* Takes the result of a job (lock held). */
static void finished(verso_sync_all *a, const job *j, int rc, const verso_pull_result *res,
                     const char *why)
{
    verso__all_rec *r = j->r;
    int64_t now = verso__sync_mono_ms();

    r->running = false;
    a->st.pulling--;
    if (rc == 0) {
        finished_ok(a, j, res);
    } else if (rc == VERSO_ECONFLICT && j->temp) {
        char tmp[VERSO__ALL_PATH_MAX];
        db_path(tmp, sizeof(tmp), a, r->name, true);
        remove_files(tmp);
        r->temp = false; /* a file took the name meanwhile: pull into it next time */
        r->local = true;
    } else if (rc != VERSO_EINTERRUPTED) {
        r->failures++;
        snprintf(r->last_error, sizeof(r->last_error), "%s", why[0] ? why : verso_strerror(rc));
        backoff(a, r, now);
        verso__all_queue(a, VERSO_ALL_FAILED, r->name, r->last_error, r->cursor, r->head,
                         r->retry_at_ms - now);
    }
    r->due_ms = due(r) ? now : 0; /* still due: behind the others now */
    if (r->gone)
        settle(a, r);
    pthread_cond_broadcast(&a->work);
}

static void wait_work(verso_sync_all *a, int64_t ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&a->work, &a->lock, &ts);
}

static void *worker(void *arg)
{
    verso_sync_all *a = arg;

    pthread_mutex_lock(&a->lock);
    while (!atomic_load(&a->stop)) {
        int64_t wait_ms;
        verso__all_rec *r = pick(a, verso__sync_mono_ms(), &wait_ms);
        verso_pull_result res;
        char why[256] = "";
        job j;
        int rc;

        if (!r) {
            wait_work(a, wait_ms);
            continue;
        }
        j = (job){.a = a, .r = r, .temp = !r->local, .seq = r->seq};
        snprintf(j.name, sizeof(j.name), "%s", r->name);
        r->running = true;
        r->temp = r->temp || j.temp;
        atomic_store(&r->cancel, false);
        a->st.pulling++;
        pthread_mutex_unlock(&a->lock);
        rc = job_pull(&j, &res, why, sizeof(why));
        pthread_mutex_lock(&a->lock);
        finished(a, &j, rc, &res, why);
        pthread_mutex_unlock(&a->lock);
        verso__all_flush(a);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

/* ---- what is in the directory at start ---- */

/* The local cursor of a file, read without changing it; false when unreadable. */
static bool read_cursor(verso__all_rec *r, const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    verso_cursor c;
    bool ok;

    o.readonly = true;
    o.must_exist = true;
    if (verso_db_open(&db, path, &o, NULL, 0) < 0)
        return false;
    ok = verso_db_cursor(&c, db) == 0;
    if (ok) {
        snprintf(r->master, sizeof(r->master), "%s", c.master);
        r->cursor = c.version;
    }
    verso_db_close(db);
    return ok;
}

/* One entry of dir: a copy (<name>.db) or a copy being made (.verso-new-<name>.db). */
static int scan_entry(verso_sync_all *a, const char *entry)
{
    size_t len = strlen(entry), plen = strlen(VERSO__ALL_TEMP_PREFIX);
    bool temp = strncmp(entry, VERSO__ALL_TEMP_PREFIX, plen) == 0;
    const char *name = temp ? entry + plen : entry;
    size_t nlen = len - (temp ? plen : 0);
    char copy[VERSO__ALL_NAME_MAX + 1], path[VERSO__ALL_PATH_MAX];
    verso__all_rec *r;

    if (nlen < 4 || strcmp(name + nlen - 3, ".db") != 0 || !verso__all_name_ok(name, nlen - 3))
        return 0;
    memcpy(copy, name, nlen - 3);
    copy[nlen - 3] = '\0';
    if (!(r = verso__all_get(a, copy)))
        return VERSO_ENOMEM;
    if (temp) {
        r->temp = true;
        return 0;
    }
    r->local = true;
    db_path(path, sizeof(path), a, copy, false);
    read_cursor(r, path);
    return 0;
}

static int scan_dir(verso_sync_all *a, char *why, size_t whylen)
{
    DIR *d = opendir(a->dir);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        verso__sync_why(why, whylen, "%s: %s", a->dir, strerror(errno));
        return VERSO_EIO;
    }
    while (rc == 0 && (e = readdir(d)))
        rc = scan_entry(a, e->d_name);
    closedir(d);
    /* a copy being made whose name has a copy already: that one is the one followed */
    for (size_t i = 0; rc == 0 && i < a->nrecs; i++) {
        verso__all_rec *r = a->recs[i];
        char tmp[VERSO__ALL_PATH_MAX];
        if (r->temp && r->local) {
            db_path(tmp, sizeof(tmp), a, r->name, true);
            remove_files(tmp);
            r->temp = false;
        }
    }
    return rc;
}

static int make_dir(const char *dir, char *why, size_t whylen)
{
    struct stat st;

    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        verso__sync_why(why, whylen, "cannot create the directory %s: %s", dir, strerror(errno));
        return VERSO_EIO;
    }
    if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        verso__sync_why(why, whylen, "%s is not a directory", dir);
        return VERSO_EIO;
    }
    return 0;
}

/* ---- public API ---- */

uint64_t verso__all_random(verso_sync_all *a)
{
    a->jitter = a->jitter * 6364136223846793005ull + 1442695040888963407ull;
    return a->jitter >> 33;
}

static int copy_options(verso_sync_all *a, const verso_sync_all_options *opts, const char *dir,
                        const char *url, char *why, size_t whylen)
{
    size_t ulen = strlen(url);

    a->o = *opts;
    a->o.workers = a->o.workers > 0 ? a->o.workers : 2;
    a->o.retry_min_ms = a->o.retry_min_ms > 0 ? a->o.retry_min_ms : 100;
    a->o.retry_max_ms = a->o.retry_max_ms > 0 ? a->o.retry_max_ms : 5000;
    a->o.silence_ms = a->o.silence_ms > 0 ? a->o.silence_ms : 15000;
    a->o.connect_timeout_ms = a->o.connect_timeout_ms > 0 ? a->o.connect_timeout_ms : 10000;
    a->o.max_message = a->o.max_message ? a->o.max_message : (size_t)16 << 20;
    a->o.client.tables = NULL;
    a->o.client.ntables = 0;
    a->o.client.on_apply = NULL;
    a->o.client.on_progress = NULL;
    if (opts->workers > VERSO__ALL_WORKERS_MAX || opts->workers < 0) {
        verso__sync_why(why, whylen, "workers must be 1 to %d", VERSO__ALL_WORKERS_MAX);
        return VERSO_EINVAL;
    }
    while (ulen > 0 && url[ulen - 1] == '/')
        ulen--;
    if (strlen(a->u.prefix) + 4 + VERSO__ALL_NAME_MAX >= sizeof(a->u.prefix) ||
        strlen(dir) + 16 + VERSO__ALL_NAME_MAX >= VERSO__ALL_PATH_MAX) {
        verso__sync_why(why, whylen, "the URL's path or the directory's name is too long");
        return VERSO_EINVAL;
    }
    if (!(a->url = verso__strndup(url, ulen)) || !(a->dir = verso__strdup(dir)) ||
        (opts->client.token && !(a->token = verso__strdup(opts->client.token))))
        return VERSO_ENOMEM;
    a->o.client.token = a->token;
    return 0;
}

static verso_sync_all *all_alloc(void)
{
    verso_sync_all *a = verso__calloc(1, sizeof(*a));
    pthread_condattr_t ca;
    bool ok;

    if (!a)
        return NULL;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    ok = pthread_cond_init(&a->work, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (ok && pthread_mutex_init(&a->lock, NULL) == 0) {
        if (pthread_mutex_init(&a->emit_lock, NULL) == 0) {
            a->jitter =
                (uint64_t)verso__sync_mono_us() ^ (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)a;
            return a;
        }
        pthread_mutex_destroy(&a->lock);
    }
    if (ok)
        pthread_cond_destroy(&a->work);
    verso__free(a);
    return NULL;
}

static void all_free(verso_sync_all *a)
{
    verso__wsc_free(a->ws);
    for (size_t i = 0; i < a->nrecs; i++)
        verso__free(a->recs[i]);
    verso__free(a->recs);
    verso__free(a->evq);
    verso__free(a->workers);
    verso__free(a->url);
    verso__free(a->dir);
    verso__free(a->token);
    pthread_mutex_destroy(&a->emit_lock);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->work);
    verso__free(a);
}

static int start_threads(verso_sync_all *a)
{
    if (!(a->workers = verso__calloc((size_t)a->o.workers, sizeof(*a->workers))))
        return VERSO_ENOMEM;
    for (int i = 0; i < a->o.workers; i++) {
        if (pthread_create(&a->workers[i], NULL, worker, a) != 0)
            return VERSO_ENOMEM;
        a->nworkers++;
    }
    if (pthread_create(&a->events, NULL, verso__all_link_run, a) != 0)
        return VERSO_ENOMEM;
    a->events_started = true;
    return 0;
}

static void stop_threads(verso_sync_all *a)
{
    atomic_store(&a->stop, 1);
    pthread_mutex_lock(&a->lock);
    pthread_cond_broadcast(&a->work);
    pthread_mutex_unlock(&a->lock);
    if (a->events_started) {
        verso__wsc_wake(a->ws);
        pthread_join(a->events, NULL);
    }
    for (int i = 0; i < a->nworkers; i++)
        pthread_join(a->workers[i], NULL);
}

int verso_sync_all_start(verso_sync_all **out, const char *dir, const char *url,
                         const verso_sync_all_options *opts, char *why, size_t whylen)
{
    static const verso_sync_all_options defaults = VERSO_SYNC_ALL_OPTIONS_INIT;
    verso_sync_all *a = NULL;
    int rc;

    *out = NULL;
    verso__sync_why(why, whylen, "%s", "");
    opts = opts ? opts : &defaults;
    if (!dir || !url || opts->version > VERSO_OPTIONS_VERSION) {
        verso__sync_why(why, whylen, "%s", !dir ? "no directory" : "bad URL or options");
        return VERSO_EINVAL;
    }
    if (!(a = all_alloc()))
        return VERSO_ENOMEM;
    if (verso__sync_url_parse(&a->u, url) < 0) {
        verso__sync_why(why, whylen, "bad URL %s", url);
        rc = VERSO_EINVAL;
    } else if ((rc = copy_options(a, opts, dir, url, why, whylen)) == 0 &&
               (rc = make_dir(dir, why, whylen)) == 0 && (rc = scan_dir(a, why, whylen)) == 0 &&
               (rc = verso__all_link_new(a)) == 0) {
        rc = start_threads(a);
    }
    if (rc < 0) {
        stop_threads(a);
        all_free(a);
        if (rc == VERSO_ENOMEM)
            verso__sync_why(why, whylen, "%s", verso_strerror(rc));
        return rc;
    }
    *out = a;
    return 0;
}

void verso_sync_all_stop(verso_sync_all *a)
{
    if (!a)
        return;
    stop_threads(a);
    verso__all_flush(a);
    all_free(a);
}

int verso_sync_all_state_get(verso_sync_all_state *out, verso_sync_all *a)
{
    if (!out || !a)
        return VERSO_EINVAL;
    pthread_mutex_lock(&a->lock);
    *out = a->st;
    out->databases = out->in_sync = out->errors = 0;
    for (size_t i = 0; i < a->nrecs; i++) {
        const verso__all_rec *r = a->recs[i];
        if (!r->listed)
            continue;
        out->databases++;
        out->in_sync += matches(r);
        out->errors += r->failures > 0;
    }
    pthread_mutex_unlock(&a->lock);
    return 0;
}

int verso_sync_all_databases(verso_sync_all_db **out, size_t *n, verso_sync_all *a)
{
    size_t k = 0;

    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&a->lock);
    if (a->nrecs && !(*out = verso__calloc(a->nrecs, sizeof(**out)))) {
        pthread_mutex_unlock(&a->lock);
        return VERSO_ENOMEM;
    }
    for (size_t i = 0; i < a->nrecs; i++) {
        const verso__all_rec *r = a->recs[i];
        verso_sync_all_db *d = &(*out)[k];
        if (!r->listed)
            continue;
        memcpy(d->name, r->name, sizeof(d->name));
        memcpy(d->identity, r->identity, sizeof(d->identity));
        memcpy(d->master, r->master, sizeof(d->master));
        memcpy(d->last_error, r->last_error, sizeof(d->last_error));
        d->master_head = r->head;
        d->cursor = r->cursor;
        d->in_sync = matches(r);
        d->pulling = r->running;
        d->failures = r->failures;
        k++;
    }
    pthread_mutex_unlock(&a->lock);
    *n = k;
    if (!k) {
        verso__free(*out);
        *out = NULL;
    }
    return 0;
}
