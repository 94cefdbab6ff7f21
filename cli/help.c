/*
 * The end every --help shares. A command's help is, in this order:
 *
 *   usage: verso CMD ARGS
 *   (blank line)
 *   what it does (a paragraph)
 *   (blank line)
 *   [arguments: ...]
 *   options:
 *     --name ARG   what it does
 *   examples: ...
 *   exit status: ...
 *
 * The command prints up to its option lines, then verso_cli_help_end. The
 * man pages and the bash completion are generated from this text at build
 * time (scripts/gen_man.sh), so the layout is what that script reads.
 */
#include <stdio.h>

#include "cli.h"

void verso_cli_help_end(FILE *out, const char *examples)
{
    fprintf(out, "  -h, --help   print this help and exit\n\nexamples:\n%s\n%s", examples,
            verso_cli_exit_help());
}
