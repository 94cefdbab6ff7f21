/*
 * rest/dir.c - the dir server: which databases are open, and the routing of
 * /db/<name>/... to them.
 *
 * A database is served by an offline verso_rest of its own (the one-database
 * server without a socket), so every route of a one-database server exists
 * under /db/<name>/ with the same code; the request's path loses its prefix
 * and goes to that instance's verso__dispatch(). The instances share the
 * server's config (tokens, limits): a reload is seen by all at their next
 * request. A database is opened by its first request and closed once idle
 * (no request, no WebSocket) for idle_ms, or earlier when the max_open cap
 * needs its place (least recently used first). Its name is checked before
 * any use: it never reaches a path otherwise.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orm/service.h"
#include "rest/dirint.h"

#define DEFAULT_MAX_OPEN 128
#define DEFAULT_IDLE_MS  60000
#define DIR_TICK_MS      250
#define NAME_RULE                                                                                  \
    "database names are 1 to 64 letters, digits, '_' or '-', starting with a letter or a digit"

/* ---- names ---- */

/* The 400 for a name that fails the rule, quoting it safely. */
static void error_name(verso__resp *rs, const char *name, size_t n)
{
    char why[400];

    verso__dbname_check(name, n, why, sizeof(why));
    verso__error(rs, 400, "%s", why);
}

/* DIR/<name>.db; false when it does not fit. */
static bool db_file(char *out, size_t n, const verso__dir *d, const char *name)
{
    return verso__dbfile_path(out, n, d->path, name) == 0;
}

/* ---- open databases ---- */

verso__dbinst *verso__dir_find(verso__dir *d, const char *name)
{
    for (verso__dbinst *in = d->open; in; in = in->next)
        if (!strcmp(in->name, name))
            return in;
    return NULL;
}

void verso__dir_share_config(verso__dir *d, verso__dbinst *in)
{
    in->rest->cfg = d->srv->cfg;
}

static void unlink_inst(verso__dir *d, verso__dbinst *in)
{
    for (verso__dbinst **pp = &d->open; *pp; pp = &(*pp)->next) {
        if (*pp == in) {
            *pp = in->next;
            d->nopen--;
            return;
        }
    }
}

static void inst_close(verso__dir *d, verso__dbinst *in)
{
    unlink_inst(d, in);
    verso__dirws_release(in);
    if (in->rest) /* the config is the server's: not the instance's to free */
        memset(&in->rest->cfg, 0, sizeof(in->rest->cfg));
    verso_rest_stop(in->rest);
    verso__free(in);
    d->closes++;
}

/* Moves in to the front: the list is kept in order of use. */
static void touch(verso__dir *d, verso__dbinst *in)
{
    in->used_ms = verso__monotonic_ms();
    if (d->open == in)
        return;
    unlink_inst(d, in);
    in->next = d->open;
    d->open = in;
    d->nopen++;
}

/* Closes the least recently used database nothing holds open; false if none. */
static bool evict_lru(verso__dir *d)
{
    verso__dbinst *victim = NULL;

    for (verso__dbinst *in = d->open; in; in = in->next)
        if (in->pins == 0)
            victim = in; /* the list runs from the most recently used */
    if (victim)
        inst_close(d, victim);
    return victim != NULL;
}

/* Whether the file is a verso database already, looked at read-only: the
 * read-write open of the instance would make any SQLite file one, and a
 * request must not change a file the user put there. VERSO_ESCHEMA: not one. */
static int verso_file(const char *path)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    int rc;

    o.must_exist = true;
    o.readonly = true;
    rc = verso_db_open(&db, path, &o, NULL, 0);
    verso_db_close(db);
    return rc;
}

static int inst_new(verso__dbinst **out, verso__dir *d, const char *name, const char *path)
{
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso__dbinst *in = verso__calloc(1, sizeof(*in));
    int rc;

    *out = NULL;
    if (!in)
        return VERSO_ENOMEM;
    if ((rc = verso_file(path)) < 0) {
        verso__free(in);
        return rc;
    }
    snprintf(in->name, sizeof(in->name), "%s", name);
    o.db_path = path;
    o.limits = d->srv->cfg.limits;
    o.on_disk_full = d->srv->opts.on_disk_full;
    o.disk_full_arg = d->srv->opts.disk_full_arg;
    if ((rc = verso__rest_open_offline(&in->rest, NULL, &o, NULL, 0)) < 0) {
        verso__free(in);
        return rc;
    }
    verso__config_free(&in->rest->cfg);
    verso__dir_share_config(d, in);
    in->rest->port = d->srv->port;
    in->rest->tls = d->srv->tls;
    *out = in;
    return 0;
}

/* DIR/<name>.db, and whether it is a regular file (st then describes it). */
static bool file_of(char *path, size_t n, struct stat *st, const verso__dir *d, const char *name)
{
    return db_file(path, n, d, name) && stat(path, st) == 0 && S_ISREG(st->st_mode);
}

/* The open instance of name while it still serves the file DIR/<name>.db
 * (exists: the file is there, st describes it); one whose file was
 * removed or replaced (renamed over, restored) is closed: NULL. */
static verso__dbinst *find_current(verso__dir *d, const char *name, bool exists,
                                   const struct stat *st)
{
    verso__dbinst *in = verso__dir_find(d, name);

    if (!in || (exists && in->dev == (uint64_t)st->st_dev && in->ino == (uint64_t)st->st_ino))
        return in;
    inst_close(d, in);
    return NULL;
}

int verso__dir_get(verso__dbinst **out, verso__dir *d, const char *name, char *msg, size_t n)
{
    char path[PATH_MAX];
    struct stat st;
    bool exists = file_of(path, sizeof(path), &st, d, name);
    int rc;

    if ((*out = find_current(d, name, exists, &st))) {
        touch(d, *out);
        return 0;
    }
    if (!exists) {
        snprintf(msg, n, "no database \"%s\": GET /_databases lists them", name);
        return 404;
    }
    if (d->nopen >= (size_t)d->max_open && !evict_lru(d)) {
        d->refused++;
        snprintf(msg, n,
                 "all %d open databases are held by live slaves (--max-open %d): retry later, "
                 "or raise --max-open",
                 d->max_open, d->max_open);
        return 503;
    }
    if ((rc = inst_new(out, d, name, path)) == VERSO_ESCHEMA) {
        snprintf(msg, n,
                 "%s.db is not a verso database: make it one with `verso track FILE TABLE`, or "
                 "move it out of the directory and adopt it with PUT /_databases/<name>",
                 name);
        return 409;
    }
    if (rc < 0) {
        snprintf(msg, n, "database \"%s\" cannot be opened: %s", name,
                 rc == VERSO_ENOMEM ? "out of memory" : "it is not a usable verso database");
        return rc == VERSO_ENOMEM || rc == VERSO_EBUSY ? 503 : 500;
    }
    (*out)->dev = (uint64_t)st.st_dev;
    (*out)->ino = (uint64_t)st.st_ino;
    (*out)->next = d->open;
    d->open = *out;
    d->nopen++;
    d->opens++;
    (*out)->used_ms = verso__monotonic_ms();
    return 0;
}

/* ---- routing ---- */

static void error_status(verso__resp *rs, int status, const char *msg)
{
    verso__error(rs, status, "%s", msg);
    if (status == 503)
        rs->retry_after = 1;
}

/* "/x..." -> "/db/<name>/x..." in Location, and in the URL of a Link. */
static int prefix_buf(verso_buf *b, size_t at, const char *name)
{
    verso_buf t = VERSO_BUF_INIT;
    int rc = verso_buf_append(&t, b->data, at);

    if (rc == 0)
        rc = verso_buf_printf(&t, "/db/%s%s", name, b->data + at);
    if (rc == 0) {
        verso_buf_clear(b);
        rc = verso_buf_append(b, t.data, t.len);
    }
    verso_buf_free(&t);
    return rc;
}

static void fix_links(verso__resp *rs, const char *name)
{
    if ((rs->location->len && rs->location->data[0] == '/' &&
         prefix_buf(rs->location, 0, name) < 0) ||
        (rs->link->len > 1 && rs->link->data[0] == '<' && prefix_buf(rs->link, 1, name) < 0))
        verso__error_nomem(rs);
}

static bool is_write(unsigned method)
{
    return method & (VERSO__POST | VERSO__PUT | VERSO__PATCH | VERSO__DELETE);
}

/* Counts the request in the database's own metrics too (GET /_metrics). */
static void inst_dispatch(verso__dir *d, verso__dbinst *in, verso__req *rq, verso__resp *rs,
                          const char *sub)
{
    verso__req r = *rq;
    int64_t t0 = verso__monotonic_ms();

    r.srv = in->rest;
    r.path = sub;
    r.db = in->name;
    verso__dir_share_config(d, in);
    verso__dispatch(&r, rs);
    fix_links(rs, in->name);
    verso__metrics_record(&in->rest->metrics, rs->route, rs->status,
                          (double)(verso__monotonic_ms() - t0) / 1000.0, rs->rows);
    in->used_ms = verso__monotonic_ms();
    if (is_write(rq->method) && rs->status < 300)
        verso__dir_changed(d, in->name);
}

static void route_db(verso__dir *d, verso__req *rq, verso__resp *rs, const char *s)
{
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    char name[VERSO__DBNAME_MAX + 1], msg[300];
    verso__dbinst *in;
    int st;

    if (!verso__dbname_valid(s, n)) {
        error_name(rs, s, n);
        return;
    }
    memcpy(name, s, n);
    name[n] = 0;
    if (!slash || !slash[1]) {
        verso__error(rs, 404,
                     "no such resource: paths are /db/%s/TABLE, /db/%s/TABLE/ID or "
                     "/db/%s/_info, /_changes, /_status, /_sync",
                     name, name, name);
        return;
    }
    if ((st = verso__dir_get(&in, d, name, msg, sizeof(msg)))) {
        error_status(rs, st, msg);
        return;
    }
    inst_dispatch(d, in, rq, rs, slash);
}

/* ---- the server's own routes ---- */

static size_t count_databases(verso__dir *d);

static void route_health(verso__dir *d, verso__req *rq, verso__resp *rs)
{
    (void)rq;
    verso_buf_printf(rs->body, "{\"status\":\"ok\",\"open\":%zu}", d->nopen);
}

static int followers_total(verso__dir *d)
{
    int n = 0;

    for (verso__dbinst *in = d->open; in; in = in->next)
        n += verso__dirws_followers(in);
    return n;
}

static void route_status(verso__dir *d, verso__req *rq, verso__resp *rs)
{
    const verso__metrics *m = &d->srv->metrics;

    (void)rq;
    if (verso_buf_printf(
            rs->body,
            "{\"databases\":%zu,\"open\":%zu,\"followers\":%d,\"max_open\":%d,"
            "\"idle_close_ms\":%d,\"opened\":%llu,\"closed\":%llu,\"refused\":%llu,"
            "\"uptime_ms\":%lld,\"requests\":%llu,\"websockets\":%llu,\"port\":%d,\"tls\":%s}",
            count_databases(d), d->nopen, followers_total(d), d->max_open, d->idle_ms,
            (unsigned long long)d->opens, (unsigned long long)d->closes,
            (unsigned long long)d->refused, (long long)(verso_now_ms() - m->started_ms),
            (unsigned long long)m->latency_count, (unsigned long long)m->ws_open, d->srv->port,
            d->srv->tls ? "true" : "false") < 0)
        verso__error_nomem(rs);
}

static void route_metrics(verso__dir *d, verso__req *rq, verso__resp *rs)
{
    (void)rq;
    rs->content_type = "text/plain; version=0.0.4";
    if (verso__metrics_text(rs->body, &d->srv->metrics) < 0 || verso__dir_metrics(rs->body, d) < 0)
        verso__error_nomem(rs);
}

typedef struct root_route {
    const char *path;
    int id;
    unsigned need;
    const char *what;
    void (*fn)(verso__dir *d, verso__req *rq, verso__resp *rs);
} root_route;

static const root_route k_root[] = {
    {.path = "/_health", .id = VERSO__R_HEALTH, .fn = route_health},
    {.path = "/_status",
     .id = VERSO__R_STATUS,
     .need = VERSO__CAP_ADMIN,
     .what = "GET /_status",
     .fn = route_status},
    {.path = "/_metrics",
     .id = VERSO__R_METRICS,
     .need = VERSO__CAP_ADMIN,
     .what = "GET /_metrics",
     .fn = route_metrics},
};

static void route_root(verso__dir *d, verso__req *rq, verso__resp *rs, const root_route *r)
{
    int st;

    rs->route = r->id;
    if (rq->method != VERSO__GET) {
        verso__error(rs, 405, "method not allowed");
        rs->allow = "GET, HEAD";
        return;
    }
    if ((st = verso__auth_check(&rq->auth, &rq->srv->cfg, NULL, NULL, r->need))) {
        verso__error_auth(rs, rq, st, NULL, r->need, r->what);
        return;
    }
    r->fn(d, rq, rs);
}

/* The name is checked by the admin routes before any use. */
static void route_databases(verso__req *rq, verso__resp *rs, const char *rest)
{
    verso__route_databases(rq, rs, *rest == '/' ? rest + 1 : NULL);
}

void verso__dir_dispatch(verso__req *rq, verso__resp *rs)
{
    verso__dir *d = rq->srv->dir;
    const char *p = rq->path;

    if (!strncmp(p, "/db/", 4)) {
        route_db(d, rq, rs, p + 4);
        return;
    }
    for (size_t i = 0; i < sizeof(k_root) / sizeof(k_root[0]); i++) {
        if (!strcmp(p, k_root[i].path)) {
            route_root(d, rq, rs, &k_root[i]);
            return;
        }
    }
    if (!strncmp(p, "/_databases", 11) && (!p[11] || (p[11] == '/' && p[12]))) {
        route_databases(rq, rs, p + 11);
        return;
    }
    verso__error(rs, 404,
                 "this server serves databases: use /db/<name>/<table>; GET /_databases lists "
                 "them");
}

/* ---- the contract of rest/dir.h ---- */

const char *verso__dir_path(const verso__dir *d)
{
    return d ? d->path : NULL;
}

int verso__dir_followers(verso__dir *d, const char *name)
{
    verso__dbinst *in = d && name ? verso__dir_find(d, name) : NULL;

    return in ? verso__dirws_followers(in) : 0;
}

void verso__dir_evict(verso__dir *d, const char *name)
{
    verso__dbinst *in = d && name ? verso__dir_find(d, name) : NULL;

    if (in)
        inst_close(d, in);
}

/* Reads head and identity with a handle of its own, for a closed database. */
static int head_closed(const char *path, int64_t *head, char *identity, size_t idlen)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    verso_info info;
    int rc;

    o.must_exist = true;
    o.readonly = true;
    if ((rc = verso_db_open(&db, path, &o, NULL, 0)) == 0 && (rc = verso_db_info(&info, db)) == 0) {
        *head = info.head;
        snprintf(identity, idlen, "%s", info.identity);
    }
    verso_db_close(db);
    return rc;
}

int verso__dir_head(verso__dir *d, const char *name, int64_t *head, char *identity, size_t idlen)
{
    char path[PATH_MAX];
    verso__dbinst *in;
    verso_info info;
    struct stat st;
    int rc;

    bool exists;

    if (!d || !name || !verso__dbname_valid(name, strlen(name)))
        return VERSO_EINVAL;
    exists = file_of(path, sizeof(path), &st, d, name);
    if ((in = find_current(d, name, exists, &st))) {
        if ((rc = verso_db_info(&info, in->rest->db)) < 0)
            return rc;
        *head = info.head;
        snprintf(identity, idlen, "%s", info.identity);
        return 0;
    }
    if (!exists)
        return VERSO_ENOTFOUND;
    return head_closed(path, head, identity, idlen);
}

/* ---- the tick: masters, idle databases ---- */

static void close_idle(verso__dir *d)
{
    int64_t now = verso__monotonic_ms();
    verso__dbinst *next;

    for (verso__dbinst *in = d->open; in; in = next) {
        next = in->next;
        if (in->pins == 0 && now - in->used_ms >= d->idle_ms)
            inst_close(d, in);
    }
}

static void dir_tick(verso_rest *srv, void *arg)
{
    verso__dir *d = arg;

    if (d->user_tick)
        d->user_tick(srv, d->user_tick_arg);
    for (verso__dbinst *in = d->open; in; in = in->next)
        if (in->mtick)
            in->mtick(srv, in->mtick_arg);
    close_idle(d);
    verso__direvents_tick(d);
}

/* ---- lifecycle ---- */

static int check_dir(const char *path, char *why, size_t whylen)
{
    struct stat st;

    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
        snprintf(why, whylen, "%s is not a directory", path);
        return VERSO_EINVAL;
    }
    if (access(path, R_OK | W_OK | X_OK) < 0) {
        snprintf(why, whylen, "%s: the server needs to read and write there (%s)", path,
                 strerror(errno));
        return VERSO_EINVAL;
    }
    return 0;
}

/* Our endpoints after the caller's: /db/<name>/_sync, /_databases. */
static int take_handlers(verso__dir *d, verso_rest_options *o)
{
    size_t n = o->nws_handlers;

    if (n && !o->ws_handlers)
        return VERSO_EINVAL;
    if (!(d->handlers = verso__calloc(n + 2, sizeof(*d->handlers))))
        return VERSO_ENOMEM;
    for (size_t i = 0; i < n; i++)
        d->handlers[i] = o->ws_handlers[i];
    d->handlers[n] = verso__dirws_sync_handler(d);
    d->handlers[n + 1] = verso__direvents_handler(d);
    o->ws_handlers = d->handlers;
    o->nws_handlers = n + 2;
    return 0;
}

static void take_tick(verso__dir *d, verso_rest_options *o)
{
    d->user_tick = o->on_tick;
    d->user_tick_arg = o->tick_arg;
    if (!o->on_tick || o->tick_ms <= 0 || o->tick_ms > DIR_TICK_MS)
        o->tick_ms = DIR_TICK_MS;
    o->on_tick = dir_tick;
    o->tick_arg = d;
    o->tick_on_change = false; /* one watch on DIR instead (dirwatch.c) */
}

int verso__dir_open(verso_rest *srv, char *why, size_t whylen)
{
    verso_rest_options *o = &srv->opts;
    verso__dir *d;
    int rc;

    if ((rc = check_dir(o->db_dir, why, whylen)) < 0)
        return rc;
    verso__dbfile_sweep(o->db_dir, 300); /* what a process that died mid-creation left */
    if (!(d = verso__calloc(1, sizeof(*d))) || !(d->path = verso__strdup(o->db_dir))) {
        verso__free(d);
        return VERSO_ENOMEM;
    }
    d->srv = srv;
    d->max_open = o->max_open > 0 ? o->max_open : DEFAULT_MAX_OPEN;
    d->idle_ms = o->idle_close_ms > 0 ? o->idle_close_ms : DEFAULT_IDLE_MS;
    srv->dir = d;
    if ((rc = take_handlers(d, o)) < 0 || (rc = verso__direvents_open(d)) < 0) {
        snprintf(why, whylen, "%s", rc == VERSO_ENOMEM ? "out of memory" : "bad WebSocket handler");
        return rc;
    }
    take_tick(d, o);
    return 0;
}

void verso__dir_close(verso__dir *d)
{
    if (!d)
        return;
    verso__direvents_close(d);
    while (d->open)
        inst_close(d, d->open);
    verso__free(d->handlers);
    verso__free(d->path);
    verso__free(d);
}

/* ---- the databases of DIR ---- */

int verso__dir_scan(verso__dir *d, int (*fn)(const char *name, void *arg), void *arg)
{
    return verso__dbfile_scan(d->path, fn, arg);
}

static int count_one(const char *name, void *arg)
{
    (void)name;
    (*(size_t *)arg)++;
    return 0;
}

static size_t count_databases(verso__dir *d)
{
    size_t n = 0;

    verso__dir_scan(d, count_one, &n);
    return n;
}
