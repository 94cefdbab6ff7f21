/* internal.h - shared pieces of sync/: URLs, the slave-side applier, the HTTP client. */
#ifndef VERSO_SYNC_INTERNAL_H
#define VERSO_SYNC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verso/orm.h"
#include "verso/advanced.h"
#include "verso/sync.h"
#include "verso/verso.h"

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
 * Applies one message's entries (a JSON array of change objects). The
 * document doc is taken over (kept until commit when callbacks need it,
 * freed otherwise; also on failure). Opens the apply transaction first if
 * none is open (a full reset when reset is true).
 */
int verso__sync_applier_entries(verso__sync_applier *a, struct verso_json *doc,
                                const struct cJSON *entries, bool reset);

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
int verso__sync_http_get(verso_buf *body, int *status, verso__sync_http *h, const char *path_query,
                         const volatile int *stop);

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
                           verso__sync_fetch *f, const volatile int *stop);
void verso__sync_fetch_stop(verso__sync_fetch *f); /* NULL ok */

/*
 * Bootstrap of an empty database from the master's file snapshot over
 * /_sync (used by the pull when db has no table yet). On success db holds
 * the master's tables as of *version, with the cursor stored. 1 = done,
 * 0 = not applicable (the master declined), < 0 = error (why).
 */
int verso__sync_snapshot_fetch(int64_t *version, verso_db *db, const char *url,
                               const verso_sync_client *opts, const volatile int *stop, char *why,
                               size_t whylen);

/*
 * True when a file snapshot may replace db: it has no tracked table and no
 * object of its own (table, view, index, trigger) besides verso's metadata.
 */
bool verso__sync_snapshot_fits(verso_db *db);

/*
 * Installs a received snapshot file into db: the copy keeps db's identity,
 * marks every table replicated and stores the cursor (master, version).
 * Refused (VERSO_ESTATE, db untouched) unless verso__sync_snapshot_fits(),
 * checked again under db's write lock. The file is removed.
 */
int verso__sync_snapshot_install(verso_db *db, const char *file, const char *master,
                                 int64_t version, char *why, size_t whylen);

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

#endif
