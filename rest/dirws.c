/*
 * rest/dirws.c - /db/<name>/_sync on a dir server: one endpoint for every
 * database, handing each connection to the replication master of its
 * database (created with the database's first slave, closed with it).
 *
 * The master is mounted into a scratch options struct: what it would have
 * put into a one-database server (its endpoint, tick, status and metrics)
 * is kept in the instance and called from here and from the dir's tick. A
 * connection pins its database open; when the database is closed under it
 * (verso__dir_evict) the master goes at once and the connection only waits
 * for its close frame (1001).
 */
#include <stdio.h>
#include <string.h>

#include "orm/service.h"
#include "rest/dirint.h"

#ifdef VERSO_HAVE_SYNC
#include "verso/sync.h"
#endif

struct verso__dirconn {
    verso__dirconn *next;
    verso__dbinst *in; /* NULL once the database was closed under it */
    verso_ws *ws;
    void *mconn; /* the master's connection */
};

#define SYNC_SUFFIX "/_sync"

/* The name in "/db/<name>/_sync"; false when the URI is not that. */
static bool sync_name(char *name, const char *uri)
{
    const char *s = uri + 4, *slash;
    size_t n;

    if (strncmp(uri, "/db/", 4) || !(slash = strchr(s, '/')) || strcmp(slash, SYNC_SUFFIX))
        return false;
    n = (size_t)(slash - s);
    if (!verso__dbname_valid(s, n))
        return false;
    memcpy(name, s, n);
    name[n] = 0;
    return true;
}

#ifdef VERSO_HAVE_SYNC

int verso__dirws_master(verso__dbinst *in, char *why, size_t whylen)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    verso_sync_master *m = NULL;
    int rc;

    if (in->master)
        return 0;
    if ((rc = verso_sync_master_new(&m, in->rest->db_path, NULL, why, whylen)) < 0)
        return rc;
    if ((rc = verso_sync_master_mount(m, &ro)) < 0) {
        verso_sync_master_close(m);
        return rc;
    }
    in->master = m;
    in->mh = ro.ws_handlers[ro.nws_handlers - 1];
    in->mtick = ro.on_tick;
    in->mtick_arg = ro.tick_arg;
    in->mstatus = ro.status_json;
    in->mstatus_arg = ro.status_arg;
    in->mmetrics = ro.metrics_text;
    in->mmetrics_arg = ro.metrics_arg;
    in->rest->opts.status_json = ro.status_json; /* /db/<name>/_status lists its slaves */
    in->rest->opts.status_arg = ro.status_arg;
    in->rest->opts.metrics_text = ro.metrics_text; /* and /db/<name>/_metrics their lag */
    in->rest->opts.metrics_arg = ro.metrics_arg;
    return 0;
}

int verso__dirws_followers(verso__dbinst *in)
{
    verso_sync_peer *peers = NULL;
    size_t n = 0;

    if (!in->master || verso_sync_master_peers(&peers, &n, in->master) < 0)
        return 0;
    verso_free(peers);
    return (int)n;
}

static void master_close(verso__dbinst *in)
{
    verso_sync_master_close(in->master);
}

#else

int verso__dirws_master(verso__dbinst *in, char *why, size_t whylen)
{
    (void)in;
    snprintf(why, whylen, "this build has no replication");
    return VERSO_EINVAL;
}

int verso__dirws_followers(verso__dbinst *in)
{
    (void)in;
    return 0;
}

static void master_close(verso__dbinst *in)
{
    (void)in;
}

#endif

void verso__dirws_release(verso__dbinst *in)
{
    for (verso__dirconn *c = in->conns; c; c = c->next) {
        c->in = NULL;
        verso__ws_close_away(c->ws);
    }
    in->conns = NULL;
    in->pins = 0;
    in->rest->opts.status_json = NULL;
    in->rest->opts.metrics_text = NULL;
    master_close(in); /* frees its connections */
    in->master = NULL;
    in->mtick = NULL;
}

int verso__dir_ws_auth(verso__dir *d, const char *uri, const verso__auth *a, unsigned need)
{
    const verso__config *c = &d->srv->cfg;
    char name[VERSO__DBNAME_MAX + 1];
    int st;

    if (sync_name(name, uri))
        return verso__auth_check(a, c, name, NULL, need);
    st = verso__auth_check(a, c, NULL, NULL, need);
    /* as GET /_databases: a grant for whole databases, any db= */
    if (st == 403 && !strcmp(uri, VERSO__DIREVENTS_PATH) && verso__auth_any(a, c, VERSO__CAP_FEED))
        st = 0;
    return st;
}

int verso__dir_upgrade(verso__dir *d, const char *uri, char *msg, size_t n)
{
    char name[VERSO__DBNAME_MAX + 1], why[256] = "";
    verso__dbinst *in;
    int st;

    if (!sync_name(name, uri)) {
        snprintf(msg, n,
                 "no such database WebSocket: the path is /db/<name>/_sync, where "
                 "database names are 1 to 64 letters, digits, '_' or '-'");
        return strncmp(uri, "/db/", 4) ? 404 : 400;
    }
    if ((st = verso__dir_get(&in, d, name, msg, n)))
        return st;
    if (verso__dirws_master(in, why, sizeof(why)) < 0) {
        snprintf(msg, n, "database \"%s\" cannot be replicated now", name);
        return 503;
    }
    return 0;
}

static void unlink_conn(verso__dbinst *in, verso__dirconn *c)
{
    for (verso__dirconn **pp = &in->conns; *pp; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            in->pins--;
            return;
        }
    }
}

static int sync_open(verso_ws *ws, void **cp, void *arg)
{
    verso__dir *d = arg;
    char uri[256], msg[256], name[VERSO__DBNAME_MAX + 1];
    verso__dbinst *in = NULL;
    verso__dirconn *c;

    /* the upgrade was checked, but the database may have been closed since */
    if (verso__ws_uri(ws, uri, sizeof(uri)) < 0 || !sync_name(name, uri) ||
        verso__dir_upgrade(d, uri, msg, sizeof(msg)))
        return -1;
    in = verso__dir_find(d, name);
    if (!in || !(c = verso__calloc(1, sizeof(*c))))
        return -1;
    c->in = in;
    c->ws = ws;
    c->next = in->conns;
    in->conns = c;
    in->pins++;
    if (in->mh.on_open(ws, &c->mconn, in->mh.arg) < 0) {
        unlink_conn(in, c);
        verso__free(c);
        return -1;
    }
    *cp = c;
    return 0;
}

static int sync_message(verso_ws *ws, void *cp, const void *data, size_t len, void *arg)
{
    verso__dirconn *c = cp;

    (void)arg;
    if (!c->in)
        return -1;
    return c->in->mh.on_message(ws, c->mconn, data, len, c->in->mh.arg);
}

static int sync_writeable(verso_ws *ws, void *cp, void *arg)
{
    verso__dirconn *c = cp;

    (void)arg;
    if (!c->in)
        return -1;
    return c->in->mh.on_writeable(ws, c->mconn, c->in->mh.arg);
}

static void sync_close(verso_ws *ws, void *cp, void *arg)
{
    verso__dirconn *c = cp;

    (void)arg;
    if (!c)
        return;
    if (c->in) {
        c->in->mh.on_close(ws, c->mconn, c->in->mh.arg);
        c->in->used_ms = verso__monotonic_ms();
        unlink_conn(c->in, c);
    }
    verso__free(c);
}

verso_ws_handler verso__dirws_sync_handler(verso__dir *d)
{
    return (verso_ws_handler){.path = "/db/*" SYNC_SUFFIX,
                              .subprotocol = "verso-sync.1",
                              .role = "replicate",
                              .on_open = sync_open,
                              .on_message = sync_message,
                              .on_writeable = sync_writeable,
                              .on_close = sync_close,
                              .arg = d};
}
