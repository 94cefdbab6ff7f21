/* sync/upstream.c - a live slave's view of its master, in the slave's own
 * REST server (verso_slave_mount): an "upstream" object in GET /_status and
 * verso_upstream_* lines in GET /_metrics. Read through
 * verso_slave_state_get() (or a NATS follower's), so any thread may ask. */
#include <string.h>

#include "sync/internal.h"

void verso__sync_copy_name(char *dst, size_t cap, const char *name)
{
    size_t n = strlen(name);

    if (n >= cap)
        for (n = cap - 1; n && ((unsigned char)name[n] & 0xc0) == 0x80; n--)
            ;
    memcpy(dst, name, n);
    dst[n] = 0;
}

static int status_strings(verso_buf *out, const verso__upstream *up, const verso_slave_state *st)
{
    int rc = verso_buf_puts(out, "\"upstream\":{\"name\":");

    if (rc == 0)
        rc = verso_json_string(out, up->name, strlen(up->name));
    if (rc == 0)
        rc = verso_buf_printf(out, ",\"link\":\"%s\",\"master\":\"%s\",\"last_error\":",
                              verso_slave_link_name(st->link), st->master);
    if (rc == 0)
        rc = verso_json_string(out, st->last_error, strlen(st->last_error));
    return rc;
}

static int status_json(verso_buf *out, void *arg)
{
    verso__upstream *up = arg;
    verso_slave_state st;
    size_t mark = out->len;
    int rc = up->status_json ? up->status_json(out, up->status_arg) : 0;

    up->state(&st, up->self);
    if (rc == 0 && out->len > mark)
        rc = verso_buf_puts(out, ",");
    if (rc == 0)
        rc = status_strings(out, up, &st);
    if (rc == 0)
        rc = verso_buf_printf(
            out,
            ",\"connected\":%s,\"cursor\":%lld,\"master_head\":%lld,\"lag_versions\":%lld,"
            "\"lag_seconds\":%.3f,\"reconnects\":%lld,\"resyncs\":%lld,\"attempts\":%lld,"
            "\"applied_rows\":%lld}",
            st.connected ? "true" : "false", (long long)st.cursor, (long long)st.master_head,
            (long long)st.lag_versions, st.lag_ms / 1000.0, (long long)st.reconnects,
            (long long)st.resyncs, (long long)st.attempts, (long long)st.applied_rows);
    return rc;
}

typedef struct upstream_metric {
    const char *name; /* after "verso_upstream_" */
    const char *type;
    const char *help;
} upstream_metric;

static const upstream_metric k_metrics[] = {
    {"connected", "gauge", "1 when the link to the master is live (subscribed), else 0."},
    {"cursor", "gauge", "Last master version committed on this slave."},
    {"master_head", "gauge", "The master's head version as last seen."},
    {"lag_versions", "gauge", "Master versions not yet committed here."},
    {"lag_seconds", "gauge", "How long this slave has been behind its master; 0 when caught up."},
    {"reconnects_total", "counter", "Connections to the master made after the first."},
    {"resyncs_total", "counter", "Full resynchronisations from the master."},
    {"connect_attempts_total", "counter", "Connection attempts to the master."},
    {"applied_rows_total", "counter", "Changes applied from the master."},
    {"commits_total", "counter", "Slave transactions committed."},
};

static int metrics_text(verso_buf *out, void *arg)
{
    verso__upstream *up = arg;
    verso_slave_state st;
    int rc = up->metrics_text ? up->metrics_text(out, up->metrics_arg) : 0;

    up->state(&st, up->self);
    const double v[] = {st.connected,
                        (double)st.cursor,
                        (double)st.master_head,
                        (double)st.lag_versions,
                        st.lag_ms / 1000.0,
                        (double)st.reconnects,
                        (double)st.resyncs,
                        (double)st.attempts,
                        (double)st.applied_rows,
                        (double)st.commits};
    for (size_t i = 0; rc == 0 && i < sizeof(k_metrics) / sizeof(k_metrics[0]); i++)
        rc = verso_buf_printf(out,
                              "# HELP verso_upstream_%s %s\n# TYPE verso_upstream_%s %s\n"
                              "verso_upstream_%s %.15g\n",
                              k_metrics[i].name, k_metrics[i].help, k_metrics[i].name,
                              k_metrics[i].type, k_metrics[i].name, v[i]);
    return rc;
}

int verso__upstream_mount(verso__upstream *up, verso_rest_options *ro)
{
    if (!ro || up->mounted)
        return VERSO_EINVAL;
    up->status_json = ro->status_json;
    up->status_arg = ro->status_arg;
    up->metrics_text = ro->metrics_text;
    up->metrics_arg = ro->metrics_arg;
    up->mounted = true;
    ro->status_json = status_json;
    ro->status_arg = up;
    ro->metrics_text = metrics_text;
    ro->metrics_arg = up;
    return 0;
}

static int slave_state(verso_slave_state *out, void *self)
{
    return verso_slave_state_get(out, self);
}

int verso_slave_mount(verso_slave *s, verso_rest_options *ro)
{
    verso__upstream *up;

    if (!s)
        return VERSO_EINVAL;
    up = verso__slave_upstream(s);
    up->state = slave_state;
    up->self = s;
    up->name = verso__slave_name(s);
    return verso__upstream_mount(up, ro);
}
