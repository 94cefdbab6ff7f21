/* progress.c - the phase of a pull or a live slave, as a status line or as events (progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define RATE_WINDOW_MS 5000 /* "rate over the last seconds" */

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- rates and units ---- */

void cli_rate_add(cli_rate *r, int64_t now_ms, int64_t value)
{
    int last = (r->next + CLI_RATE_SAMPLES - 1) % CLI_RATE_SAMPLES;

    if (r->n > 1 && now_ms - r->t[last] < 100) {
        r->v[last] = value;
        return;
    }
    r->t[r->next] = now_ms;
    r->v[r->next] = value;
    r->next = (r->next + 1) % CLI_RATE_SAMPLES;
    if (r->n < CLI_RATE_SAMPLES)
        r->n++;
}

double cli_rate_get(const cli_rate *r, int64_t now_ms, int64_t window_ms)
{
    int last = (r->next + CLI_RATE_SAMPLES - 1) % CLI_RATE_SAMPLES, first = last;

    for (int k = 1; k < r->n; k++) {
        int i = (last + CLI_RATE_SAMPLES - k) % CLI_RATE_SAMPLES;
        if (now_ms - r->t[i] > window_ms)
            break;
        first = i;
    }
    if (first == last || r->t[last] <= r->t[first])
        return 0.0;
    return (double)(r->v[last] - r->v[first]) * 1000.0 / (double)(r->t[last] - r->t[first]);
}

void cli_fmt_bytes(char *out, size_t n, int64_t bytes)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;

    while (v >= 1024.0 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024.0;
        u++;
    }
    snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void cli_fmt_eta(char *out, size_t n, double seconds)
{
    long s = (long)(seconds + 0.5);

    if (seconds < 0 || seconds > 1e8)
        snprintf(out, n, "?");
    else if (s >= 3600)
        snprintf(out, n, "%ldh%02ldm", s / 3600, s / 60 % 60);
    else if (s >= 60)
        snprintf(out, n, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, n, "%lds", s);
}

static double eta(int64_t remaining, double rate)
{
    return remaining <= 0 ? 0.0 : rate > 0 ? (double)remaining / rate : -1.0;
}

static int percent(int64_t done, int64_t total)
{
    if (total <= 0)
        return 100;
    return done >= total ? 100 : (int)(done * 100 / total);
}

/* ---- the phases as text ---- */

static void snapshot_text(char *out, size_t n, int64_t bytes, int64_t total, double rate)
{
    char b[32], t[32], r[32], e[32];

    cli_fmt_bytes(b, sizeof(b), bytes);
    cli_fmt_bytes(t, sizeof(t), total);
    cli_fmt_bytes(r, sizeof(r), (int64_t)rate);
    cli_fmt_eta(e, sizeof(e), eta(total - bytes, rate));
    if (total > 0)
        snprintf(out, n, "snapshot %s of %s (%d%%)  %s/s  ETA %s", b, t, percent(bytes, total), r,
                 e);
    else
        snprintf(out, n, "snapshot %s  %s/s", b, r);
}

static void catchup_text(char *out, size_t n, const verso_sync_progress *p, double vrate,
                         double rrate)
{
    char e[32], committed[48] = "";
    int64_t at = p->received > p->cursor ? p->received : p->cursor;
    int64_t done = at - p->catchup_from, total = p->catchup_target - p->catchup_from;

    cli_fmt_eta(e, sizeof(e), eta(p->catchup_target - at, vrate));
    if (at > p->cursor) /* a full read commits at its end */
        snprintf(committed, sizeof(committed), " (committed %lld)", (long long)p->cursor);
    snprintf(out, n,
             "catch-up %lld of %lld versions (%d%%)  %lld rows  %.0f rows/s  at %lld -> %lld%s  "
             "ETA %s",
             (long long)(done > 0 ? done : 0), (long long)(total > 0 ? total : 0),
             percent(done, total), (long long)p->rows, rrate, (long long)at,
             (long long)p->catchup_target, committed, e);
}

/* ---- pull ---- */

void cli_pull_init(cli_pull *p, int64_t summary_ms)
{
    memset(p, 0, sizeof(*p));
    p->summary_ms = summary_ms;
}

static void pull_phase_event(cli_pull *p, const verso_sync_progress *pr)
{
    char b[32];

    if (pr->phase == VERSO_PHASE_SNAPSHOT) {
        cli_fmt_bytes(b, sizeof(b), pr->snapshot_total);
        cli_log(CLI_INFO, "receiving a file snapshot of the master (%s)", b);
        p->snapshot_total = pr->snapshot_total;
        return;
    }
    if (pr->phase != VERSO_PHASE_CATCHUP)
        return;
    if (p->started && pr->snapshot_rows > 0) {
        cli_fmt_bytes(b, sizeof(b), p->snapshot_total);
        cli_log(CLI_INFO, "bootstrapped from a file snapshot: %lld rows (%s), cursor %lld",
                (long long)pr->snapshot_rows, b, (long long)pr->cursor);
    }
    cli_log(CLI_INFO, "catch-up from version %lld to the master's head %lld",
            (long long)pr->catchup_from, (long long)pr->catchup_target);
}

static void pull_summary(cli_pull *p, const verso_sync_progress *pr, int64_t now)
{
    if (cli_log_tty() || p->summary_ms <= 0 || now < p->next_summary_ms)
        return;
    p->next_summary_ms = now + p->summary_ms;
    if (pr->phase == VERSO_PHASE_SNAPSHOT)
        cli_log(CLI_INFO, "summary: snapshot %lld of %lld bytes, %.0f bytes/s",
                (long long)pr->snapshot_bytes, (long long)pr->snapshot_total,
                cli_rate_get(&p->bytes, now, p->summary_ms));
    else
        cli_log(CLI_INFO, "summary: %lld rows, cursor %lld of %lld, %.0f rows/s",
                (long long)pr->rows, (long long)pr->cursor, (long long)pr->catchup_target,
                cli_rate_get(&p->rows, now, p->summary_ms));
}

void cli_pull_progress(const verso_sync_progress *pr, void *arg)
{
    cli_pull *p = arg;
    int64_t now = mono_ms();
    char text[256];

    if (!p->started || pr->phase != p->phase) {
        pull_phase_event(p, pr);
        p->phase = pr->phase;
        p->started = true;
        p->next_summary_ms = now + p->summary_ms;
    }
    cli_rate_add(&p->bytes, now, pr->snapshot_bytes);
    cli_rate_add(&p->versions, now, pr->received > pr->cursor ? pr->received : pr->cursor);
    cli_rate_add(&p->rows, now, pr->rows);
    if (pr->phase == VERSO_PHASE_SNAPSHOT)
        snapshot_text(text, sizeof(text), pr->snapshot_bytes, pr->snapshot_total,
                      cli_rate_get(&p->bytes, now, RATE_WINDOW_MS));
    else
        catchup_text(text, sizeof(text), pr, cli_rate_get(&p->versions, now, RATE_WINDOW_MS),
                     cli_rate_get(&p->rows, now, RATE_WINDOW_MS));
    cli_status("verso pull: %s", text);
    pull_summary(p, pr, now);
}

/* ---- replicate ---- */

void cli_replicate_init(cli_replicate *r, int64_t summary_ms)
{
    memset(r, 0, sizeof(*r));
    r->summary_ms = summary_ms;
    r->next_summary_ms = mono_ms() + summary_ms;
}

void cli_replicate_event(const verso_slave_event *e, void *arg)
{
    cli_replicate *r = arg;

    switch (e->kind) {
    case VERSO_EVENT_CONNECTED:
        cli_log(CLI_INFO, "connected to master %s: cursor %lld, master head %lld", e->detail,
                (long long)e->cursor, (long long)e->master_head);
        break;
    case VERSO_EVENT_BOOTSTRAPPED:
        cli_log(CLI_INFO, "bootstrapped from a file snapshot: %lld rows, cursor %lld",
                (long long)e->rows, (long long)e->cursor);
        r->snapshot_rows = e->rows;
        break;
    case VERSO_EVENT_CAUGHT_UP:
        cli_log(CLI_INFO,
                "caught up: cursor %lld is the master's head (%lld rows from the snapshot, %lld "
                "changes applied)",
                (long long)e->cursor, (long long)r->snapshot_rows, (long long)e->rows);
        break;
    case VERSO_EVENT_RESYNC:
        cli_log(CLI_INFO, "full resynchronisation: %s", e->detail);
        break;
    case VERSO_EVENT_DISCONNECTED:
        cli_log(CLI_WARN, "disconnected: %s; reconnecting", e->detail[0] ? e->detail : "?");
        break;
    }
}

static void replicate_text(char *out, size_t n, cli_replicate *r, const verso_slave_state *st,
                           int64_t now)
{
    verso_sync_progress p = {.rows = st->applied_rows,
                             .cursor = st->cursor,
                             .catchup_from = st->catchup_from,
                             .catchup_target = st->catchup_target,
                             .received = st->received};

    switch (st->phase) {
    case VERSO_PHASE_SNAPSHOT:
        snapshot_text(out, n, st->snapshot_bytes, st->snapshot_total,
                      cli_rate_get(&r->bytes, now, RATE_WINDOW_MS));
        break;
    case VERSO_PHASE_CATCHUP:
        catchup_text(out, n, &p, cli_rate_get(&r->versions, now, RATE_WINDOW_MS),
                     cli_rate_get(&r->rows, now, RATE_WINDOW_MS));
        break;
    case VERSO_PHASE_LIVE:
        snprintf(out, n, "live  cursor %lld  %.0f rows/s (last 5 s)  lag %lld versions, %.1f s",
                 (long long)st->cursor, cli_rate_get(&r->rows, now, RATE_WINDOW_MS),
                 (long long)st->lag_versions, (double)st->lag_ms / 1000.0);
        break;
    default:
        snprintf(out, n, "connecting (%s, attempt %lld)  cursor %lld",
                 verso_slave_link_name(st->link), (long long)st->attempts, (long long)st->cursor);
    }
}

static void replicate_summary(cli_replicate *r, const verso_slave_state *st, int64_t now)
{
    double secs = (double)r->summary_ms / 1000.0;

    if (r->summary_ms <= 0 || now < r->next_summary_ms)
        return;
    r->next_summary_ms = now + r->summary_ms;
    if (!cli_log_tty())
        cli_log(CLI_INFO,
                "summary: %s, cursor %lld, master head %lld, lag %lld versions %.1f s, %lld rows "
                "in the last %.0f s (%.1f rows/s), %lld applied, %lld reconnects, %lld resyncs",
                verso_sync_phase_name(st->phase), (long long)st->cursor, (long long)st->master_head,
                (long long)st->lag_versions, (double)st->lag_ms / 1000.0,
                (long long)(st->applied_rows - r->last_rows), secs,
                (double)(st->applied_rows - r->last_rows) / secs, (long long)st->applied_rows,
                (long long)st->reconnects, (long long)st->resyncs);
    r->last_rows = st->applied_rows;
}

static int replicate_state(verso_slave_state *st, cli_replicate *r)
{
    return r->state ? r->state(st, r->self) : verso_slave_state_get(st, r->slave);
}

void cli_replicate_tick(cli_replicate *r)
{
    verso_slave_state st;
    int64_t now = mono_ms();
    char text[256];

    if (replicate_state(&st, r) < 0)
        return;
    if (!r->said_link || st.link != r->link)
        cli_log(CLI_DEBUG, "link: %s (attempt %lld)", verso_slave_link_name(st.link),
                (long long)st.attempts);
    r->said_link = true;
    r->link = st.link;
    cli_rate_add(&r->rows, now, st.applied_rows);
    cli_rate_add(&r->versions, now, st.received > st.cursor ? st.received : st.cursor);
    cli_rate_add(&r->bytes, now, st.snapshot_bytes);
    replicate_text(text, sizeof(text), r, &st, now);
    cli_status("verso replicate: %s", text);
    replicate_summary(r, &st, now);
}

void cli_replicate_end(cli_replicate *r)
{
    verso_slave_state st;

    cli_status_end();
    if (replicate_state(&st, r) < 0)
        return;
    cli_log(CLI_INFO,
            "stopped: cursor %lld, master head %lld, %lld rows applied, %lld from a snapshot, "
            "%lld reconnects, %lld resyncs",
            (long long)st.cursor, (long long)st.master_head, (long long)st.applied_rows,
            (long long)st.snapshot_rows, (long long)st.reconnects, (long long)st.resyncs);
}
