/*
 * rest/dir.h - the dir server (verso serve --dir DIR): every verso database
 * DIR/<name>.db served under /db/<name>/, opened on demand and closed when
 * idle, each with its own replication master for /db/<name>/_sync, and a
 * server-wide events WebSocket (/_databases) telling who listens which
 * databases appeared, changed or went away.
 *
 * Everything here runs on the service thread of the server unless said
 * otherwise.
 */
#ifndef VERSO_REST_DIR_H
#define VERSO_REST_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rest/internal.h"

typedef struct verso__dir verso__dir; /* srv->dir; NULL on a one-database server */

/* ---- the interface of the admin routes (contract section 3) ---- */

/* DIR as given (borrowed for the life of d). */
const char *verso__dir_path(const verso__dir *d);
/* Live slaves (/db/<name>/_sync WebSockets, subscribed) of name; 0 when closed. */
int verso__dir_followers(verso__dir *d, const char *name);
/* Closes name if open: its WebSockets get close 1001, later requests reopen it. */
void verso__dir_evict(verso__dir *d, const char *name);
/* head and identity of name (opens it briefly when closed); VERSO_ENOTFOUND
 * when DIR/<name>.db does not exist, VERSO_EINVAL for a bad name. */
int verso__dir_head(verso__dir *d, const char *name, int64_t *head, char *identity, size_t idlen);
/* Tell the events channel: name was created or changed / was deleted. */
void verso__dir_changed(verso__dir *d, const char *name);
void verso__dir_deleted(verso__dir *d, const char *name);

/* ---- the server's side (server.c, routes.c, ws.c) ---- */

/* Sets up the dir server of srv (srv->opts.db_dir): checks DIR, takes over
 * srv->opts' WebSocket endpoints and tick (chaining the caller's), starts
 * the DIR watch. srv->dir gets it. VERSO_EINVAL (DIR unusable, why says
 * why), VERSO_ENOMEM. */
int verso__dir_open(verso_rest *srv, char *why, size_t whylen);
/* Closes every database and stops the watch; after the service thread
 * ended. NULL: no-op. */
void verso__dir_close(verso__dir *d);
/* Answers every HTTP request of a dir server. */
void verso__dir_dispatch(verso__req *rq, verso__resp *rs);
/* The upgrade to /db/<name>/_sync: 0 when name is a database that can be
 * opened now, else the HTTP status (400, 404, 503) with msg (n bytes). */
int verso__dir_upgrade(verso__dir *d, const char *uri, char *msg, size_t n);

/* The role check of a WebSocket upgrade to uri on a dir server: 0, 401 or
 * 403. /db/<name>/_sync takes the grants of that database; /_databases a
 * token that may replicate some database (verso__auth_any with the feed
 * capability, as GET /_databases; it then hears of those only). */
int verso__dir_ws_auth(verso__dir *d, const char *uri, const verso__auth *a, unsigned need);

/* The path of the events WebSocket. */
#define VERSO__DIREVENTS_PATH "/_databases"

/* ws.c: the request URI of an open WebSocket (at on_open), into out. */
int verso__ws_uri(verso_ws *ws, char *out, size_t n);
/* ws.c: who opened ws (the Authorization header of its upgrade; at on_open). */
void verso__ws_auth(verso_ws *ws, verso__auth *a);
/* ws.c: closes ws with status 1001 (going away), soon; on_close follows. */
void verso__ws_close_away(verso_ws *ws);

#endif
