/*
 * libFuzzer harness: standard base64 (verso_base64_*).
 *
 * Properties: only canonical text is accepted, so text that decodes is
 * exactly the encoding of what it decodes to; any bytes encode to text that
 * decodes back to them; the decoded length is announced exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "verso/verso.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    ptrdiff_t n = verso_base64_decoded_len(text, size);
    verso_buf enc = VERSO_BUF_INIT;
    unsigned char *out;

    /* the input as text: decodes only if canonical */
    if (n >= 0 && (out = malloc((size_t)n + 1)) != NULL) {
        if (verso_base64_decode(out, text, size) == 0) {
            if (verso_base64_encode(&enc, out, (size_t)n) < 0 || enc.len != size ||
                (size && memcmp(enc.data, text, size)))
                abort(); /* accepted text that is not the encoding of its bytes */
        }
        free(out);
    }
    /* the input as bytes: the round trip gives them back */
    verso_buf_clear(&enc);
    if (verso_base64_encode(&enc, data, size) == 0) {
        ptrdiff_t m = verso_base64_decoded_len(enc.data ? enc.data : "", enc.len);
        out = malloc(size + 1);
        if (!out || m != (ptrdiff_t)size ||
            verso_base64_decode(out, enc.data ? enc.data : "", enc.len) < 0 ||
            (size && memcmp(out, data, size)))
            abort();
        free(out);
    }
    verso_buf_free(&enc);
    return 0;
}
