/*
 * rest/admin.c - the admin routes of a dir server (docs/databases.md):
 *   GET    /_databases          the databases: name, size, head, identity, followers
 *   GET    /_databases/<name>   one of them
 *   PUT    /_databases/<name>   create: empty (no body), a SQLite file
 *                               (application/vnd.sqlite3), or ?from=<other>
 *   DELETE /_databases/<name>   409 while slaves follow it, unless ?force=true
 * PUT and DELETE need the admin role without db=; GET is also open to a
 * token that may replicate some database, and lists only those.
 *
 * The files are rest/dbnames.c's; the open databases, their followers and
 * the events channel are the dir server's (rest/dir.h): a database is
 * evicted before its file goes, so no connection of ours writes to it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rest/databases.h"
#include "rest/dir.h"
#include "rest/internal.h"

#define SQLITE_TYPE "application/vnd.sqlite3"

/* The HTTP status of a code from rest/dbnames.c. */
static int status_of(int rc)
{
    static const struct {
        int rc, status;
    } k_map[] = {
        {VERSO_EINVAL, 400},  {VERSO_ENOTFOUND, 404}, {VERSO_ECONFLICT, 409},
        {VERSO_ETOOBIG, 413}, {VERSO_EFULL, 507},     {VERSO_EBUSY, 503},
    };

    for (size_t i = 0; i < sizeof(k_map) / sizeof(k_map[0]); i++)
        if (k_map[i].rc == rc)
            return k_map[i].status;
    return 500;
}

static void error_rc(verso__resp *rs, int rc, const char *why)
{
    if (rc == VERSO_ENOMEM)
        verso__error_nomem(rs);
    else
        verso__error(rs, status_of(rc), "%s", why[0] ? why : verso_strerror(rc));
}

/* ---- one database as JSON ---- */

static int64_t file_size(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 ? (int64_t)st.st_size : 0;
}

/* Bytes of DIR/name.db and its -wal. */
static int64_t db_size(const char *dir, const char *name)
{
    char path[4096], wal[4100];

    if (verso__dbfile_path(path, sizeof(path), dir, name) < 0)
        return 0;
    snprintf(wal, sizeof(wal), "%s-wal", path);
    return file_size(path) + file_size(wal);
}

/* ,"identity":"..." with the text escaped (it comes from the file); null
 * when unknown. */
static int identity_json(verso_buf *b, const char *identity)
{
    int rc = verso_buf_puts(b, ",\"identity\":");

    if (rc == 0)
        rc =
            identity ? verso_json_string(b, identity, strlen(identity)) : verso_buf_puts(b, "null");
    return rc;
}

/* {"name":..,"size":..,"head":..,"identity":..,"followers":..}; a database
 * that cannot be opened has head and identity null. */
static int entry_json(verso_buf *b, verso__dir *d, const char *name)
{
    char identity[64] = "", head_text[24] = "null";
    int64_t head = 0;
    int rc = verso__dir_head(d, name, &head, identity, sizeof(identity));

    if (rc == VERSO_ENOTFOUND)
        return rc;
    if (rc == 0)
        snprintf(head_text, sizeof(head_text), "%lld", (long long)head);
    if (verso_buf_printf(b, "{\"name\":\"%s\",\"size\":%lld,\"head\":%s", name,
                         (long long)db_size(verso__dir_path(d), name), head_text) < 0 ||
        identity_json(b, rc == 0 ? identity : NULL) < 0)
        return VERSO_ENOMEM;
    return verso_buf_printf(b, ",\"followers\":%d}", verso__dir_followers(d, name));
}

/* ---- access ---- */

static bool may_admin(const verso__req *rq)
{
    return verso__auth_check(&rq->auth, &rq->srv->cfg, NULL, NULL, VERSO__CAP_ADMIN) == 0;
}

/* Whether the token may see name in the list: admin of the server, or the
 * right to replicate that database. */
static bool may_list(const verso__req *rq, const char *name)
{
    return may_admin(rq) ||
           verso__auth_check(&rq->auth, &rq->srv->cfg, name, NULL, VERSO__CAP_FEED) == 0;
}

/* ---- GET ---- */

typedef struct list_ctx {
    verso__req *rq;
    verso_buf *b;
    size_t n;
} list_ctx;

static int list_one(const char *name, void *arg)
{
    list_ctx *x = arg;
    size_t mark = x->b->len;
    int rc;

    if (!may_list(x->rq, name))
        return 0;
    if ((rc = verso_buf_puts(x->b, x->n ? "," : "")) < 0)
        return rc;
    rc = entry_json(x->b, x->rq->srv->dir, name);
    if (rc == VERSO_ENOTFOUND) { /* deleted since the scan */
        x->b->len = mark;
        return 0;
    }
    x->n += rc == 0;
    return rc;
}

static void get_list(verso__req *rq, verso__resp *rs)
{
    list_ctx x = {.rq = rq, .b = rs->body};
    int rc = verso_buf_puts(rs->body, "{\"databases\":[");

    if (rc == 0)
        rc = verso__dbfile_scan(verso__dir_path(rq->srv->dir), list_one, &x);
    if (rc == 0)
        rc = verso_buf_puts(rs->body, "]}");
    if (rc < 0) {
        verso_buf_clear(rs->body);
        error_rc(rs, rc, rc == VERSO_EIO ? "the server's directory cannot be read" : "");
    }
}

static void get_one(verso__req *rq, verso__resp *rs, const char *name)
{
    int rc = entry_json(rs->body, rq->srv->dir, name);

    if (rc == VERSO_ENOTFOUND) {
        verso_buf_clear(rs->body);
        verso__error(rs, 404, "no database \"%s\": GET /_databases lists them", name);
    } else if (rc < 0) {
        verso_buf_clear(rs->body);
        error_rc(rs, rc, "");
    }
}

/* ---- PUT ---- */

/* "application/vnd.sqlite3", case-insensitive, parameters allowed. */
static bool is_sqlite_type(const char *ct)
{
    size_t n = sizeof(SQLITE_TYPE) - 1;

    return ct && !strncasecmp(ct, SQLITE_TYPE, n) &&
           (!ct[n] || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* The request's body: its length, and its file when it was spooled to one
 * (rest/spool.c: a file in DIR, removed after the request). */
static size_t body_len(const verso__req *rq)
{
    return rq->spool_path ? (size_t)rq->spool_len : rq->nbody;
}

static const char *body_file(const verso__req *rq)
{
    return rq->spool_path;
}

/* The body, held in memory, to a new temporary dot-file of DIR. */
static int spool_body(char *tmp, size_t n, const char *dir, const verso__req *rq, char *why,
                      size_t whylen)
{
    int fd, w = snprintf(tmp, n, "%s/.verso-upload-XXXXXX", dir);
    size_t done = 0;

    if (w < 0 || (size_t)w >= n || (fd = mkstemp(tmp)) < 0) {
        snprintf(why, whylen, "cannot store the upload in the server's directory");
        tmp[0] = 0;
        return VERSO_EIO;
    }
    while (done < rq->nbody) {
        ssize_t k = write(fd, rq->body + done, rq->nbody - done);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        done += (size_t)k;
    }
    if (close(fd) < 0 || done < rq->nbody) {
        snprintf(why, whylen, "cannot store the upload in the server's directory");
        return errno == ENOSPC ? VERSO_EFULL : VERSO_EIO;
    }
    return 0;
}

static int adopt_body(verso__req *rq, const char *name, char *why, size_t whylen)
{
    const char *dir = verso__dir_path(rq->srv->dir);
    char tmp[4096] = "";
    int rc;

    if (body_file(rq)) /* the spool removes its file after the request */
        return verso__dbfile_adopt(dir, name, body_file(rq), why, whylen);
    if ((rc = spool_body(tmp, sizeof(tmp), dir, rq, why, whylen)) == 0)
        rc = verso__dbfile_adopt(dir, name, tmp, why, whylen);
    if (tmp[0])
        unlink(tmp); /* adopted: linked to its name already */
    return rc;
}

/* Which kind of creation the request asks for; 0, or the error written. A
 * SQLite file announced with no bytes is an upload, refused as empty, not
 * a request for an empty database. */
static int put_kind(verso__req *rq, verso__resp *rs, const char **from, bool *adopt)
{
    *from = verso__param_get(rq, "from");
    *adopt = false;
    if (*from && body_len(rq)) {
        verso__error(rs, 400, "PUT /_databases/<name>?from=<database> takes no body");
        return -1;
    }
    if (*from || (!body_len(rq) && !is_sqlite_type(rq->content_type)))
        return 0;
    if (!is_sqlite_type(rq->content_type)) {
        verso__error(rs, 415,
                     "PUT /_databases/<name> takes no body (a new empty database), a SQLite "
                     "database file as Content-Type: " SQLITE_TYPE ", or ?from=<database> "
                     "(its schema, no rows)");
        return -1;
    }
    *adopt = true;
    return 0;
}

static void put_one(verso__req *rq, verso__resp *rs, const char *name)
{
    verso__dir *d = rq->srv->dir;
    char why[512] = "", identity[64] = "";
    const char *from;
    int64_t head = 0;
    bool adopt;
    int rc;

    if (put_kind(rq, rs, &from, &adopt) < 0)
        return;
    if (from)
        rc = verso__dbfile_from(verso__dir_path(d), name, from, why, sizeof(why));
    else if (adopt)
        rc = adopt_body(rq, name, why, sizeof(why));
    else
        rc = verso__dbfile_create(verso__dir_path(d), name, why, sizeof(why));
    if (rc < 0) {
        error_rc(rs, rc, why);
        return;
    }
    verso__dir_changed(d, name);
    if ((rc = verso__dir_head(d, name, &head, identity, sizeof(identity))) < 0) {
        error_rc(rs, rc, "the database was created but cannot be opened");
        return;
    }
    rs->status = 201;
    if (verso_buf_printf(rs->location, "/db/%s/", name) < 0 ||
        verso_buf_printf(rs->body, "{\"name\":\"%s\",\"head\":%lld", name, (long long)head) < 0 ||
        identity_json(rs->body, identity) < 0 || verso_buf_puts(rs->body, "}") < 0)
        verso__error_nomem(rs);
}

/* ---- DELETE ---- */

static void delete_one(verso__req *rq, verso__resp *rs, const char *name)
{
    verso__dir *d = rq->srv->dir;
    const char *force = verso__param_get(rq, "force");
    char why[400] = "", path[4096];
    int rc, followers;

    if (force && strcmp(force, "true") && strcmp(force, "false")) {
        verso__error(rs, 400, "force is true or false");
        return;
    }
    if (verso__dbfile_path(path, sizeof(path), verso__dir_path(d), name) < 0 ||
        access(path, F_OK) < 0) {
        verso__error(rs, 404, "no database \"%s\": GET /_databases lists them", name);
        return;
    }
    followers = verso__dir_followers(d, name);
    if (followers > 0 && !(force && !strcmp(force, "true"))) {
        verso__error(rs, 409, "%d slave%s follow%s it; ?force=true deletes anyway", followers,
                     followers == 1 ? "" : "s", followers == 1 ? "s" : "");
        return;
    }
    verso__dir_evict(d, name);
    if ((rc = verso__dbfile_remove(verso__dir_path(d), name, why, sizeof(why))) < 0) {
        error_rc(rs, rc, why);
        return;
    }
    verso__dir_deleted(d, name);
    rs->status = 204;
}

/* ---- dispatch ---- */

static void route_item(verso__req *rq, verso__resp *rs, const char *name)
{
    if (rq->method == VERSO__GET) {
        get_one(rq, rs, name);
    } else if (rq->method == VERSO__PUT) {
        put_one(rq, rs, name);
    } else if (rq->method == VERSO__DELETE) {
        delete_one(rq, rs, name);
    } else {
        verso__error(rs, 405, "method not allowed: GET, PUT or DELETE /_databases/<name>");
        rs->allow = "GET, HEAD, PUT, DELETE";
    }
}

/* 0 when rq may do what it asks; else the 401 or 403 is written. */
static int admin_auth(verso__req *rq, verso__resp *rs, const char *name)
{
    bool get = rq->method == VERSO__GET;
    int st = verso__auth_check(&rq->auth, &rq->srv->cfg, NULL, NULL, VERSO__CAP_ADMIN);

    if (st == 403 && get &&
        (name ? may_list(rq, name) : verso__auth_any(&rq->auth, &rq->srv->cfg, VERSO__CAP_FEED)))
        st = 0;
    if (st)
        verso__error_auth(rs, rq, st, NULL, get ? VERSO__CAP_FEED : VERSO__CAP_ADMIN,
                          get ? "GET /_databases" : "creating or deleting databases");
    return st ? -1 : 0;
}

void verso__route_databases(verso__req *rq, verso__resp *rs, const char *name)
{
    char why[400];

    if (!rq->srv->dir) {
        verso__error(rs, 404,
                     "this server serves one database: /_databases is on verso serve "
                     "--dir DIR");
        return;
    }
    if (name && verso__dbname_check(name, strlen(name), why, sizeof(why)) < 0) {
        verso__error(rs, 400, "%s", why);
        return;
    }
    if (admin_auth(rq, rs, name) < 0)
        return;
    if (name) {
        route_item(rq, rs, name);
    } else if (rq->method == VERSO__GET) {
        get_list(rq, rs);
    } else {
        verso__error(rs, 405, "method not allowed: GET /_databases lists the databases");
        rs->allow = "GET, HEAD";
    }
}
