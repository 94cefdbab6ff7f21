/*
 * sync.h - master/slave replication of tracked tables.
 *
 * A slave follows a master's tracked tables, keeping the master's ids and
 * versions, either on demand (verso_sync_pull: HTTP GET /_changes) or in
 * real time (verso_slave_start: a WebSocket on the master's /_sync path,
 * subprotocol "verso-sync.1"). The wire protocol is in docs/protocol.md.
 *
 * Guarantees (docs/replication.md):
 *  - the slave stores its cursor (master identity + last applied version)
 *    in the same transaction as the data it applies;
 *  - a slave commits only at a master snapshot boundary, so its readers
 *    only ever see states the master had;
 *  - a slave whose cursor is tied to another master identity, is ahead of
 *    the master's head or behind its horizon resynchronises fully, in one
 *    transaction (readers see the old state until the new one is complete);
 *    a connected live slave is told so as soon as the master's database
 *    changes identity (a cascaded master that resynchronised) or its head
 *    drops below the slave's cursor (a restored file);
 *  - the master reads each slave's changes from that slave's own cursor,
 *    never holds a database lock across a network wait, and a slow slave
 *    only lags;
 *  - a replica never destroys what it does not own: objects of the slave's
 *    database that are not replicated (the user's tables, views, indexes,
 *    triggers) are never touched; a file snapshot is installed only into a
 *    database that has none, and a master table whose name one of them has
 *    is refused unless the caller opts in (verso_sync_client.replace_tables);
 *  - what the master reports is true: a slave is at lag 0 only when it
 *    acknowledged the head of the master's current identity.
 *
 * URLs are a master's base URL: "http://host:port" or "https://host:port"
 * (an optional path prefix is kept). The access token, when the master
 * requires one, is sent as "Authorization: Bearer <token>"; it needs the
 * "replicate" role (pull and live alike).
 */
#ifndef VERSO_SYNC_H
#define VERSO_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orm.h"
#include "rest.h"
#include "verso.h"

#ifdef __cplusplus
extern "C" {
#endif

#define VERSO_SYNC_SUBPROTOCOL "verso-sync.1"
#define VERSO_SYNC_PATH        "/_sync"

/*
 * A BLOB longer than this many bytes (256 KiB) does not travel inline in
 * the change stream (/_changes, the live batches): it is the tagged value
 * {"blob_fetch":N} and the slave fetches its bytes with
 * GET <table>/<id>/<column>?version=V, applied in the same transaction as
 * the row (docs/protocol.md).
 */
#define VERSO_SYNC_BLOB_INLINE (256 * 1024)

/* ---------------------------------------------------------------------
 * What a slave applied
 * ------------------------------------------------------------------ */

/*
 * One applied change. kind is VERSO_CHANGE_INSERT (the row did not exist
 * on the slave), VERSO_CHANGE_UPDATE or VERSO_CHANGE_DELETE. For inserts
 * and updates columns/values hold the master's row (all columns, id and
 * version included); for deletes ncolumns is 0. Everything is borrowed for
 * the duration of the callback. A blob longer than VERSO_SYNC_BLOB_INLINE
 * (fetched apart from the stream, written straight into the database) is
 * shown as a VERSO_BLOB value with data (u.b.p) NULL and u.b.n its length:
 * read the bytes from the slave's database if needed.
 */
typedef struct verso_sync_change {
    verso_change_kind kind;
    const char *table;
    int64_t id;
    int64_t version;
    size_t ncolumns;
    const char *const *columns;
    const verso_value *values;
} verso_sync_change;

/*
 * Called after each committed slave transaction (one or more whole master
 * transactions) with its changes in version order; cursor is the master
 * version the slave now equals. reset is true when the transaction was a
 * full resynchronisation (changes then lists every row received, and rows
 * that disappeared are not reported one by one) or a bootstrap from a file
 * snapshot (then n is 0 and changes NULL: reload everything). Runs on the applying
 * thread (the caller of verso_sync_pull, or the live slave's thread); it
 * must not call verso_slave_stop().
 */
typedef void (*verso_sync_apply_fn)(const verso_sync_change *changes, size_t n, int64_t cursor,
                                    bool reset, void *arg);

/* What a pull or a live slave is doing (verso_sync_progress, verso_slave_state). */
typedef enum verso_sync_phase {
    VERSO_PHASE_CONNECTING, /* nothing received yet (live: the link is not up) */
    VERSO_PHASE_SNAPSHOT,   /* receiving a file snapshot (snapshot_bytes of snapshot_total) */
    VERSO_PHASE_CATCHUP,    /* applying rows from catchup_from towards catchup_target */
    VERSO_PHASE_LIVE,       /* live slave: caught up, each master commit applied as it comes */
} verso_sync_phase;

/* "connecting", "snapshot", "catch-up", "live"; "?" for other values. */
VERSO_API const char *verso_sync_phase_name(verso_sync_phase phase);

/* Progress of a pull or of a live slave's catch-up. */
typedef struct verso_sync_progress {
    int64_t rows;        /* changes received in this run */
    int64_t cursor;      /* last committed master version */
    int64_t master_head; /* the master's head as last seen */
    int64_t elapsed_ms;  /* since the run started */
    verso_sync_phase phase;
    int64_t snapshot_bytes; /* snapshot: bytes received so far (the file, not base64) */
    int64_t snapshot_total; /* snapshot: the file's size as the master announced it; 0 unknown */
    int64_t snapshot_rows;  /* rows the installed snapshot brought (0 before or without one) */
    int64_t catchup_from;   /* catch-up: the cursor it started from */
    int64_t catchup_target; /* catch-up: the master head it goes to (pull: the head at start) */
    int64_t received;       /* the master version received and applied in the open
                               transaction (>= cursor; a full read commits only at its end) */
} verso_sync_progress;

/* Called on the applying thread about every 200 ms while changes or
 * snapshot chunks arrive (pull and live), at each change of phase, and once
 * at the end of a pull. */
typedef void (*verso_sync_progress_fn)(const verso_sync_progress *p, void *arg);

/* Options shared by pull and live slaves. Initialise with VERSO_SYNC_CLIENT_INIT. */
typedef struct verso_sync_client {
    unsigned version;          /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    const char *token;         /* bearer token; NULL = none */
    const char *const *tables; /* tables to follow; NULL = every table of the master */
    size_t ntables;
    int chunk;      /* pull: changes per request; 0 = 10000 (a live master sets its own) */
    int timeout_ms; /* pull: response timeout; 0 = 10000 (live links use heartbeats) */
    bool insecure;  /* https: accept self-signed / mismatched certificates */
    verso_sync_apply_fn on_apply;
    void *apply_arg;
    verso_sync_progress_fn on_progress;
    void *progress_arg;
    /* A master table whose name an untracked object of the slave's
     * database already has (a plain table, view, index or trigger of the
     * user's; names compared ignoring case) is refused with VERSO_ESCHEMA,
     * and nothing is applied. true replaces that object by the replica
     * (dropped in the apply transaction). Default false. */
    bool replace_tables;
    /* Pull: asked between requests and network events (about every 20 ms
     * while waiting); a true answer ends the pull with VERSO_EINTERRUPTED,
     * nothing of the open transaction committed. Runs on the pulling
     * thread. NULL = never. */
    bool (*should_stop)(void *arg);
    void *stop_arg;
} verso_sync_client;

#define VERSO_SYNC_CLIENT_INIT                                                                     \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

/* ---------------------------------------------------------------------
 * Pull (on demand)
 * ------------------------------------------------------------------ */

typedef struct verso_pull_result {
    int64_t rows;          /* changes applied */
    int64_t cursor;        /* the slave's cursor at the end (master version) */
    int64_t master_head;   /* the master's head when the pull started */
    bool resynced;         /* a full resynchronisation took place */
    bool snapshot;         /* db (with nothing of its own) was bootstrapped from a file snapshot */
    char master[37];       /* the master's identity */
    int64_t snapshot_rows; /* rows the file snapshot brought (not counted in rows) */
} verso_pull_result;

/*
 * Brings db up to (at least) the master's head as it was when the call
 * started: reads GET /_info, decides whether a full resynchronisation is
 * needed, then reads GET /_changes in chunks and applies them; each answer
 * must say it continues from the cursor asked for (else VERSO_EPROTO). A
 * db with nothing of its own (no table, view, index or trigger but
 * verso's metadata, no cursor) and no table filter is first bootstrapped
 * from a file snapshot of the master over /_sync when the master offers
 * it: pages, not rows. Commits happen only at snapshot boundaries (each
 * commit stores the cursor), so a crash or error leaves db at its previous
 * consistent state. Replicated tables are created from the master's
 * schema, or checked against it (VERSO_ESCHEMA, detail in
 * verso_db_errmsg(db)). Objects of db the master does not have are never
 * touched; a master table whose name an untracked object of db has (any
 * case) is refused with VERSO_ESCHEMA and nothing applied, unless
 * opts->replace_tables. A table tracked in db (declared as a C struct or
 * with verso_db_track()) that the master also has becomes its replica: rows
 * written there before are removed (see verso_apply_table()).
 *
 * db is used by the calling thread only during the call and must not be
 * inside a transaction. out (may be NULL) receives the result. why (may be
 * NULL) receives a one-line reason on failure.
 * Errors: VERSO_EINVAL (bad URL), VERSO_ENET (cannot connect), VERSO_ETIMEOUT,
 * VERSO_EAUTH (401/403), VERSO_EPROTO (unexpected answer), VERSO_ESCHEMA,
 * VERSO_EDB, VERSO_ENOMEM, VERSO_EFULL (the slave's disk is full: free
 * space and pull again), VERSO_EINTERRUPTED (opts->should_stop said so).
 */
VERSO_API int verso_sync_pull(verso_pull_result *out, verso_db *db, const char *url,
                              const verso_sync_client *opts, char *why, size_t whylen);

/* ---------------------------------------------------------------------
 * Live slave (real time, its own thread)
 * ------------------------------------------------------------------ */

typedef struct verso_slave verso_slave;
struct verso_slave_event;

typedef struct verso_slave_options {
    unsigned version; /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    verso_sync_client client;
    verso_db_options db;    /* how the slave opens its database (C tables to check, ...) */
    int heartbeat_ms;       /* idle heartbeat period, capped by the master's (from its hello);
                               the link is dropped after 3 master periods of silence; 0 = 5000 */
    int retry_min_ms;       /* first reconnect delay; 0 = 100 */
    int retry_max_ms;       /* reconnect delay cap (doubling with jitter); 0 = 5000 */
    int connect_timeout_ms; /* deadline of each step before the link is live: TCP (and TLS)
                               connection, WebSocket upgrade, the master's hello; a step that
                               takes longer ends the attempt; 0 = 3 heartbeat_ms */
    const char *name;       /* the name the master lists this slave under (its /_status and
                               /_metrics); at most 63 bytes are kept; NULL or "" = host:pid */
    /* Told of each event of the slave's life (verso_slave_event), on the
     * slave's thread; it must not call verso_slave_stop(). NULL = none. */
    void (*on_event)(const struct verso_slave_event *e, void *arg);
    void *event_arg;
} verso_slave_options;

/* What happened to a live slave (verso_slave_options.on_event). */
typedef enum verso_slave_event_kind {
    VERSO_EVENT_CONNECTED,    /* subscribed: the link is up (detail: the master's identity) */
    VERSO_EVENT_BOOTSTRAPPED, /* a file snapshot is installed (rows: the rows it brought) */
    VERSO_EVENT_CAUGHT_UP,    /* the cursor reached the master's head (rows: applied since
                                 start) */
    VERSO_EVENT_RESYNC,       /* a full resynchronisation starts (detail: why) */
    VERSO_EVENT_DISCONNECTED, /* a link that was up ended (detail: why) */
} verso_slave_event_kind;

typedef struct verso_slave_event {
    verso_slave_event_kind kind;
    const char *detail;  /* a few words, borrowed for the call; "" when none */
    int64_t cursor;      /* the slave's cursor */
    int64_t master_head; /* the master's head as last seen */
    int64_t rows;        /* see the kinds */
} verso_slave_event;

/* "connected", "bootstrapped", "caught up", "resync", "disconnected"; "?" otherwise. */
VERSO_API const char *verso_slave_event_name(verso_slave_event_kind kind);

#define VERSO_SLAVE_OPTIONS_INIT                                                                   \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION, .client = VERSO_SYNC_CLIENT_INIT,                        \
        .db = VERSO_DB_OPTIONS_INIT                                                                \
    }

/*
 * Starts a live slave of the master at url on the database file db_path
 * (created if missing unless opts->db.must_exist), on a new thread
 * with its own database handle. It connects, catches up from its cursor
 * (resynchronising when needed; a database with nothing of its own and no
 * table filter is bootstrapped from a file snapshot of the master), then
 * applies each master commit as it arrives; after any failure it
 * reconnects by itself with backoff and resumes. The database's own
 * objects are left alone as with verso_sync_pull(); a refused name
 * collision shows in last_error and is retried with backoff. opts may be
 * NULL. *out receives the slave, to stop with
 * verso_slave_stop(). Errors: VERSO_EINVAL (bad URL), VERSO_EDB /
 * VERSO_ESCHEMA (cannot open db_path; detail in why), VERSO_ENOMEM.
 */
VERSO_API int verso_slave_start(verso_slave **out, const char *db_path, const char *url,
                                const verso_slave_options *opts, char *why, size_t whylen);

/* Stops the thread (an open apply transaction is rolled back), closes the
 * database and frees the slave. Any thread but the slave's. NULL is a no-op. */
VERSO_API void verso_slave_stop(verso_slave *s);

/* Where a live slave's link to its master is. Each step but WAITING has a
 * deadline of its own (verso_slave_options); whatever ends a link leads to
 * WAITING, then to a new attempt after the backoff. */
typedef enum verso_slave_link {
    VERSO_LINK_WAITING,    /* no connection; the next attempt is due after the backoff */
    VERSO_LINK_CONNECTING, /* TCP (and TLS) connection in progress */
    VERSO_LINK_UPGRADING,  /* connected; the WebSocket upgrade is sent, its answer awaited */
    VERSO_LINK_HELLO,      /* WebSocket up; the master's hello awaited, then our subscription */
    VERSO_LINK_LIVE,       /* subscribed: changes and heartbeats flow */
} verso_slave_link;

/* "waiting", "connecting", "upgrading", "hello", "live"; "?" for other values. */
VERSO_API const char *verso_slave_link_name(verso_slave_link link);

typedef struct verso_slave_state {
    bool connected;         /* a subscribed WebSocket is up (link is VERSO_LINK_LIVE) */
    int64_t cursor;         /* last committed master version */
    int64_t master_head;    /* the master's head as last seen */
    int64_t lag_versions;   /* master_head - cursor (>= 0) */
    int64_t lag_ms;         /* how long the slave has been behind; 0 when caught up */
    int64_t applied_rows;   /* changes applied since start */
    int64_t commits;        /* slave transactions committed since start */
    int64_t resyncs;        /* full resynchronisations since start */
    int64_t reconnects;     /* connections made after the first */
    char master[37];        /* the master the cursor belongs to ("" before the first commit) */
    char last_error[128];   /* the last failure ("" if none) */
    verso_slave_link link;  /* where the link is now */
    int64_t attempts;       /* connection attempts since start */
    int64_t retry_in_ms;    /* link WAITING: time left until the next attempt, else 0 */
    verso_sync_phase phase; /* what the slave is doing (CONNECTING while the link is not live) */
    int64_t snapshot_bytes; /* the file snapshot being received: bytes so far */
    int64_t snapshot_total; /* its size as announced; 0 when none is being received */
    int64_t snapshot_rows;  /* rows the last installed snapshot brought (not in applied_rows) */
    int64_t catchup_from;   /* the cursor the current catch-up started from */
    int64_t catchup_target; /* the master head it aims at (raised as the head moves) */
    int64_t received;       /* the master version received so far (>= cursor: the open
                               transaction holds the rest) */
} verso_slave_state;

/* Copies the slave's state. Any thread. */
VERSO_API int verso_slave_state_get(verso_slave_state *out, verso_slave *s);

/*
 * Shows the slave's own upstream state in a REST server's GET /_status (an
 * "upstream" object: name, connected, link, master, cursor, master_head,
 * lag_versions, lag_seconds, reconnects, resyncs, attempts, applied_rows,
 * last_error) and GET /_metrics (verso_upstream_* lines), for a slave that
 * also serves its database (cascade). Chains status_json and metrics_text
 * as verso_sync_master_mount() does: call it before verso_rest_start();
 * s must outlive the server. Errors: VERSO_EINVAL (NULL, or mounted before).
 */
VERSO_API int verso_slave_mount(verso_slave *s, verso_rest_options *ro);

/*
 * Read-your-writes: waits until the slave has committed master version
 * `version` (or more), at most timeout_ms; the on_apply callback of that
 * slave transaction has run by then. 0 once it has, VERSO_ETIMEOUT
 * otherwise. Versions are those of the master the slave follows now (after
 * a resynchronisation to a recreated master they start again). Any thread.
 */
VERSO_API int verso_slave_wait(verso_slave *s, int64_t version, int timeout_ms);

/* ---------------------------------------------------------------------
 * Master (mounted into a REST server)
 * ------------------------------------------------------------------ */

typedef struct verso_sync_master verso_sync_master;

typedef struct verso_sync_master_options {
    unsigned version; /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    int chunk;        /* changes per message; 0 = 5000 */
    int heartbeat_ms; /* heartbeat period; silent slaves are dropped after 3; 0 = 5000 */
    int poll_ms;      /* fallback check for other processes' commits, which are otherwise
                         seen through file events (Linux inotify) within a millisecond or
                         so; this period alone applies where those are unavailable (network
                         file systems, inotify limits exhausted); 0 = 250 */
    /* The ring of recent commits, each read and encoded once and sent to every slave at that
     * point (docs/protocol.md): at most this many commits and bytes; 0 = 4096, 64 MiB. A slave
     * further behind reads on its own until it reaches the ring. */
    int ring_segments;
    int64_t ring_bytes;
} verso_sync_master_options;

#define VERSO_SYNC_MASTER_OPTIONS_INIT                                                             \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

/*
 * Creates the replication endpoint for the database file db_path (it opens
 * its own read handle, used on the REST service thread only). Mount it into
 * a server with verso_sync_master_mount() before verso_rest_start(). opts
 * may be NULL. Release with verso_sync_master_close() after verso_rest_stop().
 * Errors: VERSO_EINVAL, VERSO_EDB (detail in why), VERSO_ENOMEM.
 */
VERSO_API int verso_sync_master_new(verso_sync_master **out, const char *db_path,
                                    const verso_sync_master_options *opts, char *why,
                                    size_t whylen);

/*
 * Adds the replication endpoint to ro: the /_sync WebSocket (role
 * "replicate") after the endpoints ro already has, and on_tick,
 * status_json and metrics_text that call the ones ro held before and then
 * the master's (the earlier on_tick runs at every tick, which comes at
 * least as often as it asked); tick_ms becomes the smaller of both and
 * tick_on_change is set. Call it once per master, before
 * verso_rest_start(); m must outlive the server.
 * Errors: VERSO_EINVAL (mounted before), VERSO_ENOMEM (ro unchanged).
 */
VERSO_API int verso_sync_master_mount(verso_sync_master *m, verso_rest_options *ro);

/*
 * Pushes commits made through db (an application handle on the same file)
 * at once, without waiting for the file event (or, where there is none,
 * the next poll): registers a commit hook on db.
 * Optional. Call verso_sync_master_unwatch() before stopping the server,
 * closing db or freeing m (the hook wakes the server).
 */
VERSO_API int verso_sync_master_watch(verso_sync_master *m, verso_db *db);
VERSO_API int verso_sync_master_unwatch(verso_sync_master *m, verso_db *db);

/* One connected slave as the master sees it. */
typedef struct verso_sync_peer {
    char name[64];        /* the name the slave gave (host:pid by default) */
    int64_t cursor;       /* version sent up to */
    int64_t acked;        /* version the slave acknowledged as committed for the master's
                             current identity (its subscription's cursor counts); -1 before
                             any (an empty, bootstrapping or resynchronising slave) */
    int64_t lag_versions; /* master head - acked: 0 only when the slave holds the head */
    int64_t lag_ms;       /* how long the slave has been behind; 0 when caught up */
    int64_t sent_rows;    /* changes sent on this connection */
    int64_t connected_ms; /* connection time (Unix ms) */
} verso_sync_peer;

/*
 * Copies the list of subscribed slaves into *out (release with
 * verso_free(); NULL when n is 0). Any thread.
 */
VERSO_API int verso_sync_master_peers(verso_sync_peer **out, size_t *n, verso_sync_master *m);

/* Frees the master. The server it was mounted in must be stopped. NULL is a no-op. */
VERSO_API void verso_sync_master_close(verso_sync_master *m);

/* ---------------------------------------------------------------------
 * Every database of a server (verso serve --dir): one directory of replicas
 * ------------------------------------------------------------------ */

#define VERSO_DATABASES_SUBPROTOCOL "verso-databases.1"
#define VERSO_DATABASES_PATH        "/_databases"

typedef struct verso_sync_all verso_sync_all;

/* What happened to a --all slave (verso_sync_all_options.on_event). */
typedef enum verso_sync_all_event_kind {
    VERSO_ALL_CONNECTED,    /* the events link is up and listed the databases (rows: how many) */
    VERSO_ALL_DISCONNECTED, /* the events link ended (detail: why); it reconnects with backoff */
    VERSO_ALL_CREATED,      /* a new database was copied and renamed into the directory (rows:
                               the changes or snapshot rows it brought) */
    VERSO_ALL_PULLED,       /* a database caught up (rows: changes applied) */
    VERSO_ALL_REMOVED,      /* deleted on the master: its file is removed from the directory */
    VERSO_ALL_KEPT,         /* deleted on the master, its file kept and no longer followed
                               (keep_deleted, or a file that is not a replica; detail: which) */
    VERSO_ALL_FAILED,       /* a database's pull failed (detail: why); retried with backoff
                               (rows: milliseconds until the retry) */
    VERSO_ALL_IGNORED,      /* the master listed a name that fails the naming rule (name: the
                               name made printable and cut; detail: the rule); never a path */
    VERSO_ALL_ERROR,        /* the events link failed (detail: why), e.g. a malformed message */
} verso_sync_all_event_kind;

typedef struct verso_sync_all_event {
    verso_sync_all_event_kind kind;
    const char *name;    /* the database; "" for the link's events. Borrowed for the call */
    const char *detail;  /* a few words; "" when none. Borrowed for the call */
    int64_t cursor;      /* the local copy's cursor */
    int64_t master_head; /* the head the master announced */
    int64_t rows;        /* see the kinds */
} verso_sync_all_event;

/* "connected", "disconnected", "created", "pulled", "removed", "kept", "failed", "ignored",
 * "error"; "?" otherwise. */
VERSO_API const char *verso_sync_all_event_name(verso_sync_all_event_kind kind);

typedef struct verso_sync_all_options {
    unsigned version;         /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    verso_sync_client client; /* token, insecure, chunk, timeout_ms, replace_tables of every
                                 pull; tables, on_apply, on_progress, should_stop are ignored */
    int workers;              /* pulls at a time (connections besides the events link);
                                 0 = 2; at most 64 */
    bool keep_deleted;        /* a database deleted on the master stays in the directory */
    int retry_min_ms;         /* first retry delay, of the link and of a failed database; 0 = 100 */
    int retry_max_ms;         /* retry delay cap (doubling with jitter); 0 = 5000 */
    int silence_ms;           /* events link: nothing heard for this long ends it; 0 = 15000 */
    int connect_timeout_ms;   /* events link: connection, upgrade and first list; 0 = 10000 */
    size_t max_message;       /* events link: a longer message is refused; 0 = 16 MiB */
    /* Told of each event, on one of the slave's threads, one call at a time; it must not
     * call verso_sync_all_stop(). NULL = none. */
    void (*on_event)(const verso_sync_all_event *e, void *arg);
    void *event_arg;
} verso_sync_all_options;

#define VERSO_SYNC_ALL_OPTIONS_INIT                                                                \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION, .client = VERSO_SYNC_CLIENT_INIT                         \
    }

/*
 * Follows every database of the server at url (its base URL; the server
 * is a `verso serve --dir`) into the directory dir (created if missing,
 * one level): the database <name> is the file dir/<name>.db, with its own
 * cursor, brought up to date by verso_sync_pull() from url/db/<name>.
 * One WebSocket to url/_databases (subprotocol VERSO_DATABASES_SUBPROTOCOL)
 * hears the list and each new head, and at most opts->workers pulls run at
 * a time: at most workers + 1 connections to the server. A new database is
 * copied into dir/.verso-new-<name>.db and renamed to dir/<name>.db once
 * complete and closed (never over an existing file). A database deleted
 * on the master is removed (the file, -wal, -shm, -journal) when the file
 * is a replica (it has a cursor), unless opts->keep_deleted; either way it
 * is no longer followed. A name that fails the rule of database names (1
 * to 64 ASCII letters, digits, '_' or '-', the first a letter or digit) is
 * ignored, never used as a path. The link reconnects after any failure
 * with backoff; the full list it hears at each connection reconciles dir
 * (missing: deleted; announced head or identity unlike the copy's: pull).
 * A database whose pull fails is retried with its own backoff, the
 * others go on; its error shows in verso_sync_all_databases().
 * Files of dir are read at start: copies already there resume from their
 * cursors. opts may be NULL. *out receives the slave, to stop with
 * verso_sync_all_stop(). Errors: VERSO_EINVAL (bad URL, workers),
 * VERSO_EIO (dir is not a directory and cannot be made one; why),
 * VERSO_ENOMEM.
 */
VERSO_API int verso_sync_all_start(verso_sync_all **out, const char *dir, const char *url,
                                   const verso_sync_all_options *opts, char *why, size_t whylen);

/* Stops the threads (running pulls are interrupted, nothing of their open transactions
 * kept) and frees the slave. Any thread but the slave's. NULL is a no-op. */
VERSO_API void verso_sync_all_stop(verso_sync_all *a);

typedef struct verso_sync_all_state {
    bool connected;       /* the events link is up and has listed the databases */
    int64_t databases;    /* databases the master lists (with valid names) */
    int64_t in_sync;      /* of those, copies at the identity and head last announced */
    int64_t errors;       /* of those, whose last pull failed */
    int64_t pulling;      /* pulls running now */
    int64_t pulls;        /* pulls done since start (successful) */
    int64_t created;      /* databases copied in since start */
    int64_t removed;      /* databases removed since start */
    int64_t ignored;      /* names refused since start */
    int64_t reconnects;   /* events links made after the first */
    char last_error[128]; /* the events link's last failure ("" if none) */
} verso_sync_all_state;

/* Copies the state. Any thread. Errors: VERSO_EINVAL (NULL). */
VERSO_API int verso_sync_all_state_get(verso_sync_all_state *out, verso_sync_all *a);

/* One followed database. */
typedef struct verso_sync_all_db {
    char name[65];
    char identity[37];    /* the master's, as announced */
    int64_t master_head;  /* the master's head, as announced */
    char master[37];      /* the identity the local copy's cursor belongs to ("" none) */
    int64_t cursor;       /* the local copy's cursor */
    bool in_sync;         /* cursor and master are the announced head and identity */
    bool pulling;         /* a pull runs now */
    int64_t failures;     /* consecutive failed pulls (0 after a good one) */
    char last_error[128]; /* the last failure ("" after a good pull) */
} verso_sync_all_db;

/* Copies the databases the master lists, sorted by name, into *out (free
 * with verso_free(); NULL when *n is 0). Any thread. VERSO_ENOMEM. */
VERSO_API int verso_sync_all_databases(verso_sync_all_db **out, size_t *n, verso_sync_all *a);

#ifdef __cplusplus
}
#endif

#endif
