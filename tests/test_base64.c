/* verso_base64_*: round trips of every length, the RFC 4648 vectors, and
 * every kind of non-canonical text refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "verso/verso.h"

static void test_rfc4648_vectors(void **state)
{
    static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const text[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    (void)state;
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        verso_buf b = VERSO_BUF_INIT;
        char out[8] = "";
        assert_int_equal(verso_base64_encode(&b, plain[i], strlen(plain[i])), 0);
        assert_string_equal(b.len ? b.data : "", text[i]);
        assert_int_equal(verso_base64_decoded_len(text[i], strlen(text[i])), strlen(plain[i]));
        assert_int_equal(verso_base64_decode(out, text[i], strlen(text[i])), 0);
        assert_memory_equal(out, plain[i], strlen(plain[i]));
        verso_buf_free(&b);
    }
}

static void test_round_trip_every_byte_and_length(void **state)
{
    unsigned char in[300], out[300];
    uint32_t x = 12345;
    (void)state;
    for (size_t n = 0; n <= sizeof(in); n++) {
        verso_buf b = VERSO_BUF_INIT;
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (unsigned char)(n < 256 ? (i + n) & 255 : x >> 24);
        }
        assert_int_equal(verso_base64_encode(&b, in, n), 0);
        assert_int_equal(b.len, (n + 2) / 3 * 4);
        assert_int_equal(verso_base64_decoded_len(b.data, b.len), (ptrdiff_t)n);
        assert_int_equal(verso_base64_decode(out, b.data ? b.data : "", b.len), 0);
        assert_memory_equal(out, in, n);
        verso_buf_free(&b);
    }
}

static void test_non_canonical_refused(void **state)
{
    static const char *const bad[] = {
        "Zg=",      /* length not a multiple of 4 */
        "Zg==Zg==", /* padding inside */
        "Z===",     /* one digit in the last quantum */
        "Zh==",     /* unused bits not zero */
        "Zm9=",     /* unused bits not zero */
        "Zm9v\n",   /* a newline */
        "Zm9*",     /* outside the alphabet */
        "Zm-v",     /* base64url is not base64 */
        "Z=9v",     /* padding in the middle of a quantum */
        "Zg=A",     /* padding then a digit */
        "====",
    };
    char out[16];
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = strlen(bad[i]);
        ptrdiff_t len = verso_base64_decoded_len(bad[i], n);
        int rc = len < 0 ? VERSO_EINVAL : verso_base64_decode(out, bad[i], n);
        if (rc != VERSO_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc4648_vectors),
        cmocka_unit_test(test_round_trip_every_byte_and_length),
        cmocka_unit_test(test_non_canonical_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
