/* internal.h - shared pieces of sync/: URLs, the slave-side applier, the HTTP and WebSocket
 * clients, the slave side's messages. */
#ifndef VERSO_SYNC_INTERNAL_H
#define VERSO_SYNC_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "verso/sync.h"
#include "verso/verso.h"
#include "orm/alloc.h"

struct cJSON;

/* ---- URLs ---- */

typedef struct verso__sync_url {
    bool tls;
    char host[256];
    int port;
    char prefix[256]; /* path prefix without trailing '/', "" for none */
} verso__sync_url;

/* Parses "http[s]://host[:port][/prefix]". VERSO_EINVAL. */
int verso__sync_url_parse(verso__sync_url *out, const char *url);

/* Appends "name=value" with percent-encoding of value. */
int verso__sync_query_append(verso_buf *b, const char *name, const char *value);

/* ---- JSON helpers over verso_json documents ---- */

/* Exact integer member `name` of obj; VERSO_EPROTO if missing or not an integer. */
int verso__sync_json_get_i64(int64_t *out, const struct cJSON *obj, const char *name);
/* Boolean member (missing = false). */
bool verso__sync_json_get_bool(const struct cJSON *obj, const char *name);
/* String member or NULL. */
const char *verso__sync_json_get_str(const struct cJSON *obj, const char *name);

/* ---- The master's schema, as announced in /_info or a schema message ---- */

typedef struct verso__sync_schema_table {
    char *name;
    verso_column *columns; /* names owned by the table */
    size_t ncolumns;
} verso__sync_schema_table;

typedef struct verso__sync_schema {
    verso__sync_schema_table *tables;
    size_t ntables;
} verso__sync_schema;

/* Reads a JSON array of {"name":..., "columns":[{"name","type",flags...}]} (or an object keyed by
 * table name). */
int verso__sync_schema_parse(verso__sync_schema *out, const struct cJSON *tables, char *why,
                             size_t whylen);
void verso__sync_schema_free(verso__sync_schema *s);
void verso__sync_schema_table_free(verso__sync_schema_table *t);
/* Appends the tables of db (restricted to names when n > 0) as a JSON array. */
int verso__sync_schema_json(verso_buf *b, verso_db *db, const char *const *names, size_t n);
/* Maps "int64", "integer", "text", ... to a verso_type; VERSO_ANY if unknown. */
verso_type verso__sync_type_from_name(const char *name);

/* ---- The applier: one slave's apply state ---- */

typedef struct verso__sync_applier verso__sync_applier;

/* db is borrowed and used only by the thread using the applier. */
int verso__sync_applier_new(verso__sync_applier **out, verso_db *db, const verso_sync_client *opts);
void verso__sync_applier_free(verso__sync_applier *a);

/* Sets the master's schema (taken over: *s is emptied). Checked/created at the next begin,
 * or at once inside an open apply transaction (which a mismatch aborts). */
int verso__sync_applier_set_schema(verso__sync_applier *a, verso__sync_schema *s);

/*
 * Applies one message's entries (a JSON array of change objects), which
 * continue from version from up to to: a change of a version outside
 * (from, to] is VERSO_EPROTO. The document doc is taken over (kept until
 * commit when callbacks need it, freed otherwise; also on failure). Opens
 * the apply transaction first if none is open (a full reset when reset is
 * true).
 */
int verso__sync_applier_entries(verso__sync_applier *a, struct verso_json *doc,
                                const struct cJSON *entries, bool reset, int64_t from, int64_t to);

/*
 * Where the applier gets the bytes of a long blob, a {"blob_fetch":N}
 * value (protocol.md): get() makes the n bytes of table's row id, column,
 * at row version, ready (0; VERSO_ECONFLICT when the row moved past that
 * version on the master: the caller rolls back and reads again from its
 * cursor; other errors with why), fill() reads them in chunks, end()
 * releases them.
 */
#define VERSO__SYNC_MAX_FETCH 64 /* long blobs in one row: one per column at most */

typedef struct verso__sync_blob_source {
    int (*get)(void *arg, const char *table, int64_t id, const char *column, int64_t version,
               int64_t n, char *why, size_t whylen);
    int (*fill)(unsigned char *buf, size_t len, int64_t offset, void *arg);
    void (*end)(void *arg);
    void *arg;
} verso__sync_blob_source;

/* Sets (copies; NULL: none) the source of long blobs. Without one such a value is VERSO_EPROTO. */
void verso__sync_applier_set_blobs(verso__sync_applier *a, const verso__sync_blob_source *src);

/*
 * The fast path of a changes message (scan.c): 1 when text is one in the
 * master's own form that the general path (verso__sync_msg_read(), then
 * verso__sync_applier_entries()) would apply whole, read without a JSON
 * tree: its numbers from verso__sync_applier_scanned_header() (n entries),
 * its entries applied by verso__sync_applier_scanned(), as
 * verso__sync_applier_entries() does. 0: the general path must read it
 * (another form, on_apply set, a schema to check first, or an entry it
 * would refuse); VERSO_ENOMEM. text must outlive the applied call.
 */
int verso__sync_applier_scan(verso__sync_applier *a, const char *text, size_t len);
void verso__sync_applier_scanned_header(const verso__sync_applier *a, int64_t *from, int64_t *to,
                                        int64_t *head, bool *more, size_t *n);
int verso__sync_applier_scanned(verso__sync_applier *a, bool reset);
/* Tests only: true sends every message to the general path; messages the fast path applied. */
extern bool verso__sync_scan_off;
extern atomic_llong verso__sync_scan_taken;

/* Commits at a snapshot boundary: stores the cursor, runs callbacks. */
int verso__sync_applier_commit(verso__sync_applier *a, const char *master, int64_t version);

/* Rolls an open apply transaction back. */
void verso__sync_applier_abort(verso__sync_applier *a);

bool verso__sync_applier_open(const verso__sync_applier *a);
/* Changes applied: committed ones plus those of the open transaction (a rollback drops these). */
int64_t verso__sync_applier_rows(const verso__sync_applier *a);
/* Detail of the last failure. */
const char *verso__sync_applier_errmsg(const verso__sync_applier *a);

/*
 * Decides whether the slave must resynchronise against a master of
 * identity/head/horizon, given its stored cursor.
 */
bool verso__sync_need_reset(const verso_cursor *c, const char *identity, int64_t head,
                            int64_t horizon);

/* ---- HTTP client (libwebsockets), one request at a time ---- */

typedef struct verso__sync_http verso__sync_http;

int verso__sync_http_new(verso__sync_http **out, const verso__sync_url *u, const char *token,
                         bool insecure, int timeout_ms);
void verso__sync_http_free(verso__sync_http *h);

/*
 * GET prefix + path_query; the body goes to body (cleared first), the
 * status to *status. VERSO_ENET (connect failure, timeout),
 * VERSO_EINTERRUPTED (*stop set).
 */
/* What a pull asks to know whether to stop: the caller's should_stop and,
 * for the read-ahead thread, its own flag. Either may be absent. */
typedef struct verso__sync_cancel {
    bool (*fn)(void *arg);
    void *arg;
    const atomic_int *flag;
} verso__sync_cancel;

/* true when the pull should stop (c may be NULL). */
bool verso__sync_cancelled(const verso__sync_cancel *c);

int verso__sync_http_get(verso_buf *body, int *status, verso__sync_http *h, const char *path_query,
                         const verso__sync_cancel *stop);
/*
 * The same GET with a 200's body handed to sink piece by piece as it
 * arrives (never held whole; a sink's negative code ends the request with
 * it); any other status's body (an error's JSON, at most 4 KiB) goes to
 * errbody. *length: the answer's Content-Length, -1 when absent. The
 * timeout counts from the last byte received, not from the start.
 */
typedef int (*verso__sync_http_sink)(const void *p, size_t n, void *arg);
int verso__sync_http_stream(int *status, int64_t *length, verso_buf *errbody, verso__sync_http *h,
                            const char *path_query, verso__sync_http_sink sink, void *arg,
                            const verso__sync_cancel *stop);
/* Why the last request could not connect, in plain words ("" if it did). */
const char *verso__sync_http_cause(const verso__sync_http *h);
/* libwebsockets' connection-error text (its internals: "HS: ws upgrade
 * response not 101", "connect SSL err 1: ...") and HTTP status, in plain
 * words; buf (n bytes) may hold the answer. */
const char *verso__sync_lws_cause(const char *lws_why, unsigned status, char *buf, size_t n);

/*
 * Read-ahead of GET /_changes?since=N<suffix> on a thread of its own, from
 * since on, each request continuing from the previous answer's cursor,
 * until an answer ends at or past target (more false), does not say it
 * continues from the since asked for, or is not a JSON 200. http is used
 * only by that thread until verso__sync_fetch_stop(). next() hands the
 * answers over in order: *doc the parsed answer (the caller frees it) or
 * NULL, then *body holds the raw one (moved in); VERSO_ESTATE when the
 * thread stopped early (read the rest yourself), VERSO_EINTERRUPTED on *stop.
 */
typedef struct verso__sync_fetch verso__sync_fetch;
int verso__sync_fetch_start(verso__sync_fetch **out, verso__sync_http *http, const char *suffix,
                            int64_t since, int64_t target);
int verso__sync_fetch_next(verso_buf *body, struct verso_json **doc, int *status,
                           verso__sync_fetch *f, const verso__sync_cancel *stop);
void verso__sync_fetch_stop(verso__sync_fetch *f); /* NULL ok */

/*
 * Bootstrap of an empty database from the master's file snapshot over
 * /_sync (used by the pull when db has no table and no cursor yet): one
 * connection, no retry (bootstrap.c). On success db holds the master's
 * tables as of *version, with the cursor stored. 1 = done, 0 = not
 * applicable (the master declined, or db is not empty), < 0 = error (why),
 * VERSO_EINTERRUPTED when *stop was set.
 */
int verso__sync_snapshot_fetch(int64_t *version, verso_db *db, const char *url,
                               const verso_sync_client *opts, const verso__sync_cancel *stop,
                               char *why, size_t whylen);

/*
 * True when a file snapshot may replace db: it has no tracked table and no
 * object of its own (table, view, index, trigger) besides verso's metadata.
 */
bool verso__sync_snapshot_fits(verso_db *db);

/*
 * Installs a received snapshot file into db: the copy keeps db's identity,
 * marks every table replicated and stores the cursor (master, version).
 * Refused (VERSO_ESTATE, db untouched) unless verso__sync_snapshot_fits(),
 * checked again under db's write lock; refused (VERSO_EPROTO, db untouched)
 * when the file fails integrity_check or does not hold head version with
 * nothing newer. The file is removed.
 */
int verso__sync_snapshot_install(verso_db *db, const char *file, const char *master,
                                 int64_t version, char *why, size_t whylen);

/*
 * Snapshot files are named "<db_path>.snapshot-<pid>-<n>", by the process
 * that makes (master) or receives (slave) them. Removes those beside
 * db_path whose process is gone (killed while it made or installed one),
 * and the "<db_path>.snapshot" of earlier versions, with their journals.
 */
void verso__sync_snapshot_sweep(const char *db_path);

/* Writes a fresh snapshot file name for db_path into out (n bytes). */
void verso__sync_snapshot_name(char *out, size_t n, const char *db_path);

/*
 * The master's side: a file snapshot of db_path made on a thread of its
 * own (reference counted; the caller holds one reference). state: 0 while
 * copying, 1 when ready (then fd, size and head are valid: a read-only
 * descriptor to read with pread, the file's size and the version it
 * holds), < 0 on failure.
 */
typedef struct verso__sync_snap verso__sync_snap;
int verso__sync_snap_start(verso__sync_snap **out, const char *db_path);
int verso__sync_snap_state(verso__sync_snap *s, int *fd, int64_t *size, int64_t *head);
void verso__sync_snap_ref(verso__sync_snap *s);
void verso__sync_snap_unref(verso__sync_snap *s); /* NULL ok */

/* ---- Long blobs fetched apart (blobfetch.c) ---- */

/*
 * A fetcher of long blobs from the master at u (copied), with token
 * (copied; NULL or "" none), timeout_ms without a byte, temporary files
 * "<db_path>.blob-XXXXXX" (unlinked at once), stop (borrowed, may be NULL).
 * One thread. VERSO_ENOMEM.
 */
typedef struct verso__blobfetch verso__blobfetch;
int verso__blobfetch_new(verso__blobfetch **out, const verso__sync_url *u, const char *token,
                         bool insecure, int timeout_ms, const char *db_path,
                         const verso__sync_cancel *stop);
void verso__blobfetch_free(verso__blobfetch *f); /* NULL ok */
/* GET <prefix>/<table>/<id>/<column>?version=V into the file, checking the length is n. */
int verso__blobfetch_get(verso__blobfetch *f, const char *table, int64_t id, const char *column,
                         int64_t version, int64_t n, char *why, size_t whylen);
int verso__blobfetch_fill(unsigned char *buf, size_t len, int64_t offset, void *arg);
void verso__blobfetch_end(verso__blobfetch *f);
/* The applier's source over f. */
void verso__blobfetch_source(verso__sync_blob_source *out, verso__blobfetch *f);
/* Tests only: called before each GET (received -1) and as its body arrives
 * (received: bytes so far); the row may be changed there. */
extern void (*verso__blobfetch_hook)(const char *table, int64_t id, const char *column,
                                     int64_t received, void *arg);
extern void *verso__blobfetch_hook_arg;

/* ---- The slave side of /_sync's messages (receive.c), for the live slave and the bootstrap ----
 */

/*
 * One message from the master. A snapshot's data is located, not parsed:
 * the master writes it last, so a megabyte of base64 does not run through
 * the JSON parser (the decoder checks every character).
 */
typedef struct verso__sync_msg {
    struct verso_json *doc; /* the members (of a snapshot in that form: all but data); owned */
    const char *type;       /* in doc; NULL when missing */
    const char *data;       /* a snapshot's base64 (datalen bytes) in doc or in the text; or NULL */
    size_t datalen;
} verso__sync_msg;

/*
 * Reads the len bytes of text, which must outlive *m. VERSO_EPROTO when it
 * is not JSON (*why: the parser's message, static, or NULL), VERSO_ENOMEM.
 * Free with verso__sync_msg_free() in every case (a NULL doc is fine).
 */
int verso__sync_msg_read(verso__sync_msg *m, const char *text, size_t len, char *why,
                         size_t whylen);
void verso__sync_msg_free(verso__sync_msg *m);

/* What a master's hello announces. */
typedef struct verso__sync_hello {
    char identity[37];
    int64_t head;
    int64_t horizon;
    int64_t heartbeat_ms; /* 5000 when absent or not positive */
} verso__sync_hello;

/* Reads a hello message. VERSO_EPROTO without a 36-character identity, head or horizon. */
int verso__sync_hello_read(verso__sync_hello *out, const struct cJSON *msg);

/* What a subscribe message asks for (protocol.md, "subscribe"). */
typedef struct verso__sync_subscription {
    const char *identity; /* of the cursor; "" for none */
    int64_t cursor;
    bool reset;
    bool snapshot;
    const char *name;
    char *const *tables; /* NULL: every table */
    size_t ntables;
} verso__sync_subscription;

/* Appends the subscribe message. VERSO_ENOMEM, VERSO_EUTF8 (a name). */
int verso__sync_subscribe_json(verso_buf *b, const verso__sync_subscription *sub);

/*
 * Receiving a file snapshot into db, chunk by chunk, through a file next
 * to it. Initialise with verso__sync_snaprx_init(); one thread.
 */
typedef struct verso__sync_snaprx {
    verso_db *db;   /* borrowed: the database the file replaces */
    FILE *file;     /* the file being written; NULL between snapshots */
    int64_t offset; /* bytes received */
    int64_t size;   /* the file's size as the master announced it; 0 unknown */
    char path[700];
    char master[37]; /* after the last chunk: the identity and head the installed file holds */
    int64_t head;
    char why[128]; /* why the install failed, else "" */
} verso__sync_snaprx;

void verso__sync_snaprx_init(verso__sync_snaprx *rx, verso_db *db);

/*
 * Takes the chunk of the snapshot message m. 0 = taken, more follow;
 * 1 = it was the last one: the file is installed in db
 * (verso__sync_snapshot_install()) and rx->master, rx->head say what it
 * holds; < 0 = a chunk malformed or out of order (VERSO_EPROTO), the file
 * not written (VERSO_EIO), or the install refused (rx->why): the partial
 * file is then removed.
 */
int verso__sync_snaprx_chunk(verso__sync_snaprx *rx, const verso__sync_msg *m);

/* Removes the partial file of a snapshot being received, if any. */
void verso__sync_snaprx_discard(verso__sync_snaprx *rx);

/* Rows in db's tracked tables (what an installed snapshot brought); 0 on error. */
int64_t verso__sync_count_rows(verso_db *db);

/* ---- WebSocket client (wsc.c): the slave side's only libwebsockets code ---- */

/*
 * A client context with at most one connection attempt at a time, to a
 * master's /_sync (subprotocol VERSO_SYNC_SUBPROTOCOL). It owns every
 * libwebsockets call: the context (TLS), connecting with the bearer token,
 * reassembling messages, writing, closing, timers and waking. Everything
 * but verso__wsc_wake() runs on one thread, the one calling
 * verso__wsc_service(); the handlers run on it, for the current attempt
 * only: reports about an attempt that already ended are dropped here.
 */
typedef struct verso__wsc verso__wsc;

/* How an attempt ended. */
typedef enum verso__wsc_end {
    VERSO__WSC_FAILED, /* connecting or the upgrade failed (lws's reason; a refused upgrade's HTTP
                          status) */
    VERSO__WSC_CLOSED, /* the peer or the network closed the connection, or lws dropped it */
    VERSO__WSC_ENDED,  /* our side: verso__wsc_close(), verso__wsc_kill(), a failed handler */
} verso__wsc_end;

/* What a connection tells its owner; arg is verso__wsc_new()'s. */
typedef struct verso__wsc_handler {
    /* TCP (and TLS) is up and the upgrade request goes out. May be NULL. */
    void (*on_upgrading)(void *arg);
    /* The WebSocket is open. */
    void (*on_open)(void *arg);
    /* One whole message, fragments reassembled (data valid during the call). < 0 ends the
     * attempt with verso_strerror(rc) as why and a close frame (1002 for VERSO_EPROTO, else
     * 1011). */
    int (*on_message)(const char *data, size_t len, void *arg);
    /* The connection can send: put the next message in msg (empty), or nothing. Called again
     * while the socket takes more. < 0 as for on_message. */
    int (*on_writeable)(verso_buf *msg, void *arg);
    /* The attempt ended, whatever ended it: exactly once per verso__wsc_connect(). why is
     * borrowed for the call; http_status is the status of a refused upgrade, else 0. */
    void (*on_ended)(verso__wsc_end how, const char *why, unsigned http_status, void *arg);
    /* The timer set by verso__wsc_timer() fired. */
    void (*on_timer)(void *arg);
} verso__wsc_handler;

/*
 * A context for the master at u (copied). A non-empty token is sent as
 * "Authorization: Bearer <token>" (copied); insecure accepts any TLS
 * certificate. h and arg are borrowed for c's life. VERSO_ENOMEM,
 * VERSO_ENET (libwebsockets could not make the context).
 */
int verso__wsc_new(verso__wsc **out, const verso__sync_url *u, const char *token, bool insecure,
                   const verso__wsc_handler *h, void *arg);
/* Drops any connection and frees c; no handler runs during or after. NULL ok. */
void verso__wsc_free(verso__wsc *c);

/*
 * Starts an attempt on the URL's prefix + path; none may be in progress.
 * It ends in exactly one on_ended, possibly before this returns (a
 * connection refused at once).
 */
void verso__wsc_connect(verso__wsc *c, const char *path);
/*
 * The subprotocol the next attempts ask for (static; default
 * VERSO_SYNC_SUBPROTOCOL) and the largest message they accept (0 = no
 * limit): a longer one ends the attempt, closed with 1009 and the why
 * "message too large", before it is held whole.
 */
void verso__wsc_limits(verso__wsc *c, const char *subprotocol, size_t max_message);
/* Asks for on_writeable once the open WebSocket can send; nothing when none is open. */
void verso__wsc_want_write(verso__wsc *c);
/*
 * Ends the attempt: on_ended(VERSO__WSC_ENDED, why) runs before this
 * returns. An open WebSocket is closed with a close frame (status, why),
 * at once from one of its handlers, else at its next chance (5 s at most);
 * a connection not open yet is dropped. Nothing without an attempt.
 */
void verso__wsc_close(verso__wsc *c, int status, const char *why);
/* The same without a close frame: for a peer that does not answer. */
void verso__wsc_kill(verso__wsc *c, const char *why);
/* Milliseconds since the peer was last heard from (any bytes, since the WebSocket opened), not
 * counting the time on_message took. */
int64_t verso__wsc_silent_ms(const verso__wsc *c);

/* on_timer runs once, ms milliseconds from now (a pending one is replaced). */
void verso__wsc_timer(verso__wsc *c, int64_t ms);
/* Runs the event loop once: returns after some event, a timer or verso__wsc_wake(). */
void verso__wsc_service(verso__wsc *c);
/* Whether bytes from the peer wait in the socket, not read yet (a message is arriving). */
bool verso__wsc_pending(const verso__wsc *c);
/* Any thread: makes the current or next verso__wsc_service() return. */
void verso__wsc_wake(verso__wsc *c);

/* ---- A live slave driven by hand (slave.c), for tests and fuzzers ---- */

/*
 * A slave on db_path (opts may be NULL) with no thread and no connection:
 * its link is open, waiting for the master's hello. One thread; free with
 * verso__slave_detached_free() (NULL ok), not verso_slave_stop().
 */
int verso__slave_detached(verso_slave **out, const char *db_path, const verso_slave_options *opts,
                          char *why, size_t whylen);
/*
 * Handles data as a message of the master on the open link and returns
 * what handling it returned (< 0: refused). A refused message or an error
 * ends the link as a real one would (open transaction rolled back, partial
 * snapshot removed) and a new link opens at once. out (cleared) receives
 * the message the slave sends next: subscribe, ack, or nothing.
 */
int verso__slave_receive(verso_slave *s, const char *data, size_t len, verso_buf *out);
void verso__slave_detached_free(verso_slave *s);

/* ---- The master's connection to one slave (master.c) ---- */

/*
 * Its life: HELLO (open, the hello is due) -> IDLE (waiting for a subscribe);
 * a subscribe moves any live state to SUBSCRIBED (streaming changes from its
 * cursor), SNAPSHOT_DUE (an empty slave asked for a file snapshot: one is made
 * or shared, SNAPSHOT, and streamed, then SUBSCRIBED at its head) or RESYNC
 * (the resync message is due, then IDLE). A subscribe before the hello gives
 * HELLO_RESYNC: the hello, then RESYNC. SUBSCRIBED and SNAPSHOT go to RESYNC
 * when the database changes under them. Any state but CLOSING goes to CLOSING
 * (the error message is due, then the close), which has no way out.
 */
typedef enum verso__master_state {
    VERSO__MASTER_HELLO,
    VERSO__MASTER_HELLO_RESYNC,
    VERSO__MASTER_IDLE,
    VERSO__MASTER_RESYNC,
    VERSO__MASTER_SNAPSHOT_DUE,
    VERSO__MASTER_SNAPSHOT,
    VERSO__MASTER_SUBSCRIBED,
    VERSO__MASTER_CLOSING,
    VERSO__MASTER_NSTATES
} verso__master_state;

/* What the master does next on a connection: a message, or one of two steps
 * after which it chooses again (START: make or share the snapshot; REFRESH:
 * look for commits, so a table tracked since is announced before its rows). */
typedef enum verso__master_next {
    VERSO__NEXT_NONE, /* nothing to send now */
    VERSO__NEXT_ERROR,
    VERSO__NEXT_HELLO,
    VERSO__NEXT_RESYNC,
    VERSO__NEXT_START,
    VERSO__NEXT_SNAPSHOT,
    VERSO__NEXT_SCHEMA,
    VERSO__NEXT_REFRESH,
    VERSO__NEXT_CHANGES,
    VERSO__NEXT_HEARTBEAT,
    VERSO__NEXT_COUNT
} verso__master_next;

/* The facts the choice depends on; those marked SUBSCRIBED or SNAPSHOT are
 * read in that state only. */
typedef struct verso__master_facts {
    verso__master_state state;
    bool schema_due;    /* SUBSCRIBED: the schema message is owed */
    bool batch_due;     /* SUBSCRIBED: a new subscription's first batch, even at the head */
    bool in_sequence;   /* SUBSCRIBED: the last changes message said more */
    bool behind;        /* SUBSCRIBED: the cursor is below the known head */
    bool refreshed;     /* SUBSCRIBED: REFRESH ran in this choice (changes were due) */
    bool snap_ready;    /* SNAPSHOT: the copy is made or failed: a chunk (or the error) is due */
    bool heartbeat_due; /* nothing was sent for a heartbeat period */
} verso__master_facts;

/* The next step for a connection in these facts. Pure; any thread. */
verso__master_next verso__master_choose(const verso__master_facts *f);

/* Whether changes are due (SUBSCRIBED and a first batch, a sequence or the head ahead). */
bool verso__master_changes_due(const verso__master_facts *f);

/*
 * A master's connections driven by hand, for tests and fuzzers: its
 * WebSocket handler (call on_open, on_message and on_close with a NULL
 * verso_ws), and verso__master_conn_next(), which builds the message the
 * connection cp sends next into b (cleared; empty when nothing is due)
 * and gives 1 when the close follows it, as on_writeable would. Service
 * thread only, like the handler.
 */
const verso_ws_handler *verso__master_handler(verso_sync_master *m);
int verso__master_conn_next(verso_sync_master *m, void *cp, verso_buf *b);
/* Reads of changes encoded (one per commit for the ring, plus private reads) and messages sent
 * from the ring, since m was made. Any thread. */
void verso__master_counts(verso_sync_master *m, uint64_t *encodings, uint64_t *ring_sends);

/* Monotonic milliseconds. */
int64_t verso__sync_mono_ms(void);
/* Monotonic microseconds. */
int64_t verso__sync_mono_us(void);

/* Writes a one-line reason. */
void verso__sync_why(char *why, size_t whylen, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* ---- upstream.c: a live slave's own state in its REST server ---- */

/* What verso_slave_mount() chained: the callbacks the options held before. */
typedef struct verso__upstream {
    int (*status_json)(verso_buf *out, void *arg);
    void *status_arg;
    int (*metrics_text)(verso_buf *out, void *arg);
    void *metrics_arg;
    bool mounted;
    int (*state)(verso_slave_state *out, void *self); /* the state shown, of self */
    void *self;
    const char *name; /* borrowed for self's life */
} verso__upstream;

/* Chains up's pages into ro (state, self and name set): verso_slave_mount() and the NATS
 * follower's. VERSO_EINVAL (mounted before). */
int verso__upstream_mount(verso__upstream *up, verso_rest_options *ro);

/* slave.c: the slave's upstream record and the name it gives its master. */
verso__upstream *verso__slave_upstream(verso_slave *s);
const char *verso__slave_name(const verso_slave *s);
/* Copies name into dst (cap bytes), cut at a UTF-8 character boundary. */
void verso__sync_copy_name(char *dst, size_t cap, const char *name);

#endif
