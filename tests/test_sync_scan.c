/*
 * The fast path of the live slave (sync/scan.c and the applier's use of
 * it): what the scanner reads, what it leaves to the general parser, and a
 * differential check that a detached slave applying through the fast path
 * and its twin through the general path only agree on every message's
 * result and on the rows written.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support/orm_support.h"
#include "sync/internal.h"
#include "sync/scan.h"

#define HEAD        "{\"type\":\"changes\",\"entries\":["
#define TAIL        "],\"from\":0,\"to\":9,\"more\":false,\"head\":9,\"time\":1}"
#define ROW(values) HEAD "{\"table\":\"t\",\"id\":1,\"version\":1,\"row\":{" values "}}" TAIL

/* Scans text from an allocation of exactly its length (ASan sees any read past it). */
static int scan(verso__sync_scan *s, const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, text, len);
    rc = verso__sync_scan_changes(s, copy, len);
    if (rc == 1) /* the values may point into the text: keep reading them from the original */
        for (size_t i = 0; i < s->nv; i++)
            if (s->v[i].p >= copy && s->v[i].p < copy + len)
                s->v[i].p = text + (s->v[i].p - copy);
    free(copy);
    return rc;
}

static int scan_str(verso__sync_scan *s, const char *text)
{
    return scan(s, text, strlen(text));
}

static void test_master_form(void **state)
{
    static const char msg[] =
        "{\"type\":\"changes\",\"entries\":[{\"table\":\"items\",\"id\":1,\"version\":7,\"row\":"
        "{\"id\":1,\"name\":\"pear\",\"price\":2.5,\"qty\":3,\"version\":7}},{\"table\":\"items\","
        "\"id\":2,\"version\":8,\"deleted\":true}],\"from\":6,\"to\":8,\"more\":true,\"head\":"
        "11,\"time\":1796531500929,\"reset\":true}";
    verso__sync_scan s = {0};

    (void)state;
    assert_int_equal(scan_str(&s, msg), 1);
    assert_int_equal(s.from, 6);
    assert_int_equal(s.to, 8);
    assert_int_equal(s.head, 11);
    assert_true(s.more);
    assert_int_equal(s.ne, 2);
    assert_string_equal(s.e[0].table, "items");
    assert_int_equal(s.e[0].id, 1);
    assert_int_equal(s.e[0].version, 7);
    assert_false(s.e[0].deleted);
    assert_int_equal(s.e[0].n, 5);
    assert_string_equal(s.keys[1], "name");
    assert_int_equal(s.v[1].kind, VERSO__SCAN_STR);
    assert_int_equal(s.v[1].n, 4);
    assert_memory_equal(s.v[1].p, "pear", 4);
    assert_int_equal(s.v[2].kind, VERSO__SCAN_NUM);
    assert_int_equal(s.v[2].n, 3);
    assert_int_equal(s.v[3].kind, VERSO__SCAN_INT);
    assert_int_equal(s.v[3].i, 3);
    assert_true(s.e[1].deleted);
    assert_int_equal(s.e[1].n, 0);
    /* the same struct again: an empty batch */
    assert_int_equal(scan_str(&s, HEAD TAIL), 1);
    assert_int_equal(s.ne, 0);
    assert_int_equal(s.nv, 0);
    assert_false(s.more);
    verso__sync_scan_free(&s);
}

/* The one value of a ROW() message. */
static const verso__scan_val *one(verso__sync_scan *s, const char *msg)
{
    assert_int_equal(scan_str(s, msg), 1);
    assert_int_equal(s->nv, 1);
    return &s->v[0];
}

static void test_values(void **state)
{
    verso__sync_scan s = {0};

    (void)state;
    assert_int_equal(one(&s, ROW("\"a\":null"))->kind, VERSO__SCAN_NULL);
    assert_int_equal(one(&s, ROW("\"a\":true"))->kind, VERSO__SCAN_TRUE);
    assert_int_equal(one(&s, ROW("\"a\":false"))->kind, VERSO__SCAN_FALSE);
    assert_int_equal(one(&s, ROW("\"a\":\"\""))->n, 0);
    assert_true(one(&s, ROW("\"a\":9223372036854775807"))->i == INT64_MAX);
    assert_true(one(&s, ROW("\"a\":-9223372036854775808"))->i == INT64_MIN);
    assert_int_equal(one(&s, ROW("\"a\":9223372036854775807"))->kind, VERSO__SCAN_INT);
    assert_int_equal(one(&s, ROW("\"a\":9223372036854775808"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":-9223372036854775809"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":99999999999999999999"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":18446744073709551616"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":1000000000000000000000000000000000000000000000"))->kind,
                     VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":-0"))->kind, VERSO__SCAN_INT);
    assert_int_equal(one(&s, ROW("\"a\":-0"))->i, 0);
    assert_int_equal(one(&s, ROW("\"a\":-0.0"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":1e400"))->kind, VERSO__SCAN_NUM);
    assert_int_equal(one(&s, ROW("\"a\":1E+2"))->n, 4);
    assert_int_equal(one(&s, ROW("\"a\":2.5e-3"))->n, 6);
    verso__sync_scan_free(&s);
}

static void test_escapes(void **state)
{
    verso__sync_scan s = {0};
    const verso__scan_val *v;

    (void)state;
    v = one(&s, ROW("\"a\":\"q\\\"b\\\\s\\/\\b\\f\\n\\r\\t.\""));
    assert_int_equal(v->n, 12);
    assert_memory_equal(v->p, "q\"b\\s/\b\f\n\r\t.", 12);
    v = one(&s, ROW("\"a\":\"x\\u0000y\""));
    assert_int_equal(v->n, 3);
    assert_memory_equal(v->p, "x\0y", 3);
    v = one(&s, ROW("\"a\":\"\\u00e9\\u20AC\\ud83d\\ude00\""));
    assert_int_equal(v->n, 9);
    assert_memory_equal(v->p, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    v = one(&s, ROW("\"a\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""));
    assert_int_equal(v->n, 9);
    assert_memory_equal(v->p, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    verso__sync_scan_free(&s);
}

/* Forms left to the general parser, valid JSON or not. */
static void test_not_ours(void **state)
{
    static const char *const msgs[] = {
        ROW("\"a\":{\"integer\":1}"),
        ROW("\"a\":{\"real\":\"Infinity\"}"),
        ROW("\"a\":{\"text\":\"x\"}"),
        ROW("\"a\":{\"text_base64\":\"AA==\"}"),
        ROW("\"a\":{\"blob\":\"AA==\"}"),
        ROW("\"a\":{\"blob_fetch\":300000}"),
        ROW("\"a\":[1]"),
        ROW("\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]"
            "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"),
        ROW("\"a\":\"\\ud800\""),
        ROW("\"a\":\"\\udc00\""),
        ROW("\"a\":\"\\ud800\\u0041\""),
        ROW("\"a\":\"\\u00g0\""),
        ROW("\"a\":\"\\x\""),
        ROW("\"a\":\"\xff\""),
        ROW("\"a\":\"\xc0\x80\""),
        ROW("\"a\":\"\xed\xa0\x80\""),
        ROW("\"a\":\"\xf4\x90\x80\x80\""),
        ROW("\"a\":\"\xe2\x82\""),
        ROW("\"a\":\"tab\there\""),
        ROW("\"a\\u0041\":1"),
        ROW("\"\xc3\xa9\":1"),
        ROW("\"a\": 1"),
        ROW("\"a\":01"),
        ROW("\"a\":1."),
        ROW("\"a\":.5"),
        ROW("\"a\":+1"),
        ROW("\"a\":1e"),
        ROW("\"a\":-"),
        ROW("\"a\":nul"),
        ROW("\"a\":NaN"),
        ROW("\"a\":Infinity"),
        ROW("\"a\":1,"),
        HEAD "{\"table\":\"t\",\"version\":1,\"id\":1,\"deleted\":true}" TAIL,
        HEAD "{\"table\":\"t\",\"id\":1,\"version\":1,\"deleted\":false}" TAIL,
        HEAD "{\"table\":\"t\",\"id\":1.0,\"version\":1,\"deleted\":true}" TAIL,
        HEAD "{\"table\":\"t\",\"id\":1,\"version\":1,\"row\":null}" TAIL,
        HEAD "{\"table\":\"t\",\"id\":1,\"version\":1,\"row\":{},\"x\":1}" TAIL,
        HEAD TAIL " ",
        HEAD TAIL "x",
        HEAD "]," TAIL,
        HEAD "],\"from\":0,\"to\":9,\"more\":false,\"head\":9}",
        HEAD "],\"to\":9,\"from\":0,\"more\":false,\"head\":9,\"time\":1}",
        HEAD "],\"from\":0,\"to\":9,\"more\":0,\"head\":9,\"time\":1}",
        HEAD "],\"from\":0,\"to\":9.5,\"more\":false,\"head\":9,\"time\":1}",
        HEAD "],\"from\":0,\"to\":99999999999999999999,\"more\":false,\"head\":9,\"time\":1}",
        HEAD "],\"from\":0,\"to\":9,\"more\":false,\"head\":9,\"time\":1,\"x\":1}",
        "{\"type\":\"changes\", \"entries\":[" TAIL,
        "{\"entries\":[" TAIL,
        "",
    };
    verso__sync_scan s = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        int rc = scan_str(&s, msgs[i]);
        if (rc != 0)
            fail_msg("read as the master's form: %s", msgs[i]);
    }
    /* U+0000 in the text itself, not escaped */
    assert_int_equal(scan(&s, ROW("\"a\":\"x\0y\""), sizeof(ROW("\"a\":\"x\0y\"")) - 1), 0);
    verso__sync_scan_free(&s);
}

/* Duplicated keys are the applier's to refuse: the scanner lists both. */
static void test_duplicates_listed(void **state)
{
    verso__sync_scan s = {0};

    (void)state;
    assert_int_equal(scan_str(&s, ROW("\"a\":1,\"a\":2")), 1);
    assert_int_equal(s.nv, 2);
    assert_string_equal(s.keys[0], "a");
    assert_string_equal(s.keys[1], "a");
    verso__sync_scan_free(&s);
}

/* Every proper prefix of a message in the master's form is left to the parser. */
static void test_truncated(void **state)
{
    static const char msg[] = HEAD
        "{\"table\":\"items\",\"id\":1,\"version\":7,\"row\":{\"id\":1,\"name\":\"p\\u00e9\\\"r\","
        "\"price\":-2.5e-3,\"qty\":-9223372036854775808,\"ok\":true,\"no\":false,\"x\":null,"
        "\"version\":7}},{\"table\":\"items\",\"id\":2,\"version\":8,\"deleted\":true}" TAIL;
    verso__sync_scan s = {0};

    (void)state;
    assert_int_equal(scan(&s, msg, sizeof(msg) - 1), 1);
    for (size_t n = 0; n < sizeof(msg) - 1; n++)
        if (scan(&s, msg, n) != 0)
            fail_msg("a prefix of %zu bytes was read", n);
    verso__sync_scan_free(&s);
}

/* ---- the differential check on detached slaves ---- */

#define ID "5f427d2b-5b19-4126-adc4-a4e8e617b923"
#define CH(entries, from, to, more)                                                                \
    "{\"type\":\"changes\",\"entries\":[" entries "],\"from\":" #from ",\"to\":" #to               \
    ",\"more\":" #more ",\"head\":99,\"time\":1}"
#define ITEM(id, v, name, price, qty)                                                              \
    "{\"table\":\"items\",\"id\":" #id ",\"version\":" #v ",\"row\":{\"id\":" #id                  \
    ",\"name\":" name ",\"price\":" price ",\"qty\":" qty ",\"version\":" #v "}}"
#define DBL(id, v, x) ITEM(id, v, "\"d\"", x, "1") ","
#define NOTE(id, v, extra, flag)                                                                   \
    "{\"table\":\"notes\",\"id\":" #id ",\"version\":" #v ",\"row\":{\"id\":" #id                  \
    ",\"body\":null,\"extra\":" extra ",\"flag\":" flag ",\"version\":" #v "}}"

static const char hello[] = "{\"type\":\"hello\",\"protocol\":1,\"identity\":\"" ID
                            "\",\"head\":99,\"horizon\":0,\"heartbeat_ms\":600000,\"time\":1}";
static const char schema[] =
    "{\"type\":\"schema\",\"tables\":[{\"name\":\"items\",\"columns\":[{\"name\":\"id\",\"type\":"
    "\"int64\",\"id\":true},{\"name\":\"name\",\"type\":\"text\",\"notnull\":true},{\"name\":"
    "\"price\",\"type\":\"double\"},{\"name\":\"qty\",\"type\":\"int64\"},{\"name\":\"version\","
    "\"type\":\"int64\",\"version\":true}]},{\"name\":\"notes\",\"columns\":[{\"name\":\"id\","
    "\"type\":\"int64\",\"id\":true},{\"name\":\"body\",\"type\":\"blob\"},{\"name\":\"extra\","
    "\"type\":\"any\"},{\"name\":\"flag\",\"type\":\"bool\"},{\"name\":\"version\",\"type\":"
    "\"int64\",\"version\":true}]}]}";

/* Each link: hello, schema, an empty batch that opens the transaction, then the test's one. */
static const char *const batches[] = {
    CH(ITEM(1, 1, "\"pear\"", "2.5", "3"), 0, 1, false),
    CH(ITEM(2, 2, "\"q\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0000\\ud83d\\ude00\\u00e9 \xc3\xa9\"", "-0", "-9223372036854775808") "," ITEM(
           3, 3, "\"\"", "1e300",
           "9223372036854775807") "," NOTE(1, 4, "\"n/a\"",
                                           "true") "," NOTE(2, 5, "-0",
                                                            "false") "," NOTE(3, 6, "true", "null"),
       1, 6, false),
    CH(ITEM(4, 7, "\"x\"", "2.5e-3", "-0") "," NOTE(4, 8, "12345678901234567890",
                                                    "true") ",{\"table\":\"items\",\"id\":3,"
                                                            "\"version\":9,\"deleted\":true}",
       6, 9, false),
    CH(ITEM(5, 10, "\"y\"", "1.7976931348623157e308",
            "0") "," NOTE(5, 11, "1.5", "false") "," ITEM(5, 12, "\"z\"", "1E2", "-1"),
       9, 12, false),
    /* doubles: with strtod() and without, every one exact */
    /* clang-format off */
    CH(DBL(6, 13, "0.1") DBL(7, 14, "123456789012345") DBL(8, 15, "1234567890123456.7")
       DBL(9, 16, "1e22") DBL(10, 17, "1e23") DBL(11, 18, "-1.5e-22") DBL(12, 19, "4.9e-324")
       DBL(13, 20, "2.2250738585072014e-308") DBL(14, 21, "0.30000000000000004")
       DBL(15, 22, "-0.0") ITEM(16, 23, "\"d\"", "7e-3", "1"),
       12, 23, false),
    /* clang-format on */
    /* refused: a column twice (any case), a version beyond to, a real as an integer, invalid
     * UTF-8, a row with another id, an unknown table, NULL in a NOT NULL column, infinity */
    CH("{\"table\":\"items\",\"id\":6,\"version\":24,\"row\":{\"id\":6,\"name\":\"a\",\"NAME\":"
       "\"b\",\"version\":24}}",
       23, 24, false),
    CH(ITEM(6, 25, "\"a\"", "1", "1"), 23, 24, false),
    CH(ITEM(6, 24, "\"a\"", "1", "1.5"), 23, 24, false),
    CH(ITEM(6, 24, "\"\xff\"", "1", "1"), 23, 24, false),
    CH("{\"table\":\"items\",\"id\":6,\"version\":24,\"row\":{\"id\":7,\"name\":\"a\","
       "\"price\":1,\"qty\":1,\"version\":24}}",
       23, 24, false),
    CH("{\"table\":\"nope\",\"id\":6,\"version\":24,\"row\":{\"id\":6,\"version\":24}}", 23, 24,
       false),
    CH(ITEM(6, 24, "null", "1", "1"), 23, 24, false),
    CH(ITEM(6, 24, "\"a\"", "1e999", "1"), 23, 24, false),
    CH(NOTE(6, 24, "1e999", "true"), 23, 24, false),
    CH(NOTE(6, 24, "1", "1"), 23, 24, false),
    CH(ITEM(6, 24, "\"a\"", "\"1\"", "1"), 23, 24, false),
    /* accepted after all that */
    CH(ITEM(6, 24, "\"last\"", "0.1", "42") "," NOTE(6, 25, "\"\\u0000\"", "true"), 23, 25, false),
};

/* Exact and printable: text as hex (it may hold U+0000), reals to 17 digits with their sign. */
static const char *rows_sql =
    "SELECT 'i', id, hex(name), typeof(price), printf('%!.17g', price), qty, version FROM items "
    "UNION ALL SELECT 'n', id, quote(body), typeof(extra), CASE typeof(extra) WHEN 'text' THEN "
    "hex(extra) WHEN 'real' THEN printf('%!.17g', extra) ELSE quote(extra) END, flag, version "
    "FROM notes UNION ALL SELECT 'm', key, value, 0, 0, 0, 0 FROM _verso_meta WHERE key <> "
    "'identity' ORDER BY 1, 2";

/* Every row of items and notes and the cursor, as text. */
static void rows_of(char *out, size_t cap, const char *path)
{
    sqlite3 *q;
    sqlite3_stmt *st;
    size_t len = 0;

    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(path, &q, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(q, rows_sql, -1, &st, NULL) == SQLITE_OK) {
        while (sqlite3_step(st) == SQLITE_ROW)
            for (int i = 0; i < 7; i++) {
                int n = sqlite3_column_bytes(st, i);
                const unsigned char *t = sqlite3_column_text(st, i);
                assert_true(len + (size_t)n + 2 < cap);
                if (n)
                    memcpy(out + len, t, (size_t)n);
                len += (size_t)n;
                out[len++] = i == 6 ? '\n' : '|';
                out[len] = '\0';
            }
        sqlite3_finalize(st);
    }
    sqlite3_close(q);
}

typedef struct side {
    verso_slave *s;
    char path[512];
    bool general;
} side;

static int receive(side *d, const char *text)
{
    verso_buf out = VERSO_BUF_INIT;
    int rc;

    verso__sync_scan_off = d->general;
    rc = verso__slave_receive(d->s, text, strlen(text), &out);
    verso__sync_scan_off = false;
    verso_buf_free(&out);
    return rc;
}

static void link_to(side *d, const char *batch, int *rc)
{
    char opener[160];
    int64_t from = 0;
    const char *f = strstr(batch, "\"from\":");

    if (f)
        from = strtoll(f + 7, NULL, 10);
    snprintf(opener, sizeof(opener),
             "{\"type\":\"changes\",\"entries\":[],\"from\":%lld,\"to\":%lld,\"more\":true,"
             "\"head\":99,\"time\":1}",
             (long long)from, (long long)from);
    assert_int_equal(receive(d, hello), 0);
    assert_int_equal(receive(d, schema), 0);
    if (from > 0)
        if (receive(d, opener) != 0) /* the batch below is in an open transaction */
            fail_msg("refused: %s before %.80s", opener, batch);
    *rc = receive(d, batch);
    if (*rc == 0) /* the next link starts afresh: end this one as a refused message would */
        receive(d, "x");
}

static void test_differential(void **state)
{
    side fast = {.general = false}, general = {.general = true};
    char why[256], a[16384], b[16384];
    long long taken;

    (void)state;
    snprintf(fast.path, sizeof(fast.path), "%s", orm_tmp_path("scan_fast"));
    snprintf(general.path, sizeof(general.path), "%s", orm_tmp_path("scan_general"));
    assert_int_equal(verso__slave_detached(&fast.s, fast.path, NULL, why, sizeof(why)), 0);
    assert_int_equal(verso__slave_detached(&general.s, general.path, NULL, why, sizeof(why)), 0);
    taken = atomic_load(&verso__sync_scan_taken);
    for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
        int rf, rg;
        link_to(&fast, batches[i], &rf);
        link_to(&general, batches[i], &rg);
        if (rf != rg)
            fail_msg("batch %zu: fast path %d, general path %d", i, rf, rg);
        rows_of(a, sizeof(a), fast.path);
        rows_of(b, sizeof(b), general.path);
        if (strcmp(a, b) != 0)
            fail_msg("batch %zu: the rows differ:\n%s---\n%s", i, a, b);
        assert_true((rf == 0) == (i < 5 || i == sizeof(batches) / sizeof(batches[0]) - 1));
    }
    /* the fast path took batches 1 and 4, the NOT NULL refusal (SQLite's) and the last one;
     * batches 2 and 3 hold a real in an "any" column, the rest an entry the general path
     * refuses */
    assert_int_equal(atomic_load(&verso__sync_scan_taken) - taken, 4);
    if (!strstr(a, "6C617374")) /* "last" */
        fail_msg("the last batch is missing:\n%s", a);
    if (!strstr(a, "i|2|71225C2F080C0A0D0900F09F9880C3A920C3A9|real|0.0|-9223372036854775808|") ||
        !strstr(a, "|real|0.0025000000000000001|") || !strstr(a, "n|6|NULL|text|00|1|25"))
        fail_msg("not the values sent:\n%s", a);
    verso__slave_detached_free(fast.s);
    verso__slave_detached_free(general.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_form),       cmocka_unit_test(test_values),
        cmocka_unit_test(test_escapes),           cmocka_unit_test(test_not_ours),
        cmocka_unit_test(test_duplicates_listed), cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_differential),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
