/*
 * nats.h - the change stream through NATS JetStream (docs/nats.md).
 *
 * A publisher appends a master's change stream to a JetStream stream; any
 * number of followers, anywhere the NATS cluster reaches, apply it as live
 * slaves do: same cursor, same atomic transactions, same resync rules, same
 * callbacks. The stream format is in docs/protocol.md ("Through NATS
 * JetStream").
 *
 * This header is not included by verso.h: include it yourself. Every
 * function exists in every build; in a build without libnats (the CMake
 * option VERSO_NATS found none) each returns VERSO_ENOTSUP with why "verso
 * was built without libnats (install libnats-dev and rebuild)".
 *
 * NATS URLs are "nats://host:port" or a comma-separated list of them
 * ("nats://h1:4222,h2:4222", or with "nats://" before each).
 */
#ifndef VERSO_NATS_H
#define VERSO_NATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orm.h"
#include "rest.h"
#include "sync.h"
#include "verso.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------
 * Publisher
 * ------------------------------------------------------------------ */

typedef struct verso_nats_publisher verso_nats_publisher;

typedef struct verso_nats_publish_options {
    unsigned version;    /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    const char *stream;  /* required: the stream's name, [A-Za-z0-9_-]{1,64} */
    const char *subject; /* subject prefix P (subjects P.changes, P.master, P.snap.>);
                            NULL = "verso.<stream>" */
    int replicas;        /* when the stream is created; 0 = 1 */
    int64_t max_age_ms, max_bytes, max_msgs; /* when the stream is created; 0 = unlimited */
    int chunk;                               /* changes per message at most; 0 = 1024 */
    int64_t snapshot_every_ms;      /* file snapshots into the stream <stream>_SNAP this often;
                                       0 = 600000; < 0 = no snapshot stream */
    const char *token;              /* NATS auth token, NULL = none */
    verso_db_options db;            /* how the publisher opens the database (read only) */
    int retry_min_ms, retry_max_ms; /* retry delays after a failure; 0 = 100, 5000 */
} verso_nats_publish_options;

#define VERSO_NATS_PUBLISH_OPTIONS_INIT                                                            \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION                                                           \
    }

typedef struct verso_nats_publish_state {
    bool connected;       /* connected to NATS, stream checked */
    int64_t head;         /* the database's head as last read */
    int64_t published;    /* the version the stream holds up to (its last Verso-To) */
    int64_t messages;     /* changes messages published since start */
    int64_t snapshots;    /* snapshots stored since start */
    uint64_t stream_seq;  /* the stream's last sequence as known */
    char identity[37];    /* the database's identity */
    char last_error[128]; /* the last failure ("" if none) */
} verso_nats_publish_state;

/*
 * Starts a publisher of the database file db_path (it must exist) to the
 * NATS server(s) at nats_url, on a new thread with its own read handle.
 * The stream o->stream is created when missing; an existing stream must
 * have both subjects and limits retention. Then the publisher resumes from
 * the stream's last changes message (same identity: from its Verso-To;
 * another or none: a P.master message, then the chain from the head), and
 * publishes each commit of the database as it happens (commits of other
 * processes included, seen as a live master sees them). After any failure
 * it reconnects and resumes by itself, with backoff.
 * *out receives the publisher, to stop with verso_nats_publish_stop().
 * why (may be NULL) receives one line on failure.
 * Errors: VERSO_EINVAL (bad options or URL), VERSO_EDB (cannot open db_path),
 * VERSO_ENET (no NATS server answers), VERSO_ECONFLICT (the stream exists
 * with an incompatible configuration: why names the field), VERSO_ENOMEM,
 * VERSO_ENOTSUP (built without libnats).
 */
VERSO_API int verso_nats_publish_start(verso_nats_publisher **out, const char *db_path,
                                       const char *nats_url, const verso_nats_publish_options *o,
                                       char *why, size_t whylen);

/* Copies the publisher's state. Any thread. Errors: VERSO_EINVAL (NULL), VERSO_ENOTSUP. */
VERSO_API int verso_nats_publish_state_get(verso_nats_publish_state *out, verso_nats_publisher *p);

/* Waits until the stream holds version >= v of the current identity, at most timeout_ms:
 * 0 once it does, VERSO_ETIMEOUT otherwise. Any thread. */
VERSO_API int verso_nats_publish_wait(verso_nats_publisher *p, int64_t v, int timeout_ms);

/* Stops the thread, closes the connection and the database, frees p. Any thread but the
 * publisher's. NULL is a no-op. */
VERSO_API void verso_nats_publish_stop(verso_nats_publisher *p);

/* ---------------------------------------------------------------------
 * Follower
 * ------------------------------------------------------------------ */

typedef struct verso_nats_follower verso_nats_follower;

typedef struct verso_nats_follow_options {
    unsigned version;          /* VERSO_OPTIONS_VERSION (the INIT macro sets it); 0 = the same */
    verso_slave_options slave; /* client.token (for master_url), client.on_apply, db,
                                  on_event, retry_min_ms / retry_max_ms, name */
    const char *master_url;    /* http(s)://host:port[/db/NAME]: bootstrap snapshots and long
                                  blobs; NULL = the snapshot stream only */
    const char *nats_token;    /* NATS auth token, NULL = none */
} verso_nats_follow_options;

#define VERSO_NATS_FOLLOW_OPTIONS_INIT                                                             \
    {                                                                                              \
        .version = VERSO_OPTIONS_VERSION, .slave = VERSO_SLAVE_OPTIONS_INIT                        \
    }

/*
 * Starts a follower of the stream at url ("nats://h:p[,h:p...]/STREAM",
 * optionally "?subject=P") into the database file db_path (created if
 * missing unless o->slave.db.must_exist), on a new thread. It finds the
 * stream message that continues its cursor and applies the stream from
 * there, one slave transaction per consistent master state (cursor and
 * data in the same transaction). An empty database, a cursor of another
 * identity or behind the stream's retention is bootstrapped again: a file
 * snapshot from o->master_url, or when that cannot be reached the newest
 * complete one in the snapshot stream. It reconnects by itself.
 * *out receives the follower, to stop with verso_nats_follow_stop().
 * Errors: VERSO_EINVAL (bad URL or options), VERSO_EDB / VERSO_ESCHEMA
 * (cannot open db_path; why), VERSO_ENOMEM, VERSO_ENOTSUP.
 */
VERSO_API int verso_nats_follow_start(verso_nats_follower **out, const char *db_path,
                                      const char *url, const verso_nats_follow_options *o,
                                      char *why, size_t whylen);

/* Copies the follower's state, in a live slave's terms (master_head: the last Verso-To seen).
 * Any thread. Errors: VERSO_EINVAL (NULL), VERSO_ENOTSUP. */
VERSO_API int verso_nats_follow_state_get(verso_slave_state *out, verso_nats_follower *f);

/* Waits until the follower has committed master version >= version, at most timeout_ms
 * (verso_slave_wait()). 0 or VERSO_ETIMEOUT. Any thread. */
VERSO_API int verso_nats_follow_wait(verso_nats_follower *f, int64_t version, int timeout_ms);

/* Shows the follower's upstream state in a REST server's /_status and /_metrics, as
 * verso_slave_mount() does. Call before verso_rest_start(); f must outlive the server.
 * Errors: VERSO_EINVAL (NULL, or mounted before), VERSO_ENOTSUP. */
VERSO_API int verso_nats_follow_mount(verso_nats_follower *f, verso_rest_options *ro);

/* Stops the thread (an open transaction is rolled back), closes the database, frees f.
 * Any thread but the follower's. NULL is a no-op. */
VERSO_API void verso_nats_follow_stop(verso_nats_follower *f);

#ifdef __cplusplus
}
#endif

#endif
