/* An HTTP client for the REST tests (libcurl + libc only). */
#ifndef VERSO_TESTS_REST_HTTP_H
#define VERSO_TESTS_REST_HTTP_H

#include <stddef.h>

typedef struct rt_resp {
    long status; /* 0 when the request failed at the transport level */
    char *body;  /* NUL-terminated, malloc'd */
    size_t nbody;
    char *headers; /* raw response header block, malloc'd */
} rt_resp;

/* CA certificate used for https:// URLs (NULL = system store). */
extern const char *rt_cainfo;

/*
 * Sends one request. body may be NULL (no body); headers is a NULL-terminated
 * list of "Name: value" lines or NULL. Returns 0 when an HTTP answer was
 * read, -1 otherwise (out->status is then 0). Release with rt_resp_free().
 */
int rt_request(rt_resp *out, const char *method, const char *url, const char *body, size_t nbody,
               const char *const *headers);

/* Value of response header name (case-insensitive) copied into buf; NULL if absent. */
const char *rt_header(const rt_resp *r, const char *name, char *buf, size_t n);

void rt_resp_free(rt_resp *r);

#endif
