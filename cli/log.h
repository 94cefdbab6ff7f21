/*
 * log.h - what the long-running commands (serve, replicate, pull) print on
 * stderr, and how much of it.
 *
 * On a terminal: messages as "verso CMD: text", and one status line
 * (cli_status) redrawn in place under them. Elsewhere (a pipe, a file, a
 * journal): one line per event, "2026-01-31T12:00:00.000Z LEVEL verso CMD:
 * text", UTC, no carriage return, and no status line.
 *
 * --log-level error|warn|info|debug (default info), --quiet (= error),
 * --verbose (= debug). Errors always print.
 */
#ifndef VERSO_CLI_LOG_H
#define VERSO_CLI_LOG_H

#include <stdbool.h>
#include <stddef.h>

typedef enum cli_level { CLI_ERROR, CLI_WARN, CLI_INFO, CLI_DEBUG } cli_level;

/* Starts logging for the command cmd ("replicate"); decides terminal or not. */
void cli_log_init(const char *cmd);

/*
 * Takes argv[*i] when it is a logging option (moving *i past its value):
 * 1 taken, 0 not one of ours, -1 bad value (reported on stderr).
 */
int cli_log_option(int argc, char **argv, int *i);

/* The option lines for a command's --help. */
extern const char cli_log_usage[];

/* Prints one message if level is enabled. Thread-safe. */
void cli_log(cli_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool cli_log_enabled(cli_level level);

/* An info message printed at every level, --quiet included: what a script
 * reads (the URL a server listens on). Thread-safe. */
void cli_notice(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* True when a status line is shown: stderr is a terminal and the level is info or more. */
bool cli_log_tty(void);

/* Replaces the status line (terminal only; else nothing). Thread-safe. */
void cli_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ends the status line: it stays on screen, later output goes below it. */
void cli_status_end(void);

/* Writes "2026-01-31T12:00:00.123Z" (UTC) for unix_ms into out (at least 32 bytes). */
void cli_iso_time(char *out, size_t n, long long unix_ms);

#endif
