/*
 * A changes message read in one pass, without a JSON tree or an allocation
 * per value: the live slave's hot path (issue 12). Only the form the
 * master writes is read here; anything else, valid or not, goes to the
 * general parser, which keeps the one set of refusals and their messages.
 * So this reader never refuses: it accepts a strict subset of what the
 * general path accepts, with the same meaning (the differential fuzz
 * target checks both paths agree).
 */
#include <string.h>

#include "orm/alloc.h"
#include "sync/scan.h"
#include "verso/verso.h"

typedef struct cur {
    const unsigned char *t;
    size_t i, len;
    verso__sync_scan *s;
} cur;

#define NO 0 /* not the master's form: the general parser decides */

static bool eat(cur *c, const char *lit, size_t n)
{
    if (c->len - c->i < n || memcmp(c->t + c->i, lit, n) != 0)
        return false;
    c->i += n;
    return true;
}

#define EAT(c, lit) eat((c), (lit), sizeof(lit) - 1)

static bool digit(const cur *c, size_t i)
{
    return i < c->len && c->t[i] >= '0' && c->t[i] <= '9';
}

static size_t digits(const cur *c, size_t i)
{
    while (digit(c, i))
        i++;
    return i;
}

/* The integer part at *i: its magnitude when it has at most 19 digits (no
 * leading zero in JSON), and its digit count. */
static size_t int_part(uint64_t *m, const cur *c, size_t *i)
{
    size_t start = *i;

    *m = 0;
    if (c->t[*i] == '0') {
        (*i)++;
        return 1;
    }
    for (; digit(c, *i); (*i)++)
        if (*i - start < 19)
            *m = *m * 10 + (unsigned)(c->t[*i] - '0');
    return *i - start;
}

/* A JSON number: an integer in the int64 range, or another literal. */
static int number(cur *c, verso__scan_val *v)
{
    size_t start = c->i, i = c->i, nd;
    bool neg = i < c->len && c->t[i] == '-', plain = true;
    uint64_t m, max;
    unsigned char end;

    i += neg;
    if (!digit(c, i))
        return NO;
    nd = int_part(&m, c, &i);
    if (i < c->len && c->t[i] == '.') {
        if (!digit(c, i + 1))
            return NO;
        i = digits(c, i + 1);
        plain = false;
    }
    if (i < c->len && (c->t[i] == 'e' || c->t[i] == 'E')) {
        i += i + 1 < c->len && (c->t[i + 1] == '+' || c->t[i + 1] == '-') ? 2 : 1;
        if (!digit(c, i))
            return NO;
        i = digits(c, i);
        plain = false;
    }
    end = i < c->len ? c->t[i] : 0;
    if (end != ',' && end != '}' && end != ']') /* a delimiter, never the end */
        return NO;
    c->i = i;
    *v =
        (verso__scan_val){.kind = VERSO__SCAN_NUM, .p = (const char *)c->t + start, .n = i - start};
    max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    if (plain && nd <= 19 && m <= max) {
        v->kind = VERSO__SCAN_INT;
        v->i = neg ? (m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m) : (int64_t)m;
    }
    return 1;
}

/* An integer in the int64 range, nothing else. */
static int integer(cur *c, int64_t *out)
{
    verso__scan_val v;

    if (number(c, &v) != 1 || v.kind != VERSO__SCAN_INT)
        return NO;
    *out = v.i;
    return 1;
}

/* A member name or table name: printable ASCII without escapes, copied with its NUL. */
static int name(cur *c, const char **out)
{
    char *dst = c->s->arena + c->s->used;
    size_t i = c->i + 1, k = 0;

    if (i > c->len || c->t[c->i] != '"')
        return NO;
    for (; i < c->len && c->t[i] != '"'; i++) {
        if (c->t[i] < 0x20 || c->t[i] > 0x7e || c->t[i] == '\\')
            return NO;
        dst[k++] = (char)c->t[i];
    }
    if (i >= c->len)
        return NO;
    dst[k] = '\0';
    c->s->used += k + 1;
    c->i = i + 1;
    *out = dst;
    return 1;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid
 * (overlong, surrogate, above U+10FFFF, truncated): json.c's rules. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned b = p[0];
    size_t k = b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;

    if (k == 0 || k > n)
        return 0;
    for (size_t j = 1; j < k; j++)
        if ((p[j] & 0xC0) != 0x80)
            return 0;
    if ((b == 0xE0 && p[1] < 0xA0) || (b == 0xED && p[1] >= 0xA0) || (b == 0xF0 && p[1] < 0x90) ||
        (b == 0xF4 && p[1] >= 0x90))
        return 0;
    return k;
}

static int hex4(unsigned *out, const cur *c, size_t i)
{
    *out = 0;
    if (c->len - i < 4)
        return NO;
    for (size_t k = i; k < i + 4; k++) {
        unsigned char h = c->t[k];
        unsigned d = h >= '0' && h <= '9'   ? (unsigned)(h - '0')
                     : h >= 'a' && h <= 'f' ? (unsigned)(h - 'a' + 10)
                     : h >= 'A' && h <= 'F' ? (unsigned)(h - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return NO;
        *out = *out << 4 | d;
    }
    return 1;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* \uXXXX at c->i (on the 'u'), a surrogate pair whole; lone halves are not ours. */
static int unicode(cur *c, char *o, size_t *w)
{
    unsigned cp, lo;

    if (!hex4(&cp, c, c->i + 1) || (cp >= 0xDC00 && cp <= 0xDFFF))
        return NO;
    c->i += 5;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (!EAT(c, "\\u") || !hex4(&lo, c, c->i) || lo < 0xDC00 || lo > 0xDFFF)
            return NO;
        c->i += 4;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    *w = put_utf8(o, cp);
    return 1;
}

static int escape(cur *c, char *o, size_t *w)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *k;

    if (++c->i >= c->len)
        return NO;
    if (c->t[c->i] == 'u')
        return unicode(c, o, w);
    if (!c->t[c->i] || !(k = strchr(from, c->t[c->i])))
        return NO;
    *o = to[k - from];
    *w = 1;
    c->i++;
    return 1;
}

/* The rest of a string holding an escape, decoded into the arena from start on. */
static int decode(cur *c, size_t start, verso__scan_val *v)
{
    char *o = c->s->arena + c->s->used, *base = o;
    size_t w;

    memcpy(o, c->t + start, c->i - start);
    o += c->i - start;
    while (c->i < c->len && c->t[c->i] != '"') {
        if (c->t[c->i] == '\\') {
            if (escape(c, o, &w) != 1)
                return NO;
        } else {
            w = c->t[c->i] < 0x20 ? 0 : utf8_len(c->t + c->i, c->len - c->i);
            if (w == 0)
                return NO;
            memcpy(o, c->t + c->i, w);
            c->i += w;
        }
        o += w;
    }
    if (c->i >= c->len)
        return NO;
    c->i++;
    c->s->used += (size_t)(o - base);
    *v = (verso__scan_val){.kind = VERSO__SCAN_STR, .p = base, .n = (size_t)(o - base)};
    return 1;
}

/* A string value: in the text itself when it has no escape. */
static int string(cur *c, verso__scan_val *v)
{
    size_t start = ++c->i, k;

    while (c->i < c->len && c->t[c->i] != '"') {
        unsigned char b = c->t[c->i];
        if (b == '\\')
            return decode(c, start, v);
        if (b < 0x20 || !(k = b < 0x80 ? 1 : utf8_len(c->t + c->i, c->len - c->i)))
            return NO;
        c->i += k;
    }
    if (c->i >= c->len)
        return NO;
    *v = (verso__scan_val){
        .kind = VERSO__SCAN_STR, .p = (const char *)c->t + start, .n = c->i - start};
    c->i++;
    return 1;
}

static int value(cur *c, verso__scan_val *v)
{
    if (c->i >= c->len)
        return NO;
    switch (c->t[c->i]) {
    case '"':
        return string(c, v);
    case 'n':
        *v = (verso__scan_val){.kind = VERSO__SCAN_NULL};
        return EAT(c, "null");
    case 't':
        *v = (verso__scan_val){.kind = VERSO__SCAN_TRUE};
        return EAT(c, "true");
    case 'f':
        *v = (verso__scan_val){.kind = VERSO__SCAN_FALSE};
        return EAT(c, "false");
    default:
        return number(c, v); /* objects (tagged values, blob_fetch), arrays: not ours */
    }
}

static void *room(void *arr, size_t *cap, size_t used, size_t elem)
{
    size_t n;
    void *p;

    if (used < *cap)
        return arr;
    n = *cap ? *cap * 2 : 256;
    if (!(p = verso__realloc(arr, n * elem)))
        return NULL;
    *cap = n;
    return p;
}

/* One member of a row. */
static int member(cur *c)
{
    verso__sync_scan *s = c->s;
    const char **keys;
    verso__scan_val *v;
    size_t cap = s->capv;
    int rc;

    if (!(keys = room(s->keys, &cap, s->nv, sizeof(*keys))))
        return VERSO_ENOMEM;
    s->keys = keys;
    if (!(v = room(s->v, &s->capv, s->nv, sizeof(*v))))
        return VERSO_ENOMEM;
    s->v = v;
    if ((rc = name(c, &s->keys[s->nv])) != 1 || !EAT(c, ":") || (rc = value(c, &s->v[s->nv])) != 1)
        return rc < 0 ? rc : NO;
    s->nv++;
    return 1;
}

static int row(cur *c, verso__scan_entry *e)
{
    int rc = 1;

    e->first = c->s->nv;
    if (!EAT(c, "{"))
        return NO;
    if (!EAT(c, "}")) {
        do
            rc = member(c);
        while (rc == 1 && EAT(c, ","));
        if (rc != 1 || !EAT(c, "}"))
            return rc < 0 ? rc : NO;
    }
    e->n = c->s->nv - e->first;
    return 1;
}

static int entry(cur *c)
{
    verso__sync_scan *s = c->s;
    verso__scan_entry *e;

    if (!(e = room(s->e, &s->cape, s->ne, sizeof(*e))))
        return VERSO_ENOMEM;
    s->e = e;
    e = &s->e[s->ne];
    memset(e, 0, sizeof(*e));
    if (!EAT(c, "{\"table\":") || !name(c, &e->table) || !EAT(c, ",\"id\":") ||
        !integer(c, &e->id) || !EAT(c, ",\"version\":") || !integer(c, &e->version))
        return NO;
    if (EAT(c, ",\"deleted\":true}")) {
        e->deleted = true;
        s->ne++;
        return 1;
    }
    int rc = EAT(c, ",\"row\":") ? row(c, e) : NO;
    if (rc != 1 || !EAT(c, "}"))
        return rc < 0 ? rc : NO;
    s->ne++;
    return 1;
}

static int trailer(cur *c)
{
    verso__sync_scan *s = c->s;
    int64_t time;

    if (!EAT(c, "],\"from\":") || !integer(c, &s->from) || !EAT(c, ",\"to\":") ||
        !integer(c, &s->to) || !EAT(c, ",\"more\":"))
        return NO;
    if (EAT(c, "true"))
        s->more = true;
    else if (!EAT(c, "false"))
        return NO;
    if (!EAT(c, ",\"head\":") || !integer(c, &s->head) || !EAT(c, ",\"time\":") ||
        !integer(c, &time))
        return NO;
    (void)EAT(c, ",\"reset\":true"); /* read from the subscription, not from here */
    return EAT(c, "}") && c->i == c->len;
}

static int reserve(verso__sync_scan *s, size_t len)
{
    char *a;

    if (s->cap > len)
        return 0;
    if (!(a = verso__realloc(s->arena, len + 1)))
        return VERSO_ENOMEM;
    s->arena = a;
    s->cap = len + 1;
    return 0;
}

int verso__sync_scan_changes(verso__sync_scan *s, const char *text, size_t len)
{
    cur c = {(const unsigned char *)text, 0, len, s};
    int rc = 1;

    s->ne = s->nv = s->used = 0;
    s->more = false;
    if (!text || !EAT(&c, "{\"type\":\"changes\",\"entries\":["))
        return NO;
    if (reserve(s, len) < 0) /* every name or decoded string is shorter than its token */
        return VERSO_ENOMEM;
    if (!(c.i < len && text[c.i] == ']')) {
        do
            rc = entry(&c);
        while (rc == 1 && EAT(&c, ","));
    }
    return rc == 1 ? trailer(&c) : rc;
}

void verso__sync_scan_free(verso__sync_scan *s)
{
    verso__free(s->e);
    verso__free(s->keys);
    verso__free(s->v);
    verso__free(s->arena);
    memset(s, 0, sizeof(*s));
}
