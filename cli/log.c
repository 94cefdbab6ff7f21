/* log.c - leveled messages and the terminal's status line (log.h). */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "verso/verso.h"

static struct {
    pthread_mutex_t lock;
    const char *cmd;
    cli_level level;
    bool tty;
    char status[512]; /* the status line on screen ("" none) */
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .cmd = "?", .level = CLI_INFO};

static const char *const k_names[] = {"error", "warn", "info", "debug"};

const char cli_log_usage[] = "  --log-level LEVEL  error, warn, info (default) or debug\n"
                             "  --quiet, -q        errors only (same as --log-level error)\n"
                             "  --verbose, -v      everything (same as --log-level debug)\n";

void cli_log_init(const char *cmd)
{
    g.cmd = cmd;
    g.tty = isatty(STDERR_FILENO) == 1;
}

static int set_level(const char *name)
{
    for (size_t i = 0; i < sizeof(k_names) / sizeof(k_names[0]); i++) {
        if (!strcmp(name, k_names[i])) {
            g.level = (cli_level)i;
            return 1;
        }
    }
    fprintf(stderr, "verso %s: --log-level takes error, warn, info or debug, not '%s'\n", g.cmd,
            name);
    return -1;
}

int cli_log_option(int argc, char **argv, int *i)
{
    const char *o = argv[*i];

    if (!strcmp(o, "--quiet") || !strcmp(o, "-q"))
        return g.level = CLI_ERROR, 1;
    if (!strcmp(o, "--verbose") || !strcmp(o, "-v"))
        return g.level = CLI_DEBUG, 1;
    if (strcmp(o, "--log-level"))
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "verso %s: --log-level needs a value (error, warn, info, debug)\n", g.cmd);
        return -1;
    }
    return set_level(argv[++*i]);
}

bool cli_log_enabled(cli_level level)
{
    return level <= g.level;
}

bool cli_log_tty(void)
{
    return g.tty && g.level >= CLI_INFO;
}

void cli_iso_time(char *out, size_t n, long long unix_ms)
{
    time_t t = (time_t)(unix_ms / 1000);
    struct tm tm;
    char day[24];

    gmtime_r(&t, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", day, (int)(unix_ms % 1000));
}

/* Lock held: clears the status line on screen (it is drawn again after). */
static void status_clear(void)
{
    if (g.status[0])
        fputs("\r\033[K", stderr);
}

static void status_draw(void)
{
    if (g.status[0])
        fputs(g.status, stderr);
    fflush(stderr);
}

static void say(cli_level level, const char *fmt, va_list ap)
{
    char msg[1024], ts[32];

    vsnprintf(msg, sizeof(msg), fmt, ap);
    for (char *p = msg; *p; p++) /* one line per event, whatever the text held */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    pthread_mutex_lock(&g.lock);
    if (g.tty) { /* the status line goes; the next update draws it afresh, below */
        status_clear();
        g.status[0] = '\0';
        fprintf(stderr, "verso %s: %s\n", g.cmd, msg);
        fflush(stderr);
    } else {
        cli_iso_time(ts, sizeof(ts), (long long)verso_now_ms());
        fprintf(stderr, "%s %s verso %s: %s\n", ts, k_names[level], g.cmd, msg);
        fflush(stderr);
    }
    pthread_mutex_unlock(&g.lock);
}

void cli_log(cli_level level, const char *fmt, ...)
{
    va_list ap;

    if (!cli_log_enabled(level))
        return;
    va_start(ap, fmt);
    say(level, fmt, ap);
    va_end(ap);
}

void cli_notice(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    say(CLI_INFO, fmt, ap);
    va_end(ap);
}

void cli_status(const char *fmt, ...)
{
    va_list ap;

    if (!cli_log_tty())
        return;
    pthread_mutex_lock(&g.lock);
    status_clear();
    va_start(ap, fmt);
    vsnprintf(g.status, sizeof(g.status), fmt, ap);
    va_end(ap);
    status_draw();
    pthread_mutex_unlock(&g.lock);
}

void cli_status_end(void)
{
    pthread_mutex_lock(&g.lock);
    if (g.status[0])
        fputc('\n', stderr);
    g.status[0] = '\0';
    fflush(stderr);
    pthread_mutex_unlock(&g.lock);
}
