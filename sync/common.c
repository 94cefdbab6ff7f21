/* Pieces shared by the pull client, the live slave and the master. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "sync/internal.h"

void verso__sync_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (!why || whylen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
}

int64_t verso__sync_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t verso__sync_mono_ms(void)
{
    return verso__sync_mono_us() / 1000;
}

/* The host and the path go into the Host header and the request line as
 * they are: blanks and control bytes would change the request, and '?',
 * '#', '@' would mean something else in a URL than here. */
static bool url_bytes_ok(const char *p, size_t n, const char *forbidden)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f || strchr(forbidden, p[i]))
            return false;
    return true;
}

static int url_host_port(verso__sync_url *out, const char *p, size_t n)
{
    const char *end = p + n, *colon;
    size_t hostlen;
    long port = out->tls ? 443 : 80;

    if (n > 0 && p[0] == '[') { /* [v6]:port */
        const char *rb = memchr(p, ']', n);
        if (!rb || (rb + 1 < end && rb[1] != ':'))
            return VERSO_EINVAL;
        colon = rb + 1 < end ? rb + 1 : NULL;
        p++;
        hostlen = (size_t)(rb - p);
    } else {
        colon = memchr(p, ':', n);
        hostlen = colon ? (size_t)(colon - p) : n;
    }
    if (colon) {
        char *e;
        if (!isdigit((unsigned char)colon[1])) /* strtol would take blanks and signs */
            return VERSO_EINVAL;
        port = strtol(colon + 1, &e, 10);
        if (e != end || port <= 0 || port > 65535)
            return VERSO_EINVAL;
    }
    if (hostlen == 0 || hostlen >= sizeof(out->host) || !url_bytes_ok(p, hostlen, "?#@[]/\\"))
        return VERSO_EINVAL;
    memcpy(out->host, p, hostlen);
    out->host[hostlen] = '\0';
    out->port = (int)port;
    return 0;
}

int verso__sync_url_parse(verso__sync_url *out, const char *url)
{
    const char *p, *slash;
    size_t plen;

    memset(out, 0, sizeof(*out));
    if (!url)
        return VERSO_EINVAL;
    if (strncasecmp(url, "http://", 7) == 0) {
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        out->tls = true;
        p = url + 8;
    } else {
        return VERSO_EINVAL;
    }
    slash = strchr(p, '/');
    if (url_host_port(out, p, slash ? (size_t)(slash - p) : strlen(p)) < 0)
        return VERSO_EINVAL;
    if (!slash)
        return 0;
    plen = strlen(slash);
    while (plen > 0 && slash[plen - 1] == '/')
        plen--;
    if (plen >= sizeof(out->prefix) || !url_bytes_ok(slash, plen, "?#\\"))
        return VERSO_EINVAL;
    memcpy(out->prefix, slash, plen);
    out->prefix[plen] = '\0';
    return 0;
}

int verso__sync_query_append(verso_buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = verso_buf_printf(b, "%s=", name);

    for (const unsigned char *s = (const unsigned char *)value; rc == 0 && *s; s++) {
        if (isalnum(*s) || strchr("-_.~", *s)) {
            rc = verso_buf_append(b, s, 1);
        } else {
            char esc[3] = {'%', hex[*s >> 4], hex[*s & 15]};
            rc = verso_buf_append(b, esc, 3);
        }
    }
    return rc;
}

int verso__sync_json_get_i64(int64_t *out, const cJSON *obj, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsNumber(n) || verso_json_int64(out, n) < 0)
        return VERSO_EPROTO;
    return 0;
}

bool verso__sync_json_get_bool(const cJSON *obj, const char *name)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(obj, name));
}

const char *verso__sync_json_get_str(const cJSON *obj, const char *name)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, name);

    return verso_json_cstr(s);
}

bool verso__sync_need_reset(const verso_cursor *c, const char *identity, int64_t head,
                            int64_t horizon)
{
    if (c->master[0] && strcmp(c->master, identity) != 0)
        return true;
    if (c->version > head)
        return true;
    return c->version < horizon && c->version > 0;
}

verso_type verso__sync_type_from_name(const char *name)
{
    static const struct {
        const char *name;
        verso_type type;
    } map[] = {
        {"int64", VERSO_INT64}, {"integer", VERSO_INT64}, {"double", VERSO_DOUBLE},
        {"real", VERSO_DOUBLE}, {"text", VERSO_TEXT},     {"blob", VERSO_BLOB},
        {"bool", VERSO_BOOL},   {"boolean", VERSO_BOOL},  {"uuid", VERSO_UUID},
        {"any", VERSO_ANY},
    };

    for (size_t i = 0; name && i < sizeof(map) / sizeof(map[0]); i++) {
        if (strcasecmp(map[i].name, name) == 0)
            return map[i].type;
    }
    return VERSO_ANY;
}

void verso__sync_schema_table_free(verso__sync_schema_table *t)
{
    for (size_t j = 0; j < t->ncolumns; j++)
        verso__free((char *)t->columns[j].name);
    verso__free(t->columns);
    verso__free(t->name);
    memset(t, 0, sizeof(*t));
}

void verso__sync_schema_free(verso__sync_schema *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntables; i++)
        verso__sync_schema_table_free(&s->tables[i]);
    verso__free(s->tables);
    memset(s, 0, sizeof(*s));
}

static unsigned column_flags(const cJSON *col)
{
    unsigned flags = 0;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(col, "flags");

    if (verso__sync_json_get_bool(col, "id") || verso__sync_json_get_bool(col, "primary_key"))
        flags |= VERSO_FIELD_ID;
    if (verso__sync_json_get_bool(col, "version"))
        flags |= VERSO_FIELD_VERSION;
    if (verso__sync_json_get_bool(col, "notnull") || verso__sync_json_get_bool(col, "not_null"))
        flags |= VERSO_FIELD_NOTNULL;
    if (cJSON_IsNumber(f))
        flags |=
            (unsigned)f->valueint & (VERSO_FIELD_ID | VERSO_FIELD_VERSION | VERSO_FIELD_NOTNULL);
    return flags;
}

static int schema_columns(verso__sync_schema_table *t, const cJSON *cols, char *why, size_t whylen)
{
    int n = cJSON_GetArraySize(cols);
    const cJSON *col;
    size_t i = 0;

    if (!cJSON_IsArray(cols) || n <= 0) {
        verso__sync_why(why, whylen, "table %s: no column list", t->name);
        return VERSO_EPROTO;
    }
    t->columns = verso__calloc((size_t)n, sizeof(*t->columns));
    if (!t->columns)
        return VERSO_ENOMEM;
    cJSON_ArrayForEach(col, cols)
    {
        const char *name = verso__sync_json_get_str(col, "name");
        if (!name) {
            verso__sync_why(why, whylen, "table %s: column without a name", t->name);
            return VERSO_EPROTO;
        }
        t->columns[i].name = verso__strdup(name);
        if (!t->columns[i].name)
            return VERSO_ENOMEM;
        t->columns[i].type = verso__sync_type_from_name(verso__sync_json_get_str(col, "type"));
        t->columns[i].flags = column_flags(col);
        t->ncolumns = ++i;
    }
    return 0;
}

int verso__sync_schema_parse(verso__sync_schema *out, const cJSON *tables, char *why, size_t whylen)
{
    int rc = 0, n = cJSON_GetArraySize(tables);
    const cJSON *t;

    memset(out, 0, sizeof(*out));
    if (!(cJSON_IsArray(tables) || cJSON_IsObject(tables))) {
        verso__sync_why(why, whylen, "no table list");
        return VERSO_EPROTO;
    }
    if (n == 0)
        return 0;
    out->tables = verso__calloc((size_t)n, sizeof(*out->tables));
    if (!out->tables)
        return VERSO_ENOMEM;
    cJSON_ArrayForEach(t, tables)
    {
        verso__sync_schema_table *st = &out->tables[out->ntables];
        const char *name = t->string ? t->string : verso__sync_json_get_str(t, "name");
        if (!name) {
            verso__sync_why(why, whylen, "table without a name");
            rc = VERSO_EPROTO;
            goto done;
        }
        st->name = verso__strdup(name);
        out->ntables++;
        if (!st->name) {
            rc = VERSO_ENOMEM;
            goto done;
        }
        if ((rc = schema_columns(st, cJSON_GetObjectItemCaseSensitive(t, "columns"), why, whylen)) <
            0)
            goto done;
    }
done:
    if (rc < 0)
        verso__sync_schema_free(out);
    return rc;
}

static int table_json(verso_buf *b, const verso_table *t)
{
    int rc = verso_buf_puts(b, "{\"name\":");

    if (rc == 0)
        rc = verso_json_string(b, verso_table_name(t), strlen(verso_table_name(t)));
    if (rc == 0)
        rc = verso_buf_puts(b, ",\"columns\":[");
    for (size_t i = 0; rc == 0 && i < verso_table_ncolumns(t); i++) {
        const verso_column *c = verso_table_column_at(t, i);
        rc = verso_buf_puts(b, i ? ",{\"name\":" : "{\"name\":");
        if (rc == 0)
            rc = verso_json_string(b, c->name, strlen(c->name));
        if (rc == 0)
            rc = verso_buf_printf(b, ",\"type\":\"%s\"%s%s%s}", verso_type_name(c->type),
                                  (c->flags & VERSO_FIELD_ID) ? ",\"id\":true" : "",
                                  (c->flags & VERSO_FIELD_VERSION) ? ",\"version\":true" : "",
                                  (c->flags & VERSO_FIELD_NOTNULL) ? ",\"notnull\":true" : "");
    }
    if (rc == 0)
        rc = verso_buf_puts(b, "]}");
    return rc;
}

int verso__sync_schema_json(verso_buf *b, verso_db *db, const char *const *names, size_t n)
{
    int rc = verso_buf_puts(b, "[");
    bool first = true;

    for (size_t i = 0; rc == 0 && i < verso_db_ntables(db); i++) {
        const verso_table *t = verso_db_table_at(db, i);
        bool wanted = n == 0;
        for (size_t j = 0; !wanted && j < n; j++)
            wanted = strcmp(names[j], verso_table_name(t)) == 0;
        if (!wanted)
            continue;
        if (!first)
            rc = verso_buf_puts(b, ",");
        first = false;
        if (rc == 0)
            rc = table_json(b, t);
    }
    if (rc == 0)
        rc = verso_buf_puts(b, "]");
    return rc;
}

bool verso__sync_cancelled(const verso__sync_cancel *c)
{
    return c && ((c->flag && atomic_load(c->flag)) || (c->fn && c->fn(c->arg)));
}

const char *verso__sync_lws_cause(const char *lws_why, unsigned status, char *buf, size_t n)
{
    if (status && status != 101) {
        snprintf(buf, n, "the server answered HTTP %u to the WebSocket upgrade on %s", status,
                 VERSO_SYNC_PATH);
        return buf;
    }
    if (lws_why && (strstr(lws_why, "SSL") || strstr(lws_why, "ssl") || strstr(lws_why, "tls")))
        return "the TLS handshake failed";
    if (lws_why && !strncmp(lws_why, "HS:", 3))
        return "the server's answer to the WebSocket upgrade is not a verso master's";
    return "cannot connect";
}
