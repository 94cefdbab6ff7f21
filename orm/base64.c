/* Standard base64 (RFC 4648 section 4, padded): blobs in JSON, file
 * snapshots in the replication protocol. Decoding is strict (canonical
 * text only) so that one byte string has exactly one text form. */
#include <stdbool.h>
#include <stdint.h>

#include "verso/verso.h"

static const char k_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Digit value of each byte, 64 for anything that is not a digit. */
static const unsigned char k_digit[256] = {
    ['A'] = 0,  ['B'] = 1,  ['C'] = 2,  ['D'] = 3,  ['E'] = 4,  ['F'] = 5,  ['G'] = 6,  ['H'] = 7,
    ['I'] = 8,  ['J'] = 9,  ['K'] = 10, ['L'] = 11, ['M'] = 12, ['N'] = 13, ['O'] = 14, ['P'] = 15,
    ['Q'] = 16, ['R'] = 17, ['S'] = 18, ['T'] = 19, ['U'] = 20, ['V'] = 21, ['W'] = 22, ['X'] = 23,
    ['Y'] = 24, ['Z'] = 25, ['a'] = 26, ['b'] = 27, ['c'] = 28, ['d'] = 29, ['e'] = 30, ['f'] = 31,
    ['g'] = 32, ['h'] = 33, ['i'] = 34, ['j'] = 35, ['k'] = 36, ['l'] = 37, ['m'] = 38, ['n'] = 39,
    ['o'] = 40, ['p'] = 41, ['q'] = 42, ['r'] = 43, ['s'] = 44, ['t'] = 45, ['u'] = 46, ['v'] = 47,
    ['w'] = 48, ['x'] = 49, ['y'] = 50, ['z'] = 51, ['0'] = 52, ['1'] = 53, ['2'] = 54, ['3'] = 55,
    ['4'] = 56, ['5'] = 57, ['6'] = 58, ['7'] = 59, ['8'] = 60, ['9'] = 61, ['+'] = 62, ['/'] = 63,
};

/* The table above leaves 0 for non-digits (and for 'A'); this tells them apart. */
static int digit(unsigned char c)
{
    return k_digit[c] || c == 'A' ? k_digit[c] : -1;
}

int verso_base64_encode(verso_buf *b, const void *data, size_t n)
{
    const unsigned char *p = data;
    if (n > (SIZE_MAX - 4) / 4 * 3)
        return VERSO_ENOMEM;
    if (verso_buf_reserve(b, (n + 2) / 3 * 4) < 0)
        return VERSO_ENOMEM;
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = k_alphabet[w >> 18];
        *o++ = k_alphabet[(w >> 12) & 63];
        *o++ = k_alphabet[(w >> 6) & 63];
        *o++ = k_alphabet[w & 63];
    }
    if (i < n) {
        uint32_t w = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        *o++ = k_alphabet[w >> 18];
        *o++ = k_alphabet[(w >> 12) & 63];
        *o++ = i + 1 < n ? k_alphabet[(w >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
    b->data[b->len] = '\0';
    return 0;
}

ptrdiff_t verso_base64_decoded_len(const char *s, size_t n)
{
    if (n % 4)
        return -1;
    size_t pad = n && s[n - 1] == '=' ? (s[n - 2] == '=' ? 2 : 1) : 0;
    return (ptrdiff_t)(n / 4 * 3 - pad);
}

/* The last quantum: two or three digits and padding, unused bits zero. */
static int decode_tail(unsigned char *out, const unsigned char *s)
{
    int a = digit(s[0]), b = digit(s[1]);
    bool two = s[2] == '=';
    int c = two ? 0 : digit(s[2]);
    if (a < 0 || b < 0 || c < 0 || s[3] != '=')
        return VERSO_EINVAL;
    if (two ? (b & 15) != 0 : (c & 3) != 0)
        return VERSO_EINVAL;
    out[0] = (unsigned char)(a << 2 | b >> 4);
    if (!two)
        out[1] = (unsigned char)((b & 15) << 4 | c >> 2);
    return 0;
}

int verso_base64_decode(void *out, const char *s, size_t n)
{
    const unsigned char *in = (const unsigned char *)s;
    unsigned char *o = out;
    if (verso_base64_decoded_len(s, n) < 0)
        return VERSO_EINVAL;
    size_t full = n && in[n - 1] == '=' ? n - 4 : n;
    for (size_t i = 0; i < full; i += 4) {
        unsigned a = k_digit[in[i]], b = k_digit[in[i + 1]];
        unsigned c = k_digit[in[i + 2]], d = k_digit[in[i + 3]];
        uint32_t w = a << 18 | b << 12 | c << 6 | d;
        /* 0 in the table is 'A' or a non-digit: check only then */
        if (!(a && b && c && d) && (digit(in[i]) < 0 || digit(in[i + 1]) < 0 ||
                                    digit(in[i + 2]) < 0 || digit(in[i + 3]) < 0))
            return VERSO_EINVAL;
        *o++ = (unsigned char)(w >> 16);
        *o++ = (unsigned char)(w >> 8);
        *o++ = (unsigned char)w;
    }
    return full < n ? decode_tail(o, in + full) : 0;
}
