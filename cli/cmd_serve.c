/*
 * verso serve DB [--host H] [--port P] [--config FILE]
 * verso serve --dir DIR [--max-open N] [--idle-close SECONDS] [...]
 *
 * Serves the tracked tables of DB over REST/JSON until SIGINT or SIGTERM,
 * then stops cleanly. Prints the URL it listens on (one line on stdout).
 * The config file (--config, else $VERSO_CONFIG) holds access tokens,
 * limits, TLS paths, host and port; the options win over the file.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "access_log.h"
#include "cli.h"
#include "log.h"
#include "verso/nats.h"
#include "verso/rest.h"
#include "verso/sync.h"

typedef struct serve_args {
    const char *db;
    const char *host;
    const char *port;
    const char *config;
    const char *access_log;
    const char *dir;        /* --dir: every database DIR/<name>.db */
    const char *max_open;   /* --max-open N */
    const char *idle_close; /* --idle-close SECONDS */
    bool allow_empty;       /* serve a file with no tracked table (it becomes a verso database) */
    cli_publish_args pub;   /* --publish NATS_URL and the stream's options */
} serve_args;

typedef struct serve_option {
    const char *name;
    size_t offset; /* of the const char * in serve_args */
} serve_option;

static const serve_option k_options[] = {
    {.name = "--host", .offset = offsetof(serve_args, host)},
    {.name = "--port", .offset = offsetof(serve_args, port)},
    {.name = "--config", .offset = offsetof(serve_args, config)},
    {.name = "--access-log", .offset = offsetof(serve_args, access_log)},
    {.name = "--dir", .offset = offsetof(serve_args, dir)},
    {.name = "--max-open", .offset = offsetof(serve_args, max_open)},
    {.name = "--idle-close", .offset = offsetof(serve_args, idle_close)},
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: verso serve DB [--host H] [--port P] [--config FILE] [--allow-empty]\n"
            "       verso serve --dir DIR [--max-open N] [--idle-close SECONDS] [options]\n\n"
            "Serves the tracked tables of DB as JSON, and /_sync for live slaves\n"
            "(verso replicate), until SIGINT or SIGTERM (requests under way finish,\n"
            "WebSockets get a 1001 close, exit status 0). SIGHUP reloads the config\n"
            "file's tokens, roles and limits without dropping connections.\n"
            "With --dir DIR, serves every verso database DIR/<name>.db the same\n"
            "way under /db/<name>/, opening each on demand.\n\n"
            "arguments:\n"
            "  DB              the database file (must exist, with a tracked table:\n"
            "                  verso track DB TABLE)\n\n"
            "options:\n"
            "  --dir DIR       serve every database DIR/<name>.db under /db/<name>/\n"
            "                  (GET /_databases lists them; docs/databases.md)\n"
            "  --max-open N    with --dir: databases open at once (default 128)\n"
            "  --idle-close S  with --dir: close a database unused for S seconds\n"
            "                  (default 60; its next request reopens it)\n"
            "  --allow-empty   serve DB even with no tracked table (verso adds its\n"
            "                  tables to the file and switches it to WAL)\n"
            "  --host H        bind address (default 127.0.0.1; any other address\n"
            "                  needs an access token in the config file)\n"
            "  --port P        TCP port (default 8080; 0 = any free port)\n"
            "  --config FILE   tokens, limits and TLS (default $VERSO_CONFIG);\n"
            "                  format in docs/rest.md\n"
            "  --access-log FILE  one JSON line per request, appended to FILE\n"
            "  --publish URL   also append DB's changes to a NATS JetStream stream\n"
            "                  (URL nats://HOST:PORT[,...]; --stream NAME required;\n"
            "                  as verso publish does, with its options:)\n"
            "%s%s",
            cli_publish_usage, cli_log_usage);
    verso_cli_help_end(out,
                       "  verso serve shop.db --port 8080\n"
                       "  verso serve shop.db --host 0.0.0.0 --config /etc/verso/verso.conf\n"
                       "  verso serve --dir /srv/tenants --max-open 256\n"
                       "  verso serve shop.db --publish nats://127.0.0.1:4222 --stream SHOP\n");
}

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "verso serve: %s%s\n", what, arg);
    usage(stderr);
    return 2;
}

/* 0 ok, 1 --help, 2 usage error (reported). */
static int parse_args(serve_args *a, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        int lo;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return 1;
        if (!strcmp(argv[i], "--allow-empty")) {
            a->allow_empty = true;
            continue;
        }
        if ((lo = cli_log_option(argc, argv, &i)) != 0 ||
            (lo = cli_publish_option(&a->pub, "serve", argc, argv, &i)) != 0) {
            if (lo < 0)
                return 2;
            continue;
        }
        if (!strcmp(argv[i], "--publish") && i + 1 < argc) {
            a->pub.url = argv[++i];
            continue;
        }
        if (argv[i][0] != '-') {
            if (a->db)
                return usage_error("unexpected argument ", argv[i]);
            a->db = argv[i];
            continue;
        }
        while (k < sizeof(k_options) / sizeof(k_options[0]) && strcmp(k_options[k].name, argv[i]))
            k++;
        if (k == sizeof(k_options) / sizeof(k_options[0]))
            return usage_error("unknown option ", argv[i]);
        if (i + 1 == argc)
            return usage_error("missing value for ", argv[i]);
        *(const char **)((char *)a + k_options[k].offset) = argv[++i];
    }
    if (a->dir && a->db)
        return usage_error("give DB or --dir DIR, not both: ", a->db);
    if (!a->dir && (a->max_open || a->idle_close))
        return usage_error("--max-open and --idle-close go with ", "--dir DIR");
    if (a->pub.url && a->dir)
        return usage_error("--publish serves one database: give DB, not ", "--dir DIR");
    if (!a->pub.url && a->pub.stream)
        return usage_error("--stream and the stream options go with ", "--publish NATS_URL");
    return a->db || a->dir ? 0 : usage_error("missing argument ", "DB");
}

static int parse_port(int *out, const char *s)
{
    char *end = NULL;
    long v;

    if (!s) {
        *out = 0; /* the config file's, else the default */
        return 0;
    }
    v = strtol(s, &end, 10);
    if (!*s || *end || v < 0 || v > 65535)
        return -1;
    *out = v == 0 ? VERSO_REST_PORT_ANY : (int)v;
    return 0;
}

/* A whole number from 1 to max, for --max-open and --idle-close; NULL: 0. */
static int parse_count(int *out, const char *s, long max)
{
    char *end = NULL;
    long v;

    *out = 0;
    if (!s)
        return 0;
    v = strtol(s, &end, 10);
    if (!*s || *end || v < 1 || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* Said once when writes start failing for want of space, once when they work again. */
static void on_disk_full(verso_rest *srv, bool full, void *arg)
{
    (void)srv;
    if (full)
        cli_log(CLI_ERROR,
                "the disk of %s is full: writes are refused (HTTP 507) until "
                "space is freed there; reads go on, and writes resume by themselves",
                (const char *)arg);
    else
        cli_log(CLI_WARN, "writes work again on %s (disk space is back)", (const char *)arg);
}

/* A missing file, or one with no tracked table, is refused with what to do
 * (before anything opens it read-write: a refused file is left as it was).
 * 0 to serve, else the exit status. */
static int check_db(const serve_args *a)
{
    verso_db_options o = VERSO_DB_OPTIONS_INIT;
    verso_db *db = NULL;
    struct stat st;
    char why[512] = "";
    size_t n = 0;
    int rc;

    if (!strcmp(a->db, ":memory:") || !strncmp(a->db, "file:", 5))
        return 0;
    if (stat(a->db, &st) < 0 && errno == ENOENT) {
        fprintf(stderr,
                "verso serve: %s does not exist; make one with a table that has an INTEGER "
                "PRIMARY KEY (sqlite3, or a program with the ORM: docs/orm.md), then run "
                "`verso track FILE TABLE`\n",
                a->db);
        return VERSO_EXIT_DATA;
    }
    if (a->allow_empty)
        return 0;
    o.must_exist = true;
    o.readonly = true;
    rc = verso_db_open(&db, a->db, &o, why, sizeof(why));
    if (rc == 0)
        n = verso_db_ntables(db);
    verso_db_close(db);
    if (rc < 0 && !strstr(why, "not a verso database")) {
        fprintf(stderr, "verso serve: %s\n", why);
        return verso_cli_status(rc);
    }
    if (n > 0)
        return 0;
    fprintf(stderr,
            "verso serve: %s has no tracked table, so nothing to serve; track one with "
            "`verso track %s TABLE` (or give --allow-empty to serve it as it is)\n",
            a->db, a->db);
    return VERSO_EXIT_DATA;
}

/* The stop and reload signals are blocked in every thread and taken here:
 * SIGHUP reloads the config file, SIGINT or SIGTERM return. */
static void wait_for_stop(const sigset_t *set, verso_rest *srv, const char *config,
                          verso_nats_publisher *pub)
{
    struct timespec tick = {0, 500 * 1000000L};
    verso_nats_publish_state last = {0};
    char why[512];
    int sig = 0;

    for (;;) {
        sig = sigtimedwait(set, NULL, &tick); /* a publisher's news between signals */
        cli_publish_tick(pub, &last);
        if (sig < 0)
            continue;
        if (sig != SIGHUP)
            return;
        if (verso_rest_reload(srv, why, sizeof(why)) == 0)
            cli_notice("reloaded %s (tokens, roles, limits)", config);
        else
            cli_log(CLI_ERROR, "config not reloaded, the old one stays: %s", why);
    }
}

static int serve_fail(FILE *access, int rc)
{
    if (access)
        fclose(access);
    return verso_cli_status(rc);
}

int verso_cli_serve(int argc, char **argv)
{
    serve_args a = {0};
    verso_rest_options o = VERSO_REST_OPTIONS_INIT;
    verso_rest *srv = NULL;
    verso_sync_master *master = NULL;
    verso_nats_publisher *pub = NULL;
    char why[512] = "";
    const char *host;
    sigset_t set;
    FILE *access = NULL;
    int rc;

    cli_log_init("serve");
    if ((rc = parse_args(&a, argc, argv)) != 0)
        return rc == 1 ? (usage(stdout), 0) : rc;
    if (parse_port(&o.port, a.port) < 0)
        return usage_error("--port needs a number from 0 to 65535, not ", a.port);
    if (parse_count(&o.max_open, a.max_open, 1000000) < 0)
        return usage_error("--max-open needs a number from 1 to 1000000, not ", a.max_open);
    if (parse_count(&o.idle_close_ms, a.idle_close, 2000000) < 0)
        return usage_error("--idle-close needs a number of seconds from 1 to 2000000, not ",
                           a.idle_close);
    o.idle_close_ms *= 1000;
    if (!a.dir && (rc = check_db(&a)) != 0)
        return rc;
    if (a.access_log && !(access = cli_access_log_open(a.access_log)))
        return 1;
    if (a.access_log || cli_log_enabled(CLI_DEBUG)) {
        o.on_access = cli_access_log_write;
        o.access_arg = access;
    }
    o.db_path = a.db;
    o.db_dir = a.dir;
    o.host = a.host;
    o.config_path = a.config ? a.config : getenv("VERSO_CONFIG");
    o.on_disk_full = on_disk_full;
    o.disk_full_arg = (void *)(a.db ? a.db : a.dir);
    /* A shell starts background jobs with SIGINT ignored; sigwait needs it back. */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Every served database is also a replication master (/_sync; with
     * --dir, each /db/<name>/_sync has its own, made by the server). */
    if (!a.dir && (rc = verso_sync_master_new(&master, a.db, NULL, why, sizeof(why))) < 0) {
        fprintf(stderr, "verso serve: %s\n", why);
        return serve_fail(access, rc);
    }
    if (master)
        verso_sync_master_mount(master, &o);
    if ((rc = verso_rest_start(&srv, NULL, &o, why, sizeof(why))) < 0) {
        fprintf(stderr, "verso serve: %s\n", why);
        verso_sync_master_close(master);
        return serve_fail(access, rc);
    }
    host = verso_rest_host(srv);
    printf("%s://%s%s%s:%d/\n", verso_rest_tls(srv) ? "https" : "http",
           strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", verso_rest_port(srv));
    fflush(stdout);
    if (a.pub.url && (rc = cli_publish_start(&pub, a.db, &a.pub, "serve")) != 0) {
        verso_rest_stop(srv);
        verso_sync_master_close(master);
        if (access)
            fclose(access);
        return rc; /* an exit status */
    }
    wait_for_stop(&set, srv, o.config_path ? o.config_path : "(no config file)", pub);
    verso_nats_publish_stop(pub);
    verso_rest_stop(srv);
    verso_sync_master_close(master);
    if (access)
        fclose(access);
    return 0;
}
