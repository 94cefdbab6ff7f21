/* rest/reload.c - the config file read again while the server runs
 * (verso_rest_reload): tokens, roles and limits change between two
 * requests, and no connection is dropped.
 *
 * The caller's thread reads and checks the file; the service thread, the
 * only reader of srv->cfg, swaps the new grants and limits in when woken, so
 * requests never see a half-made config and need no lock. What is bound to
 * the listening socket (host, port, TLS) and libwebsockets' own timeouts
 * (header-timeout-ms) stay as they were started. */
#include <errno.h>
#include <libwebsockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rest/internal.h"

/* The new file, merged with the options as at start; 0 or a code (why set). */
static int read_config(verso__config *c, const verso_rest *srv, char *why, size_t whylen)
{
    char detail[384] = "";
    const char *path = srv->opts.config_path;
    int rc;

    memset(c, 0, sizeof(*c));
    c->port = -1;
    if (!path) {
        snprintf(why, whylen, "no config file to reload (started without --config)");
        return VERSO_EINVAL;
    }
    if ((rc = verso__config_load(c, path, detail, sizeof(detail))) < 0) {
        /* the message names the file once, whatever verso__config_load says */
        snprintf(why, whylen, "%s%s%s", strstr(detail, path) ? "" : path,
                 strstr(detail, path) ? "" : ": ", detail);
        verso__config_free(c);
        return rc;
    }
    verso__limits_merge(&c->limits, &srv->opts.limits);
    verso__limits_defaults(&c->limits);
    c->limits.header_timeout_ms = srv->cfg.limits.header_timeout_ms;
    return 0;
}

/* Grants and limits of next move into cfg; cfg's old ones go with next. */
static void swap_in(verso__config *cfg, verso__config *next)
{
    verso__grant *g = cfg->grants;
    size_t n = cfg->ngrants;

    cfg->grants = next->grants;
    cfg->ngrants = next->ngrants;
    cfg->limits = next->limits;
    next->grants = g;
    next->ngrants = n;
}

void verso__reload_apply(verso_rest *srv)
{
    pthread_mutex_lock(&srv->ctx_lock);
    if (srv->reload_next) {
        swap_in(&srv->cfg, srv->reload_next);
        srv->reload_next = NULL; /* the caller frees its copy, with the old grants */
        pthread_cond_broadcast(&srv->reload_done);
    }
    pthread_mutex_unlock(&srv->ctx_lock);
}

/* Hands next to the service thread and waits (at most 5 s) until it took it. */
static int hand_over(verso_rest *srv, verso__config *next, char *why, size_t whylen)
{
    struct timespec until;
    int rc = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&srv->ctx_lock);
    if (!srv->ctx_alive) { /* not serving (offline, or stopping): nobody reads cfg now */
        swap_in(&srv->cfg, next);
        pthread_mutex_unlock(&srv->ctx_lock);
        return 0;
    }
    srv->reload_next = next;
    lws_cancel_service(srv->ctx);
    while (srv->reload_next == next && rc == 0)
        rc = pthread_cond_timedwait(&srv->reload_done, &srv->ctx_lock, &until);
    if (srv->reload_next == next) {
        srv->reload_next = NULL;
        rc = VERSO_ESTATE;
        snprintf(why, whylen, "the server did not take the new config within 5 s");
    } else {
        rc = 0;
    }
    pthread_mutex_unlock(&srv->ctx_lock);
    return rc;
}

int verso_rest_reload(verso_rest *srv, char *why, size_t whylen)
{
    verso__config next;
    char none[1];
    int rc;

    if (!why || !whylen)
        why = none, whylen = sizeof(none);
    why[0] = '\0';
    if (!srv) {
        snprintf(why, whylen, "invalid arguments");
        return VERSO_EINVAL;
    }
    if ((rc = read_config(&next, srv, why, whylen)) < 0)
        return rc;
    if (next.ngrants == 0 && srv->cfg.ngrants > 0) {
        /* dropping every token would open the server to anyone: refused */
        snprintf(why, whylen, "%s: no token line left; the server keeps its tokens",
                 srv->opts.config_path);
        verso__config_free(&next);
        return VERSO_EINVAL;
    }
    rc = hand_over(srv, &next, why, whylen);
    verso__config_free(&next);
    return rc;
}
