/*
 * rest/dirmetrics.c - GET /_metrics of a dir server, after the server's own
 * request series: the open databases and what opened and closed them, the
 * events channel, then per-database series labelled database="<name>" for
 * each open database (its head, requests, rows, live slaves and their lag).
 * A closed database has no series: scraping costs no open.
 *
 * Each family is written whole (HELP, TYPE, then every sample), as the text
 * format wants; database names need no escaping (their rule), slave names
 * do (a slave chooses its own).
 */
#include <stdio.h>
#include <string.h>

#include "rest/dirint.h"

#ifdef VERSO_HAVE_SYNC
#include "verso/sync.h"
#endif

static int family(verso_buf *b, const char *name, const char *type, const char *help)
{
    return verso_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static int server_lines(verso_buf *b, verso__dir *d)
{
    verso__direvents_stats st;
    int rc;

    verso__direvents_stats_get(&st, d);
    rc = family(b, "verso_databases_open", "gauge", "Databases open now.");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_open %zu\n", d->nopen);
    if (rc == 0)
        rc = family(b, "verso_databases_max_open", "gauge",
                    "Databases kept open at most (--max-open).");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_max_open %d\n", d->max_open);
    if (rc == 0)
        rc = family(b, "verso_databases_opened_total", "counter", "Databases opened.");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_opened_total %llu\n",
                              (unsigned long long)d->opens);
    if (rc == 0)
        rc = family(b, "verso_databases_closed_total", "counter",
                    "Databases closed (idle, least recently used at the cap, removed).");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_closed_total %llu\n",
                              (unsigned long long)d->closes);
    if (rc == 0)
        rc = family(b, "verso_databases_refused_total", "counter",
                    "Requests refused (503) because every open database was held.");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_refused_total %llu\n",
                              (unsigned long long)d->refused);
    if (rc == 0)
        rc = family(b, "verso_databases_subscribers", "gauge",
                    "Open events WebSockets (/_databases).");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_subscribers %zu\n", st.subscribers);
    if (rc == 0)
        rc = family(b, "verso_databases_events_sent_total", "counter",
                    "Messages written to events WebSockets.");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_events_sent_total %llu\n",
                              (unsigned long long)st.sent);
    if (rc == 0)
        rc = family(b, "verso_dir_watch_events_total", "counter",
                    "File events on the databases of DIR (one inotify watch).");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_dir_watch_events_total %llu\n",
                              (unsigned long long)st.watch_events);
    if (rc == 0)
        rc = family(b, "verso_databases_head_reads_total", "counter",
                    "Heads read for the events channel by opening a closed database.");
    if (rc == 0)
        rc = verso_buf_printf(b, "verso_databases_head_reads_total %llu\n",
                              (unsigned long long)st.reads);
    return rc;
}

/* One sample of a per-database family, for each open database. */
typedef int (*sample_fn)(verso_buf *b, const char *name, verso__dbinst *in);

static int sample_head(verso_buf *b, const char *name, verso__dbinst *in)
{
    verso_info info;

    if (verso_db_info(&info, in->rest->db) < 0)
        return 0; /* left out: the next scrape has it */
    return verso_buf_printf(b, "%s{database=\"%s\"} %lld\n", name, in->name, (long long)info.head);
}

static int sample_requests(verso_buf *b, const char *name, verso__dbinst *in)
{
    return verso_buf_printf(b, "%s{database=\"%s\"} %llu\n", name, in->name,
                            (unsigned long long)in->rest->metrics.latency_count);
}

static int sample_rows(verso_buf *b, const char *name, verso__dbinst *in)
{
    return verso_buf_printf(b, "%s{database=\"%s\"} %llu\n", name, in->name,
                            (unsigned long long)in->rest->metrics.rows);
}

static int sample_slaves(verso_buf *b, const char *name, verso__dbinst *in)
{
    return verso_buf_printf(b, "%s{database=\"%s\"} %d\n", name, in->name,
                            verso__dirws_followers(in));
}

typedef struct per_db {
    const char *name;
    const char *type;
    const char *help;
    sample_fn fn;
} per_db;

static const per_db k_per_db[] = {
    {"verso_database_head_version", "gauge", "The latest version of an open database.",
     sample_head},
    {"verso_database_requests_total", "counter",
     "HTTP requests answered under /db/<name>/ since the database was opened.", sample_requests},
    {"verso_database_rows_served_total", "counter",
     "Rows served under /db/<name>/ since the database was opened.", sample_rows},
    {"verso_database_slaves", "gauge", "Live slaves subscribed to /db/<name>/_sync.",
     sample_slaves},
};

#ifdef VERSO_HAVE_SYNC

/* A Prometheus label value: \, " and newlines escaped. */
static int label_value(verso_buf *out, const char *v)
{
    int rc = 0;

    for (; rc == 0 && *v; v++) {
        if (*v == '\\' || *v == '"')
            rc = verso_buf_printf(out, "\\%c", *v);
        else if (*v == '\n')
            rc = verso_buf_puts(out, "\\n");
        else
            rc = verso_buf_append(out, v, 1);
    }
    return rc;
}

/* The lag of each live slave of each open database (family k: versions, seconds). */
static int slave_lags(verso_buf *b, verso__dir *d, int k)
{
    static const char *const names[] = {"verso_database_slave_lag_versions",
                                        "verso_database_slave_lag_seconds"};
    int rc = family(b, names[k], "gauge",
                    k ? "How long a slave has been behind; 0 when caught up."
                      : "Versions of the database a slave has not acknowledged.");

    for (verso__dbinst *in = d->open; rc == 0 && in; in = in->next) {
        verso_sync_peer *p = NULL;
        size_t n = 0;
        if (!in->master || verso_sync_master_peers(&p, &n, in->master) < 0)
            continue;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = verso_buf_printf(b, "%s{database=\"%s\",slave=\"", names[k], in->name);
            if (rc == 0)
                rc = label_value(b, p[i].name);
            if (rc == 0 && k == 0)
                rc = verso_buf_printf(b, "\",n=\"%zu\"} %lld\n", i, (long long)p[i].lag_versions);
            else if (rc == 0)
                rc = verso_buf_printf(b, "\",n=\"%zu\"} %.15g\n", i, p[i].lag_ms / 1000.0);
        }
        verso_free(p);
    }
    return rc;
}

#else

static int slave_lags(verso_buf *b, verso__dir *d, int k)
{
    (void)b;
    (void)d;
    (void)k;
    return 0;
}

#endif

int verso__dir_metrics(verso_buf *b, verso__dir *d)
{
    int rc = server_lines(b, d);

    for (size_t f = 0; rc == 0 && f < sizeof(k_per_db) / sizeof(k_per_db[0]); f++) {
        rc = family(b, k_per_db[f].name, k_per_db[f].type, k_per_db[f].help);
        for (verso__dbinst *in = d->open; rc == 0 && in; in = in->next)
            rc = k_per_db[f].fn(b, k_per_db[f].name, in);
    }
    for (int k = 0; rc == 0 && k < 2; k++)
        rc = slave_lags(b, d, k);
    return rc;
}
