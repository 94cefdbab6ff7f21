/*
 * rest/dirint.h - shared by the files of the dir server only (dir.c,
 * dirws.c, dirwatch.c, direvents.c). Service thread unless said otherwise.
 */
#ifndef VERSO_REST_DIRINT_H
#define VERSO_REST_DIRINT_H

#include "rest/dir.h"

#include "rest/databases.h"

typedef struct verso__dirconn verso__dirconn;
typedef struct verso__dirwatch verso__dirwatch;
typedef struct verso__direvents verso__direvents;

/* One open database: its REST instance and, once a slave came, its master. */
typedef struct verso__dbinst {
    struct verso__dbinst *next;
    char name[VERSO__DBNAME_MAX + 1];
    verso_rest *rest;    /* the offline instance (verso__rest_open_offline) */
    void *master;        /* verso_sync_master, lazily (dirws.c) */
    verso_ws_handler mh; /* the master's endpoint, called by ours */
    void (*mtick)(verso_rest *srv, void *arg);
    void *mtick_arg;
    int (*mstatus)(verso_buf *out, void *arg); /* the master's /_status members */
    void *mstatus_arg;
    int (*mmetrics)(verso_buf *out, void *arg);
    void *mmetrics_arg;
    verso__dirconn *conns; /* its /_sync WebSockets: they pin it open */
    int pins;
    int64_t used_ms;   /* monotonic: the last request or WebSocket close */
    uint64_t dev, ino; /* the file it opened: one renamed over it is another database */
} verso__dbinst;

struct verso__dir {
    verso_rest *srv;
    char *path;
    int max_open;
    int idle_ms;
    verso__dbinst *open; /* most recently used first */
    size_t nopen;
    uint64_t opens, closes, refused; /* for /_status and /_metrics */
    verso_ws_handler *handlers;      /* the caller's endpoints, then ours */
    void (*user_tick)(verso_rest *srv, void *arg);
    void *user_tick_arg;
    verso__dirwatch *watch;
    verso__direvents *events;
};

/* The open instance of name, opened when closed (the least recently used
 * idle one closed first at the cap): 0, or the HTTP status (404, 503, 500)
 * with msg. */
int verso__dir_get(verso__dbinst **out, verso__dir *d, const char *name, char *msg, size_t n);
/* The instance of name when open; NULL otherwise. */
verso__dbinst *verso__dir_find(verso__dir *d, const char *name);
/* Copies the server's config into the instance (shared, never freed by it). */
void verso__dir_share_config(verso__dir *d, verso__dbinst *in);

/* dirws.c: the /db/<name>/_sync endpoint and each instance's master. */
verso_ws_handler verso__dirws_sync_handler(verso__dir *d);
/* Creates in's master if it has none; VERSO_* code. */
int verso__dirws_master(verso__dbinst *in, char *why, size_t whylen);
/* Ends in's WebSockets (close 1001) and closes its master. */
void verso__dirws_release(verso__dbinst *in);
/* Subscribed slaves of in's master. */
int verso__dirws_followers(verso__dbinst *in);

/* direvents.c: the events WebSocket (/_databases, verso-databases.1) and
 * the DIR watch's effects. */
verso_ws_handler verso__direvents_handler(verso__dir *d);
int verso__direvents_open(verso__dir *d);
void verso__direvents_close(verso__dir *d);
/* Drains the DIR watch, announces new heads, sends heartbeats. */
void verso__direvents_tick(verso__dir *d);

/* For /_metrics. */
typedef struct verso__direvents_stats {
    size_t subscribers;    /* open events WebSockets */
    uint64_t sent;         /* messages written to them */
    uint64_t watch_events; /* DIR watch events on database files */
    uint64_t reads;        /* heads read by opening a closed database */
} verso__direvents_stats;
void verso__direvents_stats_get(verso__direvents_stats *out, const verso__dir *d);

/* dirwatch.c: one inotify watch on DIR (a thread of its own). fn(arg) runs
 * on that thread after events that concern a database. VERSO_EIO where
 * file events are unavailable, VERSO_ENOMEM. */
int verso__dirwatch_start(verso__dirwatch **out, const char *dir, void (*fn)(void *arg), void *arg);
/* Stops and joins the thread. NULL: no-op. */
void verso__dirwatch_stop(verso__dirwatch *w);
/* Calls fn for each database name events concerned since the last call;
 * true when events were lost (look at every database). Any thread. */
bool verso__dirwatch_take(verso__dirwatch *w, void (*fn)(const char *name, void *arg), void *arg);
/* Events seen so far. Any thread. */
uint64_t verso__dirwatch_events(verso__dirwatch *w);

/* dir.c: calls fn for each database name of DIR, sorted (verso__dbfile_scan);
 * stops at fn's first non-zero return, which it returns. */
int verso__dir_scan(verso__dir *d, int (*fn)(const char *name, void *arg), void *arg);

/* dirmetrics.c: the dir server's lines of GET /_metrics (per-database
 * series labelled database="<name>"). */
int verso__dir_metrics(verso_buf *b, verso__dir *d);

#endif
