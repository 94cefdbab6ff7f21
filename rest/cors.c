/* rest/cors.c - Cross-Origin Resource Sharing for browser clients: the
 * allowed origins (none by default), preflight answers and the headers of
 * ordinary answers. Origins are compared as exact strings, as browsers
 * send them (RFC 6454 serialisation: scheme://host[:port]). */
#include <stdio.h>
#include <string.h>

#include "rest/internal.h"

#define MAX_AGE "600"

static const char k_methods[] = "GET, HEAD, POST, PUT, PATCH, DELETE";
static const char k_headers[] = "Authorization, Content-Type, If-Match, If-None-Match";
static const char k_expose[] = "ETag, Link, Location";

bool verso__cors_allowed(const verso__config *c, const char *origin)
{
    if (!origin || !*origin)
        return false;
    for (size_t i = 0; i < c->norigins; i++)
        if (!strcmp(c->origins[i], "*") || !strcmp(c->origins[i], origin))
            return true;
    return false;
}

bool verso__cors_preflight(const verso__req *rq, verso__resp *rs)
{
    const verso__config *c = &rq->srv->cfg;
    char quoted[160];

    if (verso__cors_allowed(c, rq->origin))
        rs->cors_origin = rq->origin;
    if (rq->method != VERSO__OPTIONS || !rq->origin || !rq->acr_method)
        return false;
    if (!rs->cors_origin) {
        verso__rest_quote(quoted, sizeof(quoted), rq->origin, 120);
        verso__error(rs, 403,
                     "cross-origin requests from %s are not allowed: add the line "
                     "\"cors-origin %s\" to the server's config file",
                     quoted, quoted);
        return true;
    }
    rs->status = 204;
    rs->preflight = true;
    return true;
}

size_t verso__cors_headers(verso__header *out, size_t max, const verso__config *c,
                           const verso__resp *rs)
{
    size_t n = 0;

    if (!c->norigins || max < 5)
        return 0;
    out[n++] = (verso__header){"vary:", "Origin"};
    if (!rs->cors_origin)
        return n;
    out[n++] = (verso__header){"access-control-allow-origin:", rs->cors_origin};
    if (!rs->preflight) {
        out[n++] = (verso__header){"access-control-expose-headers:", k_expose};
        return n;
    }
    out[n++] = (verso__header){"access-control-allow-methods:", k_methods};
    out[n++] = (verso__header){"access-control-allow-headers:", k_headers};
    out[n++] = (verso__header){"access-control-max-age:", MAX_AGE};
    return n;
}
