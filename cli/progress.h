/*
 * progress.h - what pull and replicate say while they work: on a terminal
 * one status line with the phase (snapshot download, row catch-up, live),
 * elsewhere one timestamped line per event and a periodic summary (log.h).
 */
#ifndef VERSO_CLI_PROGRESS_H
#define VERSO_CLI_PROGRESS_H

#include <stdint.h>

#include "verso/sync.h"

/* A counter's samples over the last seconds, for a rate that is not since the start. */
#define CLI_RATE_SAMPLES 64
typedef struct cli_rate {
    int64_t t[CLI_RATE_SAMPLES]; /* ms, monotonic */
    int64_t v[CLI_RATE_SAMPLES];
    int n, next;
} cli_rate;

/* Records value at now_ms (samples closer than 100 ms to the last are merged). */
void cli_rate_add(cli_rate *r, int64_t now_ms, int64_t value);
/* Per second over the samples of the last window_ms; 0 with fewer than two. */
double cli_rate_get(const cli_rate *r, int64_t now_ms, int64_t window_ms);

/* "12.3 MiB" */
void cli_fmt_bytes(char *out, size_t n, int64_t bytes);
/* "1h02m", "3m05s", "12s"; "?" when unknown (seconds < 0). */
void cli_fmt_eta(char *out, size_t n, double seconds);

/* ---- pull: verso_sync_client.on_progress with a cli_pull as arg ---- */
typedef struct cli_pull {
    verso_sync_phase phase; /* the last one said (-1 before any) */
    bool started;
    cli_rate bytes, versions, rows;
    int64_t summary_ms; /* period of the summary lines off a terminal; 0 = none */
    int64_t next_summary_ms;
    int64_t snapshot_total;
} cli_pull;

void cli_pull_init(cli_pull *p, int64_t summary_ms);
void cli_pull_progress(const verso_sync_progress *pr, void *arg);

/* ---- replicate ---- */
typedef struct cli_replicate {
    verso_slave *slave;
    /* the state read instead of slave's when set (verso replicate nats://: the follower's) */
    int (*state)(verso_slave_state *out, void *self);
    void *self;
    cli_rate rows, versions, bytes;
    int64_t summary_ms, next_summary_ms, last_rows;
    int64_t snapshot_rows; /* brought by the last snapshot (the slave's thread) */
    verso_slave_link link; /* the last one said (debug) */
    bool said_link;
} cli_replicate;

void cli_replicate_init(cli_replicate *r, int64_t summary_ms);
/* verso_slave_options.on_event with a cli_replicate as arg (the slave's thread). */
void cli_replicate_event(const verso_slave_event *e, void *arg);
/* Every 200 ms or so on the main thread: the status line, link changes, the summary. */
void cli_replicate_tick(cli_replicate *r);
/* At the end: the status line stays, a last summary. */
void cli_replicate_end(cli_replicate *r);

#endif
