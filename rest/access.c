/* rest/access.c - tells verso_rest_options.on_access of each answered HTTP
 * request: method, path (never the query), status, body bytes, duration,
 * the peer's address and the role of its token. */
#include <libwebsockets.h>
#include <string.h>

#include "rest/internal.h"

static const char *method_name(unsigned method)
{
    static const struct {
        unsigned bit;
        const char *name;
    } k[] = {{VERSO__GET, "GET"},        {VERSO__POST, "POST"},     {VERSO__PUT, "PUT"},
             {VERSO__PATCH, "PATCH"},    {VERSO__DELETE, "DELETE"}, {VERSO__HEAD, "HEAD"},
             {VERSO__OPTIONS, "OPTIONS"}};

    for (size_t i = 0; i < sizeof(k) / sizeof(k[0]); i++)
        if (k[i].bit == method)
            return k[i].name;
    return "?";
}

const char *verso__access_role(const verso__auth *a, const verso__config *c)
{
    static const char *const widest_first[] = {"admin", "write", "replicate", "read"};
    unsigned caps = 0;

    if (a->state == 0)
        return NULL;
    if (a->state < 0)
        return "invalid";
    for (size_t i = 0; i < c->ngrants; i++)
        if (!memcmp(c->grants[i].hash, a->hash, sizeof(a->hash)))
            caps |= c->grants[i].caps;
    for (size_t i = 0; i < sizeof(widest_first) / sizeof(widest_first[0]); i++)
        if ((verso__role_caps(widest_first[i]) & ~caps) == 0)
            return widest_first[i];
    return "none";
}

void verso__access_record(verso_rest *srv, struct lws *wsi, const verso__access_entry *e)
{
    char remote[64] = "";
    verso_rest_access a = {.method = method_name(e->method),
                           .path = e->path ? e->path : "",
                           .status = e->status,
                           .bytes = e->bytes,
                           .duration_s = e->seconds,
                           .remote = remote,
                           .role = e->role,
                           .time_ms = verso_now_ms()};

    if (!srv->opts.on_access)
        return;
    if (!lws_get_peer_simple(wsi, remote, sizeof(remote)))
        remote[0] = '\0';
    srv->opts.on_access(&a, srv->opts.access_arg);
}
