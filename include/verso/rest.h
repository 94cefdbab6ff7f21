/*
 * rest.h - the HTTP/JSON server: tracked tables as REST resources, and the
 * WebSocket mount point other modules (sync/) build on.
 *
 * The server runs on its own service thread with its own database handle
 * opened on the same file, so the application keeps writing through its own
 * handle meanwhile and the server sees those writes at once. Every network
 * and every callback of this header runs on that service thread unless a
 * function says otherwise.
 *
 * No libwebsockets type appears here: connections are the opaque verso_ws.
 */
#ifndef VERSO_REST_H
#define VERSO_REST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orm.h"
#include "verso.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct verso_rest verso_rest; /* a running server */
typedef struct verso_ws verso_ws;     /* one WebSocket connection (opaque) */

/*
 * A WebSocket endpoint mounted by another module. The client must ask for
 * `subprotocol` (Sec-WebSocket-Protocol) on `path`. If `role` is not NULL
 * the upgrade request must carry a bearer token whose role for all tables
 * grants at least what `role` grants ("read", "write", "replicate"; "admin"
 * grants everything); without configured tokens on a loopback address
 * everything is open. Any other upgrade is answered with a JSON error and
 * the connection closes: 404 where no endpoint is mounted, 401/403 from the
 * role check, 400 without the endpoint's subprotocol or for h2c. The
 * strings and arg must outlive the server.
 *
 * Callbacks run on the service thread; a negative return closes the
 * connection (on_close still runs if on_open succeeded). on_open may store
 * a per-connection pointer in *conn, handed back to the other callbacks.
 * on_message receives whole text messages, reassembled from fragments, at
 * most limits.max_ws_message bytes (bigger ones close the connection with
 * status 1009). Binary messages close the connection with 1003.
 */
typedef struct verso_ws_handler {
    const char *path;        /* "/_sync" */
    const char *subprotocol; /* "verso-sync.1" */
    const char *role;        /* access role required ("replicate"), NULL = none */
    int (*on_open)(verso_ws *ws, void **conn, void *arg);
    int (*on_message)(verso_ws *ws, void *conn, const void *data, size_t len, void *arg);
    int (*on_writeable)(verso_ws *ws, void *conn, void *arg);
    void (*on_close)(verso_ws *ws, void *conn, void *arg);
    void *arg;
} verso_ws_handler;

/* Resource limits. Zero in any field means its default. */
typedef struct verso_rest_limits {
    size_t max_body;       /* request body bytes; default 1 MiB (413 beyond) */
    size_t max_url;        /* path + query bytes; default 4096 (414 beyond) */
    int header_timeout_ms; /* time to send the request headers, and to stay idle
                              between requests; default 10000 (rounded up to whole
                              seconds); the connection is dropped */
    int max_depth;         /* JSON nesting depth; default 64 */
    int max_filters;       /* filters per query; default 32 */
    int query_budget_ms;   /* SQLite time budget per request; default 2000 (503 beyond) */
    int default_limit;     /* rows per page; default 100 */
    int max_limit;         /* largest limit= accepted; default 1000 */
    int64_t max_offset;    /* largest offset= accepted; default 10000 */
    int max_changes;       /* largest limit= of /_changes; default 10000 */
    size_t max_ws_message; /* reassembled WebSocket message; default 16 MiB */
    int body_timeout_ms;   /* time to send a whole request body once its headers are
                              in; default 30000; 408, then the connection closes.
                              Also the longest a streamed answer may wait for the
                              client to take more (the connection closes) */
    int64_t max_blob;      /* a raw body (PUT /TABLE/ID/COLUMN, a database file),
                              spooled to a file; default 1 GiB (413 beyond) */
} verso_rest_limits;

#define VERSO_REST_PORT_DEFAULT 8080
/* opts.port value meaning "any free port" (read it back with verso_rest_port()). */
#define VERSO_REST_PORT_ANY (-1)

/* One answered HTTP request (verso_rest_options.on_access). Strings borrowed for the call. */
typedef struct verso_rest_access {
    int64_t time_ms;    /* when it was answered (Unix ms) */
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* the path only: the query (which may hold values) is left out */
    int status;
    size_t bytes;       /* body bytes sent */
    double duration_s;  /* from the request's headers to the answer written */
    const char *remote; /* the peer's address ("" if unknown) */
    const char *role;   /* the role of the bearer token, "invalid" for an unknown one,
                           NULL without one; never the token itself */
} verso_rest_access;

/*
 * Server options. Initialise with VERSO_REST_OPTIONS_INIT.
 *
 * Access: tokens come from the config file (format in docs/rest.md):
 *     # comment
 *     host 127.0.0.1
 *     port 8080
 *     tls-cert /path/cert.pem
 *     tls-key  /path/key.pem
 *     max-body 1048576          (and the other limits, dashed names)
 *     token <sha256-hex of the token> <role> [db=<name>] [<table>]
 *     client-token <token>      (read by the sync clients; ignored here)
 *     cors-origin <origin>      (one per line; see cors_origins)
 * role is one of read, write, replicate, admin; without a table the role
 * applies to every table and to the server's own routes; with db=<name> only
 * to that database's routes on a dir server. Only SHA-256 hashes
 * are stored; comparisons are constant-time. Values given in these options
 * win over the file (host != NULL, port >= 0, tls paths != NULL, limits != 0).
 */
typedef struct verso_rest_options {
    unsigned version;        /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    const char *host;        /* bind address; NULL = config or "127.0.0.1"; a host name
                                is bound as its first address, IPv4 first */
    int port;                /* 0 = the config file's, else VERSO_REST_PORT_DEFAULT;
                                VERSO_REST_PORT_ANY = a free port (see verso_rest_port);
                                above 65535 or below -1: VERSO_EINVAL */
    const char *db_path;     /* database file; NULL = verso_db_path(db) */
    const char *config_path; /* config/tokens file; NULL = none */
    const char *tls_cert;    /* PEM certificate path; with tls_key enables HTTPS */
    const char *tls_key;     /* PEM private key path */
    verso_rest_limits limits;

    /* WebSocket endpoints mounted by other modules (copied at start;
     * the strings and arg must outlive the server). */
    const verso_ws_handler *ws_handlers;
    size_t nws_handlers;

    /* Run on the service thread every tick_ms (<= 0: only on wake) and soon
     * after each verso_rest_wake(). */
    void (*on_tick)(verso_rest *srv, void *arg);
    void *tick_arg;
    int tick_ms;

    /* Appends members (`"key":value` pairs, comma-separated, no braces and
     * no leading comma) merged into the objects of GET /_status and
     * GET /_info. Service thread. */
    int (*status_json)(verso_buf *out, void *arg);
    void *status_arg;

    /* Appends Prometheus text lines to GET /_metrics. Service thread. */
    int (*metrics_text)(verso_buf *out, void *arg);
    void *metrics_arg;

    /* Also run on_tick soon after any process writes the database file
     * (a commit, a checkpoint): within a millisecond or so where the
     * system reports file changes (Linux inotify), and again a few times
     * over the next milliseconds, since a commit becomes visible a moment
     * after its last write. Elsewhere, on network file systems or when
     * inotify's limits are exhausted, only tick_ms applies: keep it short
     * enough to be the fallback. GET /_metrics says which applies
     * (verso_commit_watch 1 or 0). Default false. */
    bool tick_on_change;

    /* Told on the service thread when a write fails because the disk is
     * full (full = true: once, not for each refused request; such writes
     * are answered 507) and when a write succeeds again (full = false).
     * Reads go on meanwhile. NULL = not told. */
    void (*on_disk_full)(verso_rest *srv, bool full, void *arg);
    void *disk_full_arg;

    /* CORS: the origins browsers may call the server from, exactly as a
     * browser sends them ("https://app.example.com", "http://localhost:3000"),
     * or "*" for any. Given here, they replace the config file's cors-origin
     * lines; none (the default) means no CORS headers at all. A malformed
     * origin (a path, a final slash) is VERSO_EINVAL. Copied at start. */
    const char *const *cors_origins;
    size_t ncors_origins;

    /* Told of each HTTP request once its answer is written (WebSocket
     * messages are not requests), on the service thread: for an access
     * log. NULL = not told. */
    void (*on_access)(const verso_rest_access *a, void *arg);
    void *access_arg;

    /* A server of many databases (verso serve --dir): every verso database
     * DIR/<name>.db is served under /db/<name>/ with every route of a
     * one-database server (and /db/<name>/_sync for live slaves); db and
     * db_path are then NULL. Names are 1 to 64 letters, digits, '_' or '-',
     * starting with a letter or digit. At most max_open databases are open
     * at once (0 = 128); one unused for idle_close_ms (0 = 60000) is closed,
     * and reopened by its next request. See docs/databases.md. */
    const char *db_dir;
    int max_open;
    int idle_close_ms;
} verso_rest_options;

#define VERSO_REST_OPTIONS_INIT                                                                    \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

/*
 * Starts a server for the database file of db (or opts->db_path; db may then
 * be NULL), or for every database of the directory opts->db_dir (db and
 * db_path NULL), listening on opts->host:opts->port, on a new service thread.
 * The server opens its own handles on the file; db is only read for its
 * path during the call. *out receives the server, to stop with
 * verso_rest_stop().
 *
 * Refuses to start (VERSO_EAUTH) when the bind address is not a loopback
 * address and no token is configured. why (may be NULL) receives a
 * one-line reason on failure (NUL-terminated, truncated to whylen); a bad
 * config file line is named as "PATH:LINE: reason".
 * Errors: VERSO_EINVAL (bad options or config file), VERSO_EAUTH,
 * VERSO_ENET (cannot listen, TLS files unusable), VERSO_EDB, VERSO_ENOMEM.
 */
VERSO_API int verso_rest_start(verso_rest **out, verso_db *db, const verso_rest_options *opts,
                               char *why, size_t whylen);

/* Stops the service thread, closes every connection and frees the server.
 * Not from the service thread. NULL is a no-op. */
VERSO_API void verso_rest_stop(verso_rest *srv);

/* The port the server listens on (the real one when 0 was asked). Any thread. */
VERSO_API int verso_rest_port(const verso_rest *srv);

/* The address the server is bound to (borrowed for the life of srv). Any thread. */
VERSO_API const char *verso_rest_host(const verso_rest *srv);

/* True when the server serves HTTPS. Any thread. */
VERSO_API bool verso_rest_tls(const verso_rest *srv);

/* Any thread, until verso_rest_stop() is called: makes the service thread run
 * on_tick soon. Several wakes before on_tick runs give one call. NULL: no-op. */
VERSO_API void verso_rest_wake(verso_rest *srv);

/* Service thread only: makes the service thread run on_tick once more in
 * about ms milliseconds (besides its tick_ms period), for work that waits
 * on something that raises no event. A call replaces the one pending.
 * No-op without on_tick or for NULL. */
VERSO_API void verso_rest_wake_after(verso_rest *srv, int ms);

/* The server's own database handle (service thread only; borrowed); NULL
 * for a server of a directory (opts.db_dir). */
VERSO_API verso_db *verso_rest_db(verso_rest *srv);

/*
 * Sends one text message. Only from on_writeable, on the service thread.
 * The data is copied (with the headroom libwebsockets needs); what the
 * socket does not take at once is buffered and sent before the next
 * on_writeable. Returns 0, VERSO_EINVAL, VERSO_ENOMEM or VERSO_ENET.
 */
VERSO_API int verso_ws_write(verso_ws *ws, const void *data, size_t len);

/* True when the send pipe is full: stop writing until the next on_writeable. */
VERSO_API bool verso_ws_choked(verso_ws *ws);

/* Asks for an on_writeable callback. Service thread only. */
VERSO_API void verso_ws_want_write(verso_ws *ws);

/* The server a connection belongs to. */
VERSO_API verso_rest *verso_ws_server(verso_ws *ws);

/* Closes the connection (status 1000) from the service thread, soon after the
 * current callback; on_close follows. */
VERSO_API void verso_ws_close(verso_ws *ws);

/*
 * Reads the config file of opts.config_path again and applies its tokens,
 * roles and limits to the running server, between two requests: no
 * connection is dropped, open WebSockets and keep-alive connections go on,
 * and the next request is checked against the new tokens. What was bound at
 * start stays: host, port, TLS files and header-timeout-ms (restart for
 * those). Any thread but the service thread, until verso_rest_stop();
 * returns once the service thread has the new config (at most about 5 s).
 *
 * On failure the server keeps its config unchanged and why (may be NULL)
 * receives a one-line reason naming the file (and its line for a bad line).
 * A file left without any token line, when the server had tokens, is
 * refused too (it would open the server to everyone). Errors: VERSO_EINVAL
 * (no config file, unreadable, bad line, no token), VERSO_ENOMEM,
 * VERSO_ESTATE (the service thread did not answer).
 */
VERSO_API int verso_rest_reload(verso_rest *srv, char *why, size_t whylen);

#ifdef __cplusplus
}
#endif

#endif
