/*
 * verso.h - common definitions: error codes, value types, buffers.
 *
 * Every verso function that can fail returns an int: 0 (VERSO_OK) on
 * success, a negative VERSO_E* code on failure. Outputs come first in the
 * argument list. Detail text for the last error on a handle is available
 * from that handle (verso_db_errmsg() for a database); it is borrowed and valid
 * until the next call on the same handle.
 *
 * Memory: anything verso returns that the caller must release names its
 * release function in the comment of the function that returned it. Callers
 * never free() verso's memory themselves. One verb per kind of release:
 * `_close` ends a handle on a database (verso_db_close, verso_iter_close,
 * verso_feed_close, verso_sync_master_close), `_stop` ends a running thread
 * and frees it (verso_rest_stop, verso_slave_stop), `_free` releases memory
 * (verso_buf_free, verso_json_free, verso_free).
 *
 * Names carry their module: verso_db_* (a database handle: open, close,
 * begin/commit, exec, track, prune, hooks, errmsg), verso_record_* (rows as
 * C structs), verso_row_* (rows as column/value pairs), verso_query_*,
 * verso_iter_*, verso_feed_*, verso_fixture_*, verso_json_*, verso_rest_*,
 * verso_ws_*, verso_sync_*, verso_slave_*.
 */
#ifndef VERSO_VERSO_H
#define VERSO_VERSO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VERSO_VERSION_MAJOR  0
#define VERSO_VERSION_MINOR  1
#define VERSO_VERSION_PATCH  0
#define VERSO_VERSION_STRING "0.1.0"

/*
 * Options structs (verso_db_options, verso_rest_options, ...) start with a
 * `version` member and are filled from their INIT macro. Zero in any other
 * member means its default, so a zeroed struct is the defaults too. A struct
 * may grow at its end in a later release: the version tells the library how
 * much of it the caller knows (0 counts as the current one); a version newer
 * than the library's is refused with VERSO_EINVAL.
 */
#define VERSO_OPTIONS_VERSION 1

/*
 * Marks the public API. The library is built with hidden visibility, so
 * only functions declared with VERSO_API are exported from libverso.so.
 */
#if defined(__GNUC__) || defined(__clang__)
#define VERSO_API __attribute__((visibility("default")))
#else
#define VERSO_API
#endif

/*
 * The error list, written once. X(NAME, value, message).
 * The enum, verso_errname() and verso_strerror() are all produced from it.
 */
#define VERSO_ERRNO_MAP(X)                                                                         \
    X(EINVAL, -1, "invalid argument")                                                              \
    X(ENOMEM, -2, "out of memory")                                                                 \
    X(ENOTFOUND, -3, "not found")                                                                  \
    X(ECONFLICT, -4, "version conflict")                                                           \
    X(ECONSTRAINT, -5, "constraint violation")                                                     \
    X(ESCHEMA, -6, "schema error")                                                                 \
    X(EHORIZON, -7, "cursor is older than the tombstone horizon")                                  \
    X(EBUSY, -8, "database is busy")                                                               \
    X(EDB, -9, "database error")                                                                   \
    X(EREADONLY, -10, "table is read-only on a replica")                                           \
    X(EJSON, -11, "malformed JSON")                                                                \
    X(EUTF8, -12, "invalid UTF-8")                                                                 \
    X(ETYPE, -13, "wrong type")                                                                    \
    X(ETOOBIG, -14, "value or request too large")                                                  \
    X(ESTATE, -15, "call not valid in the current state")                                          \
    X(EIO, -16, "I/O error")                                                                       \
    X(ENET, -17, "network error")                                                                  \
    X(EPROTO, -18, "protocol error")                                                               \
    X(EIDENTITY, -19, "database identity mismatch")                                                \
    X(ETIMEOUT, -20, "timed out")                                                                  \
    X(EAUTH, -21, "not authorized")                                                                \
    X(EINTERRUPTED, -22, "interrupted")                                                            \
    X(EFULL, -23, "disk is full")                                                                  \
    X(ENOTSUP, -24, "not supported by this build")

typedef enum verso_error {
    VERSO_OK = 0,
#define VERSO__ERRENUM(name, value, msg) VERSO_##name = value,
    VERSO_ERRNO_MAP(VERSO__ERRENUM)
#undef VERSO__ERRENUM
} verso_error;

/* "EINVAL" for VERSO_EINVAL, "OK" for 0, "EUNKNOWN" otherwise. Static string. */
VERSO_API const char *verso_errname(int code);

/* "invalid argument" for VERSO_EINVAL, "ok" for 0. Static string. */
VERSO_API const char *verso_strerror(int code);

/*
 * Column / value types.
 * VERSO_NULL is only a value type (a NULL value), never a column type.
 * VERSO_ANY is the column type of an untyped column of a plain table put
 * under tracking: it holds whatever SQLite stores.
 */
typedef enum verso_type {
    VERSO_NULL = 0,
    VERSO_INT64 = 1,
    VERSO_DOUBLE = 2,
    VERSO_TEXT = 3, /* UTF-8, validated on every write path that takes JSON */
    VERSO_BLOB = 4, /* bytes; base64 in JSON */
    VERSO_BOOL = 5, /* stored as INTEGER 0/1; true/false in JSON */
    VERSO_UUID = 6, /* stored as 36-char canonical lower-case TEXT */
    VERSO_ANY = 7
} verso_type;

/* "int64", "double", "text", "blob", "bool", "uuid", "any", "null". Static. */
VERSO_API const char *verso_type_name(verso_type t);

/*
 * A dynamically typed value, used by the generic row API, queries, the
 * change feed and JSON conversion.
 *   VERSO_INT64, VERSO_BOOL: u.i
 *   VERSO_DOUBLE:            u.d
 *   VERSO_TEXT, VERSO_UUID:  u.b.p / u.b.n (bytes, not necessarily NUL
 *                            terminated; a UUID is its 36-char text)
 *   VERSO_BLOB:              u.b.p / u.b.n
 *   VERSO_NULL:              nothing
 * Values handed out by verso are borrowed; the function says how long.
 */
typedef struct verso_value {
    verso_type type;
    union {
        int64_t i;
        double d;
        struct {
            const void *p;
            size_t n;
        } b;
    } u;
} verso_value;

#define VERSO_VALUE_NULL      ((verso_value){.type = VERSO_NULL})
#define VERSO_VALUE_INT(x)    ((verso_value){.type = VERSO_INT64, .u.i = (x)})
#define VERSO_VALUE_DOUBLE(x) ((verso_value){.type = VERSO_DOUBLE, .u.d = (x)})
#define VERSO_VALUE_BOOL(x)   ((verso_value){.type = VERSO_BOOL, .u.i = !!(x)})
/* s must be a NUL-terminated string */
#define VERSO_VALUE_TEXT(s) ((verso_value){.type = VERSO_TEXT, .u.b = {(s), strlen(s)}})

/*
 * A growable byte buffer. Zero-initialise it (VERSO_BUF_INIT); release with
 * verso_buf_free(). data is NUL-terminated whenever len > 0 or after any
 * append, so it can be used as a C string when it holds text.
 */
typedef struct verso_buf {
    char *data;
    size_t len;
    size_t cap;
} verso_buf;

#define VERSO_BUF_INIT                                                                             \
    {                                                                                              \
        0                                                                                          \
    }

/* Appends n bytes. VERSO_ENOMEM on allocation failure (buffer unchanged). */
VERSO_API int verso_buf_append(verso_buf *b, const void *p, size_t n);
/* Appends a NUL-terminated string. */
VERSO_API int verso_buf_puts(verso_buf *b, const char *s);
/* printf-style append. */
VERSO_API int verso_buf_printf(verso_buf *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Ensures room for n more bytes without reallocating. */
VERSO_API int verso_buf_reserve(verso_buf *b, size_t n);
/* Empties the buffer, keeps its memory. */
VERSO_API void verso_buf_clear(verso_buf *b);
/* Frees the memory and zeroes the struct. NULL is a no-op. */
VERSO_API void verso_buf_free(verso_buf *b);
/* Hands the bytes to the caller (release with verso_free()); b becomes empty. */
VERSO_API char *verso_buf_detach(verso_buf *b);

/*
 * Standard base64 (RFC 4648 section 4, with padding).
 * verso_base64_encode appends the text of n bytes to b (VERSO_ENOMEM).
 * verso_base64_decoded_len gives the byte count of n chars of text, or -1
 * when n is not a multiple of 4. verso_base64_decode writes that many bytes
 * to out; only canonical text is accepted (VERSO_EINVAL otherwise: a
 * character outside the alphabet, misplaced padding, non-zero unused bits).
 */
VERSO_API int verso_base64_encode(verso_buf *b, const void *data, size_t n);
VERSO_API ptrdiff_t verso_base64_decoded_len(const char *s, size_t n);
VERSO_API int verso_base64_decode(void *out, const char *s, size_t n);

/* Releases memory returned by verso functions documented as "free with verso_free()". NULL ok. */
VERSO_API void verso_free(void *p);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
VERSO_API int64_t verso_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif
