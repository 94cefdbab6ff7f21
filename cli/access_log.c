/* access_log.c - verso serve --access-log FILE: one JSON object per answered request. */
#include "access_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "verso/orm.h"

FILE *cli_access_log_open(const char *path)
{
    FILE *f = fopen(path, "a"); /* append: rotation by rename + restart, or copytruncate */

    if (!f)
        cli_log(CLI_ERROR, "cannot open the access log %s: %s", path, strerror(errno));
    return f;
}

/* "key":"escaped",  (NULL: "key":null,) */
static int member(verso_buf *b, const char *key, const char *value)
{
    int rc = verso_buf_printf(b, ",\"%s\":", key);

    if (rc == 0)
        rc = value ? verso_json_string(b, value, strlen(value)) : verso_buf_puts(b, "null");
    return rc;
}

static int entry_json(verso_buf *b, const verso_rest_access *a)
{
    char ts[32];
    int rc;

    cli_iso_time(ts, sizeof(ts), (long long)a->time_ms);
    rc = verso_buf_printf(b, "{\"time\":\"%s\"", ts);
    if (rc == 0)
        rc = member(b, "method", a->method);
    if (rc == 0)
        rc = member(b, "path", a->path);
    if (rc == 0)
        rc = verso_buf_printf(b, ",\"status\":%d,\"bytes\":%zu,\"duration\":%.6f", a->status,
                              a->bytes, a->duration_s);
    if (rc == 0)
        rc = member(b, "remote", a->remote);
    if (rc == 0)
        rc = member(b, "role", a->role);
    return rc == 0 ? verso_buf_puts(b, "}\n") : rc;
}

void cli_access_log_write(const verso_rest_access *a, void *arg)
{
    FILE *f = arg;
    verso_buf b = VERSO_BUF_INIT;

    if (entry_json(&b, a) == 0 && f) {
        fwrite(b.data, 1, b.len, f);
        fflush(f);
    }
    cli_log(CLI_DEBUG, "%s %s %d %zu bytes %.3f s %s", a->method, a->path, a->status, a->bytes,
            a->duration_s, a->remote);
    verso_buf_free(&b);
}
