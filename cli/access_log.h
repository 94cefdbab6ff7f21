/* access_log.h - verso serve --access-log FILE (JSON lines, append mode). */
#ifndef VERSO_CLI_ACCESS_LOG_H
#define VERSO_CLI_ACCESS_LOG_H

#include <stdio.h>

#include "verso/rest.h"

/* Opens path for appending; NULL (reported) on failure. */
FILE *cli_access_log_open(const char *path);

/*
 * verso_rest_options.on_access, arg the FILE (NULL: only the debug line):
 * {"time":"2026-01-31T12:00:00.123Z","method":"GET","path":"/items","status":200,
 *  "bytes":512,"duration":0.000412,"remote":"127.0.0.1","role":"read"}
 * The query string and the token are never written.
 */
void cli_access_log_write(const verso_rest_access *a, void *arg);

#endif
