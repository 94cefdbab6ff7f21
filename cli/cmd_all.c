/*
 * verso replicate --all URL DIR: every database of a server of databases
 * (verso serve --dir) followed into DIR (verso_sync_all_start), until
 * SIGINT or SIGTERM.
 *
 * What it says: a line per database created, removed or kept, and per
 * name the master listed that fails the naming rule; a failing database
 * once per episode (not at each retry), again when it recovers; the
 * events link's failures once per change, with the URL's diagnosis while
 * no link is up. On a terminal a status line counts the databases, in
 * sync, pulling and failing; elsewhere a summary line every
 * --stats-interval.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "verso/sync.h"

#define FAILING_MAX 1024 /* databases whose failure was said, remembered to say the recovery */

typedef struct all_cli {
    const cli_all_args *args;
    char failing[FAILING_MAX][65]; /* the event callback's own (one call at a time) */
    size_t nfailing;
    char shown[128]; /* the link's last failure said ("" none); main thread */
    int status;      /* the exit status that failure means */
    int64_t live_ms; /* last time the link was up */
    int64_t next_summary_ms;
} all_cli;

/* Remembers name as failing: true when it was not yet. */
static bool failing_add(all_cli *c, const char *name)
{
    for (size_t i = 0; i < c->nfailing; i++)
        if (!strcmp(c->failing[i], name))
            return false;
    if (c->nfailing < FAILING_MAX)
        snprintf(c->failing[c->nfailing++], sizeof(c->failing[0]), "%s", name);
    return true;
}

/* Forgets name: true when it was failing. */
static bool failing_del(all_cli *c, const char *name)
{
    for (size_t i = 0; i < c->nfailing; i++) {
        if (!strcmp(c->failing[i], name)) {
            memmove(c->failing[i], c->failing[c->nfailing - 1], sizeof(c->failing[0]));
            c->nfailing--;
            return true;
        }
    }
    return false;
}

static void said_copy(const verso_sync_all_event *e, all_cli *c)
{
    bool recovered = failing_del(c, e->name);

    if (e->kind == VERSO_ALL_CREATED)
        cli_log(CLI_INFO, "%s: new database copied into %s/%s.db (%s%s%lld rows, cursor %lld)",
                e->name, c->args->dir, e->name, e->detail, e->detail[0] ? ", " : "",
                (long long)e->rows, (long long)e->cursor);
    else if (recovered)
        cli_log(CLI_INFO, "%s: pulled again (cursor %lld)", e->name, (long long)e->cursor);
    else
        cli_log(CLI_DEBUG, "%s: %lld changes, cursor %lld%s%s", e->name, (long long)e->rows,
                (long long)e->cursor, e->detail[0] ? ", " : "", e->detail);
}

/* verso_sync_all_options.on_event: one line per event worth a line. */
static void on_event(const verso_sync_all_event *e, void *arg)
{
    all_cli *c = arg;

    switch (e->kind) {
    case VERSO_ALL_CONNECTED:
        cli_log(CLI_INFO, "connected to %s: %lld databases", c->args->url, (long long)e->rows);
        break;
    case VERSO_ALL_DISCONNECTED:
        cli_log(CLI_WARN, "lost the link to %s (%s); reconnecting", c->args->url, e->detail);
        break;
    case VERSO_ALL_CREATED:
    case VERSO_ALL_PULLED:
        said_copy(e, c);
        break;
    case VERSO_ALL_REMOVED:
        failing_del(c, e->name);
        cli_log(CLI_INFO, "%s: deleted on the master: removed %s/%s.db", e->name, c->args->dir,
                e->name);
        break;
    case VERSO_ALL_KEPT:
        failing_del(c, e->name);
        cli_log(CLI_INFO, "%s: %s", e->name, e->detail);
        break;
    case VERSO_ALL_FAILED:
        if (failing_add(c, e->name))
            cli_log(CLI_ERROR, "%s: %s (retrying with backoff; the others go on)", e->name,
                    e->detail);
        break;
    case VERSO_ALL_IGNORED:
        cli_log(CLI_WARN, "the master lists a database \"%s\": %s", e->name, e->detail);
        break;
    case VERSO_ALL_ERROR:
        cli_log(CLI_ERROR, "%s: %s", c->args->url, e->detail);
        break;
    }
}

/* The link's failure as the user reads it, and its exit status. */
static int link_cause(const verso_sync_all_state *st, const all_cli *c, char *msg, size_t n)
{
    int status;

    if (strstr(st->last_error, "HTTP 401") || strstr(st->last_error, "HTTP 403")) {
        snprintf(msg, n, "%s: %s; %s", c->args->url, st->last_error, verso_cli_token_hint());
        return VERSO_EXIT_AUTH;
    }
    if (!st->connected && (status = verso_cli_dir_url_problem(msg, n, c->args->url)) != 0)
        return status;
    snprintf(msg, n, "%s: %s", c->args->url, st->last_error);
    return VERSO_EXIT_TEMPFAIL;
}

/* Says the link's failure when it changed (once, not at every retry). */
static void link_error(all_cli *c, const verso_sync_all_state *st)
{
    char msg[1024];

    if (!st->last_error[0] || st->connected) {
        c->shown[0] = '\0';
        return;
    }
    if (!strcmp(st->last_error, c->shown))
        return;
    snprintf(c->shown, sizeof(c->shown), "%s", st->last_error);
    c->status = link_cause(st, c, msg, sizeof(msg));
    cli_log(CLI_ERROR, "%s (retrying with backoff up to 5 s)", msg);
}

static void status_line(all_cli *c, const verso_sync_all_state *st)
{
    int64_t now = verso_now_ms();
    char line[256];

    snprintf(line, sizeof(line), "%s; %lld databases, %lld in sync, %lld pulling, %lld failing",
             st->connected ? "live" : "connecting", (long long)st->databases,
             (long long)st->in_sync, (long long)st->pulling, (long long)st->errors);
    if (cli_log_tty()) {
        cli_status("%s", line);
    } else if (c->args->summary_ms > 0 && now >= c->next_summary_ms) {
        if (c->next_summary_ms)
            cli_log(CLI_INFO, "%s; %lld pulls, %lld created, %lld removed since start", line,
                    (long long)st->pulls, (long long)st->created, (long long)st->removed);
        c->next_summary_ms = now + c->args->summary_ms;
    }
}

/* --give-up-after: true (said) when the link has been down that long. */
static bool give_up(all_cli *c, const verso_sync_all_state *st)
{
    int64_t now = verso_now_ms();

    if (st->connected || !c->args->give_up_ms)
        c->live_ms = now;
    if (!c->args->give_up_ms || now - c->live_ms < c->args->give_up_ms)
        return false;
    cli_log(CLI_ERROR, "no link to %s for %.0f s: giving up (--give-up-after)", c->args->url,
            c->args->give_up_ms / 1000.0);
    return true;
}

static int start(verso_sync_all **s, all_cli *c)
{
    verso_sync_all_options o = VERSO_SYNC_ALL_OPTIONS_INIT;
    char why[1024] = "";
    int rc;

    o.client.token = c->args->token;
    o.client.insecure = c->args->insecure;
    o.client.replace_tables = c->args->replace_tables;
    o.workers = c->args->workers;
    o.keep_deleted = c->args->keep_deleted;
    o.on_event = on_event;
    o.event_arg = c;
    if ((rc = verso_sync_all_start(s, c->args->dir, c->args->url, &o, why, sizeof(why))) < 0) {
        char msg[1024];
        if (rc == VERSO_EINVAL && verso_cli_dir_url_problem(msg, sizeof(msg), c->args->url))
            snprintf(why, sizeof(why), "%s", msg);
        fprintf(stderr, "verso replicate: %s\n", why[0] ? why : verso_strerror(rc));
        return verso_cli_status(rc);
    }
    cli_log(CLI_INFO, "following every database of %s into %s/ (%d pulls at a time%s)",
            c->args->url, c->args->dir, c->args->workers ? c->args->workers : 2,
            c->args->keep_deleted ? ", deleted ones kept" : "");
    return 0;
}

int verso_cli_replicate_all(const cli_all_args *args)
{
    all_cli *c = calloc(1, sizeof(*c));
    verso_sync_all *s = NULL;
    int rc;

    if (!c) {
        fprintf(stderr, "verso replicate: out of memory\n");
        return VERSO_EXIT_FAILURE;
    }
    c->args = args;
    c->status = VERSO_EXIT_TEMPFAIL;
    c->live_ms = verso_now_ms();
    if ((rc = start(&s, c)) != 0)
        goto done;
    while (!*args->stop) {
        struct timespec ts = {0, 200 * 1000000L};
        verso_sync_all_state st;
        nanosleep(&ts, NULL);
        verso_sync_all_state_get(&st, s);
        link_error(c, &st);
        status_line(c, &st);
        if (give_up(c, &st)) {
            rc = c->status;
            break;
        }
    }
    cli_status_end();
    verso_sync_all_stop(s);
done:
    free(c);
    return rc;
}
