/* Error names and messages, value type names, the growable buffer. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "orm/alloc.h"
#include "verso/verso.h"

const char *verso_errname(int code)
{
    switch (code) {
    case 0:
        return "OK";
#define VERSO__ERRNAME(name, value, msg)                                                           \
    case value:                                                                                    \
        return #name;
        VERSO_ERRNO_MAP(VERSO__ERRNAME)
#undef VERSO__ERRNAME
    }
    return "EUNKNOWN";
}

const char *verso_strerror(int code)
{
    switch (code) {
    case 0:
        return "ok";
#define VERSO__ERRMSG(name, value, msg)                                                            \
    case value:                                                                                    \
        return msg;
        VERSO_ERRNO_MAP(VERSO__ERRMSG)
#undef VERSO__ERRMSG
    }
    return "unknown error";
}

const char *verso_type_name(verso_type t)
{
    static const char *const names[] = {
        [VERSO_NULL] = "null", [VERSO_INT64] = "int64", [VERSO_DOUBLE] = "double",
        [VERSO_TEXT] = "text", [VERSO_BLOB] = "blob",   [VERSO_BOOL] = "bool",
        [VERSO_UUID] = "uuid", [VERSO_ANY] = "any",
    };
    if ((unsigned)t >= sizeof(names) / sizeof(names[0]))
        return "unknown";
    return names[t];
}

int verso_buf_reserve(verso_buf *b, size_t n)
{
    if (b->cap - b->len > n)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len <= n) {
        if (cap > SIZE_MAX / 2)
            return VERSO_ENOMEM;
        cap *= 2;
    }
    char *p = verso__realloc(b->data, cap);
    if (!p)
        return VERSO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

int verso_buf_append(verso_buf *b, const void *p, size_t n)
{
    if (verso_buf_reserve(b, n) < 0)
        return VERSO_ENOMEM;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int verso_buf_puts(verso_buf *b, const char *s)
{
    return verso_buf_append(b, s, strlen(s));
}

int verso_buf_printf(verso_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return VERSO_EINVAL;
    if (verso_buf_reserve(b, (size_t)n) < 0)
        return VERSO_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void verso_buf_clear(verso_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void verso_buf_free(verso_buf *b)
{
    if (!b)
        return;
    verso__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *verso_buf_detach(verso_buf *b)
{
    char *p = b->data;
    if (!p)
        p = verso__calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void verso_free(void *p)
{
    verso__free(p);
}

int64_t verso_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
