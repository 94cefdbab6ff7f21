/*
 * On-demand replication: GET /_info, then GET /_changes from the slave's
 * cursor in chunks, applied through the same applier as the live slave.
 * A slave transaction is committed only when a chunk ends at its snapshot's
 * head (more == false), so readers never see part of a master transaction.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "sync/internal.h"

typedef struct pull {
    const char *url;
    verso_db *db;
    const verso_sync_client *o;
    const verso__sync_cancel *stop;
    verso__sync_http *http;
    verso__sync_applier *ap;
    verso__blobfetch *blobs;
    verso_buf body;
    verso_buf query;
    char identity[37];
    int64_t head;
    int64_t horizon;
    int64_t start_ms;
    int64_t progress_ms;
    int64_t catchup_from; /* the cursor the rows start from */
    int64_t received;     /* the version the rows read so far reach */
    verso_pull_result res;
    char *why;
    size_t whylen;
} pull;

static int status_error(pull *p, int status, const char *what)
{
    int rc = (status == 401 || status == 403) ? VERSO_EAUTH : VERSO_EPROTO;
    const char *b = p->body.data && p->body.data[0] == '{' ? p->body.data : "";
    int n = (int)strcspn(b, "\r\n"); /* a JSON error on one line; never an HTML page */

    verso__sync_why(p->why, p->whylen, "%s: HTTP %d%s%.*s", what, status, n ? " " : "",
                    n > 200 ? 200 : n, b);
    return rc;
}

static int get(pull *p, int *status, const char *path, const char *what)
{
    int rc = verso__sync_http_get(&p->body, status, p->http, path, p->stop);
    const char *cause = verso__sync_http_cause(p->http);

    if (rc < 0)
        verso__sync_why(p->why, p->whylen, "%s: %s", what,
                        rc == VERSO_ENET && cause[0] ? cause : verso_strerror(rc));
    return rc;
}

static int parse_body(verso_json **doc, pull *p, const char *what)
{
    char jwhy[160];
    int rc =
        verso_json_parse(doc, p->body.data ? p->body.data : "", p->body.len, 0, jwhy, sizeof(jwhy));

    if (rc < 0) {
        verso__sync_why(p->why, p->whylen, "%s: bad JSON: %s", what, jwhy);
        return VERSO_EPROTO;
    }
    return 0;
}

static bool wanted(const pull *p, const char *name)
{
    if (!p->o->tables)
        return true;
    for (size_t i = 0; i < p->o->ntables; i++) {
        if (strcmp(p->o->tables[i], name) == 0)
            return true;
    }
    return false;
}

/* Keeps only the requested tables; every requested table must exist. */
static int filter_schema(pull *p, verso__sync_schema *s)
{
    size_t kept = 0;

    for (size_t i = 0; i < s->ntables; i++) {
        if (wanted(p, s->tables[i].name)) {
            verso__sync_schema_table t = s->tables[kept];
            s->tables[kept++] = s->tables[i];
            s->tables[i] = t;
        }
    }
    for (size_t i = 0; p->o->tables && i < p->o->ntables; i++) {
        bool found = false;
        for (size_t j = 0; j < kept; j++)
            found = found || strcmp(s->tables[j].name, p->o->tables[i]) == 0;
        if (!found) {
            verso__sync_why(p->why, p->whylen, "the master has no table %s", p->o->tables[i]);
            return VERSO_ENOTFOUND;
        }
    }
    for (size_t i = kept; i < s->ntables; i++)
        verso__sync_schema_table_free(&s->tables[i]);
    s->ntables = kept;
    return 0;
}

static int read_info(pull *p)
{
    verso_json *doc = NULL;
    verso__sync_schema schema = {0};
    const cJSON *root;
    const char *id;
    int status = 0, rc;

    if ((rc = get(p, &status, "/_info", "GET /_info")) < 0)
        return rc;
    if (status != 200)
        return status_error(p, status, "GET /_info");
    if ((rc = parse_body(&doc, p, "GET /_info")) < 0)
        return rc;
    root = verso_json_root(doc);
    id = verso__sync_json_get_str(root, "identity");
    if (!id || strlen(id) != 36 || verso__sync_json_get_i64(&p->head, root, "head") < 0 ||
        verso__sync_json_get_i64(&p->horizon, root, "horizon") < 0) {
        verso__sync_why(p->why, p->whylen, "GET /_info: no identity, head or horizon");
        rc = VERSO_EPROTO;
        goto done;
    }
    memcpy(p->identity, id, 37);
    if ((rc = verso__sync_schema_parse(&schema, cJSON_GetObjectItemCaseSensitive(root, "tables"),
                                       p->why, p->whylen)) < 0)
        goto done;
    if ((rc = filter_schema(p, &schema)) < 0)
        goto done;
    rc = verso__sync_applier_set_schema(p->ap, &schema);
done:
    verso__sync_schema_free(&schema);
    verso_json_free(doc);
    return rc;
}

/* The query after since=N: "&limit=..&tables=..". */
static int changes_suffix(pull *p)
{
    int chunk = p->o->chunk > 0 ? p->o->chunk : 10000;
    int rc;

    verso_buf_clear(&p->query);
    rc = verso_buf_printf(&p->query, "&limit=%d", chunk);
    if (rc == 0 && p->o->tables && p->o->ntables > 0) {
        verso_buf names = VERSO_BUF_INIT;
        for (size_t i = 0; rc == 0 && i < p->o->ntables; i++)
            rc = verso_buf_printf(&names, "%s%s", i ? "," : "", p->o->tables[i]);
        if (rc == 0)
            rc = verso_buf_puts(&p->query, "&");
        if (rc == 0)
            rc = verso__sync_query_append(&p->query, "tables", names.data);
        verso_buf_free(&names);
    }
    return rc;
}

static void progress(pull *p, int64_t cursor, bool last)
{
    int64_t now = verso__sync_mono_ms();
    verso_sync_progress pr;

    if (!p->o->on_progress || (!last && now - p->progress_ms < 200))
        return;
    p->progress_ms = now;
    memset(&pr, 0, sizeof(pr));
    pr.rows = verso__sync_applier_rows(p->ap);
    pr.cursor = cursor;
    pr.master_head = p->head;
    pr.elapsed_ms = now - p->start_ms;
    pr.phase = VERSO_PHASE_CATCHUP;
    pr.snapshot_rows = p->res.snapshot_rows;
    pr.catchup_from = p->catchup_from;
    pr.catchup_target = p->head;
    pr.received = p->received > cursor ? p->received : cursor;
    p->o->on_progress(&pr, p->o->progress_arg);
}

/*
 * The answer's cursor and more, after checking it belongs to the master
 * of /_info and continues from since, the cursor asked for.
 */
static int check_answer(pull *p, const cJSON *root, int64_t since, int64_t *cursor, bool *more)
{
    const char *id = verso__sync_json_get_str(root, "identity");
    int64_t from, head;

    if (!id || strcmp(id, p->identity) != 0)
        return VERSO_EIDENTITY;
    if (verso__sync_json_get_i64(&from, root, "since") < 0 || from != since) {
        verso__sync_why(p->why, p->whylen, "GET /_changes: answer not continuing from since=%lld",
                        (long long)since);
        return VERSO_EPROTO;
    }
    if (verso__sync_json_get_i64(cursor, root, "cursor") < 0 ||
        verso__sync_json_get_i64(&head, root, "head") < 0 || *cursor < since || *cursor > head) {
        verso__sync_why(p->why, p->whylen, "GET /_changes: bad cursor");
        return VERSO_EPROTO;
    }
    *more = verso__sync_json_get_bool(root, "more");
    return 0;
}

/*
 * Applies an answer to GET /_changes?since=*since (doc parsed, else the
 * body in p->body; doc is taken over): 1 = continue, 0 = caught up,
 * VERSO_EHORIZON = resync.
 */
static int apply_answer(pull *p, verso_json *doc, int status, int64_t *since, bool *reset,
                        int64_t *stored)
{
    const cJSON *root;
    int64_t cursor;
    int rc;
    bool more;

    if (status != 200 || !doc) {
        verso_json_free(doc);
        doc = NULL;
        if (status == 410)
            return VERSO_EHORIZON;
        if (status != 200)
            return status_error(p, status, "GET /_changes");
        if ((rc = parse_body(&doc, p, "GET /_changes")) < 0)
            return rc;
    }
    root = verso_json_root(doc);
    if ((rc = check_answer(p, root, *since, &cursor, &more)) < 0) {
        verso_json_free(doc);
        return rc;
    }
    rc = verso__sync_applier_entries(p->ap, doc, cJSON_GetObjectItemCaseSensitive(root, "changes"),
                                     *reset, *since, cursor);
    if (rc < 0) {
        verso__sync_why(p->why, p->whylen, "apply: %s", verso__sync_applier_errmsg(p->ap));
        return rc;
    }
    *since = p->received = cursor;
    if (!more) {
        if ((rc = verso__sync_applier_commit(p->ap, p->identity, cursor)) < 0) {
            verso__sync_why(p->why, p->whylen, "commit: %s", verso__sync_applier_errmsg(p->ap));
            return rc;
        }
        p->res.resynced = p->res.resynced || *reset;
        *reset = false;
        *stored = cursor;
    }
    progress(p, *stored, false);
    return (more || cursor < p->head) ? 1 : 0;
}

/* One GET /_changes on this thread, applied. */
static int fetch_apply(pull *p, int64_t *since, bool *reset, int64_t *stored)
{
    verso_buf path = VERSO_BUF_INIT;
    int status = 0;
    int rc = verso_buf_printf(&path, "/_changes?since=%lld%s", (long long)*since, p->query.data);

    if (rc == 0)
        rc = get(p, &status, path.data, "GET /_changes");
    verso_buf_free(&path);
    return rc < 0 ? rc : apply_answer(p, NULL, status, since, reset, stored);
}

/*
 * Reads and applies pages until caught up, the next page being fetched by
 * a read-ahead thread while this one applies; continues on this thread if
 * the read-ahead stops early.
 */
static int stream(pull *p, int64_t *since, bool *reset, int64_t *stored)
{
    verso__sync_fetch *f = NULL;
    verso_json *doc = NULL;
    int rc, status = 0;

    if ((rc = changes_suffix(p)) < 0)
        return rc;
    if (verso__sync_fetch_start(&f, p->http, p->query.data, *since, p->head) == 0) {
        do {
            if ((rc = verso__sync_fetch_next(&p->body, &doc, &status, f, p->stop)) == 0)
                rc = apply_answer(p, doc, status, since, reset, stored);
            else if (rc != VERSO_ESTATE)
                verso__sync_why(p->why, p->whylen, "GET /_changes: %s", verso_strerror(rc));
        } while (rc > 0);
        verso__sync_fetch_stop(f);
        if (rc != VERSO_ESTATE)
            return rc;
    }
    while ((rc = fetch_apply(p, since, reset, stored)) > 0) {
    }
    return rc;
}

/*
 * A database with nothing of its own: try the master's file snapshot first
 * (much faster than rows for a large table). Any failure leaves db
 * untouched and the rows are then read as usual.
 */
static void bootstrap(pull *p, int64_t *since, int64_t *stored, bool *reset)
{
    int64_t v = 0;
    char why[200] = "";

    if (verso__sync_snapshot_fetch(&v, p->db, p->url, p->o, p->stop, why, sizeof(why)) != 1)
        return;
    *since = *stored = v;
    *reset = false;
    p->res.snapshot = true;
    p->res.snapshot_rows = verso__sync_count_rows(p->db);
    if (p->o->on_apply) /* as for a live slave: nothing listed, reload everything */
        p->o->on_apply(NULL, 0, v, true, p->o->apply_arg);
}

/* Failures a fresh look at the master can cure: pruned, recreated, new table, a long
 * blob's row changed between the read and the fetch (HTTP 412). */
static bool retryable(int rc)
{
    return rc == VERSO_EHORIZON || rc == VERSO_EIDENTITY || rc == VERSO_ENOTFOUND ||
           rc == VERSO_ECONFLICT;
}

static int run(pull *p)
{
    verso_cursor c;
    int64_t since, stored;
    bool reset;
    int rc;

    if ((rc = read_info(p)) < 0)
        return rc;
    if ((rc = verso_db_cursor(&c, p->db)) < 0) {
        verso__sync_why(p->why, p->whylen, "cursor: %s", verso_db_errmsg(p->db));
        return rc;
    }
    reset = verso__sync_need_reset(&c, p->identity, p->head, p->horizon);
    since = reset ? 0 : c.version;
    stored = c.version;
    if (!c.master[0] && c.version == 0 && !p->o->tables && verso__sync_snapshot_fits(p->db))
        bootstrap(p, &since, &stored, &reset);
    p->res.master_head = p->head;
    memcpy(p->res.master, p->identity, sizeof(p->res.master));
    p->catchup_from = since;
    progress(p, stored, true); /* the catch-up starts */
    for (int attempt = 0;; attempt++) {
        rc = stream(p, &since, &reset, &stored);
        if (!retryable(rc) || attempt == 3)
            break;
        verso__sync_applier_abort(p->ap); /* back to the stored cursor */
        if ((rc = read_info(p)) < 0)
            return rc;
        if (verso_db_cursor(&c, p->db) < 0 ||
            verso__sync_need_reset(&c, p->identity, p->head, p->horizon))
            reset = true; /* pruned or recreated while we read: start over from scratch */
        since = reset ? 0 : stored;
    }
    if (rc == VERSO_EHORIZON)
        verso__sync_why(p->why, p->whylen, "the master refuses a full read (horizon)");
    else if (rc == VERSO_EIDENTITY)
        verso__sync_why(p->why, p->whylen, "the master's identity changed during the pull");
    else if (rc == VERSO_ECONFLICT)
        verso__sync_why(p->why, p->whylen,
                        "a row with a long blob changed on the master between each read and its "
                        "fetch, 4 times: giving up (pull again)");
    p->res.cursor = stored;
    p->res.rows = verso__sync_applier_rows(p->ap);
    progress(p, stored, true);
    return rc;
}

/* The stored cursor still matches the data, so the next pull resumes there. */
static void full_disk(char *why, size_t whylen)
{
    char detail[256];

    snprintf(detail, sizeof(detail), "%s", why && why[0] ? why : "no detail");
    verso__sync_why(why, whylen,
                    "the disk of the slave's database is full (%s): nothing of the open "
                    "transaction was kept; free space and pull again",
                    detail);
}

/* Long blobs come with GETs of their own, beside the feed's read-ahead. */
static int blobs_new(pull *p, const verso__sync_url *u)
{
    verso__sync_blob_source src;
    int rc = verso__blobfetch_new(&p->blobs, u, p->o->token, p->o->insecure, p->o->timeout_ms,
                                  verso_db_path(p->db), p->stop);

    if (rc < 0)
        return rc;
    verso__blobfetch_source(&src, p->blobs);
    verso__sync_applier_set_blobs(p->ap, &src);
    return 0;
}

int verso_sync_pull(verso_pull_result *out, verso_db *db, const char *url,
                    const verso_sync_client *opts, char *why, size_t whylen)
{
    static const verso_sync_client defaults = VERSO_SYNC_CLIENT_INIT;
    const verso_sync_client *o = opts ? opts : &defaults;
    const verso__sync_cancel cancel = {o->should_stop, o->stop_arg, NULL};
    pull p = {.url = url, .db = db, .o = o, .stop = &cancel, .why = why, .whylen = whylen};
    verso__sync_url u;
    int rc;

    verso__sync_why(why, whylen, "%s", "");
    if (o->version > VERSO_OPTIONS_VERSION) {
        verso__sync_why(why, whylen, "options of a newer verso (version field)");
        return VERSO_EINVAL;
    }
    if (!db || verso__sync_url_parse(&u, url) < 0) {
        verso__sync_why(why, whylen, "bad URL %s", url ? url : "(null)");
        return VERSO_EINVAL;
    }
    p.start_ms = p.progress_ms = verso__sync_mono_ms();
    if ((rc = verso__sync_http_new(&p.http, &u, p.o->token, p.o->insecure, p.o->timeout_ms)) < 0)
        goto done;
    if ((rc = verso__sync_applier_new(&p.ap, db, p.o)) < 0 || (rc = blobs_new(&p, &u)) < 0)
        goto done;
    if ((rc = run(&p)) == VERSO_EFULL)
        full_disk(why, whylen);
done:
    verso__sync_applier_free(p.ap);
    verso__blobfetch_free(p.blobs);
    verso__sync_http_free(p.http);
    verso_buf_free(&p.body);
    verso_buf_free(&p.query);
    if (out)
        *out = p.res;
    return rc;
}
