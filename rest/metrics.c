/* rest/metrics.c - request counters and the latency histogram, written as
 * Prometheus text. Updated and read on the service thread only. */
#include <stdio.h>

#include "rest/internal.h"

static const char *const k_route_names[VERSO__NROUTES] = {
    [VERSO__R_NONE] = "none",         [VERSO__R_HEALTH] = "health",
    [VERSO__R_INFO] = "info",         [VERSO__R_STATUS] = "status",
    [VERSO__R_METRICS] = "metrics",   [VERSO__R_CHANGES] = "changes",
    [VERSO__R_BATCH] = "batch",       [VERSO__R_LIST] = "list",
    [VERSO__R_CREATE] = "create",     [VERSO__R_GET] = "get",
    [VERSO__R_UPDATE] = "update",     [VERSO__R_DELETE] = "delete",
    [VERSO__R_WS] = "websocket",      [VERSO__R_PRUNE] = "prune",
    [VERSO__R_BLOB_GET] = "blob_get", [VERSO__R_BLOB_PUT] = "blob_put",
};

/* Counted statuses; the last slot takes any other. */
static const int k_statuses[VERSO__NSTATUS] = {200, 201, 204, 304, 400, 401, 403, 404, 405,
                                               408, 409, 410, 412, 413, 414, 500, 503, 0};

static const double k_buckets[VERSO__NBUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                  0.01,   0.025,   0.05,   0.1,   0.5,    1.0};

void verso__metrics_record(verso__metrics *m, int route, int status, double seconds, int64_t rows)
{
    size_t s = VERSO__NSTATUS - 1, b = 0;

    for (size_t i = 0; i < VERSO__NSTATUS - 1; i++)
        if (k_statuses[i] == status)
            s = i;
    if (route < 0 || route >= VERSO__NROUTES)
        route = VERSO__R_NONE;
    m->count[route][s]++;
    while (b < VERSO__NBUCKETS && seconds > k_buckets[b])
        b++;
    m->hist[b]++;
    m->latency_sum += seconds;
    m->latency_count++;
    m->rows += rows > 0 ? (uint64_t)rows : 0;
}

static int write_counts(verso_buf *b, const verso__metrics *m)
{
    int rc = verso_buf_puts(b, "# HELP verso_http_requests_total HTTP requests answered, by route "
                               "and status.\n# TYPE verso_http_requests_total counter\n");

    for (int r = 0; rc == 0 && r < VERSO__NROUTES; r++)
        for (size_t s = 0; rc == 0 && s < VERSO__NSTATUS; s++) {
            char status[16] = "other";
            if (!m->count[r][s])
                continue;
            if (s < VERSO__NSTATUS - 1)
                snprintf(status, sizeof(status), "%d", k_statuses[s]);
            rc = verso_buf_printf(b, "verso_http_requests_total{route=\"%s\",status=\"%s\"} %llu\n",
                                  k_route_names[r], status, (unsigned long long)m->count[r][s]);
        }
    return rc;
}

static int write_histogram(verso_buf *b, const verso__metrics *m)
{
    uint64_t cum = 0;
    int rc =
        verso_buf_puts(b, "# HELP verso_http_request_seconds Time from a request's first "
                          "byte to its answer.\n# TYPE verso_http_request_seconds histogram\n");

    for (size_t i = 0; rc == 0 && i < VERSO__NBUCKETS; i++) {
        cum += m->hist[i];
        rc = verso_buf_printf(b, "verso_http_request_seconds_bucket{le=\"%g\"} %llu\n",
                              k_buckets[i], (unsigned long long)cum);
    }
    if (rc == 0)
        rc = verso_buf_printf(b,
                              "verso_http_request_seconds_bucket{le=\"+Inf\"} %llu\n"
                              "verso_http_request_seconds_sum %.6f\n"
                              "verso_http_request_seconds_count %llu\n",
                              (unsigned long long)m->latency_count, m->latency_sum,
                              (unsigned long long)m->latency_count);
    return rc;
}

/* One metric family of a single sample: HELP, TYPE, the value. */
static int family(verso_buf *b, const char *name, const char *type, const char *help,
                  unsigned long long v)
{
    return verso_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
                            name, v);
}

int verso__metrics_text(verso_buf *b, const verso__metrics *m)
{
    int rc;

    if ((rc = write_counts(b, m)) < 0 || (rc = write_histogram(b, m)) < 0 ||
        (rc = family(b, "verso_rows_served_total", "counter",
                     "Rows sent in answers (lists, gets, changes).", m->rows)) < 0 ||
        (rc = family(b, "verso_websockets_open", "gauge", "WebSocket connections open now.",
                     m->ws_open)) < 0 ||
        (rc = family(b, "verso_websockets_total", "counter", "WebSocket connections accepted.",
                     m->ws_total)) < 0 ||
        (rc = family(b, "verso_schema_reloads_total", "counter",
                     "Times the server re-read the database schema.", m->schema_reloads)) < 0 ||
        (rc = family(b, "verso_http_requests_reading", "gauge",
                     "Requests whose body is still arriving (answered before a stop).",
                     m->requests_reading)) < 0)
        return rc;
    return verso_buf_printf(b,
                            "# HELP verso_start_time_seconds When the server started (Unix "
                            "time).\n# TYPE verso_start_time_seconds gauge\n"
                            "verso_start_time_seconds %.3f\n",
                            m->started_ms / 1000.0);
}

int verso__metrics_watch(verso_buf *b, const verso__watch *w)
{
    verso__watch_stats st;
    int rc;

    verso__watch_stats_get(&st, w);
    if ((rc = family(b, "verso_commit_watch", "gauge",
                     "1 when commits are seen through file events, 0 when by polling alone.",
                     st.active)) < 0)
        return rc;
    return family(b, "verso_commit_watch_wakeups_total", "counter",
                  "Wake-ups of the server by file events.", st.wakes);
}
