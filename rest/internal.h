/*
 * rest/internal.h - shared between the files of rest/ only.
 *
 * Layering: server.c and http.c and ws.c are the only files that see
 * libwebsockets; they turn a request into a verso__req, routes.c/rows.c
 * answer it into a verso__resp, and http.c writes that back.
 */
#ifndef VERSO_REST_INTERNAL_H
#define VERSO_REST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "verso/rest.h"
#include "orm/alloc.h"

struct lws;

/* HTTP methods as bits, so a route can name several. */
enum {
    VERSO__GET = 1u << 0,
    VERSO__POST = 1u << 1,
    VERSO__PUT = 1u << 2,
    VERSO__PATCH = 1u << 3,
    VERSO__DELETE = 1u << 4,
    VERSO__HEAD = 1u << 5,
    VERSO__OPTIONS = 1u << 6
};

/* What a token may do, per table or globally. */
enum {
    VERSO__CAP_READ = 1u << 0,  /* rows */
    VERSO__CAP_WRITE = 1u << 1, /* create, update, delete rows */
    VERSO__CAP_FEED = 1u << 2,  /* the change feed */
    VERSO__CAP_ADMIN = 1u << 3, /* status and metrics */
    VERSO__CAP_ALL = 0xfu
};

/* Route ids: metrics are counted per id. */
enum {
    VERSO__R_NONE,
    VERSO__R_HEALTH,
    VERSO__R_INFO,
    VERSO__R_STATUS,
    VERSO__R_METRICS,
    VERSO__R_CHANGES,
    VERSO__R_BATCH,
    VERSO__R_LIST,
    VERSO__R_CREATE,
    VERSO__R_GET,
    VERSO__R_UPDATE,
    VERSO__R_DELETE,
    VERSO__R_WS,
    VERSO__R_PRUNE,
    VERSO__R_BLOB_GET,
    VERSO__R_BLOB_PUT,
    VERSO__NROUTES
};

/* ---- sha256.c ---- */
void verso__sha256(unsigned char out[32], const void *data, size_t n);
/* Decodes 64 hex digits into 32 bytes; VERSO_EINVAL otherwise. */
int verso__hex32(unsigned char out[32], const char *hex, size_t n);

/* ---- config.c: config file and access tokens ---- */
typedef struct verso__grant {
    unsigned char hash[32]; /* SHA-256 of the token */
    char *table;            /* NULL = every table and the server's routes */
    char *db;               /* db=<name>: only that database's routes; NULL = every database */
    unsigned caps;
} verso__grant;

typedef struct verso__config {
    char *host;
    int port; /* -1 = not given */
    char *tls_cert;
    char *tls_key;
    verso_rest_limits limits;
    verso__grant *grants;
    size_t ngrants;
    char **origins; /* CORS: allowed origins ("*" = any); none by default */
    size_t norigins;
} verso__config;

/* Parses config text (format in rest.h) into c (zeroed by the caller, port -1). */
int verso__config_parse(verso__config *c, const char *text, size_t len, char *why, size_t whylen);
int verso__config_load(verso__config *c, const char *path, char *why, size_t whylen);
void verso__config_free(verso__config *c);
/* Copies the non-zero fields of over into dst. */
void verso__limits_merge(verso_rest_limits *dst, const verso_rest_limits *over);
/* Fills zero fields of l with the defaults. */
void verso__limits_defaults(verso_rest_limits *l);
/* Capabilities of a role name ("read", ...); 0 if unknown. */
unsigned verso__role_caps(const char *role);

/* Appends origin to c's allowed CORS origins after checking its form
 * ("*" or scheme://host[:port]); VERSO_EINVAL (why says why), VERSO_ENOMEM. */
int verso__config_add_origin(verso__config *c, const char *origin, char *why, size_t whylen);

/* Who sent a request. */
typedef struct verso__auth {
    int state; /* 0 no credentials, 1 a known token, -1 unknown or malformed */
    unsigned char hash[32];
} verso__auth;

/* Identifies the bearer token in an Authorization header value (may be NULL). */
void verso__auth_identify(verso__auth *a, const verso__config *c, const char *header);
/* Capabilities for table (NULL = the database's own routes) of the database
 * db (NULL = a one-database server, or the server-wide routes of a dir
 * server: only grants without db= count there). Everything if no token is
 * configured. */
unsigned verso__auth_caps(const verso__auth *a, const verso__config *c, const char *db,
                          const char *table);
/* 0 when allowed; else the HTTP status to answer (401 or 403). */
int verso__auth_check(const verso__auth *a, const verso__config *c, const char *db,
                      const char *table, unsigned need);

/* Whether some grant of a's token for whole databases (no table; any db= or
 * none) holds need: who may list the databases it may replicate. True when
 * no token is configured. */
bool verso__auth_any(const verso__auth *a, const verso__config *c, unsigned need);

/* The roles a's token holds for table of db (as verso__auth_caps), in words
 * ("read (every table), write (this table)"), into out (n bytes). */
void verso__auth_roles(char *out, size_t n, const verso__auth *a, const verso__config *c,
                       const char *db, const char *table);

/* ---- requests and responses ---- */
typedef struct verso__param {
    const char *key;
    const char *value;
} verso__param;

typedef struct verso__req {
    verso_rest *srv;
    unsigned method;
    const char *path;
    const verso__param *params;
    size_t nparams;
    char *body; /* NUL-terminated, writable */
    size_t nbody;
    const char *spool_path;    /* the body, spooled to this file (spool.c); NULL: in body */
    int64_t spool_len;         /* bytes in spool_path */
    const char *if_match;      /* NULL when absent */
    const char *if_none_match; /* NULL when absent */
    const char *range;         /* Range header; NULL when absent */
    const char *origin;        /* Origin header; NULL when absent */
    const char *acr_method;    /* Access-Control-Request-Method; NULL when absent */
    const char *content_type;  /* Content-Type header; NULL when absent */
    verso__auth auth;
    const char *db; /* the database of a dir server's /db/<name>/ route; NULL otherwise */
} verso__req;

/* A response body made piece by piece as the socket takes it (http.c sends
 * it; blob.c makes one). Owned by the verso__resp that holds it. */
typedef struct verso__stream verso__stream;
struct verso__stream {
    int64_t len; /* the body's bytes (Content-Length) */
    /* Writes the next min(n, bytes left) bytes into buf: 0, or a negative
     * VERSO_E* to end the connection without completing the body. */
    int (*read)(verso__stream *s, void *buf, size_t n);
    void (*free)(verso__stream *s);
};

typedef struct verso__resp {
    int status;
    int route;
    const char *content_type; /* NULL = application/json */
    verso_buf *body;
    verso_buf *location; /* empty = no header */
    verso_buf *link;
    const char *allow;       /* 405 */
    int64_t etag;            /* > 0: ETag "<etag>" */
    int64_t rows;            /* rows served, for metrics */
    verso__stream *stream;   /* the body of a 200 or 206 instead of body; freed by http.c */
    bool ranges;             /* Accept-Ranges: bytes */
    char content_range[64];  /* Content-Range value; "" = none */
    const char *cors_origin; /* allowed Origin to name in CORS headers; NULL = none */
    bool preflight;          /* a CORS preflight answer */
    char errmsg[400];        /* the message of the last verso__error() */
    bool nomem;              /* answer VERSO__NOMEM_BODY (503), built without allocating */
    int retry_after;         /* > 0: Retry-After: <seconds> */
} verso__resp;

/* ---- access.c: verso_rest_options.on_access ---- */
typedef struct verso__access_entry {
    unsigned method;
    const char *path; /* without the query */
    int status;
    size_t bytes; /* body bytes sent */
    double seconds;
    const char *role; /* verso__access_role(); NULL = no token */
} verso__access_entry;

/* The role a request's token has ("admin", ..., "invalid"); NULL without a token. */
const char *verso__access_role(const verso__auth *a, const verso__config *c);
/* Tells on_access, if set. Service thread. */
void verso__access_record(verso_rest *srv, struct lws *wsi, const verso__access_entry *e);

/* The answer when the server ran out of memory: a static text, so that it
 * can be sent when nothing more can be allocated. */
#define VERSO__NOMEM_MSG "the server is out of memory; retry the request later"
#define VERSO__NOMEM_BODY                                                                          \
    "{\"error\":{\"code\":\"unavailable\",\"message\":\"" VERSO__NOMEM_MSG "\"}}"

/* ---- hints.c: error words that say what to do ---- */
/* The longest prefix of s[0..n) that is whole, valid UTF-8 characters. */
size_t verso__utf8_prefix(const char *s, size_t n);
/* Copies s (NULL = "") into out (n bytes) as valid UTF-8 of at most max
 * bytes: invalid bytes and control characters become '?', a longer text is cut on a character
 * boundary and ends with "...". Returns out. */
const char *verso__rest_quote(char *out, size_t n, const char *s, size_t max);
/* "id, version, name, ..." bounded to n bytes (cut with "..."). */
int verso__columns_list(char *out, size_t n, const verso_table *t);
/* What a value of a column of type t must look like, in words. */
const char *verso__type_expect(verso_type t);
/* The 401 or 403 answer for a request that needs need on table (NULL: the
 * server's routes): the role required and the token's roles. what names the
 * action ("writing rows"). */
void verso__error_auth(verso__resp *rs, const verso__req *rq, int status, const char *table,
                       unsigned need, const char *what);

/* ---- cors.c: browsers' cross-origin requests ---- */
typedef struct verso__header {
    const char *name; /* lower case, with the colon: "vary:" */
    const char *value;
} verso__header;
/* Whether origin may read the answers (config origins; none by default). */
bool verso__cors_allowed(const verso__config *c, const char *origin);
/* Answers rq when it is a CORS preflight (OPTIONS with Origin and
 * Access-Control-Request-Method): true then. Sets rs->cors_origin for other
 * requests from an allowed origin. */
bool verso__cors_preflight(const verso__req *rq, verso__resp *rs);
/* The CORS header lines of the answer rs, into out (at most max); their count. */
size_t verso__cors_headers(verso__header *out, size_t max, const verso__config *c,
                           const verso__resp *rs);

/* ---- metrics.c ---- */
#define VERSO__NSTATUS  18 /* counted statuses; the last slot is "other" */
#define VERSO__NBUCKETS 12 /* latency histogram buckets, then +Inf */
typedef struct verso__metrics {
    uint64_t count[VERSO__NROUTES][VERSO__NSTATUS];
    uint64_t hist[VERSO__NBUCKETS + 1];
    double latency_sum;
    uint64_t latency_count;
    uint64_t rows;
    uint64_t ws_open;
    uint64_t ws_total;
    uint64_t schema_reloads;
    uint64_t requests_reading; /* requests whose body is arriving: drained at stop */
    uint64_t answers_writing;  /* streamed answers being sent: drained at stop */
    int64_t started_ms;
} verso__metrics;

void verso__metrics_record(verso__metrics *m, int route, int status, double seconds, int64_t rows);
int verso__metrics_text(verso_buf *b, const verso__metrics *m);
struct verso__watch;
/* The file watch of tick_on_change: whether it stands (1) or the ticks do it
 * all (0), and how often it woke the service thread. w may be NULL. */
int verso__metrics_watch(verso_buf *b, const struct verso__watch *w);

/* ---- watch.c: commits to the database file, as file events ---- */
typedef struct verso__watch verso__watch;

/*
 * Watches the database file at path for writes by any process (the file,
 * its -wal and its -journal; Linux inotify on its directory, so a -wal
 * file deleted and created again stays watched) on a thread of its own.
 * After a write fn(arg) runs on that thread at once, then again a few
 * times over the next milliseconds (a WAL commit becomes visible to
 * readers only after its last write: see watch.c), at most about 1000
 * times a second; nothing runs while the files are left alone. The caller
 * still polls slowly: events may be missed (network file systems) or lost.
 * Errors: VERSO_EIO (file events unavailable: not Linux, inotify limits
 * exhausted, path gone), VERSO_ENOMEM. fn is never called then.
 */
int verso__watch_start(verso__watch **out, const char *path, void (*fn)(void *arg), void *arg);
/* Tests only: while true, verso__watch_start() fails with VERSO_EIO as where
 * file events are unavailable. */
extern atomic_bool verso__watch_disabled;
/* Stops and joins the thread: fn is not running and is not called after
 * this returns. Not from fn. NULL: no-op. */
void verso__watch_stop(verso__watch *w);
/*
 * The descriptor that turns readable when a commit made through verso said
 * so (-1 without one), for the caller's own poll loop: after
 * verso__watch_signals_elsewhere() the watch's thread no longer polls it, and
 * the caller calls verso__watch_signalled() when it is readable: nonzero
 * when it held a signal (or the watch ended): look at the database now.
 */
int verso__watch_signal_fd(verso__watch *w);
void verso__watch_signals_elsewhere(verso__watch *w);
int verso__watch_signalled(verso__watch *w);

typedef struct verso__watch_stats {
    uint64_t events;  /* events on the database's files */
    uint64_t ignored; /* events on other files of the directory */
    uint64_t wakes;   /* calls to fn */
    uint64_t signals; /* commits made through verso that said so (IN_ATTRIB; orm/txn.c) */
    bool active;      /* the watch stands (false: its directory went away; NULL w) */
    bool in_loop;     /* signals are polled by the server's loop (verso__watch_signals_elsewhere) */
} verso__watch_stats;

/* Counters of w (all zero for NULL). Any thread. */
void verso__watch_stats_get(verso__watch_stats *out, const verso__watch *w);

/* ---- the server ---- */

struct verso_rest {
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    struct lws_protocols *protocols;
    verso_ws_handler *handlers;
    size_t nhandlers;
    void *tick_sul;      /* lws_sorted_usec_list_t, allocated */
    verso__watch *watch; /* tick_on_change; NULL when not asked for or unavailable */

    verso_rest_options opts; /* copy; strings borrowed from the caller */
    verso__config cfg;       /* merged: options win over the file */
    char *db_path;
    verso_db *db;
    int port;
    bool tls;

    int thread_started;
    pthread_t thread;
    atomic_int stop;
    atomic_int woken;
    pthread_mutex_t ctx_lock; /* other threads wake ctx only under it, while ctx_alive */
    bool ctx_alive;
    bool going_away;            /* stopping: open WebSockets get a 1001 close frame */
    bool disk_full;             /* the last write failed for want of space (service thread) */
    verso__config *reload_next; /* verso_rest_reload(): taken by the service thread */
    pthread_cond_t reload_done; /* with ctx_lock: reload_next was taken */

    verso_buf out; /* response bytes, with LWS_PRE headroom */
    verso_buf body;
    verso_buf location;
    verso_buf link;
    verso_buf scratch;
    verso__param *params;
    size_t params_cap;

    verso__metrics metrics;
    struct verso__dir *dir; /* a dir server (opts.db_dir); NULL otherwise (rest/dir.h) */
};

/* prune.c: POST /_prune. */
void verso__route_prune(verso__req *rq, verso__resp *rs);

/* reload.c: swaps in the config verso_rest_reload() read. Service thread. */
void verso__reload_apply(verso_rest *srv);

/* server.c: a server that answers verso__dispatch() without listening: no
 * libwebsockets context, no thread (tests and fuzzers). opts as for
 * verso_rest_start (port, TLS and handlers unused). Free with verso_rest_stop(). */
int verso__rest_open_offline(verso_rest **out, verso_db *db, const verso_rest_options *opts,
                             char *why, size_t whylen);

/* routes.c: answers rq into rs (rs->body etc. cleared by the caller). */
void verso__dispatch(verso__req *rq, verso__resp *rs);
/* Writes {"error":{"code":..,"message":..}} and sets the status. */
void verso__error(verso__resp *rs, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The 404 for an unknown table; hints `verso track` when the file holds it
 * untracked and the caller may see the server's state. */
void verso__error_no_table(verso__resp *rs, const verso__req *rq, const char *table);
/* Answers 503 with VERSO__NOMEM_BODY (see send_response in http.c). */
void verso__error_nomem(verso__resp *rs);
/* Maps rc, just returned by a failed ORM call on srv->db, to its HTTP answer,
 * with that call's detail text (verso_db_errmsg) when it cannot leak SQL. Only
 * right after such a call: the handle keeps its last error's text, which
 * may belong to an earlier request. */
void verso__error_orm(verso__resp *rs, verso_rest *srv, int rc);
/* The same for a code that did not come from a failed ORM call on srv->db:
 * msg is the detail (NULL: the code's generic text). */
void verso__error_rc(verso__resp *rs, verso_rest *srv, int rc, const char *msg);
/* Starts / ends a request's SQLite time budget. */
void verso__budget_begin(verso_rest *srv);
void verso__budget_end(verso_rest *srv);
/* Frees the prepared statements of the server (on schema change and at stop). */
/* Reloads the ORM's schema if the file's changed since the last reload here.
 * Not inside a transaction. VERSO_EDB. */
int verso__schema_sync(verso_rest *srv);

/* rows.c: table routes. */
void verso__route_list(verso__req *rq, verso__resp *rs, const char *table);
void verso__route_create(verso__req *rq, verso__resp *rs, const char *table);
void verso__route_get(verso__req *rq, verso__resp *rs, const char *table, int64_t id);
void verso__route_update(verso__req *rq, verso__resp *rs, const char *table, int64_t id);
void verso__route_delete(verso__req *rq, verso__resp *rs, const char *table, int64_t id);
void verso__route_batch(verso__req *rq, verso__resp *rs);
/* Appends row id of table t as a JSON object, with the current schema of that
 * table (refreshed once if the file's schema changed); VERSO_ENOTFOUND.
 * *version gets its version. */
int verso__write_row_by_id(verso_buf *b, int64_t *version, verso_rest *srv, const verso_table *t,
                           int64_t id);

/* "7", W/"7" or 7 -> 7; "*" -> 0 (any); VERSO_EINVAL otherwise (rows.c). */
int verso__parse_etag(int64_t *out, const char *s);

/* blob.c: GET and PUT /<table>/<id>/<column>, the raw bytes of one value. */
void verso__route_blob_get(verso__req *rq, verso__resp *rs, const char *table, int64_t id,
                           const char *column);
void verso__route_blob_put(verso__req *rq, verso__resp *rs, const char *table, int64_t id,
                           const char *column);

/* spool.c: request bodies that go to a file instead of memory. */
typedef struct verso__spool {
    int fd; /* meaningful only while path is set */
    int64_t len;
    char *path; /* DIR/.verso-spool-<pid>-XXXXXX */
} verso__spool;
/* Whether a request's body goes to a spool file: PUT /<table>/<id>/<column>
 * (also under /db/<name>/) with a content type other than application/json,
 * and PUT /_databases/<name> with application/vnd.sqlite3. ct may be NULL. */
bool verso__spool_wanted(unsigned method, const char *path, const char *ct);
/* The directory of the spool files: the database's (a dir server's DIR). */
const char *verso__spool_dir(char *out, size_t n, const verso_rest *srv);
/* Creates the spool file in dir (s zeroed by the caller, fd -1 on failure).
 * VERSO_EFULL, VERSO_EIO, VERSO_ENOMEM. */
int verso__spool_open(verso__spool *s, const char *dir);
/* Appends n bytes: VERSO_EFULL (no space), VERSO_EIO. */
int verso__spool_write(verso__spool *s, const void *p, size_t n);
/* Closes the file, which stays, before the route reads it: the route may
 * rename it into a database, and closing a descriptor of a file drops the
 * process's POSIX locks on it, SQLite's included. */
void verso__spool_seal(verso__spool *s);
/* Closes and removes the file. s may be unopened. */
void verso__spool_close(verso__spool *s);
/* Removes the spool files in dir left by processes that no longer run. */
void verso__spool_sweep(const char *dir);
/* Tests only: when >= 0, spool writes past this many bytes in all fail as
 * on a full disk. */
extern _Atomic long long verso__spool_room;

/* query.c: the query string grammar. */
typedef struct verso__listq verso__listq;
/* Builds a query for table t from the request parameters. On failure writes the 400. */
int verso__listq_parse(verso__listq **out, const verso__req *rq, const verso_table *t,
                       verso__resp *rs);
void verso__listq_free(verso__listq *lq);
const verso_query *verso__listq_query(const verso__listq *lq);
/* Which result columns go to the client (the query may read more). */
bool verso__listq_emit(const verso__listq *lq, size_t i);
/* Appends the opaque cursor of the current row of it. */
int verso__listq_cursor(verso_buf *b, const verso__listq *lq, const verso_iter *it);
/* Appends the cursor of the key values keys[0..norder] (the order terms, then
 * the id), as verso__listq_cursor() does for a row holding them. */
int verso__listq_cursor_of(verso_buf *b, const verso__listq *lq, const verso_value *keys);
/* Appends the query string of rq without after=/offset=, percent-encoded. */
int verso__query_string_without_cursor(verso_buf *b, const verso__req *rq);
/* Looks up a parameter; NULL if absent. */
const char *verso__param_get(const verso__req *rq, const char *key);
/* Parses a whole decimal int64; VERSO_EINVAL otherwise. */
int verso__parse_i64(int64_t *out, const char *s);

/* http.c: the HTTP side of the lws callback. */
int verso__http_request(verso_rest *srv, struct lws *wsi, void *pss, const char *uri);
int verso__http_body(verso_rest *srv, struct lws *wsi, void *pss, const void *in, size_t len);
int verso__http_body_done(verso_rest *srv, struct lws *wsi, void *pss);
/* LWS_CALLBACK_TIMER: the body limit passed (408) or the drain ended (close). */
int verso__http_timer(verso_rest *srv, struct lws *wsi, void *pss);
void verso__http_conn_free(verso_rest *srv, struct lws *wsi, void *pss);
/* LWS_CALLBACK_HTTP_WRITEABLE: finishes a pending half-close. */
int verso__http_writeable(verso_rest *srv, struct lws *wsi, void *pss);
void verso__http_arm_timeout(verso_rest *srv, struct lws *wsi, void *pss);
size_t verso__http_pss_size(void);
/* Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF; NUL allowed). */
bool verso__utf8_valid(const char *s, size_t n);

/* chunked.c: the chunked transfer coding of request bodies (RFC 9112 7.1). */
typedef struct verso__chunked {
    int state; /* 0 (all-zero struct): before the first chunk size */
    int digits;
    uint64_t size; /* of the current chunk, then what is left of it */
    size_t meta;   /* extension and trailer bytes seen */
} verso__chunked;

/* Decodes the next piece of a chunked body, appending its data to body:
 * 0 (go on, or done: see verso__chunked_done), 400 (malformed), 413 (the
 * decoded body would exceed max bytes) or 500 (out of memory). Bytes after
 * the end of the body are ignored. After an error, k is not fed again. */
int verso__chunked_feed(verso__chunked *k, verso_buf *body, const void *in, size_t len, size_t max);
/* True once the whole body (last chunk, trailers, final CRLF) was read. */
bool verso__chunked_done(const verso__chunked *k);

/* ws.c */
int verso__ws_callback(struct lws *wsi, int reason, void *user, void *in, size_t len);
size_t verso__ws_pss_size(void);

#endif
