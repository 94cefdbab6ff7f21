/* Placeholder until rest/ lands (issue 3): replaced by the REST helper. */
#include <stdio.h>

#include "cli.h"

int verso_cli_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "verso serve: not available in this build\n");
    return 1;
}
