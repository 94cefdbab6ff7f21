/* cli.h - the verso command: one function per sub-command, dispatched by table in main.c. */
#ifndef VERSO_CLI_H
#define VERSO_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * A sub-command. argv[0] is the sub-command name; returns the process exit
 * status (VERSO_EXIT_*). Errors go to stderr in one line:
 * "verso <cmd>: <message>".
 */
typedef int (*verso_cli_fn)(int argc, char **argv);

/* Exit statuses: "fix the command" (2, 3, 4) apart from "retrying may help" (75). */
#define VERSO_EXIT_OK       0
#define VERSO_EXIT_FAILURE  1  /* anything else (I/O, internal) */
#define VERSO_EXIT_USAGE    2  /* options, arguments, a URL that is not a verso master */
#define VERSO_EXIT_AUTH     3  /* token refused, config file unreadable */
#define VERSO_EXIT_DATA     4  /* database missing, not tracked, schema conflict, disk full */
#define VERSO_EXIT_TEMPFAIL 75 /* network, busy database: retrying may help (EX_TEMPFAIL) */

/* Helpers (hints.c). */
int verso_cli_status(int rc);           /* the exit status of a VERSO_E* code */
const char *verso_cli_token_hint(void); /* where a token comes from */
const char *verso_cli_exit_help(void);  /* the exit statuses, for --help */
/* Ends a --help after its option lines: --help itself, examples (lines
 * "  verso ...\n"), exit statuses (help.c). */
void verso_cli_help_end(FILE *out, const char *examples);
/* What is wrong with a master URL ("URL: cause; hint" in msg) and its exit
 * status; 0 (msg "") when the URL answers like a verso master. Blocks a few
 * seconds at most. */
int verso_cli_url_problem(char *msg, size_t n, const char *url);
/* The same for the base URL of a server of databases (verso serve --dir), probed at
 * GET <prefix>/_databases: a one-database server there is told apart. */
int verso_cli_dir_url_problem(char *msg, size_t n, const char *url);
/* "30s", "5m", "1h", "250ms", "10" (seconds): 0, else -1. */
int verso_cli_parse_duration(int64_t *ms, const char *s);

/* Database commands (cmd_orm.c). */
int verso_cli_track(int argc, char **argv);
int verso_cli_changes(int argc, char **argv);
int verso_cli_dump(int argc, char **argv);
int verso_cli_load(int argc, char **argv);
int verso_cli_info(int argc, char **argv);
/* Tombstone pruning (cmd_prune.c). */
int verso_cli_prune(int argc, char **argv);

/* NATS JetStream publisher (cmd_publish.c): verso publish, and serve --publish. */
struct verso_nats_publisher;
struct verso_nats_publish_state;
typedef struct cli_publish_args {
    const char *url; /* nats://HOST:PORT[,...] */
    const char *stream, *subject, *nats_token;
    int replicas;
    int64_t max_age_ms, max_bytes, max_msgs, snapshot_every_ms;
} cli_publish_args;
int verso_cli_publish(int argc, char **argv);
/* The option lines of the stream options, for a --help. */
extern const char cli_publish_usage[];
/* Takes argv[*i] when it is a stream option (moving *i past its value): 1 taken, 0 not one of
 * them, -1 bad value (said on stderr, "verso CMD: ..."). */
int cli_publish_option(cli_publish_args *p, const char *cmd, int argc, char **argv, int *i);
/* Starts the publisher of db; 0, else the exit status (the reason said on stderr). */
int cli_publish_start(struct verso_nats_publisher **out, const char *db, const cli_publish_args *p,
                      const char *cmd);
/* Says what changed since last (connection, errors, snapshots); every 200 ms or so. */
void cli_publish_tick(struct verso_nats_publisher *p, struct verso_nats_publish_state *last);

/* REST server (cmd_serve.c). */
int verso_cli_serve(int argc, char **argv);

/* Replication (cmd_sync.c). */
int verso_cli_replicate(int argc, char **argv);
int verso_cli_pull(int argc, char **argv);

/* replicate --all (cmd_all.c): every database of a server into a directory. */
typedef struct cli_all_args {
    const char *url, *dir, *token;
    bool insecure, replace_tables, keep_deleted;
    int workers;                       /* 0 = the library's default */
    int64_t summary_ms, give_up_ms;    /* --stats-interval, --give-up-after (0 = never) */
    const volatile sig_atomic_t *stop; /* set by SIGINT / SIGTERM */
} cli_all_args;
int verso_cli_replicate_all(const cli_all_args *a);

#endif
