/*
 * verso replicate URL DB  - a live slave until SIGINT/SIGTERM
 * verso pull URL DB       - one catch-up to the master's head at start
 *
 * The access token comes from --token, else the environment (VERSO_TOKEN),
 * else the client config file (--config FILE, else $VERSO_CONFIG), whose
 * "client-token <token>" line is used and other lines are ignored.
 *
 * DB may hold the user's own tables: the library leaves them alone and
 * refuses a master table whose name one of them has, unless
 * --replace-tables. A pull that fails before committing anything removes
 * the file if it created it.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "log.h"
#include "progress.h"
#include "verso/nats.h"
#include "verso/rest.h"
#include "verso/sync.h"

typedef struct sync_args {
    const char *cmd;
    const char *url;
    const char *db;
    const char *token;
    const char *config;
    const char *tables[64];
    size_t ntables;
    int chunk;
    int port;           /* replicate: also serve the slave's db (cascade); -1 = no */
    const char *name;   /* replicate: the name the master lists it under */
    const char *host;   /* replicate --port: the bind address (default 127.0.0.1) */
    int64_t give_up_ms; /* replicate: exit after this long without a connection; 0 = never */
    bool insecure;
    int64_t summary_ms; /* --stats-interval: summary lines off a terminal */
    bool replace_tables;
    bool all;               /* replicate --all: URL is a server of databases, DB a directory */
    bool keep_deleted;      /* --all: databases deleted on the master stay */
    int workers;            /* --all: pulls at a time (0 = 2) */
    const char *master;     /* replicate nats://: the master's URL (bootstrap, long blobs) */
    const char *nats_token; /* replicate nats://: the NATS server's token */
    char token_buf[512];
} sync_args;

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_hup; /* replicate: SIGHUP, reloads the served config */

/* verso_sync_client.should_stop of the pull: SIGINT or SIGTERM arrived. */
static bool stop_requested(void *arg)
{
    (void)arg;
    return g_stop != 0;
}

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_hup = 1;
    else
        g_stop = 1;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL); /* systemd's reload must not kill a slave */
}

static const char *sync_description(const char *cmd)
{
    if (strcmp(cmd, "pull") == 0)
        return "Brings DB up to date with the master at URL once and exits: a first run\n"
               "copies the master (a file snapshot, or its rows), later runs fetch the\n"
               "changes since DB's cursor.\n";
    return "Follows the master at URL in real time over a WebSocket: bootstraps DB like\n"
           "pull, then applies each master transaction as it commits, and reconnects\n"
           "after a network error (saying when) until SIGINT or SIGTERM. A database of\n"
           "a server of databases is URL/db/NAME; with --all, every database of that\n"
           "server follows into the directory DIR, created and removed as on the master.\n";
}

static const char *sync_examples(const char *cmd)
{
    if (strcmp(cmd, "pull") == 0)
        return "  verso pull http://127.0.0.1:8080 replica.db\n"
               "  VERSO_TOKEN=secret verso pull --table items https://master:8443 replica.db\n";
    return "  verso replicate http://127.0.0.1:8080 replica.db\n"
           "  verso replicate http://127.0.0.1:8080/db/tenant-1 tenant-1.db\n"
           "  verso replicate --all --workers 4 http://127.0.0.1:8080 replicas/\n"
           "  verso replicate --port 8081 --name edge-1 http://master:8080 replica.db\n"
           "  verso replicate --give-up-after 5m http://master:8080 replica.db\n"
           "  verso replicate --master http://master:8080 nats://127.0.0.1:4222/SHOP replica.db\n";
}

static void usage(FILE *out, const char *cmd)
{
    fprintf(out,
            "usage: verso %s [options] URL DB%s\n\n%s\n"
            "arguments:\n"
            "  URL                the master's base URL, e.g. http://127.0.0.1:8080\n"
            "  DB                 the slave's database file (created if missing); its own\n"
            "                     tables, views, indexes and triggers are left alone, and a\n"
            "                     file snapshot of the master is used only when it has none\n\n"
            "options:\n"
            "  --table NAME       follow only this table (repeatable)\n"
            "  --replace-tables   a master table whose name an object of DB already has\n"
            "                     replaces that object (default: refused, DB unchanged)\n"
            "  --token TOKEN      access token (else $VERSO_TOKEN, else the config file)\n"
            "  --config FILE      client config file with a 'client-token TOKEN' line\n"
            "                     (default $VERSO_CONFIG)\n"
            "  --insecure         https: accept self-signed certificates\n"
            "  --stats-interval S off a terminal: a summary line every S seconds\n"
            "                     (default 60; 0 = none)\n"
            "%s",
            cmd, strcmp(cmd, "replicate") ? "" : "\n       verso replicate --all [options] URL DIR",
            sync_description(cmd), cli_log_usage);
    if (strcmp(cmd, "pull") == 0)
        fprintf(out, "  --chunk N          changes per request (default 10000)\n");
    if (strcmp(cmd, "replicate") == 0)
        fprintf(out,
                "  --port N           also serve DB over REST and /_sync on port N\n"
                "                     (0 = any free port), for cascading slaves; its /_status\n"
                "                     and /_metrics show this slave's upstream state\n"
                "  --host H           with --port: bind address (default 127.0.0.1); any other\n"
                "                     address needs 'token' lines in the --config file\n"
                "                     (SIGHUP reloads them)\n"
                "  --name NAME        the name the master lists this slave under\n"
                "                     (default host:pid)\n"
                "  --give-up-after D  exit (status 75, or 2/3 for a wrong URL or token)\n"
                "                     after D without a connection, e.g. 30s, 5m\n"
                "                     (default: retry for ever, saying when)\n"
                "  --all              URL is a server of databases (verso serve --dir) and DB\n"
                "                     a directory: follow every database into DB/NAME.db\n"
                "                     (docs/databases.md)\n"
                "  --keep-deleted     --all: a database deleted on the master stays in DB\n"
                "  --workers N        --all: databases pulled at a time, 1 to 64 (default 2);\n"
                "                     at most N+1 connections to the server\n"
                "  --master URL       with a URL nats://HOST:PORT[,...]/STREAM (the stream a\n"
                "                     `verso publish` writes: docs/nats.md), the master's base\n"
                "                     URL, for the bootstrap and long blobs (default: the\n"
                "                     stream's snapshots only)\n"
                "  --nats-token T     URL nats://...: the NATS server's auth token\n");
    verso_cli_help_end(out, sync_examples(cmd));
}

static int config_token(sync_args *a)
{
    const char *path = a->config ? a->config : getenv("VERSO_CONFIG");
    char line[600];
    FILE *f;

    if (!path)
        return 0;
    if (!(f = fopen(path, "r"))) {
        fprintf(stderr, "verso %s: cannot read config file %s: %s\n", a->cmd, path,
                strerror(errno));
        return -VERSO_EXIT_AUTH;
    }
    while (fgets(line, sizeof(line), f)) {
        char key[32], value[512];
        if (sscanf(line, "%31s %511s", key, value) == 2 && strcmp(key, "client-token") == 0) {
            snprintf(a->token_buf, sizeof(a->token_buf), "%s", value);
            a->token = a->token_buf;
        }
    }
    fclose(f);
    return 0;
}

static int parse_int(int *out, const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);

    if (*s == '\0' || *end != '\0' || v < 0 || v > 1000000000)
        return -1;
    *out = (int)v;
    return 0;
}

/* Returns -1 on a usage error, 1 for --help, 0 otherwise. */
static int parse_option(sync_args *a, int argc, char **argv, int *i)
{
    const char *o = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    int rc;

    if (!strcmp(o, "--help") || !strcmp(o, "-h"))
        return 1;
    if (!strcmp(o, "--insecure"))
        return a->insecure = true, 0;
    if ((rc = cli_log_option(argc, argv, i)) != 0)
        return rc > 0 ? 0 : -1;
    if (!strcmp(o, "--replace-tables"))
        return a->replace_tables = true, 0;
    if (!strcmp(a->cmd, "replicate") && (!strcmp(o, "--all") || !strcmp(o, "--keep-deleted")))
        return *(!strcmp(o, "--all") ? &a->all : &a->keep_deleted) = true, 0;
    if (!v)
        return -1;
    (*i)++;
    if (!strcmp(o, "--token"))
        return a->token = v, 0;
    if (!strcmp(o, "--config"))
        return a->config = v, 0;
    if (!strcmp(o, "--chunk") && !strcmp(a->cmd, "pull")) /* a live master sets its own */
        return parse_int(&a->chunk, v);
    if (!strcmp(o, "--port") && !strcmp(a->cmd, "replicate"))
        return parse_int(&a->port, v);
    if (!strcmp(o, "--stats-interval")) {
        int sec = 0;
        rc = parse_int(&sec, v);
        a->summary_ms = (int64_t)sec * 1000;
        return rc;
    }
    if (!strcmp(o, "--host") && !strcmp(a->cmd, "replicate"))
        return a->host = v, 0;
    if (!strcmp(o, "--name") && !strcmp(a->cmd, "replicate"))
        return a->name = v, 0;
    if (!strcmp(o, "--workers") && !strcmp(a->cmd, "replicate"))
        return parse_int(&a->workers, v) || a->workers < 1 || a->workers > 64 ? -1 : 0;
    if (!strcmp(o, "--master") && !strcmp(a->cmd, "replicate"))
        return a->master = v, 0;
    if (!strcmp(o, "--nats-token") && !strcmp(a->cmd, "replicate"))
        return a->nats_token = v, 0;
    if (!strcmp(o, "--give-up-after") && !strcmp(a->cmd, "replicate"))
        return verso_cli_parse_duration(&a->give_up_ms, v);
    if (!strcmp(o, "--table") && a->ntables < 64)
        return a->tables[a->ntables++] = v, 0;
    return -1;
}

/* 0 ok, else the exit status. */
static int parse_args(sync_args *a, int argc, char **argv)
{
    int npos = 0, rc;

    memset(a, 0, sizeof(*a));
    a->cmd = argv[0];
    a->port = -1;
    a->summary_ms = 60000;
    cli_log_init(a->cmd);
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            if ((rc = parse_option(a, argc, argv, &i)) != 0) {
                usage(rc > 0 ? stdout : stderr, a->cmd);
                return rc > 0 ? -1 : 2;
            }
        } else if (npos < 2) {
            *(npos++ == 0 ? &a->url : &a->db) = argv[i];
        } else {
            npos++;
        }
    }
    if (npos != 2) {
        usage(stderr, a->cmd);
        return 2;
    }
    if (!a->token)
        a->token = getenv("VERSO_TOKEN");
    if (!a->token && (rc = config_token(a)) < 0)
        return -rc;
    return 0;
}

static void client_options(verso_sync_client *c, const sync_args *a)
{
    c->token = a->token;
    c->tables = a->ntables ? a->tables : NULL;
    c->ntables = a->ntables;
    c->chunk = a->chunk;
    c->insecure = a->insecure;
    c->replace_tables = a->replace_tables;
}

/* ---- pull ---- */

/* Creates path if it is missing: true if this call made it (never for
 * SQLite's special names, which are not files of that name). */
static bool create_file(const char *path)
{
    int fd;

    if (!*path || !strcmp(path, ":memory:") || !strncmp(path, "file:", 5))
        return false;
    fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);

    if (fd < 0)
        return false;
    close(fd);
    return true;
}

static void remove_db_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char p[4096];

    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(p, sizeof(p), "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* The first request to an https master failed though a TLS server listens:
 * most often a certificate the slave does not trust. */
static bool tls_refused(const sync_args *a, const char *why)
{
    return !a->insecure && !strncmp(a->url, "https://", 8) &&
           (strstr(why, "TLS handshake") || !strcmp(why, "GET /_info: network error"));
}

static const char k_tls_hint[] = "if the master's certificate is self-signed, add --insecure "
                                 "(or make its certificate one this machine trusts)";

/* A failure to talk to the master: what is wrong with the URL, else the
 * library's reason, with the URL. Returns the exit status. */
static int master_failure(const sync_args *a, int rc, const char *why)
{
    char msg[1024];
    int status;

    if (rc == VERSO_EAUTH && strstr(why, "HTTP 403")) {
        fprintf(stderr,
                "verso %s: %s: the token lacks the replicate role (%s); give it that role in "
                "the master's config file ('token HASH replicate')\n",
                a->cmd, a->url, why);
        return VERSO_EXIT_AUTH;
    }
    if (rc == VERSO_EAUTH) {
        fprintf(stderr, "verso %s: %s: the master refused the token (%s); %s\n", a->cmd, a->url,
                why, verso_cli_token_hint());
        return VERSO_EXIT_AUTH;
    }
    if ((status = verso_cli_url_problem(msg, sizeof(msg), a->url)) != 0) {
        fprintf(stderr, "verso %s: %s\n", a->cmd, msg);
        return status;
    }
    if (tls_refused(a, why)) {
        fprintf(stderr, "verso %s: %s: the TLS connection failed (%s); %s\n", a->cmd, a->url, why,
                k_tls_hint);
        return VERSO_EXIT_USAGE;
    }
    fprintf(stderr, "verso %s: %s: %s\n", a->cmd, a->url, why);
    return verso_cli_status(rc);
}

/* A pull that committed nothing leaves db as it found it. */
static bool committed_nothing(verso_db *db)
{
    verso_cursor cur;

    return verso_db_cursor(&cur, db) == 0 && !cur.master[0] && cur.version == 0;
}

/* What the pull brought: the snapshot's rows too, not only the changes after it. */
static void pull_done(const verso_pull_result *res)
{
    char snap[96] = "";

    if (res->snapshot)
        snprintf(snap, sizeof(snap), "file snapshot of %lld rows, then ",
                 (long long)res->snapshot_rows);
    cli_log(CLI_INFO, "%s%lld changes, cursor %lld (master %s head %lld)%s", snap,
            (long long)res->rows, (long long)res->cursor, res->master, (long long)res->master_head,
            res->resynced ? ", full resync" : "");
}

int verso_cli_pull(int argc, char **argv)
{
    char open_why[256] = "";
    verso_sync_client c = VERSO_SYNC_CLIENT_INIT;
    verso_pull_result res;
    cli_pull progress;
    verso_db *db = NULL;
    sync_args a;
    char why[256];
    bool created, unused = false;
    int rc = parse_args(&a, argc, argv);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    client_options(&c, &a);
    cli_pull_init(&progress, a.summary_ms);
    c.on_progress = cli_pull_progress;
    c.progress_arg = &progress;
    created = create_file(a.db);
    if ((rc = verso_db_open(&db, a.db, NULL, open_why, sizeof(open_why))) < 0) {
        fprintf(stderr, "verso pull: %s: %s\n", a.db, open_why);
        if (created)
            remove_db_files(a.db);
        return verso_cli_status(rc);
    }
    install_signals();
    c.should_stop = stop_requested;
    rc = verso_sync_pull(&res, db, a.url, &c, why, sizeof(why));
    cli_status_end();
    unused = rc < 0 && created && committed_nothing(db);
    verso_db_close(db);
    if (unused)
        remove_db_files(a.db);
    if (rc < 0 && (rc == VERSO_ENET || rc == VERSO_ETIMEOUT || rc == VERSO_EPROTO ||
                   rc == VERSO_EAUTH || rc == VERSO_EINVAL))
        return master_failure(&a, rc, why[0] ? why : verso_strerror(rc));
    if (rc < 0) {
        fprintf(stderr, "verso pull: %s\n", why[0] ? why : verso_strerror(rc));
        return verso_cli_status(rc);
    }
    pull_done(&res);
    return res.cursor >= res.master_head ? 0 : 1;
}

/* ---- replicate ---- */

typedef struct serving {
    verso_sync_master *master;
    verso_rest *rest;
    const char *config; /* the served config file, for SIGHUP */
} serving;

/* What serves the replica's upstream state: a live slave or a NATS follower. */
typedef struct upstream {
    int (*state)(verso_slave_state *out, void *self);
    int (*mount)(void *self, verso_rest_options *ro);
    void *self;
} upstream;

static int slave_state(verso_slave_state *out, void *self)
{
    return verso_slave_state_get(out, self);
}

static int slave_mount(void *self, verso_rest_options *ro)
{
    return verso_slave_mount(self, ro);
}

static int follower_state(verso_slave_state *out, void *self)
{
    return verso_nats_follow_state_get(out, self);
}

static int follower_mount(void *self, verso_rest_options *ro)
{
    return verso_nats_follow_mount(self, ro);
}

/* The slave's own REST server and replication endpoint (cascade). */
static int serve_start(serving *sv, const sync_args *a, const upstream *up)
{
    verso_rest_options ro = VERSO_REST_OPTIONS_INIT;
    char why[256] = "";
    int rc;

    if ((rc = verso_sync_master_new(&sv->master, a->db, NULL, why, sizeof(why))) == 0) {
        up->mount(up->self, &ro); /* its upstream state in /_status and /_metrics */
        verso_sync_master_mount(sv->master, &ro);
        ro.db_path = a->db;
        ro.port = a->port ? a->port : VERSO_REST_PORT_ANY;
        ro.host = a->host;
        ro.config_path = sv->config = a->config ? a->config : getenv("VERSO_CONFIG");
        rc = verso_rest_start(&sv->rest, NULL, &ro, why, sizeof(why));
    }
    if (rc < 0) {
        fprintf(stderr, "verso replicate: cannot serve: %s\n", why[0] ? why : verso_strerror(rc));
        verso_sync_master_close(sv->master); /* the server did not start: nothing uses it */
        sv->master = NULL;
        return rc;
    }
    cli_notice("serving %s on http://%s%s%s:%d", a->db,
               strchr(verso_rest_host(sv->rest), ':') ? "[" : "", verso_rest_host(sv->rest),
               strchr(verso_rest_host(sv->rest), ':') ? "]" : "", verso_rest_port(sv->rest));
    return 0;
}

static void serve_stop(serving *sv)
{
    verso_rest_stop(sv->rest);
    verso_sync_master_close(sv->master);
}

/* The failure as the user reads it ("URL: cause; hint") and its exit status. */
static int replicate_cause(const verso_slave_state *st, const sync_args *a, char *msg, size_t n)
{
    int status;

    if (strstr(st->last_error, "HTTP 403")) {
        snprintf(msg, n, "%s: %s; give it that role in the master's config file", a->url,
                 st->last_error);
        return VERSO_EXIT_AUTH;
    }
    if (strstr(st->last_error, "HTTP 401")) {
        snprintf(msg, n, "%s: %s; %s", a->url, st->last_error, verso_cli_token_hint());
        return VERSO_EXIT_AUTH;
    }
    if (strstr(st->last_error, "schema")) {
        snprintf(msg, n, "%s: %s", a->url, st->last_error);
        return VERSO_EXIT_DATA;
    }
    if (!st->connected && strncmp(a->url, "nats://", 7) &&
        (status = verso_cli_url_problem(msg, n, a->url)) != 0)
        return status;
    if (tls_refused(a, st->last_error)) {
        snprintf(msg, n, "%s: %s; %s", a->url, st->last_error, k_tls_hint);
        return VERSO_EXIT_USAGE;
    }
    snprintf(msg, n, "%s: %s", a->url, st->last_error);
    return VERSO_EXIT_TEMPFAIL;
}

/* Prints the slave's last failure when it changed: once, not at every retry,
 * with when the next attempt comes. A failure that cleared and comes back is
 * a new episode, printed again. Returns the failure's exit status (75 when none). */
static int replicate_error(const upstream *s, const sync_args *a, char *shown, size_t n, int status)
{
    verso_slave_state st;
    char msg[1024];

    s->state(&st, s->self);
    if (!st.last_error[0])
        shown[0] = '\0';
    if (!st.last_error[0] || !strcmp(st.last_error, shown))
        return st.last_error[0] ? status : VERSO_EXIT_TEMPFAIL;
    snprintf(shown, n, "%s", st.last_error);
    status = replicate_cause(&st, a, msg, sizeof(msg));
    s->state(&st, s->self); /* the probe took a while */
    cli_log(CLI_ERROR, "%s (retrying: next attempt in %.1f s, then backoff up to 5 s)", msg,
            st.retry_in_ms / 1000.0);
    return status;
}

/* --give-up-after: true (said) when the slave has had no connection for that long. */
static bool give_up(const upstream *s, const sync_args *a, int64_t *live_ms)
{
    verso_slave_state st;
    int64_t now = verso_now_ms();

    s->state(&st, s->self);
    if (st.connected || !a->give_up_ms)
        *live_ms = now;
    if (now - *live_ms < a->give_up_ms || !a->give_up_ms)
        return false;
    cli_log(CLI_ERROR, "no connection to %s for %.0f s: giving up (--give-up-after)", a->url,
            a->give_up_ms / 1000.0);
    return true;
}

/* SIGHUP: the served config file's tokens, roles and limits, read again. */
static void replicate_reload(const serving *sv)
{
    char why[512];

    if (!sv->rest || !sv->config)
        cli_notice("SIGHUP: nothing to reload (no --port with --config)");
    else if (verso_rest_reload(sv->rest, why, sizeof(why)) == 0)
        cli_notice("reloaded %s (tokens, roles, limits)", sv->config);
    else
        cli_log(CLI_ERROR, "config not reloaded, the old one stays: %s", why);
}

/* --all: the directory slave of cmd_all.c, with what it takes of the options. */
static int replicate_all(const sync_args *a)
{
    cli_all_args x = {.url = a->url,
                      .dir = a->db,
                      .token = a->token,
                      .insecure = a->insecure,
                      .replace_tables = a->replace_tables,
                      .keep_deleted = a->keep_deleted,
                      .workers = a->workers,
                      .summary_ms = a->summary_ms,
                      .give_up_ms = a->give_up_ms,
                      .stop = &g_stop};

    if (!a->all || a->ntables || a->port >= 0 || a->host || a->name) {
        fprintf(stderr, "verso replicate: %s\n",
                !a->all ? "--keep-deleted and --workers go with --all"
                        : "--all follows every database and table: --table, --port, --host and "
                          "--name do not apply (serve the directory with verso serve --dir)");
        return VERSO_EXIT_USAGE;
    }
    install_signals();
    return verso_cli_replicate_all(&x);
}

/* Runs until SIGINT / SIGTERM (or --give-up-after): the replica's errors, reloads, progress. */
static int replicate_loop(const upstream *up, const sync_args *a, serving *sv,
                          cli_replicate *progress)
{
    char shown[sizeof(((verso_slave_state *)0)->last_error)] = "";
    int64_t live = verso_now_ms();
    int rc = 0, status = VERSO_EXIT_TEMPFAIL;

    while (!g_stop) {
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
        status = replicate_error(up, a, shown, sizeof(shown), status);
        if (give_up(up, a, &live)) {
            rc = status;
            break;
        }
        if (g_hup && !(g_hup = 0))
            replicate_reload(sv);
        cli_replicate_tick(progress);
    }
    cli_replicate_end(progress);
    return rc;
}

/* replicate nats://HOST:PORT/STREAM DB: a follower of the stream (docs/nats.md). */
static int replicate_nats(const sync_args *a)
{
    verso_nats_follow_options o = VERSO_NATS_FOLLOW_OPTIONS_INIT;
    verso_nats_follower *f = NULL;
    serving sv = {0};
    cli_replicate progress;
    upstream up = {follower_state, follower_mount, NULL};
    char why[1024];
    int rc;

    if (a->ntables) {
        fprintf(stderr, "verso replicate: a NATS stream carries every table: --table does not "
                        "apply\n");
        return VERSO_EXIT_USAGE;
    }
    client_options(&o.slave.client, a);
    cli_replicate_init(&progress, a->summary_ms);
    o.slave.on_event = cli_replicate_event;
    o.slave.event_arg = &progress;
    o.slave.name = a->name;
    o.master_url = a->master;
    o.nats_token = a->nats_token;
    install_signals();
    if ((rc = verso_nats_follow_start(&f, a->db, a->url, &o, why, sizeof(why))) < 0) {
        fprintf(stderr, "verso replicate: %s\n", why[0] ? why : verso_strerror(rc));
        return verso_cli_status(rc);
    }
    up.self = progress.self = f;
    progress.state = follower_state;
    if (a->port >= 0 && (rc = serve_start(&sv, a, &up)) < 0) {
        verso_nats_follow_stop(f);
        return verso_cli_status(rc);
    }
    rc = replicate_loop(&up, a, &sv, &progress);
    if (sv.rest)
        serve_stop(&sv);
    verso_nats_follow_stop(f);
    return rc;
}

int verso_cli_replicate(int argc, char **argv)
{
    verso_slave_options o = VERSO_SLAVE_OPTIONS_INIT;
    verso_slave *s = NULL;
    serving sv = {0};
    sync_args a;
    char why[1024];
    cli_replicate progress;
    upstream up = {slave_state, slave_mount, NULL};
    int rc = parse_args(&a, argc, argv);

    if (rc != 0)
        return rc < 0 ? 0 : rc;
    if (a.all || a.keep_deleted || a.workers)
        return replicate_all(&a);
    if (!strncmp(a.url, "nats://", 7))
        return replicate_nats(&a);
    if (a.master || a.nats_token) {
        fprintf(stderr, "verso replicate: --master and --nats-token go with a nats:// URL\n");
        return VERSO_EXIT_USAGE;
    }
    client_options(&o.client, &a);
    cli_replicate_init(&progress, a.summary_ms);
    o.on_event = cli_replicate_event;
    o.event_arg = &progress;
    o.name = a.name;
    install_signals();
    if ((rc = verso_slave_start(&s, a.db, a.url, &o, why, sizeof(why))) < 0) {
        char msg[1024];
        if (rc == VERSO_EINVAL && verso_cli_url_problem(msg, sizeof(msg), a.url) != 0)
            memcpy(why, msg, sizeof(why));
        fprintf(stderr, "verso replicate: %s\n", why);
        return verso_cli_status(rc);
    }
    up.self = progress.slave = s;
    if (a.port >= 0 && (rc = serve_start(&sv, &a, &up)) < 0) {
        verso_slave_stop(s);
        return verso_cli_status(rc);
    }
    rc = replicate_loop(&up, &a, &sv, &progress);
    if (sv.rest)
        serve_stop(&sv);
    verso_slave_stop(s);
    return rc > 0 ? rc : 0;
}
