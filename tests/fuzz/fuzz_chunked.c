/*
 * libFuzzer harness: the chunked body decoder of the REST server
 * (verso__chunked_feed, rest/chunked.c; RFC 9112 section 7.1).
 *
 * Input: byte 0 picks the body limit (max), bytes 1-4 seed the split
 * points, the rest is what the client sent after the headers.
 *
 * Properties beyond "no crash":
 *   - the verdict (ok and done / needs more / 400 / 413) and the decoded
 *     bytes are the same whatever the TCP split: the whole input at once,
 *     byte by byte, and in pieces cut at fuzzer-chosen points;
 *   - the decoded body never exceeds max; a body that decodes whole under
 *     no limit decodes the same under max when it fits, and is 413 when not;
 *   - bytes after the end of the body are ignored (nothing appended);
 *   - a decoded body, chunked again in fuzzer-chosen pieces, decodes back to
 *     the same bytes;
 *   - what is accepted is well framed: lines end with CRLF only, and chunk
 *     extensions and trailer fields hold no control byte but HTAB (a bare LF
 *     or CR there is where another parser in front would cut differently).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rest/internal.h"

typedef struct run {
    int status;
    bool done;
    verso_buf body;
} run;

static uint32_t next_rand(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

/* Feeds data in pieces of at most piece bytes (0: sizes drawn from seed). */
static void decode(run *r, const uint8_t *data, size_t size, size_t max, size_t piece,
                   uint32_t seed)
{
    verso__chunked k;

    memset(&k, 0, sizeof(k));
    memset(r, 0, sizeof(*r));
    for (size_t at = 0; at < size && !r->status;) {
        size_t n = piece ? piece : 1 + next_rand(&seed) % 24;
        size_t had = r->body.len;
        bool was_done = verso__chunked_done(&k);
        if (n > size - at)
            n = size - at;
        r->status = verso__chunked_feed(&k, &r->body, data + at, n, max);
        if (was_done && (r->status || r->body.len != had))
            abort(); /* bytes after the end must be ignored */
        at += n;
    }
    r->done = !r->status && verso__chunked_done(&k);
    if (r->status == 500)
        abort(); /* out of memory on fuzz sizes: not expected */
    if (r->body.len > max)
        abort(); /* the limit holds */
}

static bool same(const run *a, const run *b)
{
    return a->status == b->status && a->done == b->done && a->body.len == b->body.len &&
           (!a->body.len || !memcmp(a->body.data, b->body.data, a->body.len));
}

/* The body chunked again, in pieces drawn from seed, with a trailer. */
static void rechunk(verso_buf *out, const verso_buf *body, uint32_t seed)
{
    for (size_t at = 0; at < body->len;) {
        size_t n = 1 + next_rand(&seed) % 300;
        if (n > body->len - at)
            n = body->len - at;
        if (verso_buf_printf(out, "%zX%s\r\n", n, n & 1 ? ";ext=1" : "") < 0 ||
            verso_buf_append(out, body->data + at, n) < 0 || verso_buf_puts(out, "\r\n") < 0)
            abort();
        at += n;
    }
    if (verso_buf_puts(out, "0\r\nX-Trailer: 1\r\n\r\nGET / HTTP/1.1\r\n") < 0)
        abort();
}

static void check_rechunk(const run *whole, uint32_t seed)
{
    verso_buf again = VERSO_BUF_INIT;
    run r;

    rechunk(&again, &whole->body, seed);
    decode(&r, (const uint8_t *)again.data, again.len, SIZE_MAX, 0, seed);
    if (!r.done || !same(&r, whole))
        abort(); /* a body chunked again decodes to the same bytes */
    verso_buf_free(&r.body);
    verso_buf_free(&again);
}

static bool is_ctl(uint8_t ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* Skips the rest of a line (extension or trailer field) and its CRLF. */
static bool strict_line(const uint8_t *d, size_t n, size_t *at)
{
    while (*at < n && !is_ctl(d[*at]))
        (*at)++;
    if (*at + 1 >= n || d[*at] != '\r' || d[*at + 1] != '\n')
        return false;
    *at += 2;
    return true;
}

/* A strict reading of a chunked body (RFC 9112 section 7.1): true if data
 * starts with a whole, well framed one. Extensions and trailer fields are
 * only checked for control bytes. */
static bool strict_framing(const uint8_t *d, size_t n)
{
    size_t at = 0;

    for (;;) {
        uint64_t size = 0;
        size_t digits = 0;
        for (; at < n && isxdigit(d[at]); at++, digits++)
            size = size << 4 | (uint64_t)(isdigit(d[at]) ? d[at] - '0' : (d[at] | 0x20) - 'a' + 10);
        if (!digits || at == n || (d[at] != ';' && d[at] != '\r') || !strict_line(d, n, &at))
            return false;
        if (!size)
            break;
        if (size > n - at || n - at - size < 2 || d[at + size] != '\r' || d[at + size + 1] != '\n')
            return false;
        at += size + 2;
    }
    while (at + 1 < n && !(d[at] == '\r' && d[at + 1] == '\n'))
        if (!strict_line(d, n, &at))
            return false;
    return at + 1 < n;
}

/* What max does to a body that decoded whole without a limit. */
static void check_limit(const run *unlimited, const run *limited, size_t max)
{
    if (!unlimited->done)
        return;
    if (unlimited->body.len <= max ? !same(unlimited, limited) : limited->status != 413)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t k_max[] = {0, 1, 7, 16, 100, 1000, 65536, SIZE_MAX};
    run whole, bytes, cut, unlimited;
    uint32_t seed;
    size_t max;

    if (size < 5)
        return 0;
    max = k_max[data[0] % (sizeof(k_max) / sizeof(k_max[0]))];
    seed = (uint32_t)data[1] | (uint32_t)data[2] << 8 | (uint32_t)data[3] << 16 |
           (uint32_t)data[4] << 24 | 1u;
    data += 5;
    size -= 5;
    decode(&whole, data, size, max, size ? size : 1, seed);
    decode(&bytes, data, size, max, 1, seed);
    decode(&cut, data, size, max, 0, seed);
    if (!same(&whole, &bytes) || !same(&whole, &cut))
        abort(); /* the split changed the verdict or the bytes */
    decode(&unlimited, data, size, SIZE_MAX, 0, seed);
    check_limit(&unlimited, &whole, max);
    if (unlimited.done)
        check_rechunk(&unlimited, seed);
    if (unlimited.done && !strict_framing(data, size))
        abort(); /* accepted framing that a strict parser refuses */
    verso_buf_free(&whole.body);
    verso_buf_free(&bytes.body);
    verso_buf_free(&cut.body);
    verso_buf_free(&unlimited.body);
    return 0;
}
