/*
 * libFuzzer harness: the REST config file and bearer tokens
 * (verso__config_parse, verso__auth_identify, verso__auth_caps,
 * verso__hex32, verso__sha256; rest/config.c, rest/sha256.c).
 *
 * Input: byte 0 picks a role and whether the grant names a table, then the
 * token (up to the first newline, NULs dropped), then the config text.
 *
 * Properties beyond "no crash, no leak":
 *   - a config that parses parses again to the same settings, and written
 *     back as config text it parses to the same settings once more;
 *   - with a line granting the token (by its SHA-256) a role added, a config
 *     that parses identifies "Bearer <token>" as known and gives it at least
 *     the role's capabilities (for its table when the grant names one); a
 *     token whose hash no grant lists is unknown and gets nothing;
 *   - verso__hex32 accepts exactly 64 hex digits, and decodes them to the
 *     bytes they spell.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest/internal.h"

static const char *const k_roles[] = {"read", "write", "replicate", "admin"};

static void hex_of(char out[65], const unsigned char h[32])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* SHA-256 itself, on the FIPS 180-2 examples and the token of docs/rest.md:
 * the properties below only hold if the hash is the real one. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const k_vectors[][2] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"password", "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"},
    };
    unsigned char h[32];
    char hex[65];

    (void)argc;
    (void)argv;
    for (size_t i = 0; i < sizeof(k_vectors) / sizeof(k_vectors[0]); i++) {
        verso__sha256(h, k_vectors[i][0], strlen(k_vectors[i][0]));
        hex_of(hex, h);
        if (strcmp(hex, k_vectors[i][1]))
            abort();
    }
    return 0;
}

static bool str_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static bool config_same(const verso__config *a, const verso__config *b)
{
    if (!str_same(a->host, b->host) || a->port != b->port || !str_same(a->tls_cert, b->tls_cert) ||
        !str_same(a->tls_key, b->tls_key) || memcmp(&a->limits, &b->limits, sizeof(a->limits)) ||
        a->ngrants != b->ngrants)
        return false;
    for (size_t i = 0; i < a->ngrants; i++)
        if (memcmp(a->grants[i].hash, b->grants[i].hash, 32) ||
            !str_same(a->grants[i].table, b->grants[i].table) ||
            !str_same(a->grants[i].db, b->grants[i].db) || a->grants[i].caps != b->grants[i].caps)
            return false;
    if (a->norigins != b->norigins)
        return false;
    for (size_t i = 0; i < a->norigins; i++)
        if (strcmp(a->origins[i], b->origins[i]))
            return false;
    return true;
}

static const char *role_of(unsigned caps)
{
    for (size_t i = 0; i < sizeof(k_roles) / sizeof(k_roles[0]); i++)
        if (verso__role_caps(k_roles[i]) == caps)
            return k_roles[i];
    abort(); /* a grant holds the caps of a role */
}

/* c written back as config text. */
static void write_config(verso_buf *b, const verso__config *c)
{
    const verso_rest_limits *l = &c->limits;
    char hex[65];

    if (c->host)
        verso_buf_printf(b, "host %s\n", c->host);
    if (c->port >= 0)
        verso_buf_printf(b, "port %d\n", c->port);
    if (c->tls_cert)
        verso_buf_printf(b, "tls-cert %s\n", c->tls_cert);
    if (c->tls_key)
        verso_buf_printf(b, "tls-key %s\n", c->tls_key);
    verso_buf_printf(b,
                     "max-body %zu\nmax-url %zu\nheader-timeout-ms %d\nmax-depth %d\n"
                     "max-filters %d\nquery-budget-ms %d\ndefault-limit %d\nmax-limit %d\n"
                     "max-offset %lld\nmax-changes %d\nmax-ws-message %zu\nbody-timeout-ms %d\n"
                     "max-blob %lld\n",
                     l->max_body, l->max_url, l->header_timeout_ms, l->max_depth, l->max_filters,
                     l->query_budget_ms, l->default_limit, l->max_limit, (long long)l->max_offset,
                     l->max_changes, l->max_ws_message, l->body_timeout_ms, (long long)l->max_blob);
    for (size_t i = 0; i < c->ngrants; i++) {
        hex_of(hex, c->grants[i].hash);
        verso_buf_printf(b, "token %s %s%s%s%s%s\n", hex, role_of(c->grants[i].caps),
                         c->grants[i].db ? " db=" : "", c->grants[i].db ? c->grants[i].db : "",
                         c->grants[i].table ? " " : "",
                         c->grants[i].table ? c->grants[i].table : "");
    }
    for (size_t i = 0; i < c->norigins; i++)
        verso_buf_printf(b, "cors-origin %s\n", c->origins[i]);
}

static int parse(verso__config *c, const char *text, size_t len)
{
    char why[128] = "";
    int rc;

    memset(c, 0, sizeof(*c));
    c->port = -1;
    rc = verso__config_parse(c, text, len, why, sizeof(why));
    if (rc < 0 && (strncmp(why, "config line ", 12) || !verso__utf8_valid(why, strlen(why))))
        abort(); /* a refusal names the line, in valid UTF-8, whatever the text */
    return rc;
}

static void check_reparse(const verso__config *c1, const char *text, size_t len)
{
    verso__config c2, c3;
    verso_buf b = VERSO_BUF_INIT;

    if (parse(&c2, text, len) < 0 || !config_same(c1, &c2))
        abort(); /* the same text, another result */
    write_config(&b, c1);
    if (parse(&c3, b.data ? b.data : "", b.len) < 0 || !config_same(c1, &c3))
        abort(); /* the settings written back read back differently */
    verso__config_free(&c2);
    verso__config_free(&c3);
    verso_buf_free(&b);
}

static bool listed(const verso__config *c, const unsigned char h[32])
{
    for (size_t i = 0; i < c->ngrants; i++)
        if (!memcmp(c->grants[i].hash, h, 32))
            return true;
    return false;
}

/* token (no NUL) was granted role, for table when not NULL. */
static void check_token(const verso__config *c, const char *token, const char *role,
                        const char *table)
{
    verso_buf h = VERSO_BUF_INIT;
    unsigned char other[32];
    unsigned need = verso__role_caps(role);
    verso__auth a;

    verso_buf_printf(&h, "bEaReR %s", token);
    verso__auth_identify(&a, c, h.data);
    if (*token && (a.state != 1 || (verso__auth_caps(&a, c, NULL, table) & need) != need))
        abort();             /* the granted token is not known, or lacks its role */
    verso_buf_puts(&h, "!"); /* another token */
    verso__auth_identify(&a, c, h.data);
    verso__sha256(other, h.data + 7, h.len - 7);
    if (!listed(c, other) && (a.state != -1 || verso__auth_caps(&a, c, NULL, table)))
        abort(); /* an unlisted token is let in */
    verso_buf_free(&h);
}

static int hexval(int ch)
{
    const char *d = "0123456789abcdef", *p;

    if (ch >= 'A' && ch <= 'F')
        ch += 'a' - 'A';
    p = ch ? strchr(d, ch) : NULL;
    return p ? (int)(p - d) : -1;
}

static void check_hex(const uint8_t *data, size_t size)
{
    unsigned char out[32];
    bool want = size == 64;

    for (size_t i = 0; want && i < size; i++)
        want = hexval(data[i]) >= 0;
    if ((verso__hex32(out, (const char *)data, size) == 0) != want)
        abort(); /* accepts exactly 64 hex digits */
    for (size_t i = 0; want && i < 32; i++)
        if (out[i] != (hexval(data[2 * i]) << 4 | hexval(data[2 * i + 1])))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    verso_buf text = VERSO_BUF_INIT, token = VERSO_BUF_INIT;
    const char *role, *table = NULL;
    unsigned char hash[32];
    char hex[65];
    verso__config c;
    size_t at = 1;

    check_hex(data, size);
    if (!size)
        return 0;
    role = k_roles[data[0] % 4];
    table = data[0] & 4 ? "items" : NULL;
    for (; at < size && data[at] != '\n'; at++)
        if (data[at])
            verso_buf_append(&token, &data[at], 1);
    at += at < size;
    if (parse(&c, (const char *)data + at, size - at) == 0)
        check_reparse(&c, (const char *)data + at, size - at);
    verso__config_free(&c);
    /* the fuzzed config with a grant for the token appended */
    verso__sha256(hash, token.data ? token.data : "", token.len);
    hex_of(hex, hash);
    verso_buf_append(&text, data + at, size - at);
    verso_buf_printf(&text, "\ntoken %s %s%s%s\n", hex, role, table ? " " : "", table ? table : "");
    if (parse(&c, text.data, text.len) == 0)
        check_token(&c, token.data ? token.data : "", role, table);
    verso__config_free(&c);
    verso_buf_free(&text);
    verso_buf_free(&token);
    return 0;
}
