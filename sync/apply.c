/*
 * The slave side of replication: applies the master's change entries
 * through verso_apply_*, one slave transaction per snapshot boundary, and
 * reports what changed to the application's callback after each commit.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "orm/service.h"
#include "sync/internal.h"
#include "sync/scan.h"

/* A change kept for the callback until its transaction commits. */
typedef struct pending {
    verso_sync_change change;
    const char **cols; /* from verso_json_to_values */
    verso_value *vals;
} pending;

struct verso__sync_applier {
    verso_db *db;
    verso_sync_apply_fn on_apply;
    void *apply_arg;
    bool replace_tables; /* the caller's opt-in: replace what a replica's name collides with */
    verso__sync_schema schema;
    bool schema_pending;
    bool open;
    bool reset;
    int64_t rows;      /* committed */
    int64_t txn_rows;  /* in the open transaction */
    verso_json **docs; /* kept until commit when on_apply is set */
    size_t ndocs, capdocs;
    pending *pend;
    size_t npend, cappend;
    verso__sync_blob_source blobs; /* get NULL: none */
    verso__sync_scan scan;         /* the fast path's message (scan.c) */
    const char **scols;            /* its rows' column names and values, as scan.v */
    verso_value *svals;
    size_t capsv;
    char err[256];
};

/* A long blob of a row: the bytes are fetched apart (protocol.md, "blob_fetch"). */
typedef struct fetch {
    const char *column; /* in the row's JSON */
    int64_t n;
} fetch;

int verso__sync_applier_new(verso__sync_applier **out, verso_db *db, const verso_sync_client *opts)
{
    verso__sync_applier *a = verso__calloc(1, sizeof(*a));

    *out = NULL;
    if (!a)
        return VERSO_ENOMEM;
    a->db = db;
    if (opts) {
        a->on_apply = opts->on_apply;
        a->apply_arg = opts->apply_arg;
        a->replace_tables = opts->replace_tables;
    }
    *out = a;
    return 0;
}

static void pending_clear(verso__sync_applier *a)
{
    for (size_t i = 0; i < a->npend; i++) {
        verso_free(a->pend[i].cols);
        verso_free(a->pend[i].vals);
    }
    a->npend = 0;
    for (size_t i = 0; i < a->ndocs; i++)
        verso_json_free(a->docs[i]);
    a->ndocs = 0;
}

void verso__sync_applier_free(verso__sync_applier *a)
{
    if (!a)
        return;
    verso__sync_applier_abort(a);
    pending_clear(a);
    verso__free(a->pend);
    verso__free(a->docs);
    verso__sync_scan_free(&a->scan);
    verso__free(a->scols);
    verso__free(a->svals);
    verso__sync_schema_free(&a->schema);
    verso__free(a);
}

static int apply_schema(verso__sync_applier *a);

int verso__sync_applier_set_schema(verso__sync_applier *a, verso__sync_schema *s)
{
    int rc = 0;

    verso__sync_schema_free(&a->schema);
    a->schema = *s;
    memset(s, 0, sizeof(*s));
    a->schema_pending = true;
    if (a->open && (rc = apply_schema(a)) < 0) /* mid-transaction: rows of it may follow */
        verso__sync_applier_abort(a);
    return rc;
}

void verso__sync_applier_set_blobs(verso__sync_applier *a, const verso__sync_blob_source *src)
{
    memset(&a->blobs, 0, sizeof(a->blobs));
    if (src)
        a->blobs = *src;
}

bool verso__sync_applier_open(const verso__sync_applier *a)
{
    return a->open;
}

int64_t verso__sync_applier_rows(const verso__sync_applier *a)
{
    return a->rows + a->txn_rows;
}

const char *verso__sync_applier_errmsg(const verso__sync_applier *a)
{
    return a->err;
}

static int fail(verso__sync_applier *a, int rc, const char *what)
{
    snprintf(a->err, sizeof(a->err), "%s: %s%s%s", what, verso_strerror(rc),
             verso_db_errmsg(a->db)[0] ? ": " : "", verso_db_errmsg(a->db));
    return rc;
}

static int apply_schema(verso__sync_applier *a)
{
    for (size_t i = 0; i < a->schema.ntables; i++) {
        const verso__sync_schema_table *t = &a->schema.tables[i];
        int rc = a->replace_tables ? verso_apply_replace(a->db, t->name) : 0;
        if (rc == 0)
            rc = verso_apply_table(a->db, t->name, t->columns, t->ncolumns);
        if (rc < 0) { /* the ORM's message names the table and each difference */
            snprintf(a->err, sizeof(a->err), "%s", verso_db_errmsg(a->db));
            return rc;
        }
    }
    return 0;
}

static int begin(verso__sync_applier *a, bool reset)
{
    int rc;

    if (a->open)
        return 0;
    if ((rc = verso_apply_begin(a->db, reset)) < 0)
        return fail(a, rc, "begin");
    a->open = true;
    a->reset = reset;
    if (a->schema_pending && (rc = apply_schema(a)) < 0) {
        verso__sync_applier_abort(a);
        return rc;
    }
    return 0;
}

/* 1 if row id exists in t, 0 if not, < 0 on error. */
static int row_exists(verso__sync_applier *a, const verso_table *t, int64_t id)
{
    bool exists = false;
    int rc = verso__row_exists(&exists, a->db, verso_table_name(t), id);

    if (rc < 0) {
        snprintf(a->err, sizeof(a->err), "%s", verso_db_errmsg(a->db));
        return rc;
    }
    return exists ? 1 : 0;
}

static int pending_push(verso__sync_applier *a, const pending *p)
{
    if (a->npend == a->cappend) {
        size_t cap = a->cappend ? a->cappend * 2 : 64;
        pending *grown = verso__realloc(a->pend, cap * sizeof(*grown));
        if (!grown)
            return VERSO_ENOMEM;
        a->pend = grown;
        a->cappend = cap;
    }
    a->pend[a->npend++] = *p;
    return 0;
}

static int doc_keep(verso__sync_applier *a, verso_json *doc)
{
    if (a->ndocs == a->capdocs) {
        size_t cap = a->capdocs ? a->capdocs * 2 : 8;
        verso_json **grown = verso__realloc(a->docs, cap * sizeof(*grown));
        if (!grown)
            return VERSO_ENOMEM;
        a->docs = grown;
        a->capdocs = cap;
    }
    a->docs[a->ndocs++] = doc;
    return 0;
}

static int kind_of(verso__sync_applier *a, const verso_table *t, int64_t id, bool deleted,
                   verso_change_kind *kind)
{
    int ex = row_exists(a, t, id);

    if (ex < 0)
        return fail(a, ex, "existence check");
    *kind = deleted ? VERSO_CHANGE_DELETE : ex ? VERSO_CHANGE_UPDATE : VERSO_CHANGE_INSERT;
    return ex;
}

static int apply_delete(verso__sync_applier *a, const verso_table *t, int64_t id, int64_t version)
{
    pending p = {.change = {.table = verso_table_name(t), .id = id, .version = version}};
    int rc = 0, ex = 1;

    verso__crashpoint("slave.apply.delete");
    if (a->on_apply && (ex = kind_of(a, t, id, true, &p.change.kind)) < 0)
        return ex;
    if ((rc = verso_apply_delete(a->db, p.change.table, id, version)) < 0)
        return fail(a, rc, "delete");
    if (a->on_apply && ex)
        rc = pending_push(a, &p);
    return rc;
}

/* True when column idx of t is among cols, holding the integer want. */
static bool holds(const verso_table *t, int idx, const char *const *cols, const verso_value *vals,
                  size_t n, int64_t want)
{
    const verso_column *c = idx >= 0 ? verso_table_column_at(t, (size_t)idx) : NULL;

    for (size_t i = 0; c && i < n; i++)
        if (cols[i] && strcmp(cols[i], c->name) == 0)
            return vals[i].type == VERSO_INT64 && vals[i].u.i == want;
    return false;
}

/* A row carries its entry's id and version (docs/protocol.md, "A change"):
 * the version written is the row's, so one beyond the batch would move the
 * slave past the state it commits. */
static int row_matches_entry(verso__sync_applier *a, const verso_table *t, int64_t id,
                             int64_t version, const char *const *cols, const verso_value *vals,
                             size_t n)
{
    if (holds(t, verso_table_id_index(t), cols, vals, n, id) &&
        holds(t, verso_table_version_index(t), cols, vals, n, version))
        return 0;
    snprintf(a->err, sizeof(a->err),
             "a row of %s does not carry its change's id %lld and version %lld",
             verso_table_name(t), (long long)id, (long long)version);
    return VERSO_EPROTO;
}

/* The length of a {"blob_fetch":N} value, else -1 (-2: such a tag with a bad N). */
static int64_t fetch_length(const cJSON *v)
{
    int64_t n;

    if (!cJSON_IsObject(v) || !v->child || v->child->next || !v->child->string ||
        strcmp(v->child->string, "blob_fetch") != 0)
        return -1;
    return verso__sync_json_get_i64(&n, v, "blob_fetch") == 0 && n > 0 && n <= INT32_MAX ? n : -2;
}

/*
 * Takes the long blobs out of row: each becomes null for the JSON
 * conversion (then a blob with data NULL, written as zeroblob(N)), and is
 * listed in fx for the fetch.
 */
static int take_fetches(verso__sync_applier *a, cJSON *row, fetch *fx, size_t *nfx)
{
    cJSON *m;

    *nfx = 0;
    cJSON_ArrayForEach(m, row)
    {
        int64_t n = fetch_length(m);
        if (n == -1)
            continue;
        if (n < 0 || !m->string || *nfx == VERSO__SYNC_MAX_FETCH) {
            snprintf(a->err, sizeof(a->err), "column %s: a bad {\"blob_fetch\": N}",
                     m->string ? m->string : "?");
            return VERSO_EPROTO;
        }
        if (!a->blobs.get) {
            snprintf(a->err, sizeof(a->err),
                     "column %s: a long blob to fetch, but no master to fetch it from", m->string);
            return VERSO_EPROTO;
        }
        fx[(*nfx)++] = (fetch){m->string, n};
        cJSON_Delete(m->child);
        m->child = NULL;
        m->type = cJSON_NULL;
    }
    return 0;
}

/* The values of the fetched columns: blobs of their length, data NULL. */
static void mark_fetches(const fetch *fx, size_t nfx, const char **cols, verso_value *vals,
                         size_t n)
{
    for (size_t k = 0; k < nfx; k++)
        for (size_t i = 0; i < n; i++)
            if (cols[i] && strcasecmp(cols[i], fx[k].column) == 0) /* SQL names: any case */
                vals[i] = (verso_value){.type = VERSO_BLOB, .u.b = {NULL, (size_t)fx[k].n}};
}

/* Fetches each long blob and writes it into the row, inside the apply transaction. */
static int write_fetches(verso__sync_applier *a, const verso_table *t, int64_t id, int64_t version,
                         const fetch *fx, size_t nfx)
{
    int rc = 0;

    for (size_t k = 0; rc == 0 && k < nfx; k++) {
        verso__crashpoint("slave.apply.blob");
        rc = a->blobs.get(a->blobs.arg, verso_table_name(t), id, fx[k].column, version, fx[k].n,
                          a->err, sizeof(a->err));
        if (rc == 0 && (rc = verso__apply_blob(a->db, verso_table_name(t), id, fx[k].column,
                                               fx[k].n, a->blobs.fill, a->blobs.arg)) < 0)
            fail(a, rc, "writing a fetched blob");
        if (a->blobs.end)
            a->blobs.end(a->blobs.arg);
    }
    return rc;
}

static int apply_upsert(verso__sync_applier *a, const verso_table *t, int64_t id, int64_t version,
                        cJSON *row)
{
    pending p = {.change = {.table = verso_table_name(t), .id = id, .version = version}};
    fetch fx[VERSO__SYNC_MAX_FETCH];
    size_t n = 0, nfx = 0;
    int rc;

    if (a->on_apply && (rc = kind_of(a, t, id, false, &p.change.kind)) < 0)
        return rc;
    if (cJSON_IsObject(row) && (rc = take_fetches(a, row, fx, &nfx)) < 0)
        return rc;
    if ((rc = verso_json_to_values(&p.cols, &p.vals, &n, t, row, a->err, sizeof(a->err))) < 0)
        return rc;
    mark_fetches(fx, nfx, p.cols, p.vals, n);
    if ((rc = row_matches_entry(a, t, id, version, p.cols, p.vals, n)) < 0)
        goto done;
    if ((rc = verso_apply_upsert(a->db, p.change.table, p.cols, p.vals, n)) < 0) {
        fail(a, rc, p.change.table);
        goto done;
    }
    if ((rc = write_fetches(a, t, id, version, fx, nfx)) < 0)
        goto done;
    if (a->on_apply) {
        p.change.ncolumns = n;
        p.change.columns = p.cols;
        p.change.values = p.vals;
        if ((rc = pending_push(a, &p)) == 0)
            return 0;
    }
done:
    verso_free(p.cols);
    verso_free(p.vals);
    return rc;
}

static int apply_entry(verso__sync_applier *a, const cJSON *e, int64_t from, int64_t to)
{
    const char *tname = verso__sync_json_get_str(e, "table");
    const verso_table *t = tname ? verso_db_table(a->db, tname) : NULL;
    int64_t id, version;

    if (!t) {
        snprintf(a->err, sizeof(a->err), "change for unknown table %s", tname ? tname : "(none)");
        return tname ? VERSO_ENOTFOUND : VERSO_EPROTO;
    }
    if (verso__sync_json_get_i64(&id, e, "id") < 0 ||
        verso__sync_json_get_i64(&version, e, "version") < 0) {
        snprintf(a->err, sizeof(a->err), "change without id or version in %s", tname);
        return VERSO_EPROTO;
    }
    if (version <= from || version > to) { /* the cursor to would not name that state */
        snprintf(a->err, sizeof(a->err), "change of version %lld in a batch from %lld to %lld",
                 (long long)version, (long long)from, (long long)to);
        return VERSO_EPROTO;
    }
    a->txn_rows++;
    if (verso__sync_json_get_bool(e, "deleted"))
        return apply_delete(a, t, id, version);
    return apply_upsert(a, t, id, version, cJSON_GetObjectItemCaseSensitive(e, "row"));
}

int verso__sync_applier_entries(verso__sync_applier *a, verso_json *doc, const cJSON *entries,
                                bool reset, int64_t from, int64_t to)
{
    const cJSON *e;
    int rc = 0;

    if (!cJSON_IsArray(entries)) {
        snprintf(a->err, sizeof(a->err), "no change list");
        rc = VERSO_EPROTO;
        goto done;
    }
    if ((rc = begin(a, reset)) < 0)
        goto done;
    if (cJSON_GetArraySize(entries) > 0)
        verso__crashpoint("slave.apply.begin");
    cJSON_ArrayForEach(e, entries)
    {
        if ((rc = apply_entry(a, e, from, to)) < 0)
            goto done;
    }
    if (a->on_apply && a->npend > 0) {
        if ((rc = doc_keep(a, doc)) == 0)
            doc = NULL;
    }
done:
    verso_json_free(doc);
    if (rc < 0)
        verso__sync_applier_abort(a);
    return rc;
}

/* After a full reset the slave holds no tombstone older than the master
 * version it now equals: its own slaves behind that must resynchronise. */
static int raise_horizon(verso__sync_applier *a, int64_t version)
{
    int rc = verso__horizon_raise(a->db, version);

    if (rc < 0)
        snprintf(a->err, sizeof(a->err), "horizon: %s", verso_db_errmsg(a->db));
    return rc;
}

/* The callback's array, made before the commit: once committed, the
 * changes must reach the callback. */
static int notify_prepare(verso_sync_change **changes, verso__sync_applier *a)
{
    *changes = NULL;
    if (!a->on_apply || !a->npend)
        return 0;
    if (!(*changes = verso__malloc(a->npend * sizeof(**changes))))
        return fail(a, VERSO_ENOMEM, "commit");
    for (size_t i = 0; i < a->npend; i++)
        (*changes)[i] = a->pend[i].change;
    return 0;
}

static void notify(verso__sync_applier *a, verso_sync_change *changes, int64_t version, bool reset)
{
    if (a->on_apply)
        a->on_apply(changes, a->npend, version, reset, a->apply_arg);
    verso__free(changes);
}

int verso__sync_applier_commit(verso__sync_applier *a, const char *master, int64_t version)
{
    bool reset = a->reset;
    verso_sync_change *changes = NULL;
    int rc;

    if (!a->open && (rc = begin(a, false)) < 0)
        return rc;
    if (reset && (rc = raise_horizon(a, version)) < 0)
        goto fail;
    verso__crashpoint("slave.apply.written");
    if ((rc = notify_prepare(&changes, a)) < 0)
        goto fail;
    verso__commit_tail_hold(a->db, true); /* signal and checkpoint after the callback */
    rc = verso_apply_commit(a->db, master, version);
    verso__commit_tail_hold(a->db, false);
    if (rc < 0) {
        verso__commit_tail(a->db);
        fail(a, rc, "commit");
        verso__free(changes);
        goto fail;
    }
    a->open = false;
    a->reset = false;
    a->schema_pending = false;
    a->rows += a->txn_rows;
    a->txn_rows = 0;
    notify(a, changes, version, reset);
    verso__commit_tail(a->db);
    pending_clear(a);
    verso__crashpoint("slave.apply.committed");
    return 0;
fail:
    verso__sync_applier_abort(a);
    return rc;
}

void verso__sync_applier_abort(verso__sync_applier *a)
{
    if (a->open)
        verso_apply_abort(a->db);
    a->open = false;
    a->reset = false;
    a->txn_rows = 0; /* rolled back: they will come again */
    pending_clear(a);
}

/* ---- the fast path: a message scanned without a JSON tree (scan.c) ---- */

bool verso__sync_scan_off;
atomic_llong verso__sync_scan_taken;

/*
 * The double of a JSON number literal (p, n bytes) without strtod() when
 * that is exact: at most 15 digits (an integer below 2^53) scaled by a
 * power of ten up to 22 (exact too) is one correctly rounded operation,
 * the value strtod() gives. false: use strtod().
 */
static bool quick_double(double *out, const char *p, size_t n)
{
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    size_t i = p[0] == '-', nd = 0, frac = 0;
    int64_t m = 0, e = 0, esign = 1;
    bool dot = false;

    for (; i < n && ((p[i] >= '0' && p[i] <= '9') || (p[i] == '.' && !dot)); i++) {
        if (p[i] == '.') {
            dot = true;
            continue;
        }
        if (++nd > 15)
            return false;
        m = m * 10 + (p[i] - '0');
        frac += dot;
    }
    if (i < n) { /* e or E, sign, at most three digits */
        i += 1 + (p[i + 1] == '+' || p[i + 1] == '-');
        esign = p[i - 1] == '-' ? -1 : 1;
        if (n - i > 3)
            return false;
        for (; i < n; i++)
            e = e * 10 + (p[i] - '0');
    }
    e = esign * e - (int64_t)frac;
    if (e < -22 || e > 22)
        return false;
    *out = e < 0 ? (double)m / pow10[-e] : (double)m * pow10[e];
    *out = p[0] == '-' ? -*out : *out;
    return true;
}

/* The value of v for column c when the general conversion gives the same
 * (verso_json_to_values, conv_value); 0 when not: the general path decides. */
static int scan_value(verso_value *out, const verso__scan_val *v, const verso_column *c)
{
    double d;

    if (v->kind == VERSO__SCAN_NULL) {
        *out = VERSO_VALUE_NULL;
        return 1;
    }
    switch (c->type) {
    case VERSO_INT64:
        *out = VERSO_VALUE_INT(v->i);
        return v->kind == VERSO__SCAN_INT;
    case VERSO_DOUBLE: /* from the literal, as tag_real: "-0" is -0.0 */
        if (v->kind != VERSO__SCAN_INT && v->kind != VERSO__SCAN_NUM)
            return 0;
        if (!quick_double(&d, v->p, v->n))
            d = strtod(v->p, NULL); /* the literal ends at a delimiter */
        *out = VERSO_VALUE_DOUBLE(d);
        return isfinite(d);
    case VERSO_BOOL:
        *out = VERSO_VALUE_BOOL(v->kind == VERSO__SCAN_TRUE);
        return v->kind == VERSO__SCAN_TRUE || v->kind == VERSO__SCAN_FALSE;
    case VERSO_TEXT:
        *out = (verso_value){.type = VERSO_TEXT, .u.b = {v->p, v->n}};
        return v->kind == VERSO__SCAN_STR;
    case VERSO_ANY:
        if (v->kind == VERSO__SCAN_STR)
            *out = (verso_value){.type = VERSO_TEXT, .u.b = {v->p, v->n}};
        else if (v->kind == VERSO__SCAN_INT || v->kind == VERSO__SCAN_TRUE ||
                 v->kind == VERSO__SCAN_FALSE)
            *out = VERSO_VALUE_INT(v->kind == VERSO__SCAN_INT ? v->i : v->kind == VERSO__SCAN_TRUE);
        return v->kind != VERSO__SCAN_NUM;
    default: /* blobs and UUIDs decode into a store: the general path */
        return 0;
    }
}

/* The column named key, at pos when the row lists every column in order (the master's rows). */
static int column_of(const verso_table *t, const char *key, size_t pos)
{
    const verso_column *c = pos < verso_table_ncolumns(t) ? verso_table_column_at(t, pos) : NULL;

    return c && strcmp(c->name, key) == 0 ? (int)pos : verso_table_column_index(t, key);
}

/* A row's members as columns of t, each once, with the entry's id and version. */
static int scan_row(verso__sync_applier *a, const verso_table *t, const verso__scan_entry *e)
{
    uint64_t seen = 0;

    for (size_t k = e->first; k < e->first + e->n; k++) {
        int ci = column_of(t, a->scan.keys[k], k - e->first);
        if (ci < 0 || ci >= 64 || (seen >> ci & 1))
            return 0;
        seen |= 1ull << ci;
        a->scols[k] = verso_table_column_at(t, (size_t)ci)->name;
        if (!scan_value(&a->svals[k], &a->scan.v[k], verso_table_column_at(t, (size_t)ci)))
            return 0;
    }
    return holds(t, verso_table_id_index(t), a->scols + e->first, a->svals + e->first, e->n,
                 e->id) &&
           holds(t, verso_table_version_index(t), a->scols + e->first, a->svals + e->first, e->n,
                 e->version);
}

static int scan_room(verso__sync_applier *a)
{
    const char **c;
    verso_value *v;

    if (a->scan.nv <= a->capsv)
        return 0;
    if (!(c = verso__realloc(a->scols, a->scan.nv * sizeof(*c))))
        return VERSO_ENOMEM;
    a->scols = c;
    if (!(v = verso__realloc(a->svals, a->scan.nv * sizeof(*v))))
        return VERSO_ENOMEM;
    a->svals = v;
    a->capsv = a->scan.nv;
    return 0;
}

/* 1 when every entry would pass the general path's checks on its own. */
static int scan_entries_ok(verso__sync_applier *a)
{
    int rc = scan_room(a);

    for (size_t i = 0; rc == 0 && i < a->scan.ne; i++) {
        verso__scan_entry *e = &a->scan.e[i];
        const verso_table *t = verso_db_table(a->db, e->table);
        if (!t || e->version <= a->scan.from || e->version > a->scan.to)
            return 0;
        e->resolved = t;
        if (!e->deleted && !scan_row(a, t, e))
            return 0;
    }
    return rc < 0 ? rc : 1;
}

int verso__sync_applier_scan(verso__sync_applier *a, const char *text, size_t len)
{
    int rc;

    /* callbacks keep rows past the message; a schema to check first may change the tables */
    if (a->on_apply || (!a->open && a->schema_pending))
        return 0;
    if ((rc = verso__sync_scan_changes(&a->scan, text, len)) != 1)
        return rc;
    return a->scan.to >= a->scan.from ? scan_entries_ok(a) : 0;
}

void verso__sync_applier_scanned_header(const verso__sync_applier *a, int64_t *from, int64_t *to,
                                        int64_t *head, bool *more, size_t *n)
{
    *from = a->scan.from;
    *to = a->scan.to;
    *head = a->scan.head;
    *more = a->scan.more;
    *n = a->scan.ne;
}

static int scanned_entry(verso__sync_applier *a, const verso__scan_entry *e)
{
    const verso_table *t = verso_db_table(a->db, e->table);
    int rc;

    if (t != e->resolved) { /* another connection changed the schema since the scan */
        snprintf(a->err, sizeof(a->err), "table %s changed during the apply; reading again",
                 e->table);
        return VERSO_ESTATE;
    }
    a->txn_rows++;
    if (e->deleted)
        return apply_delete(a, t, e->id, e->version);
    if ((rc = verso_apply_upsert(a->db, verso_table_name(t), a->scols + e->first,
                                 a->svals + e->first, e->n)) < 0)
        return fail(a, rc, verso_table_name(t));
    return 0;
}

int verso__sync_applier_scanned(verso__sync_applier *a, bool reset)
{
    int rc;

    atomic_fetch_add_explicit(&verso__sync_scan_taken, 1, memory_order_relaxed);
    if ((rc = begin(a, reset)) < 0)
        goto done;
    if (a->scan.ne > 0)
        verso__crashpoint("slave.apply.begin");
    for (size_t i = 0; rc == 0 && i < a->scan.ne; i++)
        rc = scanned_entry(a, &a->scan.e[i]);
done:
    if (rc < 0)
        verso__sync_applier_abort(a);
    return rc;
}
