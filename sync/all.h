/* all.h - the --all slave's pieces shared by all.c (the table, the workers, the API) and
 * all_link.c (the events link). */
#ifndef VERSO_SYNC_ALL_H
#define VERSO_SYNC_ALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sync/internal.h"

#define VERSO__ALL_NAME_MAX    64
#define VERSO__ALL_PATH_MAX    4096
#define VERSO__ALL_WORKERS_MAX 64
#define VERSO__ALL_TEMP_PREFIX ".verso-new-"
#define VERSO__ALL_LIST_MAX    100000 /* databases in one list */

/* One database: what the master announced, what the local copy holds. */
typedef struct verso__all_rec {
    char name[VERSO__ALL_NAME_MAX + 1];
    char identity[37]; /* announced */
    int64_t head;      /* announced */
    char master[37];   /* the local copy's cursor: identity ("" none) */
    int64_t cursor;    /* and version */
    bool listed;       /* the master lists it now */
    bool gone;         /* the master said it is gone: settled once no pull runs */
    bool local;        /* dir/<name>.db is there */
    bool temp;         /* dir/.verso-new-<name>.db may be there */
    bool running;      /* a worker pulls it now */
    bool seen;         /* in the list being reconciled */
    atomic_bool cancel;
    uint64_t seq, done_seq; /* announcements counted; the one the last good pull served */
    int64_t due_ms;         /* when it became due (0: not due) */
    int64_t retry_at_ms;
    int retry_ms;
    int64_t failures;
    char last_error[128];
} verso__all_rec;

/* An event waiting to be told. */
typedef struct verso__all_ev {
    verso_sync_all_event_kind kind;
    char name[280];
    char detail[200];
    int64_t cursor, head, rows;
} verso__all_ev;

typedef enum verso__all_link {
    VERSO__ALL_WAITING,    /* no connection; the next attempt after the backoff */
    VERSO__ALL_CONNECTING, /* TCP, TLS, upgrade */
    VERSO__ALL_LISTING,    /* open: the list is awaited */
    VERSO__ALL_LIVE,       /* listed: announcements and heartbeats flow */
    VERSO__ALL_NLINKS
} verso__all_link;

struct verso_sync_all {
    verso_sync_all_options o;
    char *dir;
    char *url; /* without trailing '/' */
    char *token;
    verso__sync_url u;

    pthread_mutex_t lock; /* guards everything below but the link's own fields */
    pthread_cond_t work;
    pthread_mutex_t emit_lock; /* one on_event call at a time, in order */
    atomic_int stop;
    verso__all_rec **recs; /* sorted by name */
    size_t nrecs, caprecs;
    verso__all_ev *evq;
    size_t nev, capev, evhead;
    verso_sync_all_state st;
    uint64_t jitter;

    pthread_t events;
    bool events_started;
    pthread_t *workers;
    int nworkers;

    /* the link: the events thread only */
    verso__wsc *ws;
    verso__all_link link;
    int64_t step_ms;
    int retry_ms;
    int64_t next_connect_ms;
    int64_t lives;
    char link_error[160]; /* set by a refused message: more precise than how the link ended */
};

bool verso__all_name_ok(const char *name, size_t len);
/* name as printable ASCII ("\xNN" escapes), cut with "..." to n bytes. */
void verso__all_printable(char *out, size_t n, const char *s, size_t len);
uint64_t verso__all_random(verso_sync_all *a);

/* Lock held. */
verso__all_rec *verso__all_find(verso_sync_all *a, const char *name);
verso__all_rec *verso__all_get(verso_sync_all *a, const char *name);
void verso__all_announce(verso_sync_all *a, verso__all_rec *r, const char *identity, int64_t head);
void verso__all_gone(verso_sync_all *a, verso__all_rec *r);
void verso__all_queue(verso_sync_all *a, verso_sync_all_event_kind kind, const char *name,
                      const char *detail, int64_t cursor, int64_t head, int64_t rows);
/* Lock not held: tells the queued events. */
void verso__all_flush(verso_sync_all *a);

/* all_link.c */
int verso__all_link_new(verso_sync_all *a);
void *verso__all_link_run(void *arg);

#endif
