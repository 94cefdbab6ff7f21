/* rest/chunked.c - the chunked transfer coding of request bodies (RFC 9112
 * section 7.1), one byte of framing at a time, so that a body decodes the
 * same whatever pieces the network cut it into. Extensions and trailer
 * fields are skipped, within a bound on their total size; lines end with
 * CRLF only. */
#include <stdint.h>
#include <string.h>

#include "rest/internal.h"

/* Where the decoder is. */
enum {
    CK_SIZE,       /* hex digits of a chunk size */
    CK_EXT,        /* a chunk extension, ignored */
    CK_SIZE_LF,    /* the LF ending the size line */
    CK_DATA,       /* chunk data */
    CK_DATA_CR,    /* the CR after the data */
    CK_DATA_LF,    /* the LF after the data */
    CK_LINE,       /* start of a trailer line, or of the final CRLF */
    CK_TRAILER,    /* a trailer field, ignored */
    CK_TRAILER_LF, /* the LF ending a trailer field */
    CK_END_LF,     /* the final LF */
    CK_DONE
};

#define CK_MAX_DIGITS 16    /* hex digits of a chunk size */
#define CK_MAX_META   16384 /* bytes of extensions and trailers, in all */

typedef verso__chunked chunked;

static int hex_digit(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Control bytes other than HTAB: never in an extension or a trailer field.
 * A bare LF or CR there would end the line for a lenient parser in front of
 * the server and not for this one: two views of where the body ends. */
static bool is_ctl(unsigned char ch)
{
    return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* The size line of a chunk: 0, or 400 when malformed. */
static int ck_size(chunked *k, unsigned char ch)
{
    int h = hex_digit(ch);

    if (h >= 0 && k->digits < CK_MAX_DIGITS) {
        k->size = k->size << 4 | (uint64_t)h;
        k->digits++;
        return 0;
    }
    if (!k->digits || h >= 0 || (ch != ';' && ch != '\r'))
        return 400;
    k->state = ch == ';' ? CK_EXT : CK_SIZE_LF;
    return 0;
}

/* One byte of framing (everything but chunk data): 0, or 400 when malformed. */
static int ck_frame(chunked *k, unsigned char ch)
{
    int next = k->state, ok = 1;

    switch (k->state) {
    case CK_SIZE:
        return ck_size(k, ch);
    case CK_EXT:
        next = ch == '\r' ? CK_SIZE_LF : CK_EXT;
        ok = ++k->meta <= CK_MAX_META && (ch == '\r' || !is_ctl(ch));
        break;
    case CK_SIZE_LF:
        next = k->size ? CK_DATA : CK_LINE;
        ok = ch == '\n';
        break;
    case CK_DATA_CR:
        next = CK_DATA_LF;
        ok = ch == '\r';
        break;
    case CK_DATA_LF:
        k->digits = 0;
        k->size = 0;
        next = CK_SIZE;
        ok = ch == '\n';
        break;
    case CK_LINE:
    case CK_TRAILER:
        next = ch == '\r' ? (k->state == CK_LINE ? CK_END_LF : CK_TRAILER_LF) : CK_TRAILER;
        ok = ++k->meta <= CK_MAX_META && (ch == '\r' || !is_ctl(ch));
        break;
    case CK_TRAILER_LF:
    case CK_END_LF:
        next = k->state == CK_END_LF ? CK_DONE : CK_LINE;
        ok = ch == '\n';
        break;
    default:
        ok = 0;
    }
    k->state = next;
    return ok ? 0 : 400;
}

int verso__chunked_feed(verso__chunked *k, verso_buf *body, const void *data, size_t len,
                        size_t max)
{
    const unsigned char *in = data;
    int st = 0;

    while (len && !st && k->state != CK_DONE) {
        size_t n = k->size < len ? (size_t)k->size : len;
        if (k->state != CK_DATA) {
            st = ck_frame(k, *in++);
            len--;
        } else if (k->size > max - body->len) {
            st = 413;
        } else if (verso_buf_append(body, in, n) < 0) {
            st = 500;
        } else {
            in += n;
            len -= n;
            k->size -= n;
            k->state = k->size ? CK_DATA : CK_DATA_CR;
        }
    }
    return st;
}

bool verso__chunked_done(const verso__chunked *k)
{
    return k->state == CK_DONE;
}
