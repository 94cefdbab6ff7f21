/* cli.h - the verso command: one function per sub-command, dispatched by table in main.c. */
#ifndef VERSO_CLI_H
#define VERSO_CLI_H

/*
 * A sub-command. argv[0] is the sub-command name; returns the process exit
 * status (0 success, 1 failure, 2 usage error). Errors go to stderr in one
 * line: "verso <cmd>: <message>".
 */
typedef int (*verso_cli_fn)(int argc, char **argv);

/* Database commands (cmd_orm.c). */
int verso_cli_track(int argc, char **argv);
int verso_cli_changes(int argc, char **argv);
int verso_cli_dump(int argc, char **argv);
int verso_cli_load(int argc, char **argv);
int verso_cli_info(int argc, char **argv);
/* Tombstone pruning (cmd_prune.c). */
int verso_cli_prune(int argc, char **argv);

/* REST server (cmd_serve.c). */
int verso_cli_serve(int argc, char **argv);

/* Replication (cmd_sync.c). */
int verso_cli_replicate(int argc, char **argv);
int verso_cli_pull(int argc, char **argv);

#endif
