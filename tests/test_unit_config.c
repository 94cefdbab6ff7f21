/* rest/config.c in isolation: verso__config_parse from text (every key,
 * comments, blanks, bad lines named by number), token lines (hashes, roles,
 * table scopes) and what the parsed grants allow, the limits' defaults and
 * merge, and the SHA-256 behind the token hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/internal.h"
#include "support/orm_support.h"

static void cfg_init(verso__config *c)
{
    memset(c, 0, sizeof(*c));
    c->port = -1;
}

/* Parses text (n bytes; strlen when n is 0); returns the code, the reason in why. */
static int parse(verso__config *c, const char *text, size_t n, char *why, size_t whylen)
{
    cfg_init(c);
    why[0] = 0;
    return verso__config_parse(c, text, n ? n : strlen(text), why, whylen);
}

static void hex_of(char out[65], const unsigned char h[32])
{
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

/* The hex SHA-256 of a token, as `printf %s token | sha256sum` prints it. */
static void token_hash(char out[65], const char *token)
{
    unsigned char h[32];

    verso__sha256(h, token, strlen(token));
    hex_of(out, h);
}

/* ---- settings ---- */

static void test_every_key(void **state)
{
    static const char text[] = "host 10.1.2.3\n"
                               "port 8443\n"
                               "tls-cert /etc/cert.pem\n"
                               "tls-key /etc/key.pem\n"
                               "max-body 1\n"
                               "max-url 2\n"
                               "header-timeout-ms 3\n"
                               "max-depth 4\n"
                               "max-filters 5\n"
                               "query-budget-ms 6\n"
                               "default-limit 7\n"
                               "max-limit 8\n"
                               "max-offset 9\n"
                               "max-changes 10\n"
                               "max-ws-message 11\n"
                               "body-timeout-ms 12\n";
    verso__config c;
    char why[128];

    (void)state;
    assert_int_equal(parse(&c, text, 0, why, sizeof(why)), 0);
    assert_string_equal(why, "");
    assert_string_equal(c.host, "10.1.2.3");
    assert_int_equal(c.port, 8443);
    assert_string_equal(c.tls_cert, "/etc/cert.pem");
    assert_string_equal(c.tls_key, "/etc/key.pem");
    assert_int_equal(c.limits.max_body, 1);
    assert_int_equal(c.limits.max_url, 2);
    assert_int_equal(c.limits.header_timeout_ms, 3);
    assert_int_equal(c.limits.max_depth, 4);
    assert_int_equal(c.limits.max_filters, 5);
    assert_int_equal(c.limits.query_budget_ms, 6);
    assert_int_equal(c.limits.default_limit, 7);
    assert_int_equal(c.limits.max_limit, 8);
    assert_int_equal(c.limits.max_offset, 9);
    assert_int_equal(c.limits.max_changes, 10);
    assert_int_equal(c.limits.max_ws_message, 11);
    assert_int_equal(c.limits.body_timeout_ms, 12);
    assert_int_equal(c.ngrants, 0);
    verso__config_free(&c);
    /* freed and reset: a second free is harmless */
    assert_null(c.host);
    assert_int_equal(c.port, -1);
    verso__config_free(&c);
    verso__config_free(NULL);
}

/* One numeric key at a time, at its bounds: the value read, or -1 for refused. */
static void test_numbers(void **state)
{
    static const struct {
        const char *line;
        int64_t want; /* -1: refused */
    } cases[] = {
        {"port 0", 0},
        {"port 1", 1},
        {"port 65535", 65535},
        {"port 65536", -1},
        {"port 70000", -1},
        {"port -1", -1},
        {"port 2147483648", -1},
        {"max-depth 2147483647", 2147483647},
        {"max-depth 2147483648", -1},
        {"max-depth -1", -1},
        {"max-depth 0", 0},
        {"max-depth 007", 7},
        {"max-depth 1x", -1},
        {"max-depth 0x10", -1},
        {"max-depth 1.5", -1},
        {"max-depth 1e3", -1},
        {"max-depth ten", -1},
        {"max-body 9223372036854775807", INT64_MAX},
        {"max-body 9223372036854775808", -1},
        {"max-body -5", -1},
        {"max-offset 9223372036854775807", INT64_MAX},
        {"max-offset 99999999999999999999", -1},
        {"max-offset -0", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__config c;
        char why[128];
        int rc = parse(&c, cases[i].line, 0, why, sizeof(why));
        int64_t got = -1;

        if (rc == 0) {
            if (!strncmp(cases[i].line, "port", 4))
                got = c.port;
            else if (!strncmp(cases[i].line, "max-depth", 9))
                got = c.limits.max_depth;
            else if (!strncmp(cases[i].line, "max-body", 8))
                got = (int64_t)c.limits.max_body;
            else
                got = c.limits.max_offset;
        } else {
            assert_int_equal(rc, VERSO_EINVAL);
            assert_int_equal(strncmp(why, "config line 1: ", 15), 0);
        }
        if (got != cases[i].want)
            fail_msg("\"%s\": got %lld, want %lld", cases[i].line, (long long)got,
                     (long long)cases[i].want);
        verso__config_free(&c);
    }
}

static void test_comments_blanks_and_repeats(void **state)
{
    static const char text[] = "# a comment\n"
                               "\n"
                               "   # an indented comment with port 1 in it\n"
                               "\t\n"
                               "  host \t 127.0.0.1  \r\n"
                               "port 1\r\n"
                               "#port 2\n"
                               "host ::1\n" /* the last one wins */
                               "port 3";    /* no final newline */
    verso__config c;
    char why[128];

    (void)state;
    assert_int_equal(parse(&c, text, 0, why, sizeof(why)), 0);
    assert_string_equal(c.host, "::1");
    assert_int_equal(c.port, 3);
    verso__config_free(&c);

    /* empty text, only blanks, only comments: nothing set */
    static const char *const empty[] = {"", "\n\n\n", " \t\r\n", "#", "# x\n#y"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        assert_int_equal(parse(&c, empty[i], 0, why, sizeof(why)), 0);
        assert_null(c.host);
        assert_int_equal(c.port, -1);
        assert_int_equal(c.ngrants, 0);
        verso__config_free(&c);
    }
    /* client-token lines are the sync clients' */
    assert_int_equal(parse(&c, "client-token abc\nclient-token\n", 0, why, sizeof(why)), 0);
    assert_int_equal(c.ngrants, 0);
    verso__config_free(&c);
}

/* ---- bad lines are named by number ---- */

static void test_bad_lines(void **state)
{
    char h[65], bad_hex[65], lines[1024];

    (void)state;
    token_hash(h, "secret");
    memcpy(bad_hex, h, sizeof(h));
    bad_hex[10] = 'g';
    const struct {
        const char *text;
        int line;
    } cases[] = {
        {"nonsense", 1},
        {"port", 1},
        {"port 1 2", 1},
        {"port 80 # the port", 1},
        {"Port 80", 1},
        {"PORT 80", 1},
        {"host", 1},
        {"host a b", 1},
        {"max_body 5", 1},
        {"maxbody 5", 1},
        {"tls-cert", 1},
        {"\xef\xbb\xbfport 80", 1}, /* a byte order mark */
        {"port 80\nhost 127.0.0.1\nbogus 1\n", 3},
        {"\n\n\n\nport x\n", 5},
        {"# c\r\n\r\nport 1\r\nport 2 3\r\n", 4},
        {"port 1\n\n#\n  \nmax-limit -3\nport 2\n", 5},
        {"a b c d e f", 1},
        /* tokens */
        {"token", 1},
        {"token abc read", 1},
        {"token read", 1},
        {"port 1\ntoken \n", 2},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__config c;
        char why[128], want[128];

        if (parse(&c, cases[i].text, 0, why, sizeof(why)) != VERSO_EINVAL)
            fail_msg("\"%s\" accepted", cases[i].text);
        snprintf(want, sizeof(want), "config line %d: ", cases[i].line);
        if (strncmp(why, want, strlen(want)))
            fail_msg("\"%s\": \"%s\", want \"%s\"", cases[i].text, why, want);
        verso__config_free(&c);
    }

    /* token lines: the hash, the role, the arity */
    const struct {
        const char *fmt; /* %s is the hash */
        int line;
    } tokens[] = {
        {"token %.63s read", 1},         {"token %s0 read", 1},          {"token %s", 1},
        {"token %s reader", 1},          {"token %s READ", 1},           {"token %s  ", 1},
        {"token %s read items x", 1},    {"token %s read items x y", 1}, {"\n\ntoken %s root", 3},
        {"token %s admin\ntoken %s", 2},
    };
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        verso__config c;
        char why[128], want[128];

        snprintf(lines, sizeof(lines), tokens[i].fmt, h, h);
        if (parse(&c, lines, 0, why, sizeof(why)) != VERSO_EINVAL)
            fail_msg("\"%s\" accepted", lines);
        snprintf(want, sizeof(want), "config line %d: ", tokens[i].line);
        assert_int_equal(strncmp(why, want, strlen(want)), 0);
        verso__config_free(&c);
    }
    snprintf(lines, sizeof(lines), "token %s read", bad_hex);
    verso__config c;
    char why[128];
    assert_int_equal(parse(&c, lines, 0, why, sizeof(why)), VERSO_EINVAL);
    verso__config_free(&c);

    /* why may be NULL or tiny */
    cfg_init(&c);
    assert_int_equal(verso__config_parse(&c, "x", 1, NULL, 0), VERSO_EINVAL);
    verso__config_free(&c);
    cfg_init(&c);
    assert_int_equal(verso__config_parse(&c, "x", 1, why, 7), VERSO_EINVAL);
    assert_string_equal(why, "config");
    verso__config_free(&c);
}

/* A NUL byte does not end the file early: what follows it is read, or the
 * file is refused (here: refused). A file cut at a stray NUL would lose its
 * token lines and open every route to anyone. */
static void test_nul_byte(void **state)
{
    char h[65], text[256];
    verso__config c;
    char why[128];
    size_t n;

    (void)state;
    token_hash(h, "secret");
    n = (size_t)snprintf(text, sizeof(text), "port 1%c\ntoken %s admin\n", 0, h);
    assert_int_equal(parse(&c, text, n, why, sizeof(why)), VERSO_EINVAL);
    assert_string_equal(why, "config line 1: the line holds a NUL byte");
    verso__config_free(&c);
    n = (size_t)snprintf(text, sizeof(text), "port 1\n%c\ntoken %s admin\n", 0, h);
    assert_int_equal(parse(&c, text, n, why, sizeof(why)), VERSO_EINVAL);
    assert_string_equal(why, "config line 2: the line holds a NUL byte");
    verso__config_free(&c);
}

/* ---- tokens, roles, scopes ---- */

static void test_token_lines(void **state)
{
    char ha[65], hb[65], text[1024], upper[65];
    verso__config c;
    char why[128];
    unsigned char raw[32];

    (void)state;
    token_hash(ha, "token-a");
    token_hash(hb, "token-b");
    for (int i = 0; i < 65; i++)
        upper[i] = (char)(ha[i] >= 'a' && ha[i] <= 'f' ? ha[i] - 32 : ha[i]);
    snprintf(text, sizeof(text),
             "token %s read\n"
             "token %s write items\n"
             "  token\t%s replicate orders  \n"
             "token %s admin\n",
             ha, hb, hb, upper);
    assert_int_equal(parse(&c, text, 0, why, sizeof(why)), 0);
    assert_int_equal(c.ngrants, 4);
    verso__sha256(raw, "token-a", 7);
    assert_memory_equal(c.grants[0].hash, raw, 32);
    assert_memory_equal(c.grants[3].hash, raw, 32); /* hex digits in either case */
    assert_null(c.grants[0].table);
    assert_string_equal(c.grants[1].table, "items");
    assert_string_equal(c.grants[2].table, "orders");
    assert_null(c.grants[3].table);
    assert_int_equal(c.grants[0].caps, VERSO__CAP_READ);
    assert_int_equal(c.grants[1].caps, VERSO__CAP_READ | VERSO__CAP_WRITE);
    assert_int_equal(c.grants[2].caps, VERSO__CAP_READ | VERSO__CAP_FEED);
    assert_int_equal(c.grants[3].caps, VERSO__CAP_ALL);
    verso__config_free(&c);
}

static void test_roles(void **state)
{
    static const struct {
        const char *name;
        unsigned caps;
    } roles[] = {
        {"read", VERSO__CAP_READ},
        {"write", VERSO__CAP_READ | VERSO__CAP_WRITE},
        {"replicate", VERSO__CAP_READ | VERSO__CAP_FEED},
        {"admin", VERSO__CAP_READ | VERSO__CAP_WRITE | VERSO__CAP_FEED | VERSO__CAP_ADMIN},
        {"", 0},
        {"Read", 0},
        {"reader", 0},
        {"rea", 0},
        {"root", 0},
        {"all", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        assert_int_equal(verso__role_caps(roles[i].name), roles[i].caps);
}

/* What each token may do where, with the grants of one file. */
static void test_access_matrix(void **state)
{
    enum { R = VERSO__CAP_READ, W = VERSO__CAP_WRITE, F = VERSO__CAP_FEED, A = VERSO__CAP_ADMIN };
    char h[4][65], text[1024], header[128];
    static const char *const tokens[] = {"admin-tok", "reader", "mixed", "feeder"};
    static const struct {
        int token; /* -1: none, -2: unknown token, -3: malformed header */
        const char *table;
        unsigned caps;
    } cases[] = {
        {0, NULL, R | W | F | A},
        {0, "items", R | W | F | A},
        {1, NULL, R},
        {1, "items", R},
        {1, "orders", R},
        {2, NULL, 0}, /* table grants only: nothing on the server's routes */
        {2, "items", R | W},
        {2, "orders", R | F},
        {2, "ITEMS", 0}, /* table names are compared exactly */
        {2, "other", 0},
        {3, NULL, R | F},
        {3, "items", R | F | W}, /* a global grant and a table grant add up */
        {-1, NULL, 0},
        {-1, "items", 0},
        {-2, "items", 0},
        {-3, "items", 0},
    };
    verso__config c;
    char why[128];

    (void)state;
    for (int i = 0; i < 4; i++)
        token_hash(h[i], tokens[i]);
    snprintf(text, sizeof(text),
             "token %s admin\n"
             "token %s read\n"
             "token %s write items\n"
             "token %s replicate orders\n"
             "token %s replicate\n"
             "token %s write items\n",
             h[0], h[1], h[2], h[2], h[3], h[3]);
    assert_int_equal(parse(&c, text, 0, why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__auth a;
        const char *hdr = header;
        int want_state = 1;

        if (cases[i].token >= 0)
            snprintf(header, sizeof(header), "Bearer %s", tokens[cases[i].token]);
        else if (cases[i].token == -1)
            hdr = NULL, want_state = 0;
        else if (cases[i].token == -2)
            snprintf(header, sizeof(header), "Bearer nobody"), want_state = -1;
        else
            snprintf(header, sizeof(header), "Basic YWRtaW4tdG9r"), want_state = -1;
        verso__auth_identify(&a, &c, hdr);
        assert_int_equal(a.state, want_state);
        if (verso__auth_caps(&a, &c, NULL, cases[i].table) != cases[i].caps)
            fail_msg("case %zu: token %d on %s: caps %u, want %u", i, cases[i].token,
                     cases[i].table ? cases[i].table : "(server)",
                     verso__auth_caps(&a, &c, NULL, cases[i].table), cases[i].caps);
        /* the check agrees with the caps for every single need */
        for (unsigned need = 0; need <= VERSO__CAP_ALL; need++) {
            int want = !need ? 0 : a.state != 1 ? 401 : (cases[i].caps & need) == need ? 0 : 403;
            assert_int_equal(verso__auth_check(&a, &c, NULL, cases[i].table, need), want);
        }
    }
    verso__config_free(&c);

    /* no token configured: everything, for anyone, even with a bad header */
    cfg_init(&c);
    static const char *const anyone[] = {NULL, "Bearer x", "Basic y", "", "Bearer "};
    for (size_t i = 0; i < sizeof(anyone) / sizeof(anyone[0]); i++) {
        verso__auth a;
        verso__auth_identify(&a, &c, anyone[i]);
        assert_int_equal(verso__auth_caps(&a, &c, NULL, "items"), VERSO__CAP_ALL);
        assert_int_equal(verso__auth_check(&a, &c, NULL, NULL, VERSO__CAP_ADMIN), 0);
    }
}

/* The Authorization header's forms. */
static void test_bearer_forms(void **state)
{
    char h[65], text[128];
    verso__config c;
    char why[128];
    static const struct {
        const char *header;
        int state;
    } cases[] = {
        {"Bearer s3cret", 1},
        {"bearer s3cret", 1},
        {"BEARER s3cret", 1},
        {"Bearer  s3cret", -1}, /* the token is everything after one space */
        {"Bearer s3cret ", -1},
        {"Bearer s3cre", -1},
        {"Bearer s3cretx", -1},
        {"Bearer ", -1},
        {"Bearer", -1},
        {"Bearers3cret", -1},
        {"s3cret", -1},
        {"", -1},
        {"Token s3cret", -1},
    };

    (void)state;
    token_hash(h, "s3cret");
    snprintf(text, sizeof(text), "token %s read\n", h);
    assert_int_equal(parse(&c, text, 0, why, sizeof(why)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__auth a;
        verso__auth_identify(&a, &c, cases[i].header);
        if (a.state != cases[i].state)
            fail_msg("\"%s\": state %d, want %d", cases[i].header, a.state, cases[i].state);
        assert_int_equal(verso__auth_check(&a, &c, NULL, "t", VERSO__CAP_READ),
                         cases[i].state == 1 ? 0 : 401);
    }
    verso__config_free(&c);
}

/* ---- limits ---- */

static void test_limits_defaults_and_merge(void **state)
{
    verso_rest_limits l, over, zero;

    (void)state;
    memset(&l, 0, sizeof(l));
    verso__limits_defaults(&l);
    assert_int_equal(l.max_body, 1u << 20);
    assert_int_equal(l.max_url, 4096);
    assert_int_equal(l.header_timeout_ms, 10000);
    assert_int_equal(l.max_depth, 64);
    assert_int_equal(l.max_filters, 32);
    assert_int_equal(l.query_budget_ms, 2000);
    assert_int_equal(l.default_limit, 100);
    assert_int_equal(l.max_limit, 1000);
    assert_int_equal(l.max_offset, 10000);
    assert_int_equal(l.max_changes, 10000);
    assert_int_equal(l.max_ws_message, 16u << 20);
    assert_int_equal(l.body_timeout_ms, 30000);

    /* set values stay; negative ones are the default */
    memset(&l, 0, sizeof(l));
    l.max_depth = 3;
    l.max_limit = -5;
    l.max_offset = -1;
    verso__limits_defaults(&l);
    assert_int_equal(l.max_depth, 3);
    assert_int_equal(l.max_limit, 1000);
    assert_int_equal(l.max_offset, 10000);

    /* merge: every non-zero field of over wins, zero ones leave dst alone */
    memset(&l, 0, sizeof(l));
    verso__limits_defaults(&l);
    memset(&zero, 0, sizeof(zero));
    over = l;
    verso__limits_merge(&over, &zero);
    assert_memory_equal(&over, &l, sizeof(l));
    memset(&over, 0, sizeof(over));
    over.max_body = 7;
    over.max_offset = (int64_t)1 << 40;
    over.body_timeout_ms = 9;
    over.max_ws_message = 5;
    verso__limits_merge(&l, &over);
    assert_int_equal(l.max_body, 7);
    assert_int_equal(l.max_offset, (int64_t)1 << 40);
    assert_int_equal(l.body_timeout_ms, 9);
    assert_int_equal(l.max_ws_message, 5);
    assert_int_equal(l.max_url, 4096);
    assert_int_equal(l.max_changes, 10000);
}

/* A config file's limits, merged over by options and completed by defaults:
 * the order verso_rest_start uses. */
static void test_limits_from_file(void **state)
{
    verso__config c;
    verso_rest_limits opts;
    char why[128];

    (void)state;
    assert_int_equal(
        parse(&c, "max-limit 50\ndefault-limit 10\nmax-filters 0\n", 0, why, sizeof(why)), 0);
    memset(&opts, 0, sizeof(opts));
    opts.default_limit = 20;
    verso__limits_merge(&c.limits, &opts);
    verso__limits_defaults(&c.limits);
    assert_int_equal(c.limits.max_limit, 50);
    assert_int_equal(c.limits.default_limit, 20);
    assert_int_equal(c.limits.max_filters, 32);
    verso__config_free(&c);
}

/* ---- files ---- */

static void test_load(void **state)
{
    char path[1024], h[65], why[256], want[1100];
    verso__config c;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("unit_config"));
    token_hash(h, "t");
    f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# served\nport 9\n");
    for (int i = 0; i < 2000; i++) /* larger than one read */
        fprintf(f, "token %s read t%d\n", h, i);
    fclose(f);
    cfg_init(&c);
    assert_int_equal(verso__config_load(&c, path, why, sizeof(why)), 0);
    assert_int_equal(c.port, 9);
    assert_int_equal(c.ngrants, 2000);
    assert_string_equal(c.grants[1999].table, "t1999");
    verso__config_free(&c);

    f = fopen(path, "a");
    fprintf(f, "port nine\n");
    fclose(f);
    cfg_init(&c);
    assert_int_equal(verso__config_load(&c, path, why, sizeof(why)), VERSO_EINVAL);
    assert_non_null(strstr(why, ":2003: port: \"nine\" is not a whole number from 0 to 65535"));
    assert_int_equal(strncmp(why, path, strlen(path)), 0);
    verso__config_free(&c);

    f = fopen(path, "w");
    fclose(f);
    cfg_init(&c);
    assert_int_equal(verso__config_load(&c, path, why, sizeof(why)), 0);
    assert_int_equal(c.port, -1);
    verso__config_free(&c);

    remove(path);
    cfg_init(&c);
    assert_int_equal(verso__config_load(&c, path, why, sizeof(why)), VERSO_EINVAL);
    snprintf(want, sizeof(want), "cannot read config file %s: No such file or directory", path);
    assert_string_equal(why, want);
    verso__config_free(&c);
}

/* A port out of range is refused, from the options or the file, never bound
 * modulo 65536 (70000 would listen on 4464, 65536 on a random port). */
static void test_port_bounds(void **state)
{
    static const int bad[] = {65536, 70000, -2, -65536};
    char path[1024], cfg[1100], why[256];
    verso_db_options dbo = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    verso_rest *srv = NULL;
    FILE *f;

    (void)state;
    snprintf(path, sizeof(path), "%s", orm_tmp_path("unit_config_port"));
    assert_int_equal(verso_db_open(&db, path, &dbo, NULL, 0), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        verso_rest_options o = VERSO_REST_OPTIONS_INIT;
        char want[64];

        o.port = bad[i];
        why[0] = 0;
        assert_int_equal(verso_rest_start(&srv, db, &o, why, sizeof(why)), VERSO_EINVAL);
        assert_null(srv);
        snprintf(want, sizeof(want), "port %d is not a TCP port (0 to 65535)", bad[i]);
        assert_string_equal(why, want);
    }
    snprintf(cfg, sizeof(cfg), "%s.conf", path);
    f = fopen(cfg, "w");
    assert_non_null(f);
    fputs("# too far\nport 65536\n", f);
    fclose(f);
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    o.config_path = cfg;
    assert_int_equal(verso_rest_start(&srv, db, &o, why, sizeof(why)), VERSO_EINVAL);
    assert_null(srv);
    assert_int_equal(strncmp(why, cfg, strlen(cfg)), 0);
    assert_string_equal(why + strlen(cfg),
                        ":2: port: \"65536\" is not a whole number from 0 to 65535");
    remove(cfg);
    verso_db_close(db);
}

/* ---- the hashes ---- */

static void test_sha256_and_hex(void **state)
{
    static const struct {
        const char *in;
        const char *hex;
    } vectors[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    unsigned char h[32], back[32];
    char hex[65], mil[1000];

    (void)state;
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        verso__sha256(h, vectors[i].in, strlen(vectors[i].in));
        hex_of(hex, h);
        assert_string_equal(hex, vectors[i].hex);
        assert_int_equal(verso__hex32(back, vectors[i].hex, 64), 0);
        assert_memory_equal(back, h, 32);
    }
    /* every length around the 64-byte block boundary against a second computation */
    memset(mil, 'a', sizeof(mil));
    verso__sha256(h, mil, sizeof(mil));
    hex_of(hex, h);
    assert_string_equal(hex, "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3");
    for (size_t n = 50; n < 140; n++) {
        unsigned char a[32], b[32];
        verso__sha256(a, mil, n);
        verso__sha256(b, mil + 1, n);
        assert_memory_equal(a, b, 32);
        verso__sha256(b, mil, n + 1);
        assert_memory_not_equal(a, b, 32);
    }

    assert_int_equal(verso__hex32(back, vectors[0].hex, 63), VERSO_EINVAL);
    assert_int_equal(verso__hex32(back, vectors[0].hex, 65), VERSO_EINVAL);
    memcpy(hex, vectors[1].hex, 65);
    hex[63] = 'G';
    assert_int_equal(verso__hex32(back, hex, 64), VERSO_EINVAL);
    hex[63] = ' ';
    assert_int_equal(verso__hex32(back, hex, 64), VERSO_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_comments_blanks_and_repeats),
        cmocka_unit_test(test_bad_lines),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_token_lines),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_access_matrix),
        cmocka_unit_test(test_bearer_forms),
        cmocka_unit_test(test_limits_defaults_and_merge),
        cmocka_unit_test(test_limits_from_file),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_port_bounds),
        cmocka_unit_test(test_sha256_and_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
