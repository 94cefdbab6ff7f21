/* The verso command: finds the sub-command in a table and runs it. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "verso/verso.h"

typedef struct command {
    const char *name;
    verso_cli_fn fn;
    const char *summary;
} command;

static const command commands[] = {
    {.name = "track", .fn = verso_cli_track, .summary = "put a plain SQLite table under tracking"},
    {.name = "changes", .fn = verso_cli_changes, .summary = "print changes since a version"},
    {.name = "dump", .fn = verso_cli_dump, .summary = "write tables as a JSON fixture"},
    {.name = "load", .fn = verso_cli_load, .summary = "load a JSON fixture"},
    {.name = "info", .fn = verso_cli_info, .summary = "identity, head, horizon and tables"},
    {.name = "prune", .fn = verso_cli_prune, .summary = "delete old tombstones, move the horizon"},
    {.name = "serve", .fn = verso_cli_serve, .summary = "serve a database over REST/JSON"},
    {.name = "replicate", .fn = verso_cli_replicate, .summary = "follow a master in real time"},
    {.name = "pull", .fn = verso_cli_pull, .summary = "pull a master's changes once"},
    {.name = "publish", .fn = verso_cli_publish, .summary = "append changes to a NATS stream"},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: verso <command> [arguments]\n"
                 "       verso help <command> | --help | --version\n\n");
    if (out == stdout)
        fprintf(out, "Versions the rows of SQLite tables (a version per write, a tombstone per\n"
                     "delete), serves them over REST/JSON, and replicates them from a master\n"
                     "to slaves.\n\n");
    fprintf(out, "commands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\nRun 'verso <command> --help' for a command's arguments.\n");
    if (out == stdout) /* --help; a usage error stays short */
        fprintf(out,
                "\nexamples:\n  verso track shop.db items\n  verso serve shop.db --port 8080\n"
                "  verso replicate http://127.0.0.1:8080 replica.db\n\n%s",
                verso_cli_exit_help());
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* "verso help CMD" is "verso CMD --help". */
static int help(int argc, char **argv)
{
    if (argc < 3) {
        usage(stdout);
        return 0;
    }
    const command *c = find_command(argv[2]);
    if (!c) {
        fprintf(stderr, "verso help: unknown command '%s'\n", argv[2]);
        return 2;
    }
    char *sub[] = {argv[2], "--help", NULL};
    return c->fn(2, sub);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0)
        return help(1, argv);
    if (strcmp(name, "help") == 0)
        return help(argc, argv);
    if (strcmp(name, "--version") == 0) {
        printf("verso %s\n", VERSO_VERSION_STRING);
        return 0;
    }
    const command *c = find_command(name);
    if (!c) {
        fprintf(stderr, "verso: unknown command '%s'\n", name);
        usage(stderr);
        return 2;
    }
    return c->fn(argc - 1, argv + 1);
}
