/*
 * JSON for records: a streaming writer into verso_buf, and a cJSON-based
 * parser with exact 64-bit integers.
 *
 * The writer does not use cJSON: the change feed is streamed through it, and
 * cJSON's printer is about 3x slower and loses integers above 2^53. Values
 * are appended after one reservation per value; integers use a hand-written
 * formatter.
 *
 * The parser runs a string-aware pre-pass before cJSON, because cJSON keeps
 * numbers as doubles, accepts invalid UTF-8, raw control characters, lone
 * surrogates and non-JSON numbers ("01", "1."), and allows 1000 levels of
 * nesting. The pre-pass rejects those and records the literal text of every
 * number token in document order; after parsing, the tree is walked in the
 * same order and each number node gets its literal as valuestring (which
 * cJSON_Delete frees for any node type), so verso_json_int64() is exact.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "orm/internal.h"
#include "verso/advanced.h"
#include "verso/orm.h"

#define JSON_DEFAULT_DEPTH 64
#define JSON_WHY_MAX       160

struct verso_json {
    cJSON *root;
};

static _Thread_local char json_why[JSON_WHY_MAX];

/* ---------------------------------------------------------------------
 * UTF-8
 * ------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence starting at s (n > 0 bytes available),
 * 0 if it is invalid: overlong, surrogate, above U+10FFFF or truncated. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------ */

/* 0: copied as is; 1: escaped; 2: first byte of a multi-byte sequence. */
static const unsigned char json_esc[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x00 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x10 */
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x20 '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x30 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x40 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* 0x50 '\\' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x60 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x70 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x80 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0x90 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xA0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xB0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xC0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xD0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xE0 */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, /* 0xF0 */
};

static const char hex_digits[] = "0123456789abcdef";

/* Writes the escape of ASCII byte c at o; returns its length. */
static size_t escape_byte(char *o, unsigned char c)
{
    static const char short_esc[32] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't',
    };
    o[0] = '\\';
    if (c == '"' || c == '\\') {
        o[1] = (char)c;
        return 2;
    }
    if (short_esc[c]) {
        o[1] = short_esc[c];
        return 2;
    }
    memcpy(o + 1, "u00", 3);
    o[4] = hex_digits[c >> 4];
    o[5] = hex_digits[c & 15];
    return 6;
}

int verso_json_string(verso_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + n;
    size_t start = b->len;
    /* Room for every byte copied as is, the quotes and one escape. */
    if (n > SIZE_MAX / 2 || verso_buf_reserve(b, n + 8) < 0)
        return VERSO_ENOMEM;
    b->data[b->len++] = '"';
    while (p < end) {
        const unsigned char *run = p;
        while (p < end && !json_esc[*p])
            p++;
        if (p > run) {
            memcpy(b->data + b->len, run, (size_t)(p - run));
            b->len += (size_t)(p - run);
        }
        if (p == end)
            break;
        if (json_esc[*p] == 2) {
            size_t k = utf8_seq(p, (size_t)(end - p));
            if (!k)
                goto bad_utf8;
            memcpy(b->data + b->len, p, k);
            b->len += k;
            p += k;
            continue;
        }
        /* An escape grows the output by up to 5 bytes over the input. */
        if (verso_buf_reserve(b, (size_t)(end - p) + 8) < 0) {
            b->len = start;
            b->data[b->len] = '\0';
            return VERSO_ENOMEM;
        }
        b->len += escape_byte(b->data + b->len, *p++);
    }
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
    return 0;

bad_utf8:
    b->len = start;
    b->data[b->len] = '\0';
    return VERSO_EUTF8;
}

/* Formats v in decimal at o (room for 20 bytes); returns the length. */
static size_t format_int64(char *o, int64_t v)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324"
                                "25262728293031323334353637383940414243444546474849"
                                "50515253545556575859606162636465666768697071727374"
                                "75767778798081828384858687888990919293949596979899";
    char tmp[20];
    size_t i = sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        tmp[--i] = pairs[d + 1];
        tmp[--i] = pairs[d];
    }
    if (u >= 10) {
        tmp[--i] = pairs[u * 2 + 1];
        tmp[--i] = pairs[u * 2];
    } else {
        tmp[--i] = (char)('0' + u);
    }
    if (v < 0)
        tmp[--i] = '-';
    memcpy(o, tmp + i, sizeof tmp - i);
    return sizeof tmp - i;
}

static int put_raw(verso_buf *b, const char *s, size_t n)
{
    if (verso_buf_reserve(b, n) < 0)
        return VERSO_ENOMEM;
    if (n)
        memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

static int put_int64(verso_buf *b, int64_t v)
{
    if (verso_buf_reserve(b, 20) < 0)
        return VERSO_ENOMEM;
    b->len += format_int64(b->data + b->len, v);
    b->data[b->len] = '\0';
    return 0;
}

/*
 * Writes d as m / 10^k when some k in 1..9 gives an integer m below 2^53 with
 * m / 10^k == d: strtod() of that text is the correctly rounded m / 10^k,
 * which is what the exact division gave, so the text round-trips. This is
 * the common case for decimal data (prices, measures) and avoids printf.
 * Returns the length written at o, 0 if no such k.
 */
static size_t format_decimal(char *o, double d)
{
    static const double p10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    const double lim = 9007199254740992.0; /* 2^53 */
    double a = fabs(d);
    for (int k = 1; k <= 9; k++) {
        double scaled = a * p10[k];
        if (scaled >= lim)
            return 0;
        double m = nearbyint(scaled);
        if (m / p10[k] != a)
            continue;
        char digits[24];
        size_t n = format_int64(digits, (int64_t)m), pos = 0;
        if (signbit(d))
            o[pos++] = '-';
        if (n <= (size_t)k) { /* 0.000ddd */
            o[pos++] = '0';
            o[pos++] = '.';
            memset(o + pos, '0', (size_t)k - n);
            pos += (size_t)k - n;
            memcpy(o + pos, digits, n);
            return pos + n;
        }
        memcpy(o + pos, digits, n - (size_t)k);
        pos += n - (size_t)k;
        o[pos++] = '.';
        memcpy(o + pos, digits + n - (size_t)k, (size_t)k);
        return pos + (size_t)k;
    }
    return 0;
}

/*
 * Doubles are written so that strtod() gives back the same value. Integral
 * values keep a ".0" so that a reader does not take them for integers. NaN
 * and infinities have no JSON form and are written as null.
 */
static int put_double(verso_buf *b, double d)
{
    char tmp[40];
    int n;
    if (!isfinite(d))
        return put_raw(b, "null", 4);
    if (d == trunc(d) && fabs(d) < 1e15) {
        size_t k = 0;
        if (d == 0 && signbit(d))
            tmp[k++] = '-';
        k += format_int64(tmp + k, (int64_t)d);
        memcpy(tmp + k, ".0", 2);
        return put_raw(b, tmp, k + 2);
    }
    size_t k = format_decimal(tmp, d);
    if (k)
        return put_raw(b, tmp, k);
    if (fabs(d) < 1e15) {
        n = snprintf(tmp, sizeof tmp, "%.17g", d);
    } else { /* large values are often round: prefer 1e+300 to 1.0000000000000001e+300 */
        n = snprintf(tmp, sizeof tmp, "%.15g", d);
        if (strtod(tmp, NULL) != d)
            n = snprintf(tmp, sizeof tmp, "%.17g", d);
    }
    if (!strpbrk(tmp, ".eE")) {
        memcpy(tmp + n, ".0", 3);
        n += 2;
    }
    return put_raw(b, tmp, (size_t)n);
}

static int put_base64(verso_buf *b, const unsigned char *p, size_t n)
{
    int rc = put_raw(b, "\"", 1);
    if (rc == 0)
        rc = verso_base64_encode(b, p, n);
    return rc == 0 ? put_raw(b, "\"", 1) : rc;
}

static int put_bool(verso_buf *b, bool v)
{
    return v ? put_raw(b, "true", 4) : put_raw(b, "false", 5);
}

/*
 * Values the column type implies are plain JSON; any other value is a tagged
 * object naming its storage class (docs/protocol.md, "Values in JSON"):
 * {"integer":N}, {"real":X|"Infinity"|"-Infinity"}, {"text":"..."},
 * {"text_base64":"..."} (text that is not valid UTF-8), {"blob":"..."}.
 */
static int put_tag(verso_buf *b, const char *tag)
{
    int rc = put_raw(b, "{\"", 2);
    if (rc == 0)
        rc = put_raw(b, tag, strlen(tag));
    return rc == 0 ? put_raw(b, "\":", 2) : rc;
}

static int put_tagged_int(verso_buf *b, int64_t i)
{
    int rc = put_tag(b, "integer");
    if (rc == 0)
        rc = put_int64(b, i);
    return rc == 0 ? put_raw(b, "}", 1) : rc;
}

static int put_tagged_real(verso_buf *b, double d)
{
    int rc = put_tag(b, "real");
    if (rc == 0 && isfinite(d))
        rc = put_double(b, d);
    else if (rc == 0)
        rc = d > 0 ? put_raw(b, "\"Infinity\"", 10) : put_raw(b, "\"-Infinity\"", 11);
    return rc == 0 ? put_raw(b, "}", 1) : rc;
}

static int put_tagged_bytes(verso_buf *b, const char *tag, const unsigned char *p, size_t n)
{
    int rc = put_tag(b, tag);
    if (rc == 0)
        rc = put_base64(b, p, n);
    return rc == 0 ? put_raw(b, "}", 1) : rc;
}

static int put_blob_fetch(verso_buf *b, size_t n)
{
    int rc = put_tag(b, "blob_fetch");
    if (rc == 0)
        rc = put_int64(b, (int64_t)n);
    return rc == 0 ? put_raw(b, "}", 1) : rc;
}

static bool uuid_canonical(const char *s, size_t n)
{
    if (n != 36)
        return false;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static int put_text_value(verso_buf *b, const verso_value *v, verso_type column_type)
{
    const char *s = v->u.b.p ? v->u.b.p : "";
    size_t n = v->u.b.n;
    int rc;
    bool plain = column_type == VERSO_TEXT || column_type == VERSO_ANY ||
                 (column_type == VERSO_UUID && uuid_canonical(s, n));
    if (plain) { /* one pass: the string writer checks UTF-8 as it copies */
        rc = verso_json_string(b, s, n);
        if (rc != VERSO_EUTF8)
            return rc;
    } else if (utf8_valid(s, n)) {
        if ((rc = put_tag(b, "text")) == 0 && (rc = verso_json_string(b, s, n)) == 0)
            rc = put_raw(b, "}", 1);
        return rc;
    }
    return put_tagged_bytes(b, "text_base64", (const unsigned char *)s, n);
}

int verso_json_value(verso_buf *b, const verso_value *v, verso_type column_type)
{
    switch (v->type) {
    case VERSO_NULL:
        return put_raw(b, "null", 4);
    case VERSO_INT64:
    case VERSO_BOOL:
        if (column_type == VERSO_BOOL && (v->u.i == 0 || v->u.i == 1))
            return put_bool(b, v->u.i != 0);
        if (column_type == VERSO_INT64 || column_type == VERSO_ANY)
            return put_int64(b, v->u.i);
        return put_tagged_int(b, v->u.i);
    case VERSO_DOUBLE:
        if (isnan(v->u.d)) /* SQLite stores NaN as NULL */
            return put_raw(b, "null", 4);
        if (isfinite(v->u.d) && (column_type == VERSO_DOUBLE || column_type == VERSO_ANY))
            return put_double(b, v->u.d);
        return put_tagged_real(b, v->u.d);
    case VERSO_TEXT:
    case VERSO_UUID:
        return put_text_value(b, v, column_type);
    case VERSO_BLOB:
        if (!v->u.b.p && v->u.b.n) /* not read: fetched apart (verso_feed_options.blob_inline) */
            return put_blob_fetch(b, v->u.b.n);
        if (column_type == VERSO_BLOB)
            return put_base64(b, v->u.b.p, v->u.b.n);
        return put_tagged_bytes(b, "blob", v->u.b.p, v->u.b.n);
    case VERSO_ANY:
        break;
    }
    return VERSO_EINVAL;
}

/* Appends "name": (a key followed by a colon). */
static int put_key(verso_buf *b, const char *name)
{
    int rc = verso_json_string(b, name, strlen(name));
    if (rc < 0)
        return rc;
    return put_raw(b, ":", 1);
}

int verso__json_row(verso_buf *b, const verso_table *t, const verso_value *vals, size_t n)
{
    int rc = put_raw(b, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const verso_column *c = verso_table_column_at(t, i);
        if (!c)
            return VERSO_EINVAL;
        if (i > 0 && (rc = put_raw(b, ",", 1)) < 0)
            break;
        if ((rc = put_key(b, c->name)) < 0)
            break;
        rc = verso_json_value(b, &vals[i], c->type);
    }
    if (rc == 0)
        rc = put_raw(b, "}", 1);
    return rc;
}

int verso_json_iter_row(verso_buf *b, const verso_iter *it)
{
    size_t n = verso_iter_ncolumns(it);
    size_t start = b->len;
    int rc = put_raw(b, "{", 1);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const verso_column *c = verso_iter_column(it, i);
        verso_value v;
        if (i > 0 && (rc = put_raw(b, ",", 1)) < 0)
            break;
        if ((rc = put_key(b, verso_iter_column_name(it, i))) < 0)
            break;
        if ((rc = verso_iter_value(&v, it, i)) < 0)
            break;
        rc = verso_json_value(b, &v, c ? c->type : VERSO_ANY);
    }
    if (rc == 0)
        rc = put_raw(b, "}", 1);
    if (rc < 0 && b->data) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

int verso_json_feed_entry(verso_buf *b, const verso_feed_entry *e)
{
    size_t start = b->len;
    int rc;
    if ((rc = put_raw(b, "{\"table\":", 9)) < 0 ||
        (rc = verso_json_string(b, e->table_name, strlen(e->table_name))) < 0 ||
        (rc = put_raw(b, ",\"id\":", 6)) < 0 || (rc = put_int64(b, e->id)) < 0 ||
        (rc = put_raw(b, ",\"version\":", 11)) < 0 || (rc = put_int64(b, e->version)) < 0)
        goto done;
    if (e->deleted)
        rc = put_raw(b, ",\"deleted\":true}", 16);
    else if ((rc = put_raw(b, ",\"row\":", 7)) == 0 &&
             (rc = verso__json_row(b, e->table, e->values, e->ncolumns)) == 0)
        rc = put_raw(b, "}", 1);
done:
    if (rc < 0 && b->data) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

/* ---------------------------------------------------------------------
 * Parser pre-pass
 * ------------------------------------------------------------------ */

typedef struct numlit {
    size_t off;
    size_t len;
} numlit;

typedef struct prescan {
    const char *text;
    size_t len;
    size_t pos; /* where the error is */
    int max_depth;
    numlit *nums;
    size_t nnums;
    size_t capnums;
    size_t *strs; /* decoded byte length of every string token, keys included */
    size_t nstrs;
    size_t capstrs;
    const char *why;
} prescan;

static int prescan_fail(prescan *ps, int rc, const char *what)
{
    snprintf(json_why, sizeof json_why, "%s at byte %zu", what, ps->pos);
    ps->why = json_why;
    return rc;
}

static int hex4(unsigned *out, const char *s)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        v = v << 4 | d;
    }
    *out = v;
    return 0;
}

/* Checks the \u escape at ps->pos (pointing at 'u'); advances past it and,
 * for a surrogate pair, past the low half. *bytes gets its UTF-8 length.
 * \u0000 is a character like any other (SQLite text may hold it). */
static int prescan_unicode(prescan *ps, size_t *bytes)
{
    const char *t = ps->text;
    unsigned cp, lo;
    if (ps->len - ps->pos < 5 || hex4(&cp, t + ps->pos + 1) < 0)
        return prescan_fail(ps, VERSO_EJSON, "bad \\u escape");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return prescan_fail(ps, VERSO_EUTF8, "lone low surrogate escape");
    ps->pos += 5;
    *bytes = cp < 0x80 ? 1 : cp < 0x800 ? 2 : 3;
    if (cp < 0xD800 || cp > 0xDBFF)
        return 0;
    *bytes = 4;
    if (ps->len - ps->pos < 6 || t[ps->pos] != '\\' || t[ps->pos + 1] != 'u' ||
        hex4(&lo, t + ps->pos + 2) < 0 || lo < 0xDC00 || lo > 0xDFFF)
        return prescan_fail(ps, VERSO_EUTF8, "lone high surrogate escape");
    ps->pos += 6;
    return 0;
}

/* arr with room for one more element (a larger copy when it is full, *cap
 * updated), or NULL when out of memory (arr is then unchanged). */
static void *grow(void *arr, size_t *cap, size_t used, size_t elem)
{
    if (used < *cap)
        return arr;
    size_t n = *cap ? *cap * 2 : 16;
    void *p = verso__realloc(arr, n * elem);
    if (p)
        *cap = n;
    return p;
}

static int prescan_record_string(prescan *ps, size_t decoded)
{
    size_t *p = grow(ps->strs, &ps->capstrs, ps->nstrs, sizeof *p);
    if (!p)
        return prescan_fail(ps, VERSO_ENOMEM, "out of memory");
    ps->strs = p;
    ps->strs[ps->nstrs++] = decoded;
    return 0;
}

/* ps->pos is on the opening quote; leaves it after the closing quote and
 * records the string's decoded length. */
static int prescan_string(prescan *ps)
{
    const unsigned char *t = (const unsigned char *)ps->text;
    size_t decoded = 0;
    ps->pos++;
    while (ps->pos < ps->len) {
        unsigned char c = t[ps->pos];
        if (c == '"') {
            ps->pos++;
            return prescan_record_string(ps, decoded);
        }
        if (c < 0x20)
            return prescan_fail(ps, VERSO_EJSON, "control character in string");
        if (c >= 0x80) {
            size_t k = utf8_seq(t + ps->pos, ps->len - ps->pos);
            if (!k)
                return prescan_fail(ps, VERSO_EUTF8, "invalid UTF-8");
            ps->pos += k;
            decoded += k;
            continue;
        }
        if (c != '\\') {
            ps->pos++;
            decoded++;
            continue;
        }
        if (++ps->pos >= ps->len)
            break;
        c = t[ps->pos];
        if (c == 'u') {
            size_t k = 0;
            int rc = prescan_unicode(ps, &k);
            if (rc < 0)
                return rc;
            decoded += k;
            continue;
        }
        if (!strchr("\"\\/bfnrt", c) || c == '\0')
            return prescan_fail(ps, VERSO_EJSON, "bad escape");
        ps->pos++;
        decoded++;
    }
    return prescan_fail(ps, VERSO_EJSON, "unterminated string");
}

static size_t skip_digits(const char *t, size_t i, size_t len)
{
    while (i < len && t[i] >= '0' && t[i] <= '9')
        i++;
    return i;
}

/* Checks the JSON number grammar at ps->pos and records its literal. */
static int prescan_number(prescan *ps)
{
    const char *t = ps->text;
    size_t i = ps->pos, len = ps->len, d;
    if (t[i] == '-')
        i++;
    if (i >= len || t[i] < '0' || t[i] > '9')
        return prescan_fail(ps, VERSO_EJSON, "bad number");
    d = t[i] == '0' ? i + 1 : skip_digits(t, i, len);
    i = d;
    if (i < len && t[i] == '.') {
        d = skip_digits(t, i + 1, len);
        if (d == i + 1)
            return prescan_fail(ps, VERSO_EJSON, "bad number");
        i = d;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < len && (t[i] == '+' || t[i] == '-'))
            i++;
        d = skip_digits(t, i, len);
        if (d == i)
            return prescan_fail(ps, VERSO_EJSON, "bad number");
        i = d;
    }
    if (i < len && strchr("0123456789+-.eE", t[i]) && t[i] != '\0')
        return prescan_fail(ps, VERSO_EJSON, "bad number");
    numlit *nums = grow(ps->nums, &ps->capnums, ps->nnums, sizeof *nums);
    if (!nums)
        return prescan_fail(ps, VERSO_ENOMEM, "out of memory");
    ps->nums = nums;
    ps->nums[ps->nnums++] = (numlit){ps->pos, i - ps->pos};
    ps->pos = i;
    return 0;
}

static int prescan_run(prescan *ps)
{
    const unsigned char *t = (const unsigned char *)ps->text;
    int depth = 0, rc = 0;
    while (rc == 0 && ps->pos < ps->len) {
        unsigned char c = t[ps->pos];
        if (c == '"') {
            rc = prescan_string(ps);
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            rc = prescan_number(ps);
        } else if (c == '{' || c == '[') {
            if (++depth > ps->max_depth)
                return prescan_fail(ps, VERSO_ETOOBIG, "nesting too deep");
            ps->pos++;
        } else if (c == '}' || c == ']') {
            depth -= depth > 0;
            ps->pos++;
        } else if (c >= 0x80) {
            if (!utf8_seq(t + ps->pos, ps->len - ps->pos))
                return prescan_fail(ps, VERSO_EUTF8, "invalid UTF-8");
            return prescan_fail(ps, VERSO_EJSON, "unexpected character");
        } else if (c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r') {
            /* cJSON would skip any control character as whitespace */
            return prescan_fail(ps, VERSO_EJSON, "control character");
        } else {
            ps->pos++;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------ */

typedef struct attach_pos {
    size_t num; /* next number literal */
    size_t str; /* next string token */
} attach_pos;

/* A member name: no U+0000 (names are used as C strings). */
static int attach_key(const char *key, const prescan *ps, attach_pos *at)
{
    if (at->str >= ps->nstrs)
        return VERSO_EJSON;
    return ps->strs[at->str++] == strlen(key) ? 0 : VERSO_EINVAL;
}

/* A string value: its decoded length goes to valueint. */
static int attach_value(cJSON *node, const prescan *ps, attach_pos *at)
{
    if (at->str >= ps->nstrs)
        return VERSO_EJSON;
    size_t n = ps->strs[at->str++];
    if (n > INT_MAX)
        return VERSO_ETOOBIG;
    node->valueint = (int)n;
    return 0;
}

/* Gives number nodes, in document order, their literal text, and string
 * nodes their decoded length (valueint, see verso_json_strlen). */
static int attach_literals(cJSON *node, const prescan *ps, attach_pos *at)
{
    for (; node; node = node->next) {
        int rc;
        if (node->string && (rc = attach_key(node->string, ps, at)) < 0)
            return rc;
        if (cJSON_IsString(node) && (rc = attach_value(node, ps, at)) < 0)
            return rc;
        if (cJSON_IsNumber(node)) {
            if (at->num >= ps->nnums)
                return VERSO_EJSON;
            const numlit *lit = &ps->nums[at->num++];
            char *s = verso__malloc(lit->len + 1);
            if (!s)
                return VERSO_ENOMEM;
            memcpy(s, ps->text + lit->off, lit->len);
            s[lit->len] = '\0';
            node->valuestring = s;
        }
        if (node->child && (rc = attach_literals(node->child, ps, at)) < 0)
            return rc;
    }
    return 0;
}

static bool only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    return true;
}

static int parse_tree(cJSON **out, prescan *ps)
{
    const char *end = NULL;
    attach_pos at = {0, 0};
    int rc;
    unsigned mark = verso__nomem_count();
    cJSON *root = cJSON_ParseWithLengthOpts(ps->text, ps->len, &end, 0);
    if (!root && verso__nomem_count() != mark)
        return prescan_fail(ps, VERSO_ENOMEM, "out of memory");
    if (!root) {
        ps->pos = end && end >= ps->text ? (size_t)(end - ps->text) : 0;
        return prescan_fail(ps, VERSO_EJSON, "malformed JSON");
    }
    if (!only_space(end, ps->len - (size_t)(end - ps->text))) {
        ps->pos = (size_t)(end - ps->text);
        rc = prescan_fail(ps, VERSO_EJSON, "trailing characters after JSON value");
        goto fail;
    }
    if ((rc = attach_literals(root, ps, &at)) < 0 || at.num != ps->nnums || at.str != ps->nstrs) {
        ps->pos = 0;
        rc = prescan_fail(ps, rc == VERSO_ENOMEM || rc == VERSO_ETOOBIG ? rc : VERSO_EJSON,
                          rc == VERSO_EINVAL    ? "\\u0000 in a member name"
                          : rc == VERSO_ETOOBIG ? "string too long"
                                                : "number or string literals mismatch");
        goto fail;
    }
    *out = root;
    return 0;
fail:
    cJSON_Delete(root);
    return rc;
}

int verso_json_parse(verso_json **out, const char *text, size_t len, int max_depth, char *why,
                     size_t whylen)
{
    prescan ps = {text, len, 0,   max_depth > 0 ? max_depth : JSON_DEFAULT_DEPTH, NULL, 0, 0, NULL,
                  0,    0,   NULL};
    cJSON *root = NULL;
    int rc;
    *out = NULL;
    if (!text) {
        rc = prescan_fail(&ps, VERSO_EJSON, "no JSON text");
        goto done;
    }
    if ((rc = prescan_run(&ps)) < 0 || (rc = parse_tree(&root, &ps)) < 0)
        goto done;
    if (!(*out = verso__malloc(sizeof **out))) {
        cJSON_Delete(root);
        rc = prescan_fail(&ps, VERSO_ENOMEM, "out of memory");
        goto done;
    }
    (*out)->root = root;
done:
    verso__free(ps.nums);
    verso__free(ps.strs);
    if (why && whylen)
        snprintf(why, whylen, "%s", rc < 0 && ps.why ? ps.why : "");
    return rc;
}

void verso_json_free(verso_json *doc)
{
    if (!doc)
        return;
    cJSON_Delete(doc->root);
    verso__free(doc);
}

cJSON *verso_json_root(const verso_json *doc)
{
    return doc ? doc->root : NULL;
}

/* Without a literal (a tree built in C), only doubles that hold an exact
 * integer below 2^53 are integers. */
int verso_json_int64(int64_t *out, const cJSON *number)
{
    const double lim = 9007199254740992.0; /* 2^53 */
    char *end;
    if (!cJSON_IsNumber(number))
        return VERSO_ETYPE;
    const char *lit = number->valuestring;
    if (!lit) {
        double d = number->valuedouble;
        if (!(d > -lim && d < lim) || d != trunc(d))
            return VERSO_ETYPE;
        *out = (int64_t)d;
        return 0;
    }
    if (strpbrk(lit, ".eE"))
        return VERSO_ETYPE;
    errno = 0;
    long long v = strtoll(lit, &end, 10);
    if (errno == ERANGE || end == lit || *end != '\0')
        return VERSO_ETYPE;
    *out = (int64_t)v;
    return 0;
}

size_t verso_json_strlen(const cJSON *s)
{
    if (!cJSON_IsString(s) || !s->valuestring)
        return 0;
    size_t n = strlen(s->valuestring);
    return s->valueint > 0 && (size_t)s->valueint > n ? (size_t)s->valueint : n;
}

const char *verso_json_cstr(const cJSON *s)
{
    if (!cJSON_IsString(s) || !s->valuestring)
        return NULL;
    return verso_json_strlen(s) == strlen(s->valuestring) ? s->valuestring : NULL;
}

/* ---------------------------------------------------------------------
 * JSON object -> column values
 * ------------------------------------------------------------------ */

/* Checks a canonical UUID (8-4-4-4-12 hex digits) and writes it in lower case. */
static int uuid_normalise(char *out, const char *s)
{
    if (strlen(s) != 36)
        return VERSO_ETYPE;
    for (size_t i = 0; i < 36; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-'
                 : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return VERSO_ETYPE;
        out[i] = (c >= 'A' && c <= 'F') ? (char)(c - 'A' + 'a') : c;
    }
    return 0;
}

typedef struct conv {
    const verso_table *t;
    char *why;
    size_t whylen;
    unsigned char *store; /* blob and uuid bytes, inside the values allocation */
} conv;

static int conv_fail(conv *cv, int rc, const char *fmt, const char *name, const char *what)
{
    if (cv->why && cv->whylen)
        snprintf(cv->why, cv->whylen, fmt, name, what);
    return rc;
}

static const char *json_kind(const cJSON *j)
{
    if (cJSON_IsNull(j))
        return "null";
    if (cJSON_IsBool(j))
        return "a boolean";
    if (cJSON_IsNumber(j))
        return "a number";
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsArray(j))
        return "an array";
    return "an object";
}

static int conv_number(verso_value *v, const cJSON *j, bool integer_only)
{
    int64_t i;
    if (verso_json_int64(&i, j) == 0) {
        *v = VERSO_VALUE_INT(i);
        return 0;
    }
    if (integer_only || !isfinite(j->valuedouble))
        return VERSO_ETYPE;
    *v = VERSO_VALUE_DOUBLE(j->valuedouble);
    return 0;
}

static int conv_bool_as_int(verso_value *v, const cJSON *j)
{
    *v = VERSO_VALUE_INT(cJSON_IsTrue(j) ? 1 : 0);
    return 0;
}

static int conv_text(verso_value *v, const cJSON *j, verso_type type)
{
    size_t n = verso_json_strlen(j);
    if (!utf8_valid(j->valuestring, n))
        return VERSO_EUTF8;
    v->type = type;
    v->u.b.p = j->valuestring;
    v->u.b.n = n;
    return 0;
}

/* Decodes base64 string j into the conversion store. */
static int conv_base64(verso_value *v, const cJSON *j, verso_type type, conv *cv)
{
    size_t n = verso_json_strlen(j);
    ptrdiff_t len = verso_base64_decoded_len(j->valuestring, n);
    if (len < 0 || verso_base64_decode(cv->store, j->valuestring, n) < 0)
        return VERSO_EINVAL;
    v->type = type;
    v->u.b.p = cv->store;
    v->u.b.n = (size_t)len;
    if (len) /* verso_json_to_value() has no store for an empty blob */
        cv->store += len;
    return 0;
}

static int conv_uuid(verso_value *v, const cJSON *j, conv *cv)
{
    if (verso_json_strlen(j) != 36 || uuid_normalise((char *)cv->store, j->valuestring) < 0)
        return VERSO_EINVAL;
    v->type = VERSO_UUID;
    v->u.b.p = cv->store;
    v->u.b.n = 36;
    cv->store += 36;
    return 0;
}

/* ---- tagged values: {"<storage class>": value} ---- */

static int tag_integer(verso_value *v, const cJSON *j, conv *cv)
{
    (void)cv;
    return cJSON_IsNumber(j) && verso_json_int64(&v->u.i, j) == 0 ? (v->type = VERSO_INT64, 0)
                                                                  : VERSO_ETYPE;
}

static int tag_real(verso_value *v, const cJSON *j, conv *cv)
{
    (void)cv;
    if (cJSON_IsString(j)) {
        const char *s = verso_json_cstr(j);
        if (!s || (strcmp(s, "Infinity") && strcmp(s, "-Infinity")))
            return VERSO_ETYPE;
        *v = VERSO_VALUE_DOUBLE(s[0] == '-' ? -INFINITY : INFINITY);
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return VERSO_ETYPE;
    double d = j->valuestring ? strtod(j->valuestring, NULL) : j->valuedouble;
    if (!isfinite(d))
        return VERSO_ETYPE;
    *v = VERSO_VALUE_DOUBLE(d);
    return 0;
}

static int tag_text(verso_value *v, const cJSON *j, conv *cv)
{
    (void)cv;
    if (!cJSON_IsString(j))
        return VERSO_ETYPE;
    return conv_text(v, j, VERSO_TEXT) < 0 ? VERSO_ETYPE : 0;
}

static int tag_text_base64(verso_value *v, const cJSON *j, conv *cv)
{
    return cJSON_IsString(j) && conv_base64(v, j, VERSO_TEXT, cv) == 0 ? 0 : VERSO_ETYPE;
}

static int tag_blob(verso_value *v, const cJSON *j, conv *cv)
{
    return cJSON_IsString(j) && conv_base64(v, j, VERSO_BLOB, cv) == 0 ? 0 : VERSO_ETYPE;
}

static const struct {
    const char *name;
    bool base64; /* its value is decoded into the conversion store */
    int (*conv)(verso_value *v, const cJSON *j, conv *cv);
    const char *expects;
} k_tags[] = {
    {"integer", false, tag_integer, "an integer in the int64 range"},
    {"real", false, tag_real, "a finite number, \"Infinity\" or \"-Infinity\""},
    {"text", false, tag_text, "a string"},
    {"text_base64", true, tag_text_base64, "a padded base64 string"},
    {"blob", true, tag_blob, "a padded base64 string"},
};

static int find_tag(const cJSON *obj)
{
    const cJSON *m = obj->child;
    if (!m || m->next || !m->string)
        return -1;
    for (size_t i = 0; i < sizeof k_tags / sizeof k_tags[0]; i++)
        if (!strcmp(k_tags[i].name, m->string))
            return (int)i;
    return -1;
}

static int conv_tagged(verso_value *v, const cJSON *obj, const verso_column *c, conv *cv)
{
    int k = find_tag(obj);
    char what[128];
    if (k < 0)
        return conv_fail(cv, VERSO_ETYPE, "column \"%s\": %s", c->name,
                         "an object value must have exactly one member: \"integer\", \"real\", "
                         "\"text\", \"text_base64\" or \"blob\"");
    if (k_tags[k].conv(v, obj->child, cv) == 0)
        return 0;
    snprintf(what, sizeof what, "{\"%s\": ...} takes %s", k_tags[k].name, k_tags[k].expects);
    return conv_fail(cv, VERSO_ETYPE, "column \"%s\": %s", c->name, what);
}

/* Converts one JSON value for column c; returns 0, or a code with the reason
 * written to cv->why. */
static int conv_value(verso_value *v, const cJSON *j, const verso_column *c, conv *cv)
{
    int rc = VERSO_ETYPE;
    if (cJSON_IsNull(j)) {
        *v = VERSO_VALUE_NULL;
        return 0;
    }
    if (cJSON_IsObject(j))
        return conv_tagged(v, j, c, cv);
    switch (c->type) {
    case VERSO_INT64:
        if (cJSON_IsNumber(j))
            rc = conv_number(v, j, true);
        break;
    case VERSO_DOUBLE:
        if (cJSON_IsNumber(j))
            rc = tag_real(v, j, cv);
        break;
    case VERSO_BOOL:
        if (cJSON_IsBool(j)) {
            *v = VERSO_VALUE_BOOL(cJSON_IsTrue(j));
            rc = 0;
        }
        break;
    case VERSO_TEXT:
        if (cJSON_IsString(j))
            rc = conv_text(v, j, VERSO_TEXT);
        break;
    case VERSO_UUID:
        if (cJSON_IsString(j) && (rc = conv_uuid(v, j, cv)) < 0)
            return conv_fail(cv, VERSO_ETYPE, "column \"%s\": %s", c->name,
                             "not a canonical UUID (8-4-4-4-12 hex digits)");
        break;
    case VERSO_BLOB:
        if (cJSON_IsString(j) && (rc = conv_base64(v, j, VERSO_BLOB, cv)) < 0)
            return conv_fail(cv, VERSO_ETYPE, "column \"%s\": %s", c->name,
                             "not a padded base64 string");
        break;
    default:
        if (cJSON_IsNumber(j))
            rc = conv_number(v, j, false);
        else if (cJSON_IsBool(j))
            rc = conv_bool_as_int(v, j);
        else if (cJSON_IsString(j))
            rc = conv_text(v, j, VERSO_TEXT);
        break;
    }
    if (rc == VERSO_EUTF8)
        return conv_fail(cv, rc, "column \"%s\": %s", c->name, "invalid UTF-8");
    if (rc < 0) {
        char what[160];
        const char *why = "";
        if (cJSON_IsNumber(j) && c->type == VERSO_INT64)
            why = " that is not an integer in the int64 range (a real is written {\"real\": x})";
        else if (cJSON_IsNumber(j) && c->type == VERSO_DOUBLE)
            why = " that is not a finite double (write {\"real\": \"Infinity\"} for infinity)";
        snprintf(what, sizeof what, "expected %s, got %s%s", verso_type_name(c->type), json_kind(j),
                 why);
        return conv_fail(cv, VERSO_ETYPE, "column \"%s\": %s", c->name, what);
    }
    return 0;
}

/* Bytes needed for the decoded blob or normalised UUID of value j. */
static size_t value_store_size(const verso_column *c, const cJSON *j)
{
    int k = cJSON_IsObject(j) ? find_tag(j) : -1;
    if (k >= 0 && k_tags[k].base64 && cJSON_IsString(j->child))
        return verso_json_strlen(j->child) / 4 * 3;
    if (!c || !cJSON_IsString(j))
        return 0;
    if (c->type == VERSO_UUID)
        return 36;
    return c->type == VERSO_BLOB ? verso_json_strlen(j) / 4 * 3 : 0;
}

/* Bytes needed for decoded blobs and normalised UUIDs of obj's members. */
static size_t conv_store_size(const verso_table *t, const cJSON *obj)
{
    size_t total = 0;
    for (const cJSON *j = obj->child; j; j = j->next) {
        int ci = j->string ? verso_table_column_index(t, j->string) : -1;
        total += value_store_size(ci >= 0 ? verso_table_column_at(t, (size_t)ci) : NULL, j);
    }
    return total;
}

int verso_json_to_value(verso_value *out, void **store, const cJSON *j, const verso_column *c,
                        char *why, size_t whylen)
{
    size_t need = value_store_size(c, j);
    conv cv = {NULL, why, whylen, NULL};
    int rc;
    *store = NULL;
    if (!j || !c)
        return conv_fail(&cv, VERSO_EINVAL, "%s%s", "no value or no column", "");
    if (need && !(cv.store = *store = verso__malloc(need)))
        return conv_fail(&cv, VERSO_ENOMEM, "%s%s", "out of memory", "");
    if ((rc = conv_value(out, j, c, &cv)) < 0) {
        verso__free(*store);
        *store = NULL;
    }
    return rc;
}

static int conv_members(const char **cols, verso_value *vals, const cJSON *obj, conv *cv)
{
    size_t i = 0;
    for (const cJSON *j = obj->child; j; j = j->next, i++) {
        int ci = j->string ? verso_table_column_index(cv->t, j->string) : -1;
        const verso_column *c = ci >= 0 ? verso_table_column_at(cv->t, (size_t)ci) : NULL;
        if (!c)
            return conv_fail(cv, VERSO_EINVAL, "unknown column \"%s\" in table %s",
                             j->string ? j->string : "", verso_table_name(cv->t));
        for (size_t k = 0; k < i; k++)
            if (cols[k] == c->name)
                return conv_fail(cv, VERSO_EINVAL, "column \"%s\" given twice%s", c->name, "");
        cols[i] = c->name;
        int rc = conv_value(&vals[i], j, c, cv);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int verso_json_to_values(const char ***cols, verso_value **vals, size_t *n, const verso_table *t,
                         const cJSON *obj, char *why, size_t whylen)
{
    conv cv = {t, why, whylen, NULL};
    const char **c = NULL;
    verso_value *v = NULL;
    size_t count = 0;
    int rc;
    *cols = NULL;
    *vals = NULL;
    *n = 0;
    if (!t || !cJSON_IsObject(obj)) {
        rc = conv_fail(&cv, VERSO_EINVAL, "%s%s", "expected a JSON object", "");
        goto done;
    }
    for (const cJSON *j = obj->child; j; j = j->next)
        count++;
    c = verso__malloc((count ? count : 1) * sizeof *c);
    v = verso__malloc((count ? count : 1) * sizeof *v + conv_store_size(t, obj));
    if (!c || !v) {
        rc = conv_fail(&cv, VERSO_ENOMEM, "%s%s", "out of memory", "");
        goto done;
    }
    cv.store = (unsigned char *)(v + (count ? count : 1));
    if ((rc = conv_members(c, v, obj, &cv)) < 0)
        goto done;
    *cols = c;
    *vals = v;
    *n = count;
    c = NULL;
    v = NULL;
done:
    verso__free(c);
    verso__free(v);
    return rc;
}
