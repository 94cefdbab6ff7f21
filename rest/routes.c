/* rest/routes.c - the route table, dispatch, error answers and the server's
 * own routes (/_health, /_info, /_status, /_metrics, /_changes). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orm/service.h"
#include "rest/dir.h"
#include "rest/internal.h"
#include "verso/sync.h"

enum { K_FIXED, K_TABLE, K_ROW, K_CELL };

typedef struct route {
    int id;
    int kind;
    const char *path; /* K_FIXED */
    unsigned methods;
    unsigned need; /* capabilities, checked for the table (NULL for K_FIXED) */
    void (*fixed)(verso__req *rq, verso__resp *rs);
    void (*table)(verso__req *rq, verso__resp *rs, const char *table);
    void (*row)(verso__req *rq, verso__resp *rs, const char *table, int64_t id);
    void (*cell)(verso__req *rq, verso__resp *rs, const char *table, int64_t id,
                 const char *column);
} route;

static void route_health(verso__req *rq, verso__resp *rs);
static void route_info(verso__req *rq, verso__resp *rs);
static void route_status(verso__req *rq, verso__resp *rs);
static void route_metrics(verso__req *rq, verso__resp *rs);
static void route_changes(verso__req *rq, verso__resp *rs);

static const route k_routes[] = {
    {.id = VERSO__R_HEALTH,
     .kind = K_FIXED,
     .path = "/_health",
     .methods = VERSO__GET,
     .fixed = route_health},
    {.id = VERSO__R_INFO,
     .kind = K_FIXED,
     .path = "/_info",
     .methods = VERSO__GET,
     .need = VERSO__CAP_READ,
     .fixed = route_info},
    {.id = VERSO__R_STATUS,
     .kind = K_FIXED,
     .path = "/_status",
     .methods = VERSO__GET,
     .need = VERSO__CAP_ADMIN,
     .fixed = route_status},
    {.id = VERSO__R_METRICS,
     .kind = K_FIXED,
     .path = "/_metrics",
     .methods = VERSO__GET,
     .need = VERSO__CAP_ADMIN,
     .fixed = route_metrics},
    {.id = VERSO__R_CHANGES,
     .kind = K_FIXED,
     .path = "/_changes",
     .methods = VERSO__GET,
     .fixed = route_changes},
    {.id = VERSO__R_BATCH,
     .kind = K_FIXED,
     .path = "/_batch",
     .methods = VERSO__POST,
     .fixed = verso__route_batch},
    {.id = VERSO__R_PRUNE,
     .kind = K_FIXED,
     .path = "/_prune",
     .methods = VERSO__POST,
     .need = VERSO__CAP_ADMIN,
     .fixed = verso__route_prune},
    {.id = VERSO__R_LIST,
     .kind = K_TABLE,
     .methods = VERSO__GET,
     .need = VERSO__CAP_READ,
     .table = verso__route_list},
    {.id = VERSO__R_CREATE,
     .kind = K_TABLE,
     .methods = VERSO__POST,
     .need = VERSO__CAP_WRITE,
     .table = verso__route_create},
    {.id = VERSO__R_GET,
     .kind = K_ROW,
     .methods = VERSO__GET,
     .need = VERSO__CAP_READ,
     .row = verso__route_get},
    {.id = VERSO__R_UPDATE,
     .kind = K_ROW,
     .methods = VERSO__PUT | VERSO__PATCH,
     .need = VERSO__CAP_WRITE,
     .row = verso__route_update},
    {.id = VERSO__R_DELETE,
     .kind = K_ROW,
     .methods = VERSO__DELETE,
     .need = VERSO__CAP_WRITE,
     .row = verso__route_delete},
    {.id = VERSO__R_BLOB_GET,
     .kind = K_CELL,
     .methods = VERSO__GET,
     .need = VERSO__CAP_READ,
     .cell = verso__route_blob_get},
    {.id = VERSO__R_BLOB_PUT,
     .kind = K_CELL,
     .methods = VERSO__PUT,
     .need = VERSO__CAP_WRITE,
     .cell = verso__route_blob_put},
};

typedef struct status_word {
    int status;
    const char *code;
} status_word;

static const status_word k_status_words[] = {
    {400, "bad_request"},
    {401, "unauthorized"},
    {403, "forbidden"},
    {404, "not_found"},
    {405, "method_not_allowed"},
    {408, "request_timeout"},
    {409, "conflict"},
    {410, "gone"},
    {412, "precondition_failed"},
    {413, "payload_too_large"},
    {414, "uri_too_long"},
    {415, "unsupported_media_type"},
    {416, "range_not_satisfiable"},
    {500, "internal_error"},
    {503, "unavailable"},
    {507, "insufficient_storage"},
};

static const char *status_code(int status)
{
    for (size_t i = 0; i < sizeof(k_status_words) / sizeof(k_status_words[0]); i++)
        if (k_status_words[i].status == status)
            return k_status_words[i].code;
    return "error";
}

void verso__error(verso__resp *rs, int status, const char *fmt, ...)
{
    char msg[sizeof(rs->errmsg)];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* a cut message stays valid UTF-8: whole characters only */
    msg[verso__utf8_prefix(msg, strlen(msg))] = 0;
    memcpy(rs->errmsg, msg, sizeof(msg));
    rs->status = status;
    rs->content_type = NULL;
    verso_buf_clear(rs->body);
    verso_buf_clear(rs->location);
    verso_buf_clear(rs->link);
    rs->etag = -1;
    rs->nomem = false;
    if (verso_buf_printf(rs->body,
                         "{\"error\":{\"code\":\"%s\",\"message\":", status_code(status)) < 0 ||
        (verso_json_string(rs->body, msg, strlen(msg)) < 0 &&
         verso_buf_puts(rs->body, "\"error\"") < 0) ||
        verso_buf_puts(rs->body, "}}") < 0)
        verso__error_nomem(rs);
}

void verso__error_nomem(verso__resp *rs)
{
    snprintf(rs->errmsg, sizeof(rs->errmsg), "%s", VERSO__NOMEM_MSG);
    rs->status = 503;
    rs->nomem = true;
    rs->content_type = NULL;
    rs->etag = -1;
    verso_buf_clear(rs->body);
    verso_buf_clear(rs->location);
    verso_buf_clear(rs->link);
}

typedef struct orm_status {
    int rc;
    int status;
} orm_status;

static const orm_status k_orm_status[] = {
    {VERSO_ENOTFOUND, 404},   {VERSO_EINVAL, 400},    {VERSO_ETYPE, 400},
    {VERSO_EJSON, 400},       {VERSO_EUTF8, 400},     {VERSO_ECONFLICT, 412},
    {VERSO_ECONSTRAINT, 409}, {VERSO_EREADONLY, 403}, {VERSO_EHORIZON, 410},
    {VERSO_ETOOBIG, 413},     {VERSO_EBUSY, 503},     {VERSO_EINTERRUPTED, 503},
    {VERSO_ETIMEOUT, 503},    {VERSO_EAUTH, 403},     {VERSO_EFULL, 507},
};

/* Tells the application when writes start failing for want of space and
 * when they work again: once per change, not per request. */
static void disk_full(verso_rest *srv, bool full)
{
    if (srv->disk_full == full)
        return;
    srv->disk_full = full;
    if (srv->opts.on_disk_full)
        srv->opts.on_disk_full(srv, full, srv->opts.disk_full_arg);
}

void verso__error_rc(verso__resp *rs, verso_rest *srv, int rc, const char *msg)
{
    int status = 500;
    const char *m = msg;

    if (rc == VERSO_ENOMEM) {
        verso__error_nomem(rs);
        return;
    }
    for (size_t i = 0; i < sizeof(k_orm_status) / sizeof(k_orm_status[0]); i++)
        if (k_orm_status[i].rc == rc)
            status = k_orm_status[i].status;
    if (verso__budget_spent(srv->db) || status == 503) {
        verso__error(rs, 503, "the request exceeded its time budget or the database is busy");
        return;
    }
    if (rc == VERSO_EFULL) {
        disk_full(srv, true);
        verso__error(rs, 507,
                     "the disk is full: the server refuses writes until space is freed on the "
                     "disk of its database; writes resume by themselves, reads keep working");
        return;
    }
    if (status >= 500 || !m || !*m)
        m = verso_strerror(rc);
    verso__error(rs, status, "%s", m);
}

/* The database handle's detail text is its last error's: it belongs to this
 * request only right after the ORM call that failed, which is the contract
 * of this function. The ORM says which texts a client may see (never
 * SQLite's own words beyond a constraint's). Codes made up here go through
 * verso__error_rc(). */
void verso__error_orm(verso__resp *rs, verso_rest *srv, int rc)
{
    char buf[sizeof(rs->errmsg)];

    verso__error_rc(rs, srv, rc, srv->db ? verso__errmsg_public(buf, sizeof(buf), srv->db) : NULL);
}

/* ---- path classification ---- */

typedef struct target {
    int kind;
    char table[65];
    int64_t id;
    char column[128];
} target;

/* "ID" or "ID/COLUMN" after a table: 0 ok, 404 otherwise. */
static int classify_row(target *t, const char *rest)
{
    char num[24];
    const char *col = strchr(rest, '/');
    size_t n = col ? (size_t)(col - rest) : strlen(rest), m;

    if (!n || n >= sizeof(num))
        return 404;
    memcpy(num, rest, n);
    num[n] = 0;
    t->kind = K_ROW;
    if (col) {
        m = strlen(++col);
        if (!m || m >= sizeof(t->column) || strchr(col, '/'))
            return 404;
        memcpy(t->column, col, m + 1);
        t->kind = K_CELL;
    }
    return verso__parse_i64(&t->id, num) < 0 ? 404 : 0;
}

/* 0 ok, 404 otherwise. */
static int classify(target *t, const char *path)
{
    const char *slash;
    size_t n;

    if (path[0] != '/' || !path[1])
        return 404;
    path++;
    slash = strchr(path, '/');
    n = slash ? (size_t)(slash - path) : strlen(path);
    if (!n || n >= sizeof(t->table))
        return 404;
    memcpy(t->table, path, n);
    t->table[n] = 0;
    t->kind = K_TABLE;
    if (t->table[0] == '_')
        t->kind = K_FIXED;
    if (!slash || !slash[1])
        return slash && t->kind == K_FIXED ? 404 : 0;
    return t->kind == K_FIXED ? 404 : classify_row(t, slash + 1);
}

static bool route_matches_path(const route *r, const target *t, const char *path)
{
    if (r->kind != t->kind)
        return false;
    return r->kind != K_FIXED || !strcmp(r->path + 1, t->table) || !strcmp(r->path, path);
}

static const char *allow_header(unsigned m)
{
    static const struct {
        unsigned m;
        const char *s;
    } k_allow[] = {
        {VERSO__GET, "GET, HEAD"},
        {VERSO__POST, "POST"},
        {VERSO__GET | VERSO__POST, "GET, HEAD, POST"},
        {VERSO__GET | VERSO__PUT | VERSO__PATCH | VERSO__DELETE, "GET, HEAD, PUT, PATCH, DELETE"},
        {VERSO__GET | VERSO__PUT, "GET, HEAD, PUT"},
    };
    for (size_t i = 0; i < sizeof(k_allow) / sizeof(k_allow[0]); i++)
        if (k_allow[i].m == m)
            return k_allow[i].s;
    return "GET";
}

/* A reload keeps the previous schema alive until the database is closed, so
 * it happens only when the file's schema changed: a client asking for names
 * that do not exist costs one PRAGMA each, not memory. */
int verso__schema_sync(verso_rest *srv)
{
    bool reloaded = false;
    int rc = verso__db_schema_sync(&reloaded, srv->db);

    if (reloaded)
        srv->metrics.schema_reloads++;
    return rc;
}

static const verso_table *find_table(verso_rest *srv, const char *name)
{
    const verso_table *t = verso_db_table(srv->db, name);

    if (t || verso__schema_sync(srv) < 0)
        return t;
    return verso_db_table(srv->db, name);
}

/* The file name of the database, for a hint: never its directories. */
static const char *db_file_name(const verso_rest *srv)
{
    const char *slash = srv->db_path ? strrchr(srv->db_path, '/') : NULL;

    return slash ? slash + 1 : srv->db_path ? srv->db_path : "DB";
}

/* Whether the table exists untracked is told only to a caller who may see
 * the server's own state (admin, or a server without tokens). */
void verso__error_no_table(verso__resp *rs, const verso__req *rq, const char *table)
{
    char quoted[80], file[80];
    bool untracked = false;

    verso__rest_quote(quoted, sizeof(quoted), table, 64);
    if (verso__auth_caps(&rq->auth, &rq->srv->cfg, rq->db, NULL) & VERSO__CAP_ADMIN)
        verso__table_untracked(&untracked, rq->srv->db, table);
    if (!untracked) {
        verso__error(rs, 404, "no table \"%s\": GET /_info lists the tables this server serves",
                     quoted);
        return;
    }
    verso__rest_quote(file, sizeof(file), db_file_name(rq->srv), 64);
    verso__error(rs, 404,
                 "table \"%s\" exists in the database file but is not tracked: run "
                 "\"verso track %s %s\" to serve it",
                 quoted, file, quoted);
}

static void call_route(const route *r, verso__req *rq, verso__resp *rs, const target *t)
{
    verso_rest *srv = rq->srv;

    verso__budget_begin(srv);
    if (r->kind == K_FIXED)
        r->fixed(rq, rs);
    else if (!find_table(srv, t->table))
        verso__error_no_table(rs, rq, t->table);
    else if (r->kind == K_TABLE)
        r->table(rq, rs, t->table);
    else if (r->kind == K_ROW)
        r->row(rq, rs, t->table, t->id);
    else
        r->cell(rq, rs, t->table, t->id, t->column);
    verso__budget_end(srv);
}

static const char *route_action(const route *r)
{
    static const struct {
        int id;
        const char *what;
    } k_actions[] = {
        {VERSO__R_INFO, "GET /_info"},       {VERSO__R_STATUS, "GET /_status"},
        {VERSO__R_METRICS, "GET /_metrics"}, {VERSO__R_LIST, "reading rows"},
        {VERSO__R_GET, "reading rows"},      {VERSO__R_CREATE, "writing rows"},
        {VERSO__R_UPDATE, "writing rows"},   {VERSO__R_DELETE, "writing rows"},
        {VERSO__R_BLOB_GET, "reading rows"}, {VERSO__R_BLOB_PUT, "writing rows"},
    };
    for (size_t i = 0; i < sizeof(k_actions) / sizeof(k_actions[0]); i++)
        if (k_actions[i].id == r->id)
            return k_actions[i].what;
    return "this request";
}

void verso__dispatch(verso__req *rq, verso__resp *rs)
{
    target t = {.kind = K_FIXED};
    unsigned allow = 0;
    const route *r = NULL;
    int st;

    if (rq->srv->dir) {
        verso__dir_dispatch(rq, rs);
        return;
    }
    if (classify(&t, rq->path)) {
        verso__error(rs, 404,
                     "no such resource: paths are /TABLE, /TABLE/ID or /_info, /_health, "
                     "/_status, /_metrics, /_changes, /_batch");
        return;
    }
    for (size_t i = 0; i < sizeof(k_routes) / sizeof(k_routes[0]); i++) {
        if (!route_matches_path(&k_routes[i], &t, rq->path))
            continue;
        allow |= k_routes[i].methods;
        if (k_routes[i].methods & rq->method)
            r = &k_routes[i];
    }
    if (!r) {
        verso__error(rs, allow ? 405 : 404, allow ? "method not allowed" : "no such resource");
        rs->allow = allow ? allow_header(allow) : NULL;
        return;
    }
    rs->route = r->id;
    if ((st = verso__auth_check(&rq->auth, &rq->srv->cfg, rq->db,
                                r->kind == K_FIXED ? NULL : t.table, r->need))) {
        verso__error_auth(rs, rq, st, r->kind == K_FIXED ? NULL : t.table, r->need,
                          route_action(r));
        return;
    }
    call_route(r, rq, rs, &t);
    if ((rq->method & (VERSO__POST | VERSO__PUT | VERSO__PATCH | VERSO__DELETE)) &&
        rs->status < 300)
        disk_full(rq->srv, false);
}

/* ---- the server's own routes ---- */

static void route_health(verso__req *rq, verso__resp *rs)
{
    verso_info info;
    int rc = verso_db_info(&info, rq->srv->db);

    if (rc < 0) {
        verso__error_orm(rs, rq->srv, rc);
        return;
    }
    verso_buf_printf(rs->body, "{\"status\":\"ok\",\"head\":%lld}", (long long)info.head);
}

static int write_columns(verso_buf *b, const verso_table *t)
{
    int rc = verso_buf_puts(b, "[");

    for (size_t i = 0; rc == 0 && i < verso_table_ncolumns(t); i++) {
        const verso_column *c = verso_table_column_at(t, i);
        rc = verso_buf_printf(b,
                              "%s{\"name\":\"%s\",\"type\":\"%s\",\"id\":%s,\"version\":%s,"
                              "\"notnull\":%s}",
                              i ? "," : "", c->name, verso_type_name(c->type),
                              c->flags & VERSO_FIELD_ID ? "true" : "false",
                              c->flags & VERSO_FIELD_VERSION ? "true" : "false",
                              c->flags & VERSO_FIELD_NOTNULL ? "true" : "false");
    }
    return rc < 0 ? rc : verso_buf_puts(b, "]");
}

static int write_tables(verso_buf *b, verso_db *db)
{
    int rc = verso_buf_puts(b, "[");

    for (size_t i = 0; rc == 0 && i < verso_db_ntables(db); i++) {
        const verso_table *t = verso_db_table_at(db, i);
        rc = verso_buf_printf(b, "%s{\"name\":\"%s\",\"replicated\":%s,\"columns\":", i ? "," : "",
                              verso_table_name(t), verso_table_is_replicated(t) ? "true" : "false");
        if (rc == 0 && (rc = write_columns(b, t)) == 0)
            rc = verso_buf_puts(b, "}");
    }
    return rc < 0 ? rc : verso_buf_puts(b, "]");
}

/* True if members (`"k":v,...`) make a JSON object: what the embedding
 * module appends must not break the route's answer. */
static bool members_valid(const verso_rest *srv, const char *members, size_t n)
{
    verso_buf b = VERSO_BUF_INIT;
    verso_json *doc = NULL;
    bool ok = verso_buf_puts(&b, "{") == 0 && verso_buf_append(&b, members, n) == 0 &&
              verso_buf_puts(&b, "}") == 0 &&
              verso_json_parse(&doc, b.data, b.len, srv->cfg.limits.max_depth, NULL, 0) == 0;

    verso_json_free(doc);
    verso_buf_free(&b);
    return ok;
}

static void truncate_to(verso_buf *b, size_t mark)
{
    b->len = mark;
    if (b->data)
        b->data[mark] = 0;
}

/* Appends the status_json members of the embedding module, if any. When
 * the module fails or writes something that is not valid members, the route
 * answers without them: one module's state never breaks a route. */
static int write_extra_status(verso_buf *b, verso_rest *srv)
{
    size_t mark = b->len;
    int rc;

    if (!srv->opts.status_json)
        return 0;
    if ((rc = verso_buf_puts(b, ",")) < 0)
        return rc;
    rc = srv->opts.status_json(b, srv->opts.status_arg);
    if (rc == 0 && b->len > mark + 1 && !members_valid(srv, b->data + mark + 1, b->len - mark - 1))
        rc = VERSO_EJSON;
    if (rc < 0 || b->len == mark + 1)
        truncate_to(b, mark);
    return rc == VERSO_ENOMEM ? rc : 0;
}

/* Appends the metrics_text lines of the embedding module, if any; the same
 * way, lines that are not valid UTF-8 are left out, with a comment. */
static int write_extra_metrics(verso_buf *b, verso_rest *srv)
{
    size_t mark = b->len;
    int rc;

    if (!srv->opts.metrics_text)
        return 0;
    rc = srv->opts.metrics_text(b, srv->opts.metrics_arg);
    if (rc == 0 && verso__utf8_valid(b->data + mark, b->len - mark))
        return 0;
    truncate_to(b, mark);
    return rc == VERSO_ENOMEM
               ? rc
               : verso_buf_puts(b, "# the embedding module's metrics are left out: it failed or "
                                   "wrote invalid UTF-8\n");
}

static int write_head(verso_buf *b, const verso_info *info)
{
    return verso_buf_printf(b, "{\"identity\":\"%s\",\"head\":%lld,\"horizon\":%lld",
                            info->identity, (long long)info->head, (long long)info->horizon);
}

static void route_info(verso__req *rq, verso__resp *rs)
{
    verso_rest *srv = rq->srv;
    verso_info info;
    int rc;

    if ((rc = verso__schema_sync(srv)) < 0 || (rc = verso_db_info(&info, srv->db)) < 0) {
        verso__error_orm(rs, srv, rc);
        return;
    }
    if ((rc = write_head(rs->body, &info)) < 0 || (rc = verso_buf_puts(rs->body, ",\"tables\":")) ||
        (rc = write_tables(rs->body, srv->db)) < 0 ||
        (rc = write_extra_status(rs->body, srv)) < 0 || (rc = verso_buf_puts(rs->body, "}")) < 0)
        verso__error_rc(rs, srv, rc, "cannot write the answer");
}

static void route_status(verso__req *rq, verso__resp *rs)
{
    verso_rest *srv = rq->srv;
    const verso__metrics *m = &srv->metrics;
    verso_info info;
    int rc;

    if ((rc = verso_db_info(&info, srv->db)) < 0) {
        verso__error_orm(rs, srv, rc);
        return;
    }
    if ((rc = write_head(rs->body, &info)) < 0 ||
        (rc = verso_buf_printf(rs->body,
                               ",\"uptime_ms\":%lld,\"requests\":%llu,\"rows_served\":%llu,"
                               "\"websockets\":%llu,\"port\":%d,\"tls\":%s",
                               (long long)(verso_now_ms() - m->started_ms),
                               (unsigned long long)m->latency_count, (unsigned long long)m->rows,
                               (unsigned long long)m->ws_open, srv->port,
                               srv->tls ? "true" : "false")) < 0 ||
        (rc = write_extra_status(rs->body, srv)) < 0 || (rc = verso_buf_puts(rs->body, "}")) < 0)
        verso__error_rc(rs, srv, rc, "cannot write the answer");
}

static void route_metrics(verso__req *rq, verso__resp *rs)
{
    verso_rest *srv = rq->srv;
    verso_info info;
    int rc = verso_db_info(&info, srv->db);

    rs->content_type = "text/plain; version=0.0.4";
    if (rc == 0)
        rc = verso_buf_printf(rs->body,
                              "# HELP verso_head_version The database's latest version.\n"
                              "# TYPE verso_head_version gauge\nverso_head_version %lld\n"
                              "# HELP verso_horizon_version Versions up to this one may have "
                              "lost their tombstones (pruned).\n"
                              "# TYPE verso_horizon_version gauge\nverso_horizon_version %lld\n",
                              (long long)info.head, (long long)info.horizon);
    if (rc == 0)
        rc = verso__metrics_text(rs->body, &srv->metrics);
    if (rc == 0 && srv->opts.tick_on_change)
        rc = verso__metrics_watch(rs->body, srv->watch);
    if (rc == 0)
        rc = write_extra_metrics(rs->body, srv);
    if (rc < 0)
        verso__error_rc(rs, srv, rc, "cannot write the metrics");
}

/* ---- the change feed ---- */

typedef struct feed_args {
    verso_feed_options fo;
    char *names;
    const char **tables;
} feed_args;

static void feed_args_free(feed_args *a)
{
    verso__free(a->names);
    verso__free(a->tables);
}

static bool listed(const char *const *names, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* Parses since, limit and tables=a,b (each table once); 0 or an HTTP status. */
static int feed_parse(feed_args *a, verso__req *rq, verso__resp *rs)
{
    const char *since = verso__param_get(rq, "since"), *limit = verso__param_get(rq, "limit");
    const char *tables = verso__param_get(rq, "tables");
    const char *horizon = verso__param_get(rq, "horizon");
    int max = rq->srv->cfg.limits.max_changes;

    a->fo.limit = max < 1000 ? max : 1000;
    a->fo.blob_inline = VERSO_SYNC_BLOB_INLINE; /* longer blobs: {"blob_fetch":N} */
    if (since && (verso__parse_i64(&a->fo.since, since) < 0 || a->fo.since < 0)) {
        verso__error(rs, 400,
                     "since must be a non-negative integer (a version; 0 reads everything)");
        return 400;
    }
    if (limit && (verso__parse_i64(&a->fo.limit, limit) < 0 || a->fo.limit < 1)) {
        verso__error(rs, 400, "limit must be a positive integer (changes per answer; at most %d)",
                     max);
        return 400;
    }
    if (horizon &&
        (verso__parse_i64(&a->fo.sequence_horizon, horizon) < 0 || a->fo.sequence_horizon < 0)) {
        verso__error(rs, 400,
                     "horizon must be a non-negative integer (the horizon the first page of "
                     "this read reported)");
        return 400;
    }
    if (a->fo.limit > max)
        a->fo.limit = max;
    if (!tables || !*tables)
        return 0;
    if (!(a->names = verso__strdup(tables)) ||
        !(a->tables = verso__calloc(strlen(tables) + 1, sizeof(char *))))
        return 500;
    for (char *save = NULL, *p = strtok_r(a->names, ",", &save); p; p = strtok_r(NULL, ",", &save))
        if (!listed(a->tables, a->fo.ntables, p))
            a->tables[a->fo.ntables++] = p;
    a->fo.tables = a->tables;
    if (a->fo.ntables)
        return 0;
    verso__error(rs, 400, "tables must name at least one table");
    return 400;
}

/* Every requested table needs the feed capability; no list = all tables. */
static int feed_auth(const feed_args *a, verso__req *rq)
{
    int st = 0;

    if (!a->fo.ntables)
        return verso__auth_check(&rq->auth, &rq->srv->cfg, rq->db, NULL, VERSO__CAP_FEED);
    for (size_t i = 0; !st && i < a->fo.ntables; i++)
        st = verso__auth_check(&rq->auth, &rq->srv->cfg, rq->db, a->fo.tables[i], VERSO__CAP_FEED);
    return st;
}

/* The first requested table the token may not read the feed of (NULL: all). */
static const char *feed_denied(const feed_args *a, verso__req *rq)
{
    for (size_t i = 0; i < a->fo.ntables; i++)
        if (verso__auth_check(&rq->auth, &rq->srv->cfg, rq->db, a->fo.tables[i], VERSO__CAP_FEED))
            return a->fo.tables[i];
    return NULL;
}

/* "cursor" and "more" are known only once the feed is read, so they follow "changes". */
static int write_feed(verso_buf *b, verso_feed *f, int64_t since, int64_t *rows)
{
    const verso_feed_entry *e;
    int rc, n = 0;

    if ((rc = verso_buf_printf(b,
                               "{\"identity\":\"%s\",\"head\":%lld,\"horizon\":%lld,"
                               "\"since\":%lld,\"changes\":[",
                               verso_feed_identity(f), (long long)verso_feed_head(f),
                               (long long)verso_feed_horizon(f), (long long)since)) < 0)
        return rc;
    while ((rc = verso_feed_next(&e, f)) == 1) {
        if ((n++ && (rc = verso_buf_puts(b, ",")) < 0) || (rc = verso_json_feed_entry(b, e)) < 0)
            return rc;
    }
    *rows = n;
    if (rc < 0)
        return rc;
    return verso_buf_printf(b, "],\"cursor\":%lld,\"more\":%s}", (long long)verso_feed_cursor(f),
                            verso_feed_more(f) ? "true" : "false");
}

static void route_changes(verso__req *rq, verso__resp *rs)
{
    feed_args a = {.fo = VERSO_FEED_OPTIONS_INIT};
    verso_feed *f = NULL;
    int rc, st;

    if ((st = feed_parse(&a, rq, rs)))
        goto done;
    if ((st = feed_auth(&a, rq))) {
        verso__error_auth(rs, rq, st, feed_denied(&a, rq), VERSO__CAP_FEED,
                          "reading the change feed");
        goto done;
    }
    if ((rc = verso_feed_open(&f, rq->srv->db, &a.fo)) < 0 && rc != VERSO_EHORIZON)
        verso__error_orm(rs, rq->srv, rc);
    else if (rc == 0 && (rc = write_feed(rs->body, f, a.fo.since, &rs->rows)) < 0)
        verso__error_rc(rs, rq->srv, rc, NULL);
    else if (rc == 0)
        verso__crashpoint("rest.changes.built");
    if (rc == VERSO_EHORIZON)
        verso__error(rs, 410,
                     "since is older than the tombstone horizon: resynchronise from scratch");
done:
    if (st == 500)
        verso__error_nomem(rs);
    verso_feed_close(f);
    feed_args_free(&a);
}
