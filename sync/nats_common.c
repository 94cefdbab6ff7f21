/*
 * nats_common.c - what the NATS publisher and follower share; in a build
 * without libnats, the verso_nats_* functions that say so.
 */
#include "verso/nats.h"

#if !defined(VERSO_HAVE_NATS) || !defined(VERSO__NATS_IMPLEMENTED) /* until sync/nats_*.c land */

#include <stdio.h>

static int notsup(char *why, size_t whylen)
{
    if (why && whylen)
        snprintf(why, whylen, "verso was built without libnats (install libnats-dev and rebuild)");
    return VERSO_ENOTSUP;
}

int verso_nats_publish_start(verso_nats_publisher **out, const char *db_path, const char *nats_url,
                             const verso_nats_publish_options *o, char *why, size_t whylen)
{
    (void)db_path, (void)nats_url, (void)o;
    if (out)
        *out = NULL;
    return notsup(why, whylen);
}

int verso_nats_publish_state_get(verso_nats_publish_state *out, verso_nats_publisher *p)
{
    (void)p;
    if (out)
        memset(out, 0, sizeof *out);
    return VERSO_ENOTSUP;
}

int verso_nats_publish_wait(verso_nats_publisher *p, int64_t v, int timeout_ms)
{
    (void)p, (void)v, (void)timeout_ms;
    return VERSO_ENOTSUP;
}

void verso_nats_publish_stop(verso_nats_publisher *p)
{
    (void)p;
}

int verso_nats_follow_start(verso_nats_follower **out, const char *db_path, const char *url,
                            const verso_nats_follow_options *o, char *why, size_t whylen)
{
    (void)db_path, (void)url, (void)o;
    if (out)
        *out = NULL;
    return notsup(why, whylen);
}

int verso_nats_follow_state_get(verso_slave_state *out, verso_nats_follower *f)
{
    (void)f;
    if (out)
        memset(out, 0, sizeof *out);
    return VERSO_ENOTSUP;
}

int verso_nats_follow_wait(verso_nats_follower *f, int64_t version, int timeout_ms)
{
    (void)f, (void)version, (void)timeout_ms;
    return VERSO_ENOTSUP;
}

int verso_nats_follow_mount(verso_nats_follower *f, verso_rest_options *ro)
{
    (void)f, (void)ro;
    return VERSO_ENOTSUP;
}

void verso_nats_follow_stop(verso_nats_follower *f)
{
    (void)f;
}

#endif
