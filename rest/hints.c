/* rest/hints.c - the words of error answers that say what to do: quoted
 * client input (bounded, valid UTF-8), a table's columns, the type a value
 * must have, the role a refused request needs. No allocation: everything is
 * written into the caller's buffer, so a message is its own request's. */
#include <stdio.h>
#include <string.h>

#include "rest/internal.h"

/* Length of the UTF-8 sequence starting at s (at most n bytes), 0 if invalid. */
static size_t char_len(const unsigned char *s, size_t n)
{
    size_t k = *s < 0x80             ? 1
               : (*s & 0xe0) == 0xc0 ? 2
               : (*s & 0xf0) == 0xe0 ? 3
               : (*s & 0xf8) == 0xf0 ? 4
                                     : 0;

    return k && k <= n && verso__utf8_valid((const char *)s, k) ? k : 0;
}

size_t verso__utf8_prefix(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t at = 0, k;

    while (at < n && (k = char_len(p + at, n - at)))
        at += k;
    return at;
}

/* Copies s into out as valid UTF-8: invalid bytes and control characters
 * become '?' (a message may reach a terminal or a log), and a text
 * longer than max bytes is cut on a character boundary and ends with "...". */
const char *verso__rest_quote(char *out, size_t n, const char *s, size_t max)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    size_t len = strlen((const char *)p), at = 0, o = 0;

    if (max + 4 > n)
        max = n > 4 ? n - 4 : 0;
    while (at < len) {
        size_t k = p[at] < 0x20 || p[at] == 0x7f ? 0 : char_len(p + at, len - at);
        if (o + (k ? k : 1) > max)
            break;
        if (k)
            memcpy(out + o, p + at, k);
        else
            out[o] = '?';
        o += k ? k : 1;
        at += k ? k : 1;
    }
    if (at < len && n >= 4) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    if (n)
        out[o < n ? o : n - 1] = 0;
    return out;
}

int verso__columns_list(char *out, size_t n, const verso_table *t)
{
    size_t o = 0;

    if (!n)
        return 0;
    out[0] = 0;
    for (size_t i = 0; i < verso_table_ncolumns(t); i++) {
        const char *name = verso_table_column_at(t, i)->name;
        size_t need = strlen(name) + (i ? 2 : 0);
        if (o + need + 6 >= n) {
            snprintf(out + o, n - o, "%s...", i ? ", " : "");
            break;
        }
        o += (size_t)snprintf(out + o, n - o, "%s%s", i ? ", " : "", name);
    }
    return 0;
}

typedef struct type_words {
    verso_type type;
    const char *words;
} type_words;

static const type_words k_type_words[] = {
    {VERSO_INT64, "an integer (int64, decimal digits, e.g. 42 or -7)"},
    {VERSO_DOUBLE, "a finite decimal number (e.g. 1.5, -2 or 2e-3)"},
    {VERSO_BOOL, "a boolean: true, false, 1 or 0"},
    {VERSO_TEXT, "text"},
    {VERSO_UUID, "a UUID"},
    {VERSO_BLOB, "nothing: a blob column cannot be compared in a filter"},
};

const char *verso__type_expect(verso_type t)
{
    for (size_t i = 0; i < sizeof(k_type_words) / sizeof(k_type_words[0]); i++)
        if (k_type_words[i].type == t)
            return k_type_words[i].words;
    return "a value of the column's type";
}

/* The least role that holds every capability of need. */
static const char *role_for(unsigned need)
{
    static const char *const k_order[] = {"read", "write", "replicate", "admin"};

    for (size_t i = 0; i < sizeof(k_order) / sizeof(k_order[0]); i++)
        if ((verso__role_caps(k_order[i]) & need) == need)
            return k_order[i];
    return "admin";
}

void verso__error_auth(verso__resp *rs, const verso__req *rq, int status, const char *table,
                       unsigned need, const char *what)
{
    char roles[96], quoted[80];
    const char *role = role_for(need);

    if (status == 401) {
        verso__error(rs, 401,
                     "%s: send the header \"Authorization: Bearer TOKEN\" with a token "
                     "this server knows (the config file holds its SHA-256)",
                     rq->auth.state == 0 ? "no bearer token was sent"
                                         : "the bearer token is not one this server knows");
        return;
    }
    verso__auth_roles(roles, sizeof(roles), &rq->auth, &rq->srv->cfg, rq->db, table);
    if (table)
        verso__rest_quote(quoted, sizeof(quoted), table, 64);
    verso__error(rs, status, "%s needs the role %s%s%s%s%s; this token has %s", what, role,
                 table ? " on table \"" : "", table ? quoted : "", table ? "\"" : "",
                 strcmp(role, "admin") ? " (or admin)" : "", roles);
}
