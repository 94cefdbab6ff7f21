/* JSON writer, parser and object -> values conversion (orm/json.c). */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "verso/orm.h"
#include "verso/advanced.h"

/* ---------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------ */

/* Writes v (for a column of type ct) and compares with expect. */
static void check_value(const verso_value *v, verso_type ct, const char *expect)
{
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_json_value(&b, v, ct), 0);
    assert_string_equal(b.data, expect);
    verso_buf_free(&b);
}

static void check_string(const char *s, size_t n, const char *expect)
{
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_json_string(&b, s, n), 0);
    assert_int_equal(b.len, strlen(expect));
    assert_memory_equal(b.data, expect, b.len);
    verso_buf_free(&b);
}

static int parse_code(const char *text, int depth)
{
    verso_json *doc = NULL;
    char why[160] = "unset";
    int rc = verso_json_parse(&doc, text, strlen(text), depth, why, sizeof(why));
    if (rc < 0) {
        assert_null(doc);
        assert_non_null(strstr(why, "byte"));
    } else {
        assert_string_equal(why, "");
    }
    verso_json_free(doc);
    return rc;
}

/* Parses text, whose root must be a number, and returns its int64 code. */
static int parse_int(int64_t *out, const char *text)
{
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
    cJSON *root = verso_json_root(doc);
    assert_true(cJSON_IsNumber(root));
    int rc = verso_json_int64(out, root);
    verso_json_free(doc);
    return rc;
}

/* Parses a JSON string literal and returns its decoded bytes (malloc'd). */
static char *parse_str(const char *text)
{
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
    cJSON *root = verso_json_root(doc);
    assert_true(cJSON_IsString(root));
    char *s = strdup(root->valuestring);
    verso_json_free(doc);
    return s;
}

/* Every number node carries its own literal (the document-order mapping). */
static void check_literals(const cJSON *node)
{
    for (; node; node = node->next) {
        if (cJSON_IsNumber(node)) {
            assert_non_null(node->valuestring);
            double d = strtod(node->valuestring, NULL);
            assert_true(d == node->valuedouble || (isnan(d) && isnan(node->valuedouble)));
        }
        check_literals(node->child);
    }
}

/* ---------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------ */

static void test_write_int64(void **state)
{
    (void)state;
    verso_value v = VERSO_VALUE_INT(INT64_MAX);
    check_value(&v, VERSO_INT64, "9223372036854775807");
    v.u.i = INT64_MIN;
    check_value(&v, VERSO_INT64, "-9223372036854775808");
    v.u.i = 0;
    check_value(&v, VERSO_INT64, "0");
    v.u.i = -1;
    check_value(&v, VERSO_INT64, "-1");
    v.u.i = 9007199254740993LL; /* 2^53 + 1 */
    check_value(&v, VERSO_INT64, "9007199254740993");
    v.u.i = 10;
    check_value(&v, VERSO_INT64, "10");
    v.u.i = 1;
    check_value(&v, VERSO_BOOL, "true");
    v.u.i = 0;
    check_value(&v, VERSO_BOOL, "false");
    char want[32];
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 2000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.u.i = (int64_t)x >> (i % 63);
        snprintf(want, sizeof want, "%lld", (long long)v.u.i);
        check_value(&v, VERSO_INT64, want);
    }
}

static void test_write_double(void **state)
{
    (void)state;
    verso_value v = VERSO_VALUE_DOUBLE(0.1);
    check_value(&v, VERSO_DOUBLE, "0.1");
    v.u.d = 1.5;
    check_value(&v, VERSO_DOUBLE, "1.5");
    v.u.d = 3.0;
    check_value(&v, VERSO_DOUBLE, "3.0");
    v.u.d = -0.0;
    check_value(&v, VERSO_DOUBLE, "-0.0");
    v.u.d = 1e300;
    check_value(&v, VERSO_DOUBLE, "1e+300");
    v.u.d = NAN;
    check_value(&v, VERSO_DOUBLE, "null");
    v.u.d = INFINITY; /* no JSON number: tagged */
    check_value(&v, VERSO_DOUBLE, "{\"real\":\"Infinity\"}");
    v.u.d = -INFINITY;
    check_value(&v, VERSO_ANY, "{\"real\":\"-Infinity\"}");
    /* a real in a column whose type does not imply one: tagged */
    v.u.d = 1.5;
    check_value(&v, VERSO_INT64, "{\"real\":1.5}");
    check_value(&v, VERSO_TEXT, "{\"real\":1.5}");
    check_value(&v, VERSO_BOOL, "{\"real\":1.5}");
    v.u.d = -0.0;
    check_value(&v, VERSO_BLOB, "{\"real\":-0.0}");
    check_value(&v, VERSO_ANY, "-0.0");

    v.u.d = 24.5;
    check_value(&v, VERSO_DOUBLE, "24.5");
    v.u.d = 0.01;
    check_value(&v, VERSO_DOUBLE, "0.01");
    v.u.d = 1e-7;
    check_value(&v, VERSO_DOUBLE, "0.0000001");
    v.u.d = -3.25;
    check_value(&v, VERSO_DOUBLE, "-3.25");
    v.u.d = 123456.789;
    check_value(&v, VERSO_DOUBLE, "123456.789");
    v.u.d = 0.1 + 0.2;
    check_value(&v, VERSO_DOUBLE, "0.30000000000000004");

    const double samples[] = {DBL_MIN,
                              DBL_MAX,
                              -DBL_MAX,
                              DBL_EPSILON,
                              1.0 / 3,
                              2.0 / 3,
                              9007199254740993.0,
                              1e15,
                              123456789012345678.0,
                              5e-324};
    verso_buf b = VERSO_BUF_INIT;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        verso_buf_clear(&b);
        v.u.d = samples[i];
        assert_int_equal(verso_json_value(&b, &v, VERSO_DOUBLE), 0);
        assert_true(strtod(b.data, NULL) == samples[i]);
        assert_non_null(strpbrk(b.data, ".e")); /* never reads back as an integer */
    }
    /* Decimal data of every scale, and its floating-point noise. */
    for (int i = -200000; i < 200000; i += 7) {
        const double ds[] = {i / 100.0, i * 0.37 + 0.01, i / 1e9, i * 1e-3 * 3, i * 12345.678};
        for (size_t k = 0; k < sizeof ds / sizeof ds[0]; k++) {
            verso_buf_clear(&b);
            v.u.d = ds[k];
            assert_int_equal(verso_json_value(&b, &v, VERSO_DOUBLE), 0);
            if (strtod(b.data, NULL) != ds[k])
                fail_msg("%.17g written as %s", ds[k], b.data);
        }
    }
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < 5000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (!isfinite(d))
            continue;
        verso_buf_clear(&b);
        v.u.d = d;
        assert_int_equal(verso_json_value(&b, &v, VERSO_DOUBLE), 0);
        assert_true(strtod(b.data, NULL) == d);
    }
    verso_buf_free(&b);
}

static void test_write_string_escapes(void **state)
{
    (void)state;
    check_string("", 0, "\"\"");
    check_string(NULL, 0, "\"\"");
    check_string("plain", 5, "\"plain\"");
    check_string("a\"b\\c/", 6, "\"a\\\"b\\\\c/\"");
    check_string("\n\r\t\b\f", 5, "\"\\n\\r\\t\\b\\f\"");
    check_string("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\"");
    check_string("a\0b", 3, "\"a\\u0000b\"");
    /* 2-, 3- and 4-byte sequences pass through unchanged. */
    check_string("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9,
                 "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"");
    check_string("\xef\xbf\xbf\xf4\x8f\xbf\xbf", 7, "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
    /* Long strings with escapes spread out (buffer growth while escaping). */
    char big[5000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = i % 3 ? 'x' : '\x02';
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_json_string(&b, big, sizeof big), 0);
    size_t escaped = (sizeof big + 2) / 3;
    assert_int_equal(b.len, 2 + (sizeof big - escaped) + escaped * 6);
    verso_buf_free(&b);
}

static void test_write_invalid_utf8(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "\x80",             /* lone continuation */
        "\xc0\x80",         /* overlong NUL */
        "\xc1\xbf",         /* overlong 2-byte */
        "\xe0\x80\x80",     /* overlong 3-byte */
        "\xe0\x9f\xbf",     /* overlong 3-byte */
        "\xf0\x80\x80\x80", /* overlong 4-byte */
        "\xf0\x8f\xbf\xbf", /* overlong 4-byte */
        "\xed\xa0\x80",     /* U+D800 */
        "\xed\xbf\xbf",     /* U+DFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\xf5\x80\x80\x80",
        "\xff",
        "\xe2\x82",     /* truncated */
        "\xf0\x9f\x98", /* truncated */
        "\xc3",         /* truncated */
        "\xc3\x28",     /* bad continuation */
    };
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_buf_puts(&b, "keep"), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char s[16];
        size_t n = strlen(bad[i]);
        memcpy(s, "ok", 2);
        memcpy(s + 2, bad[i], n);
        assert_int_equal(verso_json_string(&b, s, n + 2), VERSO_EUTF8);
        assert_string_equal(b.data, "keep"); /* nothing appended */
        /* as a value, such text is tagged with the base64 of its bytes */
        verso_value v = {.type = VERSO_TEXT, .u.b = {s, n + 2}};
        verso_buf expect = VERSO_BUF_INIT;
        assert_int_equal(verso_buf_puts(&expect, "keep{\"text_base64\":\""), 0);
        assert_int_equal(verso_base64_encode(&expect, s, n + 2), 0);
        assert_int_equal(verso_buf_puts(&expect, "\"}"), 0);
        assert_int_equal(verso_json_value(&b, &v, VERSO_TEXT), 0);
        assert_string_equal(b.data, expect.data);
        verso_buf_free(&expect);
        b.len = 4;
        b.data[4] = '\0';
    }
    verso_buf_free(&b);
}

static void test_write_blob(void **state)
{
    (void)state;
    verso_value v = {.type = VERSO_BLOB, .u.b = {NULL, 0}};
    check_value(&v, VERSO_BLOB, "\"\"");
    v.u.b.p = "f";
    v.u.b.n = 1;
    check_value(&v, VERSO_BLOB, "\"Zg==\"");
    v.u.b.n = 2;
    v.u.b.p = "fo";
    check_value(&v, VERSO_BLOB, "\"Zm8=\"");
    v.u.b.n = 3;
    v.u.b.p = "foo";
    check_value(&v, VERSO_BLOB, "\"Zm9v\"");
    v.u.b.p = "foobar";
    v.u.b.n = 6;
    check_value(&v, VERSO_BLOB, "\"Zm9vYmFy\"");
    v.u.b.p = "\0\xff\0";
    v.u.b.n = 3;
    check_value(&v, VERSO_BLOB, "\"AP8A\"");
    /* Text stored in a blob column is tagged (it is not a blob). */
    v = VERSO_VALUE_TEXT("hi");
    check_value(&v, VERSO_BLOB, "{\"text\":\"hi\"}");
    /* A blob anywhere but a blob column is tagged. */
    v = (verso_value){.type = VERSO_BLOB, .u.b = {"\0\xff\0", 3}};
    check_value(&v, VERSO_ANY, "{\"blob\":\"AP8A\"}");
    check_value(&v, VERSO_TEXT, "{\"blob\":\"AP8A\"}");
    check_value(&v, VERSO_INT64, "{\"blob\":\"AP8A\"}");
    /* Integers outside int64/any/bool columns are tagged. */
    v = VERSO_VALUE_INT(5);
    check_value(&v, VERSO_BLOB, "{\"integer\":5}");
    check_value(&v, VERSO_TEXT, "{\"integer\":5}");
    check_value(&v, VERSO_DOUBLE, "{\"integer\":5}");
    check_value(&v, VERSO_UUID, "{\"integer\":5}");
    check_value(&v, VERSO_ANY, "5");
    v = VERSO_VALUE_NULL;
    check_value(&v, VERSO_BLOB, "null");
}

static void test_write_uuid_bool(void **state)
{
    (void)state;
    const char *u = "0f8fad5b-d9cb-469f-a165-70867728950e";
    verso_value v = {.type = VERSO_UUID, .u.b = {u, 36}};
    check_value(&v, VERSO_UUID, "\"0f8fad5b-d9cb-469f-a165-70867728950e\"");
    /* text in a uuid column that is not canonical lower case: tagged */
    v.u.b.p = "0F8FAD5B-D9CB-469F-A165-70867728950E";
    check_value(&v, VERSO_UUID, "{\"text\":\"0F8FAD5B-D9CB-469F-A165-70867728950E\"}");
    v = VERSO_VALUE_TEXT("hello");
    check_value(&v, VERSO_UUID, "{\"text\":\"hello\"}");
    /* a bool column holds 0/1 as false/true, any other integer tagged */
    v = VERSO_VALUE_BOOL(1);
    check_value(&v, VERSO_BOOL, "true");
    v = VERSO_VALUE_INT(0);
    check_value(&v, VERSO_BOOL, "false");
    v = VERSO_VALUE_INT(7);
    check_value(&v, VERSO_BOOL, "{\"integer\":7}");
    v = VERSO_VALUE_INT(-1);
    check_value(&v, VERSO_BOOL, "{\"integer\":-1}");
}

/* ---------------------------------------------------------------------
 * Parser
 * ------------------------------------------------------------------ */

static void test_parse_int64(void **state)
{
    (void)state;
    int64_t i = 42;
    assert_int_equal(parse_int(&i, "9223372036854775807"), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(parse_int(&i, "-9223372036854775808"), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(parse_int(&i, "9007199254740993"), 0);
    assert_true(i == 9007199254740993LL);
    assert_int_equal(parse_int(&i, "-9007199254740993"), 0);
    assert_true(i == -9007199254740993LL);
    assert_int_equal(parse_int(&i, "-0"), 0);
    assert_true(i == 0);
    assert_int_equal(parse_int(&i, " 17 "), 0);
    assert_true(i == 17);
    i = 5;
    assert_int_equal(parse_int(&i, "9223372036854775808"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "-9223372036854775809"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "123456789012345678901234567890"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "1.0"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "1e2"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "1E2"), VERSO_ETYPE);
    assert_int_equal(parse_int(&i, "1e400"), VERSO_ETYPE);
    assert_true(i == 5); /* untouched on error */

    /* Nodes built in C have no literal: exact below 2^53 only. */
    cJSON *n = cJSON_CreateNumber(12345);
    assert_int_equal(verso_json_int64(&i, n), 0);
    assert_true(i == 12345);
    n->valuedouble = 9007199254740992.0;
    assert_int_equal(verso_json_int64(&i, n), VERSO_ETYPE);
    n->valuedouble = 0.5;
    assert_int_equal(verso_json_int64(&i, n), VERSO_ETYPE);
    cJSON_Delete(n);
    cJSON *s = cJSON_CreateString("1");
    assert_int_equal(verso_json_int64(&i, s), VERSO_ETYPE);
    cJSON_Delete(s);
    assert_int_equal(verso_json_int64(&i, NULL), VERSO_ETYPE);
}

static void test_parse_numbers_in_order(void **state)
{
    (void)state;
    const char *text = "{\"a\":[1,-2,{\"b\":9223372036854775807,\"s\":\"3 4 [5]\"}],"
                       "\"c\":-9223372036854775808,\"d\":[[0.5],[]],\"e\":{},\"f\":7}";
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
    cJSON *root = verso_json_root(doc);
    check_literals(root);
    int64_t v;
    cJSON *a = cJSON_GetObjectItem(root, "a");
    assert_int_equal(verso_json_int64(&v, cJSON_GetArrayItem(a, 0)), 0);
    assert_true(v == 1);
    assert_int_equal(verso_json_int64(&v, cJSON_GetArrayItem(a, 1)), 0);
    assert_true(v == -2);
    assert_int_equal(verso_json_int64(&v, cJSON_GetObjectItem(cJSON_GetArrayItem(a, 2), "b")), 0);
    assert_true(v == INT64_MAX);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(a, 2), "s")->valuestring, "3 4 [5]");
    assert_int_equal(verso_json_int64(&v, cJSON_GetObjectItem(root, "c")), 0);
    assert_true(v == INT64_MIN);
    cJSON *half = cJSON_GetArrayItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "d"), 0), 0);
    assert_int_equal(verso_json_int64(&v, half), VERSO_ETYPE);
    assert_true(half->valuedouble == 0.5);
    assert_int_equal(verso_json_int64(&v, cJSON_GetObjectItem(root, "f")), 0);
    assert_true(v == 7);
    verso_json_free(doc);
}

static void test_parse_unicode(void **state)
{
    (void)state;
    char *s = parse_str("\"\\ud83d\\ude00\"");
    assert_string_equal(s, "\xf0\x9f\x98\x80");
    free(s);
    s = parse_str("\"\xf0\x9f\x98\x80 \xc3\xa9 \\u00e9 \\u20ac \\uFFFF\"");
    assert_string_equal(s, "\xf0\x9f\x98\x80 \xc3\xa9 \xc3\xa9 \xe2\x82\xac \xef\xbf\xbf");
    free(s);
    s = parse_str("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"");
    assert_string_equal(s, "\"\\/\b\f\n\r\t");
    free(s);
    s = parse_str("\"\\udbff\\udfff\""); /* U+10FFFF */
    assert_string_equal(s, "\xf4\x8f\xbf\xbf");
    free(s);

    /* Lone or misordered surrogates. */
    assert_int_equal(parse_code("\"\\ud83d\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\\ud83dx\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\\ud83d\\u0041\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\\ude00\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\\ude00\\ud83d\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("[\"ok\",\"\\udc00\"]", 0), VERSO_EUTF8);
    /* Raw invalid UTF-8 in strings, keys and outside strings. */
    assert_int_equal(parse_code("\"\xc0\x80\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\xed\xa0\x80\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\xf4\x90\x80\x80\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("\"\xe2\x82\"", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("{\"\xff\":1}", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("[1,\xfe]", 0), VERSO_EUTF8);
    assert_int_equal(parse_code("[1,\xc3\xa9]", 0), VERSO_EJSON); /* valid UTF-8, not JSON */
    /* U+0000 is a character of a string value (its length says so), never
     * of a member name. */
    assert_int_equal(parse_code("\"a\\u0000b\"", 0), 0);
    assert_int_equal(parse_code("{\"a\\u0000b\":1}", 0), VERSO_EJSON);
    {
        const char *text = "[\"a\\u0000b\",\"\\u0000\",\"\",\"x\\u00e9\\ud83d\\ude00\\u0000\"]";
        verso_json *doc = NULL;
        assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
        const cJSON *r = verso_json_root(doc);
        assert_int_equal(verso_json_strlen(cJSON_GetArrayItem(r, 0)), 3);
        assert_memory_equal(cJSON_GetArrayItem(r, 0)->valuestring, "a\0b", 4);
        assert_null(verso_json_cstr(cJSON_GetArrayItem(r, 0)));
        assert_int_equal(verso_json_strlen(cJSON_GetArrayItem(r, 1)), 1);
        assert_int_equal(verso_json_strlen(cJSON_GetArrayItem(r, 2)), 0);
        assert_string_equal(verso_json_cstr(cJSON_GetArrayItem(r, 2)), "");
        assert_int_equal(verso_json_strlen(cJSON_GetArrayItem(r, 3)), 1 + 2 + 4 + 1);
        assert_memory_equal(cJSON_GetArrayItem(r, 3)->valuestring, "x\xc3\xa9\xf0\x9f\x98\x80\0",
                            9);
        verso_json_free(doc);
    }
}

static void test_parse_null_bool(void **state)
{
    (void)state;
    const char *text = "[null,true,false]";
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, text, strlen(text), 0, NULL, 0), 0);
    cJSON *root = verso_json_root(doc);
    assert_true(cJSON_IsNull(cJSON_GetArrayItem(root, 0)));
    assert_true(cJSON_IsTrue(cJSON_GetArrayItem(root, 1)));
    assert_true(cJSON_IsFalse(cJSON_GetArrayItem(root, 2)));
    verso_json_free(doc);
    verso_json_free(NULL);
    assert_null(verso_json_root(NULL));
}

static void nest(char *out, int depth, const char *open, const char *close)
{
    size_t k = 0;
    for (int i = 0; i < depth; i++)
        out[k++] = open[i % 2];
    for (int i = depth - 1; i >= 0; i--)
        out[k++] = close[i % 2];
    out[k] = '\0';
}

static void test_parse_depth(void **state)
{
    (void)state;
    char text[2100];
    nest(text, 64, "[[", "]]");
    assert_int_equal(parse_code(text, 0), 0);
    nest(text, 65, "[[", "]]");
    assert_int_equal(parse_code(text, 0), VERSO_ETOOBIG);
    strcpy(text, "[{\"a\":[1]}]");
    assert_int_equal(parse_code(text, 3), 0);
    assert_int_equal(parse_code(text, 2), VERSO_ETOOBIG);
    /* Brackets inside strings do not count. */
    assert_int_equal(parse_code("[\"[[[[[[[[[[\"]", 2), 0);
    nest(text, 1000, "[[", "]]");
    assert_int_equal(parse_code(text, 999), VERSO_ETOOBIG);
}

static void test_parse_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",         " ",           "{",           "}",     "[1,]",    "[1 2]",
        "{\"a\"}",  "{\"a\":}",    "{'a':1}",     "{a:1}", "01",      "-01",
        "1.",       ".5",          "-",           "+1",    "1e",      "1e+",
        "0x10",     "[1] x",       "{} {}",       "\"abc", "\"\\x\"", "\"a\nb\"",
        "\"\t\"",   "\"\\u12\"",   "\"\\u12g4\"", "nul",   "tru",     "NaN",
        "Infinity", "[-Infinity]", "1.2.3",       "\"\\",  "[1,2",    "{\"a\":1,}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse_code(bad[i], 0);
        if (rc != VERSO_EJSON)
            fail_msg("input %zu <%s>: %s", i, bad[i], verso_errname(rc));
    }
    verso_json *doc = (verso_json *)&doc;
    char why[160];
    assert_int_equal(verso_json_parse(&doc, NULL, 0, 0, why, sizeof(why)), VERSO_EJSON);
    assert_null(doc);
    assert_int_equal(verso_json_parse(&doc, "[1,?]", 5, 0, why, sizeof(why)), VERSO_EJSON);
    assert_non_null(strstr(why, "at byte 3"));
    /* The length is honoured: the text need not be NUL-terminated. */
    assert_int_equal(verso_json_parse(&doc, "[1,2]xyz", 5, 0, NULL, 0), 0);
    assert_int_equal(cJSON_GetArraySize(verso_json_root(doc)), 2);
    verso_json_free(doc);
    assert_int_equal(verso_json_parse(&doc, "\"a\0b\"", 5, 0, why, sizeof(why)), VERSO_EJSON);
    assert_int_equal(verso_json_parse(&doc, "[1,\0 2]", 6, 0, why, sizeof(why)), VERSO_EJSON);
    assert_int_equal(parse_code("[1,\x01 2]", 0), VERSO_EJSON);
    assert_int_equal(parse_code("\xef\xbb\xbf[1]", 0), VERSO_EJSON); /* no byte order mark */
    assert_int_equal(parse_code(" \t\r\n[1 ,\t2 ]\n", 0), 0);
}

static void test_parse_write_roundtrip(void **state)
{
    (void)state;
    /* Text produced by the writer parses back to the same bytes. */
    char all[0x80 + 16];
    size_t n = 0;
    for (int c = 1; c < 0x80; c++)
        all[n++] = (char)c;
    memcpy(all + n, "\xf0\x9f\x98\x80\xe2\x82\xac\xc3\xa9", 9);
    n += 9;
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_json_string(&b, all, n), 0);
    verso_json *doc = NULL;
    assert_int_equal(verso_json_parse(&doc, b.data, b.len, 0, NULL, 0), 0);
    cJSON *root = verso_json_root(doc);
    assert_int_equal(strlen(root->valuestring), n);
    assert_memory_equal(root->valuestring, all, n);
    verso_json_free(doc);
    verso_buf_free(&b);
}

/* Seeded random byte mutations of a valid document: every result is either a
 * parse or one of the documented errors (and, under ASan, no memory error). */
static void test_parse_mutations(void **state)
{
    (void)state;
    const char *base = "{\"a\":[1,-2.5e3,\"x\\u00e9\\ud83d\\ude00\xc3\xa9\"],\"b\":{\"c\":null,"
                       "\"d\":true,\"e\":9223372036854775807},\"f\":\"\\n\\\"\"}";
    static const char alphabet[] = "{}[]\",:\\u0123456789-+.eEtrufalsn \x80\xc3\xed\xf4\x01";
    size_t n = strlen(base);
    char text[256];
    uint32_t x = 12345;
    int parsed = 0;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(text, base, n);
        for (int k = 0; k < 1 + iter % 3; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            text[x % n] = alphabet[(x >> 8) % (sizeof alphabet - 1)];
        }
        verso_json *doc = NULL;
        int rc = verso_json_parse(&doc, text, n, 0, NULL, 0);
        if (rc == 0) {
            parsed++;
            assert_non_null(verso_json_root(doc));
            check_literals(verso_json_root(doc));
        } else if (rc != VERSO_EJSON && rc != VERSO_EUTF8) {
            fail_msg("unexpected %s", verso_errname(rc));
        }
        verso_json_free(doc);
    }
    assert_true(parsed > 0);
}

/* ---------------------------------------------------------------------
 * Conversion for a table, and the row / feed writers (need a database)
 * ------------------------------------------------------------------ */

typedef struct item {
    int64_t id;
    int64_t version;
    int64_t qty;
    double price;
    char *name;
    verso_blob data;
    bool active;
    verso_uuid ref;
    bool ref_null;
} item;

static const verso_field item_fields[] = {
    VERSO_FIELD_ID_OF(item, id),
    VERSO_FIELD_VERSION_OF(item, version),
    VERSO_FIELD(item, qty, VERSO_INT64, 0),
    VERSO_FIELD(item, price, VERSO_DOUBLE, 0),
    VERSO_FIELD(item, name, VERSO_TEXT, 0),
    VERSO_FIELD(item, data, VERSO_BLOB, 0),
    VERSO_FIELD(item, active, VERSO_BOOL, 0),
    VERSO_FIELD_NULLABLE(item, ref, VERSO_UUID, 0, ref_null),
};
static const verso_table_def item_def = VERSO_TABLE_DEF("item", item, item_fields);

typedef struct fixture {
    verso_db *db;
    const verso_table *item;
    const verso_table *loose; /* a tracked plain table with an untyped column */
    char path[512];
} fixture;

static int setup_db(void **state)
{
    char open_why[256] = "";
    fixture *f = calloc(1, sizeof *f);
    const char *tmp = getenv("VERSO_TEST_TMP");
    snprintf(f->path, sizeof f->path, "%s/test_json_%d.db", tmp ? tmp : "/tmp", (int)getpid());
    unlink(f->path);
    const verso_table_def *defs[] = {&item_def};
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    o.tables = defs;
    o.ntables = 1;
    if (verso_db_open(&f->db, f->path, &o, open_why, sizeof(open_why)) < 0) {
        fprintf(stderr, "open: %s\n", open_why);
        free(f);
        return -1;
    }
    if (verso_db_exec(f->db, "CREATE TABLE loose(id INTEGER PRIMARY KEY, x)") < 0 ||
        verso_db_track(f->db, "loose", NULL) < 0) {
        fprintf(stderr, "track: %s\n", verso_db_errmsg(f->db));
        return -1;
    }
    f->item = verso_db_table(f->db, "item");
    f->loose = verso_db_table(f->db, "loose");
    *state = f;
    return f->item && f->loose ? 0 : -1;
}

static int teardown_db(void **state)
{
    fixture *f = *state;
    char p[600];
    verso_db_close(f->db);
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path);
    unlink(p);
    free(f);
    return 0;
}

typedef struct converted {
    verso_json *doc;
    const char **cols;
    verso_value *vals;
    size_t n;
    char why[200];
} converted;

static int convert(converted *c, const verso_table *t, const char *text)
{
    memset(c, 0, sizeof *c);
    assert_int_equal(verso_json_parse(&c->doc, text, strlen(text), 0, NULL, 0), 0);
    int rc = verso_json_to_values(&c->cols, &c->vals, &c->n, t, verso_json_root(c->doc), c->why,
                                  sizeof c->why);
    if (rc < 0) {
        assert_null(c->cols);
        assert_null(c->vals);
        assert_int_equal(c->n, 0);
    }
    return rc;
}

static void converted_free(converted *c)
{
    verso_free(c->cols);
    verso_free(c->vals);
    verso_json_free(c->doc);
}

static const verso_value *find(const converted *c, const char *col)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->cols[i], col) == 0)
            return &c->vals[i];
    fail_msg("column %s missing", col);
    return NULL;
}

static void test_to_values_types(void **state)
{
    fixture *f = *state;
    converted c;
    assert_int_equal(convert(&c, f->item,
                             "{\"id\":9007199254740993,\"qty\":-9223372036854775808,"
                             "\"price\":2,\"name\":\"caf\\u00e9\",\"data\":\"AP8A\","
                             "\"active\":true,\"ref\":\"0F8FAD5B-D9CB-469F-A165-70867728950E\"}"),
                     0);
    assert_int_equal(c.n, 7);
    assert_string_equal(c.cols[0], "id");
    assert_int_equal(find(&c, "id")->type, VERSO_INT64);
    assert_true(find(&c, "id")->u.i == 9007199254740993LL);
    assert_true(find(&c, "qty")->u.i == INT64_MIN);
    assert_int_equal(find(&c, "price")->type, VERSO_DOUBLE);
    assert_true(find(&c, "price")->u.d == 2.0);
    assert_int_equal(find(&c, "name")->type, VERSO_TEXT);
    assert_int_equal(find(&c, "name")->u.b.n, 5);
    assert_memory_equal(find(&c, "name")->u.b.p, "caf\xc3\xa9", 5);
    const verso_value *d = find(&c, "data");
    assert_int_equal(d->type, VERSO_BLOB);
    assert_int_equal(d->u.b.n, 3);
    assert_memory_equal(d->u.b.p, "\0\xff\0", 3);
    assert_int_equal(find(&c, "active")->type, VERSO_BOOL);
    assert_true(find(&c, "active")->u.i == 1);
    const verso_value *r = find(&c, "ref");
    assert_int_equal(r->type, VERSO_UUID);
    assert_int_equal(r->u.b.n, 36);
    assert_memory_equal(r->u.b.p, "0f8fad5b-d9cb-469f-a165-70867728950e", 36);
    converted_free(&c);

    assert_int_equal(convert(&c, f->item, "{\"name\":null,\"data\":\"\",\"ref\":null}"), 0);
    assert_int_equal(find(&c, "name")->type, VERSO_NULL);
    assert_int_equal(find(&c, "data")->type, VERSO_BLOB);
    assert_int_equal(find(&c, "data")->u.b.n, 0);
    assert_int_equal(find(&c, "ref")->type, VERSO_NULL);
    converted_free(&c);

    assert_int_equal(convert(&c, f->item, "{}"), 0);
    assert_int_equal(c.n, 0);
    converted_free(&c);

    /* Untyped column: whatever scalar comes. */
    assert_int_equal(convert(&c, f->loose, "{\"x\":9223372036854775807}"), 0);
    assert_int_equal(c.vals[0].type, VERSO_INT64);
    assert_true(c.vals[0].u.i == INT64_MAX);
    converted_free(&c);
    assert_int_equal(convert(&c, f->loose, "{\"x\":1e3}"), 0);
    assert_int_equal(c.vals[0].type, VERSO_DOUBLE);
    assert_true(c.vals[0].u.d == 1000.0);
    converted_free(&c);
    assert_int_equal(convert(&c, f->loose, "{\"x\":\"s\"}"), 0);
    assert_int_equal(c.vals[0].type, VERSO_TEXT);
    converted_free(&c);
    assert_int_equal(convert(&c, f->loose, "{\"x\":[1]}"), VERSO_ETYPE);
    converted_free(&c);
}

static void check_reject(fixture *f, const char *text, int code, const char *needle)
{
    converted c;
    int rc = convert(&c, f->item, text);
    if (rc != code)
        fail_msg("%s: got %s, want %s", text, verso_errname(rc), verso_errname(code));
    if (!strstr(c.why, needle))
        fail_msg("%s: message <%s> lacks <%s>", text, c.why, needle);
    converted_free(&c);
}

static void test_to_values_errors(void **state)
{
    fixture *f = *state;
    check_reject(f, "{\"nope\":1}", VERSO_EINVAL, "\"nope\"");
    check_reject(f, "{\"qty\":1,\"qty\":2}", VERSO_EINVAL, "\"qty\"");
    check_reject(f, "[1]", VERSO_EINVAL, "object");
    check_reject(f, "{\"qty\":1.5}", VERSO_ETYPE, "\"qty\"");
    check_reject(f, "{\"qty\":1e2}", VERSO_ETYPE, "\"qty\"");
    check_reject(f, "{\"qty\":9223372036854775808}", VERSO_ETYPE, "int64");
    check_reject(f, "{\"qty\":\"1\"}", VERSO_ETYPE, "string");
    check_reject(f, "{\"qty\":true}", VERSO_ETYPE, "\"qty\"");
    check_reject(f, "{\"price\":\"1.5\"}", VERSO_ETYPE, "\"price\"");
    check_reject(f, "{\"price\":1e400}", VERSO_ETYPE, "\"price\"");
    check_reject(f, "{\"active\":1}", VERSO_ETYPE, "\"active\"");
    check_reject(f, "{\"name\":5}", VERSO_ETYPE, "\"name\"");
    check_reject(f, "{\"name\":{}}", VERSO_ETYPE, "object");
    check_reject(f, "{\"ref\":\"0f8fad5b-d9cb-469f-a165-70867728950\"}", VERSO_ETYPE, "UUID");
    check_reject(f, "{\"ref\":\"0f8fad5bxd9cb-469f-a165-70867728950e\"}", VERSO_ETYPE, "UUID");
    check_reject(f, "{\"ref\":\"0g8fad5b-d9cb-469f-a165-70867728950e\"}", VERSO_ETYPE, "UUID");
    check_reject(f, "{\"ref\":5}", VERSO_ETYPE, "\"ref\"");
    static const char *const bad64[] = {
        "Zg=", "Zg", "Z===", "Zg=a", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "=Zm9", "Zm9v====", "Zm9!"};
    for (size_t i = 0; i < sizeof bad64 / sizeof bad64[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "{\"data\":\"%s\"}", bad64[i]);
        if (strchr(bad64[i], '\n'))
            snprintf(text, sizeof text, "{\"data\":\"Zm9v\\n\"}");
        check_reject(f, text, VERSO_ETYPE, "base64");
    }
    /* A tree built in C with invalid UTF-8 is still checked. */
    cJSON *obj = cJSON_CreateObject();
    cJSON_AddStringToObject(obj, "name", "\xc0\x80");
    const char **cols;
    verso_value *vals;
    size_t n;
    char why[100] = "";
    assert_int_equal(verso_json_to_values(&cols, &vals, &n, f->item, obj, why, sizeof why),
                     VERSO_EUTF8);
    assert_non_null(strstr(why, "\"name\""));
    assert_int_equal(verso_json_to_values(&cols, &vals, &n, NULL, obj, NULL, 0), VERSO_EINVAL);
    cJSON_Delete(obj);
}

/* Random binary of every length up to 100 survives base64 both ways. */
static void test_blob_roundtrip(void **state)
{
    fixture *f = *state;
    unsigned char bytes[100];
    uint32_t x = 2463534242u;
    for (size_t len = 0; len <= sizeof bytes; len++) {
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes[i] = (unsigned char)(i % 7 == 0 ? 0 : x);
        }
        verso_value v = {.type = VERSO_BLOB, .u.b = {bytes, len}};
        verso_buf b = VERSO_BUF_INIT;
        assert_int_equal(verso_buf_puts(&b, "{\"data\":"), 0);
        assert_int_equal(verso_json_value(&b, &v, VERSO_BLOB), 0);
        assert_int_equal(verso_buf_puts(&b, "}"), 0);
        assert_int_equal(b.len, 11 + (len + 2) / 3 * 4); /* {"data":"..."} */
        converted c;
        assert_int_equal(convert(&c, f->item, b.data), 0);
        assert_int_equal(c.vals[0].type, VERSO_BLOB);
        assert_int_equal(c.vals[0].u.b.n, len);
        if (len)
            assert_memory_equal(c.vals[0].u.b.p, bytes, len);
        converted_free(&c);
        verso_buf_free(&b);
    }
}

/* Inserts from JSON, reads back through a query and the row writer. */
static void test_row_roundtrip(void **state)
{
    fixture *f = *state;
    const char *text = "{\"id\":9007199254740993,\"qty\":9223372036854775807,\"price\":0.1,"
                       "\"name\":\"\\\"q\\\" \\ud83d\\ude00 \\u0001\",\"data\":\"AAEC/w==\","
                       "\"active\":false,\"ref\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"}";
    converted c;
    int64_t id = 0, version = 0;
    assert_int_equal(convert(&c, f->item, text), 0);
    int rc = verso_row_insert(&id, &version, f->db, "item", c.cols, c.vals, c.n);
    if (rc < 0)
        fail_msg("insert: %s", verso_db_errmsg(f->db));
    assert_true(id == 9007199254740993LL);
    converted_free(&c);

    const char *cols[] = {"id", "qty", "price", "name", "data", "active", "ref"};
    verso_query q = VERSO_QUERY_INIT;
    q.table = "item";
    q.columns = cols;
    q.ncolumns = 7;
    verso_iter *it = NULL;
    assert_int_equal(verso_query_open(&it, f->db, &q), 0);
    assert_int_equal(verso_iter_next(it), 1);
    verso_buf b = VERSO_BUF_INIT;
    assert_int_equal(verso_json_iter_row(&b, it), 0);
    assert_int_equal(verso_iter_next(it), 0);
    verso_iter_close(it);
    assert_string_equal(b.data, "{\"id\":9007199254740993,\"qty\":9223372036854775807,"
                                "\"price\":0.1,\"name\":\"\\\"q\\\" \xf0\x9f\x98\x80 \\u0001\","
                                "\"data\":\"AAEC/w==\",\"active\":false,"
                                "\"ref\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"}");
    verso_buf_free(&b);
}

/* Change feed entries: an upsert with its row, and a deletion. */
/* Storage class of a value: bools are integers, UUIDs text. */
static verso_type storage_class(verso_type t)
{
    return t == VERSO_BOOL ? VERSO_INT64 : t == VERSO_UUID ? VERSO_TEXT : t;
}

static bool same_value(const verso_value *a, const verso_value *b)
{
    if (storage_class(a->type) != storage_class(b->type))
        return false;
    switch (storage_class(a->type)) {
    case VERSO_INT64:
        return a->u.i == b->u.i;
    case VERSO_DOUBLE:
        return memcmp(&a->u.d, &b->u.d, sizeof a->u.d) == 0;
    case VERSO_TEXT:
    case VERSO_BLOB:
        return a->u.b.n == b->u.b.n && (!a->u.b.n || !memcmp(a->u.b.p, b->u.b.p, a->u.b.n));
    default:
        return true;
    }
}

/* Every storage class, edges included, written for a column of every type
 * and read back for the same column: the same class and the same value. */
static void test_value_classes_roundtrip(void **state)
{
    fixture *f = *state;
    static const char *const texts[] = {"",
                                        "a\0b",
                                        "\xff",
                                        "\xc0\x80",
                                        "caf\xc3\xa9",
                                        "\xf0\x9f\x98\x80",
                                        "0f8fad5b-d9cb-469f-a165-70867728950e",
                                        "0F8FAD5B-D9CB-469F-A165-70867728950E",
                                        "12",
                                        "{}"};
    static const size_t text_len[] = {0, 3, 1, 2, 5, 4, 36, 36, 2, 2};
    verso_value vals[40];
    size_t nv = 0;
    vals[nv++] = VERSO_VALUE_NULL;
    vals[nv++] = VERSO_VALUE_INT(INT64_MIN);
    vals[nv++] = VERSO_VALUE_INT(INT64_MAX);
    vals[nv++] = VERSO_VALUE_INT(0);
    vals[nv++] = VERSO_VALUE_INT(1);
    vals[nv++] = VERSO_VALUE_INT(9007199254740993LL);
    vals[nv++] = VERSO_VALUE_DOUBLE(-0.0);
    vals[nv++] = VERSO_VALUE_DOUBLE(INFINITY);
    vals[nv++] = VERSO_VALUE_DOUBLE(-INFINITY);
    vals[nv++] = VERSO_VALUE_DOUBLE(4.9406564584124654e-324);
    vals[nv++] = VERSO_VALUE_DOUBLE(1.7976931348623157e308);
    vals[nv++] = VERSO_VALUE_DOUBLE(9007199254740993.0);
    vals[nv++] = VERSO_VALUE_DOUBLE(0.1);
    vals[nv++] = VERSO_VALUE_DOUBLE(3.0);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        vals[nv++] = (verso_value){.type = VERSO_TEXT, .u.b = {texts[i], text_len[i]}};
    vals[nv++] = (verso_value){.type = VERSO_BLOB, .u.b = {"", 0}};
    vals[nv++] = (verso_value){.type = VERSO_BLOB, .u.b = {"\0\xff\x01", 3}};
    vals[nv++] = (verso_value){.type = VERSO_BLOB, .u.b = {"abc", 3}};
    const struct {
        const verso_table *t;
        const char *col;
    } cols[] = {{f->item, "qty"},    {f->item, "price"}, {f->item, "name"}, {f->item, "data"},
                {f->item, "active"}, {f->item, "ref"},   {f->loose, "x"}};
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        const verso_column *col = verso_table_column_at(
            cols[c].t, (size_t)verso_table_column_index(cols[c].t, cols[c].col));
        for (size_t i = 0; i < nv; i++) {
            verso_buf b = VERSO_BUF_INIT;
            converted cv;
            assert_int_equal(verso_buf_printf(&b, "{\"%s\":", cols[c].col), 0);
            assert_int_equal(verso_json_value(&b, &vals[i], col->type), 0);
            assert_int_equal(verso_buf_puts(&b, "}"), 0);
            if (convert(&cv, cols[c].t, b.data) < 0)
                fail_msg("%s: %s: %s", cols[c].col, b.data, cv.why);
            assert_int_equal(cv.n, 1);
            if (!same_value(&vals[i], &cv.vals[0]))
                fail_msg("column %s (%s): %s read back as another value (type %s)", cols[c].col,
                         verso_type_name(col->type), b.data, verso_type_name(cv.vals[0].type));
            converted_free(&cv);
            verso_buf_free(&b);
        }
    }
}

static void test_feed_entries(void **state)
{
    fixture *f = *state;
    const char *cols[] = {"x"};
    verso_value vals[] = {VERSO_VALUE_TEXT("a\tb")};
    int64_t id = 0, v1 = 0;
    assert_int_equal(verso_row_insert(&id, &v1, f->db, "loose", cols, vals, 1), 0);
    int64_t id2 = 0, v2 = 0;
    assert_int_equal(verso_row_insert(&id2, &v2, f->db, "loose", cols, vals, 1), 0);
    assert_int_equal(verso_row_delete(f->db, "loose", id2, 0), 0);

    const char *tables[] = {"loose"};
    verso_feed_options o = VERSO_FEED_OPTIONS_INIT;
    o.since = v1 - 1;
    o.tables = tables;
    o.ntables = 1;
    verso_feed *feed = NULL;
    assert_int_equal(verso_feed_open(&feed, f->db, &o), 0);
    const verso_feed_entry *e;
    verso_buf b = VERSO_BUF_INIT;
    while (verso_feed_next(&e, feed) == 1) {
        assert_int_equal(verso_json_feed_entry(&b, e), 0);
        assert_int_equal(verso_buf_puts(&b, "\n"), 0);
    }
    verso_feed_close(feed);
    char want[400];
    snprintf(want, sizeof want,
             "{\"table\":\"loose\",\"id\":%lld,\"version\":%lld,\"row\":{\"id\":%lld,"
             "\"x\":\"a\\tb\",\"version\":%lld}}\n"
             "{\"table\":\"loose\",\"id\":%lld,\"version\":%lld,\"deleted\":true}\n",
             (long long)id, (long long)v1, (long long)id, (long long)v1, (long long)id2,
             (long long)v2 + 1);
    assert_string_equal(b.data, want);
    verso_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_write_int64),
        cmocka_unit_test(test_write_double),
        cmocka_unit_test(test_write_string_escapes),
        cmocka_unit_test(test_write_invalid_utf8),
        cmocka_unit_test(test_write_blob),
        cmocka_unit_test(test_write_uuid_bool),
        cmocka_unit_test(test_parse_int64),
        cmocka_unit_test(test_parse_numbers_in_order),
        cmocka_unit_test(test_parse_unicode),
        cmocka_unit_test(test_parse_null_bool),
        cmocka_unit_test(test_parse_depth),
        cmocka_unit_test(test_parse_malformed),
        cmocka_unit_test(test_parse_write_roundtrip),
        cmocka_unit_test(test_parse_mutations),
        cmocka_unit_test_setup_teardown(test_to_values_types, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_to_values_errors, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_blob_roundtrip, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_value_classes_roundtrip, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_row_roundtrip, setup_db, teardown_db),
        cmocka_unit_test_setup_teardown(test_feed_entries, setup_db, teardown_db),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
