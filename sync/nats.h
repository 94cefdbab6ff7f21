/* sync/nats.h - what the NATS publisher (nats_pub.c) and follower (nats_follow.c) share
 * (nats_common.c). Only with libnats (VERSO_HAVE_NATS). */
#ifndef VERSO_SYNC_NATS_H
#define VERSO_SYNC_NATS_H

#include <nats/nats.h>

#include "sync/internal.h"
#include "verso/nats.h"

/* Header names of the stream's messages (docs/protocol.md, "Through NATS JetStream"). */
#define VERSO__HDR_IDENTITY "Verso-Identity"
#define VERSO__HDR_FROM     "Verso-From"
#define VERSO__HDR_TO       "Verso-To"
#define VERSO__HDR_MORE     "Verso-More"
#define VERSO__HDR_INCOMPLETE                                                                      \
    "Verso-Incomplete" /* "1": an entry too long, read it from the master */
#define VERSO__HDR_VERSION "Verso-Version"
#define VERSO__HDR_PART    "Verso-Part"
#define VERSO__HDR_PARTS   "Verso-Parts"
#define VERSO__HDR_SHA256  "Verso-Sha256"

#define VERSO__NATS_SUBJECT_MAX 200

#define VERSO__NATS_RETIRED_MAX 8

/* A connection and its JetStream context; subscriptions whose end could not be confirmed
 * (verso__nats_sub_end()) wait here for the connection's close. */
typedef struct verso__nats_conn {
    natsConnection *nc;
    jsCtx *js;
    natsSubscription *retired[VERSO__NATS_RETIRED_MAX];
    int nretired;
} verso__nats_conn;

/*
 * Connects to servers ("nats://h:p[,h:p...]" or "h:p,..." with "nats://"
 * optional on each), with token (NULL or "" none). libnats reconnects by
 * itself for ever once connected. VERSO_ENET (why), VERSO_EINVAL (a bad
 * list), VERSO_ENOMEM.
 */
int verso__nats_connect(verso__nats_conn *c, const char *servers, const char *token, char *why,
                        size_t whylen);
void verso__nats_close(verso__nats_conn *c); /* zeroes c; an empty c is fine */
/*
 * Ends sub (NULL is fine). libnats 3.4 may still be handling one of its messages in its read
 * loop while another thread destroys it (nats.c issue #637, fixed in 3.6): a use after free.
 * So: unsubscribe (no new message reaches it), flush (the server's PONG comes after every
 * message it sent before the UNSUB, and the read loop handles them in order), then destroy.
 * When the flush fails, sub is kept until verso__nats_close().
 */
void verso__nats_sub_end(verso__nats_conn *c, natsSubscription *sub);
/* True while the connection is up (not reconnecting). */
bool verso__nats_connected(const verso__nats_conn *c);

/* A stream name: [A-Za-z0-9_-]{1,64}. */
bool verso__nats_stream_name_ok(const char *name);
/* A subject prefix: tokens of [A-Za-z0-9_-] separated by '.', at most 128 bytes. */
bool verso__nats_subject_ok(const char *p);

/* "nats://h:p[,h:p...]/STREAM[?subject=P]" into servers (the part before /STREAM), stream and
 * subject ("" when absent). VERSO_EINVAL. */
int verso__nats_url_parse(const char *url, char *servers, size_t nservers, char *stream,
                          size_t nstream, char *subject, size_t nsubject);

/* Words for a failed libnats call: its status, the JetStream error code when there is one,
 * and libnats' last error text. */
void verso__nats_why(char *why, size_t whylen, const char *what, natsStatus s, jsErrCode jerr);
/* The verso error of a failed libnats call. */
int verso__nats_rc(natsStatus s);

/* Header key of m as an integer (0; VERSO_EPROTO when missing or not a decimal integer). */
int verso__nats_hdr_i64(int64_t *out, natsMsg *m, const char *key);
/* Header key of m, or NULL. Borrowed for m's life. */
const char *verso__nats_hdr(natsMsg *m, const char *key);

/* Fetches the message at stream sequence seq (*out NULL when there is none: 0). */
int verso__nats_get(natsMsg **out, verso__nats_conn *c, const char *stream, uint64_t seq, char *why,
                    size_t whylen);
/* Fetches the last message on subject (*out NULL when there is none: 0). */
int verso__nats_get_last(natsMsg **out, verso__nats_conn *c, const char *stream,
                         const char *subject, char *why, size_t whylen);
/* The stream's first and last sequences (0, 0 when empty). VERSO_ENOTFOUND: no stream. */
int verso__nats_stream_seqs(uint64_t *first, uint64_t *last, verso__nats_conn *c,
                            const char *stream, char *why, size_t whylen);

/* Sleeps up to ms milliseconds, less when *stop is set. */
void verso__nats_nap(const atomic_int *stop, int64_t ms);
/* The next backoff delay after cur (0: min), doubling up to max, with jitter from *seed. */
int verso__nats_backoff(int cur, int min, int max, uint64_t *seed);

/* Whether m has the Nats-Msg-Id a publisher gives the changes message (from, to] of identity,
 * "<identity>:<from>:<to>": anything else was written by something else, not by a publisher. */
bool verso__nats_chain_id(natsMsg *m, const char *identity, int64_t from, int64_t to);
/* Whether m has the Nats-Msg-Id of a publisher's master message of identity
 * ("<identity>:master" or "<identity>:master:..."). */
bool verso__nats_master_id(natsMsg *m, const char *identity);

/* The identity and head a "<P>.master" message announces. VERSO_EPROTO. */
int verso__nats_master_read(char identity[37], int64_t *head, natsMsg *m);

/* The CLOCK_REALTIME time ms from now, for pthread_cond_timedwait(). */
struct timespec verso__nats_deadline(int ms);

#endif
