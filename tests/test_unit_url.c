/* sync/common.c in isolation: the master URL a slave or a pull is given
 * (verso__sync_url_parse) and the query values it sends
 * (verso__sync_query_append), from tables of good and hostile inputs; the
 * base URL of one database of a server of databases (URL/db/NAME), whose
 * prefix every request keeps; and the names the --all slave accepts from
 * a server (sync/all.c) before they become paths. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/internal.h"
#include "sync/all.h"

typedef struct url_case {
    const char *url;
    bool tls;
    const char *host;
    int port;
    const char *prefix;
} url_case;

static const url_case k_good[] = {
    {"http://example.com", false, "example.com", 80, ""},
    {"https://example.com", true, "example.com", 443, ""},
    {"HTTP://Example.COM", false, "Example.COM", 80, ""},
    {"HtTpS://h", true, "h", 443, ""},
    {"http://127.0.0.1:8080", false, "127.0.0.1", 8080, ""},
    {"https://127.0.0.1:8443/", true, "127.0.0.1", 8443, ""},
    {"http://h:1", false, "h", 1, ""},
    {"http://h:65535", false, "h", 65535, ""},
    {"http://h:080", false, "h", 80, ""},
    {"https://h:80", true, "h", 80, ""},
    {"http://h/", false, "h", 80, ""},
    {"http://h///", false, "h", 80, ""},
    {"http://h/api", false, "h", 80, "/api"},
    {"http://h/api/", false, "h", 80, "/api"},
    {"http://h:81/a/b/c//", false, "h", 81, "/a/b/c"},
    {"http://h/a//b", false, "h", 80, "/a//b"},
    {"http://h/a%20b/", false, "h", 80, "/a%20b"},
    {"http://h/v1.2/~me", false, "h", 80, "/v1.2/~me"},
    {"http://[::1]", false, "::1", 80, ""},
    {"http://[::1]:8080", false, "::1", 8080, ""},
    {"https://[::1]/", true, "::1", 443, ""},
    {"http://[2001:db8::7]:9/x/", false, "2001:db8::7", 9, "/x"},
    {"http://[fe80::1%25eth0]:1", false, "fe80::1%25eth0", 1, ""},
    {"http://[::ffff:127.0.0.1]:5", false, "::ffff:127.0.0.1", 5, ""},
    {"http://my_host.local-1:7", false, "my_host.local-1", 7, ""},
    {"http://xn--bcher-kva.example", false, "xn--bcher-kva.example", 80, ""},
    /* one database of a server of databases */
    {"http://127.0.0.1:8080/db/tenant-1", false, "127.0.0.1", 8080, "/db/tenant-1"},
    {"http://127.0.0.1:8080/db/tenant-1/", false, "127.0.0.1", 8080, "/db/tenant-1"},
    {"https://h/api/v2/db/A_b-9", true, "h", 443, "/api/v2/db/A_b-9"},
    {"http://[::1]:9/db/x//", false, "::1", 9, "/db/x"},
    /* the longest host and prefix that fit */
    {"http://"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh",
     false,
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
     "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh",
     80, ""},
};

static const char *const k_bad[] = {
    NULL,
    "",
    "h",
    "example.com:80",
    "ftp://h",
    "ws://h",
    "http:/h",
    "http//h",
    "http:h",
    " http://h",
    "http://",
    "https://",
    "http:///api",
    "http://:80",
    "http://:80/x",
    /* ports */
    "http://h:",
    "http://h:/x",
    "http://h:0",
    "http://h:65536",
    "http://h:99999999999999999999",
    "http://h:-1",
    "http://h:+80",
    "http://h: 80",
    "http://h:80 ",
    "http://h:80x",
    "http://h:8 0",
    "http://h:0x50",
    "http://h:80:81",
    /* IPv6 */
    "http://::1",
    "http://::1/",
    "http://[::1",
    "http://[::1/x]",
    "http://[]",
    "http://[]:80",
    "http://[::1]junk",
    "http://[::1]junk/x",
    "http://[::1]:",
    "http://[::1]:0",
    "http://[::1]:80x",
    "http://[[::1]]",
    "http://[::1]]",
    /* what a URL would read otherwise, or a request would carry */
    "http://user@h",
    "http://user:pass@h/",
    "http://h?x=1",
    "http://h#frag",
    "http://h/?x=1",
    "http://h/p#frag",
    "http://h/p?since=0",
    "http://h\\evil/",
    "http://h/a\\b",
    "http://h o/",
    "http://h\t/",
    "http://h/a b",
    "http://h/a\r\nX-Injected: 1",
    "http://h\r\nX-Injected: 1/",
    "http://h/\x7f",
    "http://[::1 ]/",
    /* too long */
    "http://"
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh"
    "hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh",
};

static void test_good_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_good) / sizeof(k_good[0]); i++) {
        const url_case *c = &k_good[i];
        verso__sync_url u;
        int rc;

        memset(&u, 0x5a, sizeof(u));
        rc = verso__sync_url_parse(&u, c->url);
        if (rc != 0)
            fail_msg("\"%s\": refused", c->url);
        if (u.tls != c->tls || strcmp(u.host, c->host) || u.port != c->port ||
            strcmp(u.prefix, c->prefix))
            fail_msg("\"%s\": tls %d host \"%s\" port %d prefix \"%s\"", c->url, u.tls, u.host,
                     u.port, u.prefix);
    }
    assert_int_equal(strlen(k_good[sizeof(k_good) / sizeof(k_good[0]) - 1].host), 255);
}

static void test_bad_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(k_bad) / sizeof(k_bad[0]); i++) {
        verso__sync_url u;
        int rc;

        memset(&u, 0x5a, sizeof(u));
        rc = verso__sync_url_parse(&u, k_bad[i]);
        if (rc != VERSO_EINVAL)
            fail_msg("\"%s\": rc %d, host \"%.255s\" port %d prefix \"%.255s\"",
                     k_bad[i] ? k_bad[i] : "(null)", rc, u.host, u.port, u.prefix);
    }
}

/* The prefix's bound: 255 bytes fit, 256 do not; trailing slashes do not count. */
static void test_prefix_bound(void **state)
{
    char url[600], want[300];
    verso__sync_url u;

    (void)state;
    for (size_t n = 250; n <= 260; n++) {
        int len = snprintf(url, sizeof(url), "http://h/");
        memset(url + len, 'p', n - 1);
        url[len + (int)n - 1] = 0;
        strcat(url, "///");
        snprintf(want, sizeof(want), "/%.*s", (int)n - 1, url + len);
        if (n <= 255) {
            assert_int_equal(verso__sync_url_parse(&u, url), 0);
            assert_string_equal(u.prefix, want);
        } else {
            assert_int_equal(verso__sync_url_parse(&u, url), VERSO_EINVAL);
        }
    }
}

/* Every single byte in the host and in the path: which ones pass. */
static void test_every_byte(void **state)
{
    (void)state;
    for (int b = 1; b < 256; b++) {
        char url[64];
        verso__sync_url u;
        bool blank_or_ctl = b <= 0x20 || b == 0x7f;
        bool host_ok = !blank_or_ctl && !strchr("?#@[]/\\:", b);
        bool path_ok = !blank_or_ctl && !strchr("?#\\", b);

        snprintf(url, sizeof(url), "http://a%cb:1/x", b);
        if (b == '/') /* ends the host: "a", then the path "/b:1/x" */
            host_ok = verso__sync_url_parse(&u, url) == 0 && !strcmp(u.host, "a") &&
                      !strcmp(u.prefix, "/b:1/x");
        else if ((verso__sync_url_parse(&u, url) == 0) != host_ok)
            fail_msg("host byte 0x%02x: %s", b, host_ok ? "refused" : "accepted");
        if (b == '/')
            assert_true(host_ok);
        else if (host_ok) {
            assert_int_equal(u.host[1], (char)b);
            assert_int_equal(u.port, 1);
        }
        snprintf(url, sizeof(url), "http://h/a%cb", b);
        if ((verso__sync_url_parse(&u, url) == 0) != path_ok)
            fail_msg("path byte 0x%02x: %s", b, path_ok ? "refused" : "accepted");
        if (path_ok)
            assert_int_equal(u.prefix[2], (char)b);
    }
}

static void test_query_append(void **state)
{
    static const struct {
        const char *name, *value, *want;
    } cases[] = {
        {"since", "0", "since=0"},
        {"tables", "items,orders", "tables=items%2Corders"},
        {"t", "a b&c=d", "t=a%20b%26c%3Dd"},
        {"t", "-_.~", "t=-_.~"},
        {"t", "", "t="},
        {"t", "\xc3\xa9/\x01\x7f\xff", "t=%C3%A9%2F%01%7F%FF"},
        {"t", "%2F+?#", "t=%252F%2B%3F%23"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso_buf b = VERSO_BUF_INIT;

        assert_int_equal(verso_buf_puts(&b, "x"), 0);
        assert_int_equal(verso__sync_query_append(&b, cases[i].name, cases[i].value), 0);
        assert_string_equal(b.data + 1, cases[i].want);
        verso_buf_free(&b);
    }
}

/* The prefix reaches every request: what the clients put on the request line is prefix + path. */
static void test_prefix_requests(void **state)
{
    static const struct {
        const char *url, *path, *want;
    } cases[] = {
        {"http://h:1/db/t1", "/_info", "/db/t1/_info"},
        {"http://h:1/db/t1/", "/_changes?since=0&limit=10", "/db/t1/_changes?since=0&limit=10"},
        {"http://h:1/proxy/db/t1", VERSO_SYNC_PATH, "/proxy/db/t1/_sync"},
        {"http://h:1", VERSO_DATABASES_PATH, "/_databases"},
        {"http://h:1/edge/", VERSO_DATABASES_PATH, "/edge/_databases"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        verso__sync_url u;
        char line[600];
        assert_int_equal(verso__sync_url_parse(&u, cases[i].url), 0);
        snprintf(line, sizeof(line), "%s%s", u.prefix, cases[i].path);
        assert_string_equal(line, cases[i].want);
    }
}

/* Names a server of databases may list: only these become DIR/<name>.db. */
static void test_database_names(void **state)
{
    static const char *const good[] = {
        "a",      "Z",
        "0",      "tenant-1",
        "a_b",    "A-_9",
        "9lives", "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ012345678901"};
    static const char *const bad[] = {
        "",
        ".",
        "..",
        "../x",
        "a/b",
        "%2e%2e",
        "a%2fb",
        "-a",
        "_a",
        "a.db",
        "a.",
        "a ",
        " a",
        "a\\b",
        "\xef\xbd\x81",
        "\xd0\xb0",
        "a\tb",
        "/etc/passwd",
        ".hidden",
        "a:b",
        "a*",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789012"};
    char out[32];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!verso__all_name_ok(good[i], strlen(good[i])))
            fail_msg("\"%s\" refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (verso__all_name_ok(bad[i], strlen(bad[i])))
            fail_msg("\"%s\" accepted", bad[i]);
    assert_false(verso__all_name_ok("a\0b", 3)); /* a NUL inside */
    assert_false(verso__all_name_ok(NULL, 0));
    verso__all_printable(out, sizeof(out), "../x", 4);
    assert_string_equal(out, "../x");
    verso__all_printable(out, sizeof(out), "a\0\"\n", 4);
    assert_string_equal(out, "a\\x00\\x22\\x0a");
    verso__all_printable(out, 12, "aaaaaaaaaaaaaaaaaaaaaaaaa", 25);
    assert_string_equal(out, "aaaaaaa..."); /* cut to fit 12 bytes */
    verso__all_printable(out, sizeof(out), "", 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_urls),      cmocka_unit_test(test_bad_urls),
        cmocka_unit_test(test_prefix_bound),   cmocka_unit_test(test_every_byte),
        cmocka_unit_test(test_query_append),   cmocka_unit_test(test_prefix_requests),
        cmocka_unit_test(test_database_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
