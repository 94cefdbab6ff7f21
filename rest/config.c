/* rest/config.c - the config file (one "key value" setting per line) and
 * bearer-token access checks. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rest/databases.h"
#include "rest/internal.h"

enum { K_STR, K_INT, K_PORT, K_SIZE, K_I64 };

typedef struct setting {
    const char *name;
    int kind;
    size_t offset; /* in verso__config */
} setting;

#define LIM(field) offsetof(verso__config, limits) + offsetof(verso_rest_limits, field)

static const setting k_settings[] = {
    {.name = "host", .kind = K_STR, .offset = offsetof(verso__config, host)},
    {.name = "port", .kind = K_PORT, .offset = offsetof(verso__config, port)},
    {.name = "tls-cert", .kind = K_STR, .offset = offsetof(verso__config, tls_cert)},
    {.name = "tls-key", .kind = K_STR, .offset = offsetof(verso__config, tls_key)},
    {.name = "max-body", .kind = K_SIZE, .offset = LIM(max_body)},
    {.name = "max-url", .kind = K_SIZE, .offset = LIM(max_url)},
    {.name = "header-timeout-ms", .kind = K_INT, .offset = LIM(header_timeout_ms)},
    {.name = "max-depth", .kind = K_INT, .offset = LIM(max_depth)},
    {.name = "max-filters", .kind = K_INT, .offset = LIM(max_filters)},
    {.name = "query-budget-ms", .kind = K_INT, .offset = LIM(query_budget_ms)},
    {.name = "default-limit", .kind = K_INT, .offset = LIM(default_limit)},
    {.name = "max-limit", .kind = K_INT, .offset = LIM(max_limit)},
    {.name = "max-offset", .kind = K_I64, .offset = LIM(max_offset)},
    {.name = "max-changes", .kind = K_INT, .offset = LIM(max_changes)},
    {.name = "max-ws-message", .kind = K_SIZE, .offset = LIM(max_ws_message)},
    {.name = "body-timeout-ms", .kind = K_INT, .offset = LIM(body_timeout_ms)},
    {.name = "max-blob", .kind = K_I64, .offset = LIM(max_blob)},
};

typedef struct role {
    const char *name;
    unsigned caps;
} role;

static const role k_roles[] = {
    {.name = "read", .caps = VERSO__CAP_READ},
    {.name = "write", .caps = VERSO__CAP_READ | VERSO__CAP_WRITE},
    {.name = "replicate", .caps = VERSO__CAP_READ | VERSO__CAP_FEED},
    {.name = "admin", .caps = VERSO__CAP_ALL},
};

unsigned verso__role_caps(const char *name)
{
    for (size_t i = 0; i < sizeof(k_roles) / sizeof(k_roles[0]); i++)
        if (!strcmp(k_roles[i].name, name))
            return k_roles[i].caps;
    return 0;
}

typedef struct limit_field {
    size_t offset;
    size_t size;
} limit_field;

#define LIMIT(f)                                                                                   \
    {                                                                                              \
        offsetof(verso_rest_limits, f), sizeof(((verso_rest_limits *)0)->f)                        \
    }

static const limit_field k_limit_fields[] = {
    LIMIT(max_body),    LIMIT(max_url),         LIMIT(header_timeout_ms), LIMIT(max_depth),
    LIMIT(max_filters), LIMIT(query_budget_ms), LIMIT(default_limit),     LIMIT(max_limit),
    LIMIT(max_offset),  LIMIT(max_changes),     LIMIT(max_ws_message),    LIMIT(body_timeout_ms),
    LIMIT(max_blob),
};

static bool all_zero(const unsigned char *p, size_t n)
{
    while (n--)
        if (*p++)
            return false;
    return true;
}

void verso__limits_merge(verso_rest_limits *dst, const verso_rest_limits *over)
{
    for (size_t i = 0; i < sizeof(k_limit_fields) / sizeof(k_limit_fields[0]); i++) {
        const limit_field *f = &k_limit_fields[i];
        const unsigned char *src = (const unsigned char *)over + f->offset;
        if (!all_zero(src, f->size))
            memcpy((unsigned char *)dst + f->offset, src, f->size);
    }
}

void verso__limits_defaults(verso_rest_limits *l)
{
    if (!l->max_body)
        l->max_body = 1u << 20;
    if (!l->max_url)
        l->max_url = 4096;
    if (l->header_timeout_ms <= 0)
        l->header_timeout_ms = 10000;
    if (l->max_depth <= 0)
        l->max_depth = 64;
    if (l->max_filters <= 0)
        l->max_filters = 32;
    if (l->query_budget_ms <= 0)
        l->query_budget_ms = 2000;
    if (l->default_limit <= 0)
        l->default_limit = 100;
    if (l->max_limit <= 0)
        l->max_limit = 1000;
    if (l->max_offset <= 0)
        l->max_offset = 10000;
    if (l->max_changes <= 0)
        l->max_changes = 10000;
    if (!l->max_ws_message)
        l->max_ws_message = 16u << 20;
    if (l->body_timeout_ms <= 0)
        l->body_timeout_ms = 30000;
    if (l->max_blob <= 0)
        l->max_blob = (int64_t)1 << 30;
}

/* A line's reason for refusal, written where the parser can reach it. */
typedef struct line_why {
    char *buf;
    size_t len;
} line_why;

static int refuse(line_why *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static int refuse(line_why *w, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(w->buf, w->len, fmt, ap);
    va_end(ap);
    return VERSO_EINVAL;
}

static const char *range_words(int kind)
{
    return kind == K_PORT  ? "a whole number from 0 to 65535"
           : kind == K_INT ? "a whole number from 0 to 2147483647"
                           : "a whole number, 0 or more";
}

static int set_value(verso__config *c, const setting *s, const char *v, line_why *w)
{
    char *end = NULL, *dup, quoted[80];
    long long n;

    if (s->kind == K_STR) {
        if (!(dup = verso__strdup(v)))
            return VERSO_ENOMEM;
        verso__free(*(char **)((char *)c + s->offset));
        *(char **)((char *)c + s->offset) = dup;
        return 0;
    }
    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || *end || end == v || n < 0 || (s->kind == K_INT && n > 0x7fffffff) ||
        (s->kind == K_PORT && n > 65535))
        return refuse(w, "%s: \"%s\" is not %s", s->name,
                      verso__rest_quote(quoted, sizeof(quoted), v, 64), range_words(s->kind));
    if (s->kind == K_INT || s->kind == K_PORT)
        *(int *)((char *)c + s->offset) = (int)n;
    else if (s->kind == K_SIZE)
        *(size_t *)((char *)c + s->offset) = (size_t)n;
    else
        *(int64_t *)((char *)c + s->offset) = n;
    return 0;
}

/* The token itself is never quoted back: it may be a secret. */
static int bad_hash(const char *word, line_why *w)
{
    return refuse(w,
                  "token: the second word must be the SHA-256 of the token, 64 hex digits%s; "
                  "make it with: printf %%s TOKEN | sha256sum",
                  strlen(word) != 64 ? " (this looks like a plain token: only its hash is stored)"
                                     : "");
}

/* "db=<name>": the database a grant is scoped to, checked as every name is. */
static int grant_db(verso__grant *g, const char *word, line_why *why)
{
    char reason[200];
    const char *name = word + 3;

    if (verso__dbname_check(name, strlen(name), reason, sizeof(reason)) < 0)
        return refuse(why, "token: db=: %s", reason);
    return (g->db = verso__strdup(name)) ? 0 : VERSO_ENOMEM;
}

static int add_grant(verso__config *c, char **w, size_t nw, line_why *why)
{
    verso__grant g = {.caps = 0};
    verso__grant *grown;
    char quoted[80];
    size_t at = 3;
    int rc = 0;

    if (nw < 3 || nw > 5 || (nw == 5 && strncmp(w[3], "db=", 3)))
        return refuse(why,
                      "a token line is \"token <sha256-hex> <role> [db=<name>] [<table>]\" "
                      "(%zu words)",
                      nw);
    if (verso__hex32(g.hash, w[1], strlen(w[1])) < 0)
        return bad_hash(w[1], why);
    if (!(g.caps = verso__role_caps(w[2])))
        return refuse(why, "token: unknown role \"%s\" (roles: read, write, replicate, admin)",
                      verso__rest_quote(quoted, sizeof(quoted), w[2], 32));
    if (nw > at && !strncmp(w[at], "db=", 3) && (rc = grant_db(&g, w[at++], why)) < 0)
        return rc;
    if (nw > at && !strncmp(w[at], "db=", 3)) {
        verso__free(g.db);
        return refuse(why, "token: db= is given once, before the table");
    }
    if (nw > at && !(g.table = verso__strdup(w[at])))
        rc = VERSO_ENOMEM;
    grown = rc ? NULL : verso__realloc(c->grants, (c->ngrants + 1) * sizeof(*grown));
    if (!grown) {
        verso__free(g.db);
        verso__free(g.table);
        return VERSO_ENOMEM;
    }
    c->grants = grown;
    c->grants[c->ngrants++] = g;
    return 0;
}

static int setting_line(verso__config *c, char **w, size_t nw, line_why *why)
{
    char quoted[80];

    for (size_t i = 0; i < sizeof(k_settings) / sizeof(k_settings[0]); i++) {
        if (strcmp(k_settings[i].name, w[0]))
            continue;
        if (nw != 2)
            return refuse(why, "%s takes one value, not %zu (a comment starts a line)", w[0],
                          nw - 1);
        return set_value(c, &k_settings[i], w[1], why);
    }
    return refuse(why,
                  "unknown setting \"%s\" (settings: host, port, tls-cert, tls-key, max-body, "
                  "max-url, header-timeout-ms, body-timeout-ms, max-depth, max-filters, "
                  "query-budget-ms, default-limit, max-limit, max-offset, max-changes, "
                  "max-ws-message, max-blob, token, client-token, cors-origin)",
                  verso__rest_quote(quoted, sizeof(quoted), w[0], 40));
}

static int parse_line(verso__config *c, char *line, line_why *why)
{
    char *w[8], *save = NULL;
    size_t nw = 0;

    line += strspn(line, " \t\r");
    if (*line == '#')
        return 0;
    for (char *t = strtok_r(line, " \t\r", &save); t; t = strtok_r(NULL, " \t\r", &save)) {
        if (nw == 8)
            return refuse(why, "too many words");
        w[nw++] = t;
    }
    if (!nw || !strcmp(w[0], "client-token"))
        return 0;
    if (!strcmp(w[0], "token"))
        return add_grant(c, w, nw, why);
    if (!strcmp(w[0], "cors-origin")) {
        if (nw != 2)
            return refuse(why, "cors-origin takes one origin per line, not %zu", nw - 1);
        return verso__config_add_origin(c, w[1], why->buf, why->len);
    }
    return setting_line(c, w, nw, why);
}

/* name: the file's path, or NULL for text that is not a file. */
static int parse_text(verso__config *c, const char *text, size_t len, const char *name, char *why,
                      size_t whylen)
{
    int rc = 0, lineno = 0;
    char *copy = verso__malloc(len + 1), reason[320] = "";
    line_why lw = {reason, sizeof(reason)};

    if (!copy)
        return VERSO_ENOMEM;
    memcpy(copy, text, len);
    copy[len] = 0;
    /* By length, not as a C string: a NUL byte must not end the file early
     * and drop the token lines after it (no token means open access). */
    for (size_t at = 0; at < len;) {
        char *p = copy + at, *nl = memchr(p, '\n', len - at);
        size_t n = nl ? (size_t)(nl - p) : len - at;
        p[n] = 0;
        at += n + 1;
        lineno++;
        rc = memchr(p, 0, n) ? refuse(&lw, "the line holds a NUL byte") : parse_line(c, p, &lw);
        if (rc < 0)
            break;
    }
    if (rc == VERSO_ENOMEM)
        snprintf(reason, sizeof(reason), "out of memory");
    if (rc < 0 && why && whylen && name)
        snprintf(why, whylen, "%s:%d: %s", name, lineno, reason);
    else if (rc < 0 && why && whylen)
        snprintf(why, whylen, "config line %d: %s", lineno, reason);
    if (rc < 0 && why && whylen)
        why[verso__utf8_prefix(why, strlen(why))] = 0;
    verso__free(copy);
    return rc;
}

int verso__config_parse(verso__config *c, const char *text, size_t len, char *why, size_t whylen)
{
    return parse_text(c, text, len, NULL, why, whylen);
}

static bool is_origin(const char *s)
{
    const char *host, *end;

    if (!strcmp(s, "*"))
        return true;
    if (!(host = strstr(s, "://")) || host == s ||
        strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != (size_t)(host - s))
        return false;
    host += 3;
    end = host + (*host == '[' ? strcspn(host, "]") + 1 : strcspn(host, ":"));
    if (end == host || (*host == '[' && end[-1] != ']') ||
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-[]:") <
            (size_t)(end - host))
        return false;
    if (!*end)
        return true;
    return *end == ':' && end[1] && strspn(end + 1, "0123456789") == strlen(end + 1) &&
           strlen(end + 1) <= 5;
}

int verso__config_add_origin(verso__config *c, const char *origin, char *why, size_t whylen)
{
    char quoted[160], *dup;
    char **grown;

    if (!is_origin(origin)) {
        if (why && whylen)
            snprintf(why, whylen,
                     "cors-origin: \"%s\" is not an origin: write scheme://host[:port] as the "
                     "browser sends it (no path, no final slash), or * for any origin",
                     verso__rest_quote(quoted, sizeof(quoted), origin, 120));
        return VERSO_EINVAL;
    }
    if (!(dup = verso__strdup(origin)))
        return VERSO_ENOMEM;
    if (!(grown = verso__realloc(c->origins, (c->norigins + 1) * sizeof(*grown)))) {
        verso__free(dup);
        return VERSO_ENOMEM;
    }
    c->origins = grown;
    c->origins[c->norigins++] = dup;
    return 0;
}

int verso__config_load(verso__config *c, const char *path, char *why, size_t whylen)
{
    int rc = 0;
    verso_buf b = VERSO_BUF_INIT;
    char chunk[4096];
    size_t n;
    FILE *f = fopen(path, "r");

    if (!f) {
        if (why && whylen)
            snprintf(why, whylen, "cannot read config file %s: %s", path, strerror(errno));
        return VERSO_EINVAL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if ((rc = verso_buf_append(&b, chunk, n)) < 0)
            goto done;
    rc = parse_text(c, b.data ? b.data : "", b.len, path, why, whylen);
done:
    fclose(f);
    verso_buf_free(&b);
    return rc;
}

void verso__config_free(verso__config *c)
{
    if (!c)
        return;
    verso__free(c->host);
    verso__free(c->tls_cert);
    verso__free(c->tls_key);
    for (size_t i = 0; i < c->ngrants; i++) {
        verso__free(c->grants[i].db);
        verso__free(c->grants[i].table);
    }
    verso__free(c->grants);
    for (size_t i = 0; i < c->norigins; i++)
        verso__free(c->origins[i]);
    verso__free(c->origins);
    memset(c, 0, sizeof(*c));
    c->port = -1;
}

/* Constant time in the hash bytes: every configured hash is compared in full. */
void verso__auth_identify(verso__auth *a, const verso__config *c, const char *header)
{
    static const char bearer[] = "Bearer ";
    int found = 0;

    memset(a, 0, sizeof(*a));
    if (!header)
        return;
    /* The scheme name is case-insensitive (RFC 9110 section 11.1). */
    if (strncasecmp(header, bearer, sizeof(bearer) - 1) || !header[sizeof(bearer) - 1]) {
        a->state = -1;
        return;
    }
    header += sizeof(bearer) - 1;
    verso__sha256(a->hash, header, strlen(header));
    for (size_t i = 0; i < c->ngrants; i++) {
        unsigned diff = 0;
        for (size_t k = 0; k < 32; k++)
            diff |= (unsigned)(a->hash[k] ^ c->grants[i].hash[k]);
        found |= diff == 0;
    }
    a->state = found ? 1 : -1;
}

/* Whether g counts for (db, table): a grant without db= counts everywhere,
 * one with db= only inside that database; likewise for the table. */
static bool grant_applies(const verso__grant *g, const char *db, const char *table)
{
    return (!g->db || (db && !strcmp(g->db, db))) &&
           (!g->table || (table && !strcmp(g->table, table)));
}

unsigned verso__auth_caps(const verso__auth *a, const verso__config *c, const char *db,
                          const char *table)
{
    unsigned caps = 0;

    if (!c->ngrants)
        return VERSO__CAP_ALL;
    if (a->state != 1)
        return 0;
    for (size_t i = 0; i < c->ngrants; i++) {
        const verso__grant *g = &c->grants[i];
        if (!memcmp(g->hash, a->hash, 32) && grant_applies(g, db, table))
            caps |= g->caps;
    }
    return caps;
}

int verso__auth_check(const verso__auth *a, const verso__config *c, const char *db,
                      const char *table, unsigned need)
{
    unsigned caps;

    if (!need || !c->ngrants)
        return 0;
    if (a->state != 1)
        return 401;
    caps = verso__auth_caps(a, c, db, table);
    return (caps & need) == need ? 0 : 403;
}

bool verso__auth_any(const verso__auth *a, const verso__config *c, unsigned need)
{
    if (!c->ngrants)
        return true;
    for (size_t i = 0; a->state == 1 && i < c->ngrants; i++) {
        const verso__grant *g = &c->grants[i];
        if (!memcmp(g->hash, a->hash, 32) && !g->table && (g->caps & need) == need)
            return true;
    }
    return false;
}

static const char *role_name(unsigned caps)
{
    for (size_t i = 0; i < sizeof(k_roles) / sizeof(k_roles[0]); i++)
        if (k_roles[i].caps == caps)
            return k_roles[i].name;
    return "?";
}

static const char *grant_scope(const verso__grant *g)
{
    return g->db ? (g->table ? "this table of this database" : "this database")
                 : (g->table ? "this table" : "every table");
}

/* Names no table or database of the config (they come from the config file). */
void verso__auth_roles(char *out, size_t n, const verso__auth *a, const verso__config *c,
                       const char *db, const char *table)
{
    size_t o = 0;

    out[0] = 0;
    for (size_t i = 0; a->state == 1 && i < c->ngrants && o + 1 < n; i++) {
        const verso__grant *g = &c->grants[i];
        if (memcmp(g->hash, a->hash, 32) || !grant_applies(g, db, table))
            continue;
        o += (size_t)snprintf(out + o, n - o, "%s%s (%s)", o ? ", " : "", role_name(g->caps),
                              grant_scope(g));
    }
    if (!o)
        snprintf(out, n, "%s",
                 table ? "no role on this table"
                 : db  ? "no role on this database"
                       : "no role for the server's routes");
    else if (o >= n)
        out[verso__utf8_prefix(out, n - 1)] = 0;
}
