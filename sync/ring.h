/* ring.h - the master's ring of recently encoded segments (ring.c), shared by every slave whose
 * cursor is one of its boundaries. */
#ifndef VERSO_SYNC_RING_H
#define VERSO_SYNC_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "verso/verso.h"

/* One message of a segment: a whole "changes" message as sent. */
typedef struct verso__ring_msg {
    char *data; /* owned */
    size_t len;
    int64_t to;   /* its "to" */
    int64_t rows; /* its entries */
    bool more;    /* true but for the segment's last message */
    bool fetches; /* some entry has a {"blob_fetch":N} value: it names a version of a row */
    size_t entries_off, entries_len; /* the text of its entries, between "[" and "]" */
    int64_t head;                    /* its "head" */
    size_t *offs;     /* owned, rows entries: where each entry's text starts in data */
    int64_t *vers;    /* owned, rows entries: each entry's version (increasing) */
    size_t index_cap; /* entries offs and vers have room for */
} verso__ring_msg;

/*
 * A segment: the changes (from, to] read in one read transaction whose head
 * was to, so applied to the master's state at from they give its state at
 * to. Its messages chain from -> ... -> to, the last with more false.
 */
typedef struct verso__ring_seg {
    uint64_t seq; /* numbered from 1 in the order they were added */
    int64_t from, to;
    verso__ring_msg *msgs;
    size_t nmsgs;
    size_t bytes;
    bool fetches; /* one of its messages has */
} verso__ring_seg;

/*
 * The segments of one database identity, contiguous: each one's from is
 * the previous one's to. end is the newest boundary (-1: none, the ring
 * restarts at the next add). Bounded by bytes and count: the oldest
 * segments go first. One thread.
 */
typedef struct verso__ring {
    verso__ring_seg *segs; /* circular, cap entries */
    size_t cap, first, n;
    size_t bytes, max_bytes;
    uint64_t next_seq;
    int64_t end;
    char identity[37];
} verso__ring;

/* An empty ring holding at most max_count segments and max_bytes bytes (one segment always). */
int verso__ring_init(verso__ring *r, size_t max_count, size_t max_bytes);
void verso__ring_free(verso__ring *r);
/* Drops every segment; the ring restarts at the next add (end -1). */
void verso__ring_clear(verso__ring *r);

/*
 * Appends the segment (from, to], from < to, made of msgs (n messages, taken over, also
 * on failure). from must equal end, unless end is -1. Evicts the oldest
 * segments beyond the bounds. VERSO_ENOMEM, VERSO_EINVAL (not contiguous).
 */
int verso__ring_add(verso__ring *r, int64_t from, int64_t to, verso__ring_msg *msgs, size_t n);

/*
 * The segment starting at boundary from, or NULL. A segment whose entries
 * name blob versions to fetch (fetches) is given only while it is the
 * newest: once a later commit is in the ring, the row it names may have
 * changed, its blob version is gone from the master (the fetch gets 412),
 * and a slave sent back to its cursor would be sent the same version again,
 * forever. Past that point a slave reads from its cursor on its own, which
 * sees the row as it is now.
 */
const verso__ring_seg *verso__ring_at(const verso__ring *r, int64_t from);
/*
 * The segment holding version v strictly inside it (from < v < to), under
 * the same rule as verso__ring_at() for segments that name blob versions,
 * or NULL.
 */
const verso__ring_seg *verso__ring_within(const verso__ring *r, int64_t v);

/* The segment numbered seq while it is held, or NULL. */
const verso__ring_seg *verso__ring_seq(const verso__ring *r, uint64_t seq);

/* Frees the n messages of msgs and msgs itself. */
void verso__ring_msgs_free(verso__ring_msg *msgs, size_t n);

#endif
