/*
 * The master's ring of encoded segments. Every commit is read once and
 * encoded once; slaves at a boundary share the messages. The ring is a
 * circular array so that finding a slave's segment is a binary search on
 * from (segments are contiguous, so froms increase).
 */
#include <string.h>

#include "orm/alloc.h"
#include "sync/ring.h"

void verso__ring_msgs_free(verso__ring_msg *msgs, size_t n)
{
    for (size_t i = 0; msgs && i < n; i++) {
        verso__free(msgs[i].data);
        verso__free(msgs[i].offs);
        verso__free(msgs[i].vers);
    }
    verso__free(msgs);
}

int verso__ring_init(verso__ring *r, size_t max_count, size_t max_bytes)
{
    memset(r, 0, sizeof(*r));
    r->cap = max_count > 0 ? max_count : 1;
    r->max_bytes = max_bytes;
    r->next_seq = 1;
    r->end = -1;
    if (!(r->segs = verso__calloc(r->cap, sizeof(*r->segs))))
        return VERSO_ENOMEM;
    return 0;
}

static verso__ring_seg *nth(const verso__ring *r, size_t i)
{
    return &r->segs[(r->first + i) % r->cap];
}

static void drop_oldest(verso__ring *r)
{
    verso__ring_seg *s = nth(r, 0);

    r->bytes -= s->bytes;
    verso__ring_msgs_free(s->msgs, s->nmsgs);
    memset(s, 0, sizeof(*s));
    r->first = (r->first + 1) % r->cap;
    r->n--;
}

void verso__ring_clear(verso__ring *r)
{
    while (r->n > 0)
        drop_oldest(r);
    r->end = -1;
}

void verso__ring_free(verso__ring *r)
{
    if (!r->segs)
        return;
    verso__ring_clear(r);
    verso__free(r->segs);
    r->segs = NULL;
}

int verso__ring_add(verso__ring *r, int64_t from, int64_t to, verso__ring_msg *msgs, size_t n)
{
    verso__ring_seg *s;
    size_t bytes = 0;
    bool fetches = false;

    if ((r->end >= 0 && from != r->end) || to <= from || n == 0) {
        verso__ring_msgs_free(msgs, n);
        return VERSO_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        bytes += msgs[i].len + (size_t)msgs[i].rows * (sizeof(size_t) + sizeof(int64_t));
        fetches |= msgs[i].fetches;
    }
    while (r->n > 0 && (r->n == r->cap || r->bytes + bytes > r->max_bytes))
        drop_oldest(r);
    s = nth(r, r->n);
    *s = (verso__ring_seg){r->next_seq++, from, to, msgs, n, bytes, fetches};
    r->n++;
    r->bytes += bytes;
    r->end = to;
    return 0;
}

/* The index of the first segment whose from is at least v (n if none). */
static size_t first_from(const verso__ring *r, int64_t v)
{
    size_t lo = 0, hi = r->n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (nth(r, mid)->from < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Segment i, unless it names blob versions and is not the newest. */
static const verso__ring_seg *usable(const verso__ring *r, size_t i)
{
    return nth(r, i)->fetches && i + 1 < r->n ? NULL : nth(r, i);
}

const verso__ring_seg *verso__ring_at(const verso__ring *r, int64_t from)
{
    size_t i = first_from(r, from);

    return i < r->n && nth(r, i)->from == from ? usable(r, i) : NULL;
}

const verso__ring_seg *verso__ring_within(const verso__ring *r, int64_t v)
{
    size_t i = first_from(r, v); /* the segment before it starts below v */

    return i > 0 && nth(r, i - 1)->from < v && v < nth(r, i - 1)->to ? usable(r, i - 1) : NULL;
}

const verso__ring_seg *verso__ring_seq(const verso__ring *r, uint64_t seq)
{
    if (r->n == 0 || seq < nth(r, 0)->seq || seq >= r->next_seq)
        return NULL;
    return nth(r, (size_t)(seq - nth(r, 0)->seq));
}
