/*
 * verso publish DB NATS_URL --stream NAME [options]  - until SIGINT/SIGTERM
 * verso serve DB --publish NATS_URL --stream NAME    - the same inside serve
 *
 * Appends DB's change stream to a NATS JetStream stream (docs/nats.md):
 * followers anywhere (verso replicate nats://HOST:PORT/STREAM DB) apply it
 * as live slaves do. The options of the stream are shared with serve.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "log.h"
#include "verso/nats.h"

const char cli_publish_usage[] =
    "  --stream NAME      the JetStream stream (created when missing; letters,\n"
    "                     digits, '_' and '-')\n"
    "  --subject P        subject prefix: P.changes, P.master (default verso.NAME)\n"
    "  --replicas N       when the stream is created: copies in the cluster (default 1)\n"
    "  --max-age D        when created: messages older than D go, e.g. 7d, 24h\n"
    "                     (default: kept; followers behind it resynchronise)\n"
    "  --max-bytes N      when created: the stream's size limit in bytes (default none)\n"
    "  --max-msgs N       when created: the stream's message limit (default none)\n"
    "  --snapshot-every D a file snapshot into the stream NAME_SNAP every D, for\n"
    "                     followers that cannot reach the master (default 10m;\n"
    "                     0 = only at start; off = none)\n"
    "  --nats-token T     the NATS server's auth token\n";

static int bad_value(const char *cmd, const char *opt, const char *v, const char *what)
{
    fprintf(stderr, "verso %s: %s needs %s, not '%s'\n", cmd, opt, what, v);
    return -1;
}

static int parse_i64(int64_t *out, const char *s)
{
    char *end;
    long long v = strtoll(s, &end, 10);

    if (!*s || *end || v < 0)
        return -1;
    *out = v;
    return 0;
}

/* --max-age, --snapshot-every: "7d" too, besides what verso_cli_parse_duration reads. */
static int parse_span(int64_t *ms, const char *s)
{
    size_t n = strlen(s);
    int64_t days;
    char num[32];

    if (n > 1 && n < sizeof(num) && s[n - 1] == 'd') {
        memcpy(num, s, n - 1);
        num[n - 1] = 0;
        if (parse_i64(&days, num) < 0 || days > 100000)
            return -1;
        *ms = days * 86400000LL;
        return 0;
    }
    return verso_cli_parse_duration(ms, s);
}

static int value_option(cli_publish_args *p, const char *cmd, const char *o, const char *v)
{
    int64_t x = 0;

    if (!strcmp(o, "--stream"))
        return p->stream = v, 1;
    if (!strcmp(o, "--subject"))
        return p->subject = v, 1;
    if (!strcmp(o, "--nats-token"))
        return p->nats_token = v, 1;
    if (!strcmp(o, "--replicas"))
        return parse_i64(&x, v) < 0 || x < 1 || x > 5 ? bad_value(cmd, o, v, "a number from 1 to 5")
                                                      : (p->replicas = (int)x, 1);
    if (!strcmp(o, "--max-age"))
        return parse_span(&p->max_age_ms, v) < 0 ? bad_value(cmd, o, v, "a duration such as 7d")
                                                 : 1;
    if (!strcmp(o, "--max-bytes"))
        return parse_i64(&p->max_bytes, v) < 0 ? bad_value(cmd, o, v, "a number of bytes") : 1;
    if (!strcmp(o, "--max-msgs"))
        return parse_i64(&p->max_msgs, v) < 0 ? bad_value(cmd, o, v, "a number") : 1;
    if (!strcmp(o, "--snapshot-every") && !strcmp(v, "off"))
        return p->snapshot_every_ms = -1, 1;
    if (!strcmp(o, "--snapshot-every")) {
        if (parse_span(&x, v) < 0)
            return bad_value(cmd, o, v, "a duration such as 10m, 0 or off");
        p->snapshot_every_ms = x ? x : INT64_MAX / 4; /* 0: the one at start */
        return 1;
    }
    return 0;
}

static const char *const k_value_options[] = {
    "--stream",  "--subject",   "--nats-token", "--replicas",
    "--max-age", "--max-bytes", "--max-msgs",   "--snapshot-every",
};

int cli_publish_option(cli_publish_args *p, const char *cmd, int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    size_t k = 0, n = sizeof(k_value_options) / sizeof(k_value_options[0]);

    while (k < n && strcmp(k_value_options[k], o))
        k++;
    if (k == n)
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "verso %s: missing value for %s\n", cmd, o);
        return -1;
    }
    (*i)++;
    return value_option(p, cmd, o, argv[*i]);
}

int cli_publish_start(verso_nats_publisher **out, const char *db, const cli_publish_args *p,
                      const char *cmd)
{
    verso_nats_publish_options o = VERSO_NATS_PUBLISH_OPTIONS_INIT;
    char why[512] = "";
    int rc;

    if (!p->stream) {
        fprintf(stderr, "verso %s: --stream NAME is required with a NATS URL\n", cmd);
        return VERSO_EXIT_USAGE;
    }
    if (strncmp(p->url, "nats://", 7) != 0) {
        fprintf(stderr, "verso %s: the NATS URL is nats://HOST:PORT[,HOST:PORT...], not '%s'\n",
                cmd, p->url);
        return VERSO_EXIT_USAGE;
    }
    o.stream = p->stream;
    o.subject = p->subject;
    o.replicas = p->replicas;
    o.max_age_ms = p->max_age_ms;
    o.max_bytes = p->max_bytes;
    o.max_msgs = p->max_msgs;
    o.snapshot_every_ms = p->snapshot_every_ms;
    o.token = p->nats_token;
    if ((rc = verso_nats_publish_start(out, db, p->url, &o, why, sizeof(why))) == 0) {
        cli_notice("publishing %s to stream %s at %s", db, p->stream, p->url);
        return 0;
    }
    fprintf(stderr, "verso %s: %s\n", cmd, why[0] ? why : verso_strerror(rc));
    if (rc == VERSO_EINVAL) /* a stream name, a subject: the command is wrong */
        return VERSO_EXIT_USAGE;
    return rc == VERSO_ECONFLICT ? VERSO_EXIT_FAILURE : verso_cli_status(rc);
}

void cli_publish_tick(verso_nats_publisher *p, verso_nats_publish_state *last)
{
    verso_nats_publish_state st;

    if (!p || verso_nats_publish_state_get(&st, p) < 0)
        return;
    if (st.connected != last->connected && st.connected)
        cli_log(CLI_INFO, "stream connected: database %s, published up to %lld (head %lld)",
                st.identity, (long long)st.published, (long long)st.head);
    if (strcmp(st.last_error, last->last_error) && st.last_error[0])
        cli_log(CLI_ERROR, "%s (retrying with backoff)", st.last_error);
    if (st.snapshots > last->snapshots)
        cli_log(CLI_INFO, "snapshot %lld stored at version %lld", (long long)st.snapshots,
                (long long)st.head);
    if (cli_log_tty())
        cli_status("verso publish: %s  published %lld of head %lld  %lld messages",
                   st.connected ? "connected" : "reconnecting", (long long)st.published,
                   (long long)st.head, (long long)st.messages);
    *last = st;
}

/* ---- verso publish ---- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: verso publish [options] DB NATS_URL --stream NAME\n\n"
            "Appends the change stream of DB to a NATS JetStream stream until SIGINT or\n"
            "SIGTERM: each master transaction (or batch of them) as one or more messages,\n"
            "resuming after a restart from what the stream holds, without duplicates.\n"
            "Followers apply it with `verso replicate NATS_URL/NAME FILE` (docs/nats.md).\n\n"
            "arguments:\n"
            "  DB                 the database file (must exist)\n"
            "  NATS_URL           nats://HOST:PORT[,HOST:PORT...]\n\n"
            "options:\n"
            "%s%s",
            cli_publish_usage, cli_log_usage);
    verso_cli_help_end(out, "  verso publish shop.db nats://127.0.0.1:4222 --stream SHOP\n"
                            "  verso publish shop.db nats://n1:4222,n2:4222 --stream SHOP "
                            "--replicas 3 --max-age 7d\n");
}

/* 0 ok, -1 --help said, else the exit status. */
static int parse_args(const char **db, cli_publish_args *p, int argc, char **argv)
{
    int npos = 0, rc;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return usage(stdout), -1;
        if ((rc = cli_log_option(argc, argv, &i)) != 0 ||
            (rc = cli_publish_option(p, "publish", argc, argv, &i)) != 0) {
            if (rc < 0)
                return VERSO_EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "verso publish: unknown option %s\n", argv[i]);
            usage(stderr);
            return VERSO_EXIT_USAGE;
        }
        if (npos++ < 2)
            *(npos == 1 ? db : &p->url) = argv[i];
    }
    if (npos != 2) {
        usage(stderr);
        return VERSO_EXIT_USAGE;
    }
    return 0;
}

int verso_cli_publish(int argc, char **argv)
{
    cli_publish_args p = {0};
    verso_nats_publish_state last = {0};
    verso_nats_publisher *pub = NULL;
    const char *db = NULL;
    struct sigaction sa;
    int rc;

    cli_log_init("publish");
    if ((rc = parse_args(&db, &p, argc, argv)) != 0)
        return rc < 0 ? 0 : rc;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if ((rc = cli_publish_start(&pub, db, &p, "publish")) != 0)
        return rc;
    while (!g_stop) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        cli_publish_tick(pub, &last);
    }
    cli_status_end();
    cli_publish_tick(pub, &last);
    cli_log(CLI_INFO, "stopped: published up to %lld, %lld messages", (long long)last.published,
            (long long)last.messages);
    verso_nats_publish_stop(pub);
    return 0;
}
