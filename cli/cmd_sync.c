/* Placeholder until sync/ lands (issue 4): replaced by the sync helper. */
#include <stdio.h>

#include "cli.h"

int verso_cli_replicate(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "verso replicate: not available in this build\n");
    return 1;
}

int verso_cli_pull(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "verso pull: not available in this build\n");
    return 1;
}
