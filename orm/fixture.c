/*
 * Fixtures: tracked tables as one JSON document, and loading them back.
 *
 * A fixture holds data, not history: rows are written without their version
 * column, so dumping a database, loading the dump into a fresh one and
 * dumping again gives the same text. Loading upserts by id through the
 * generic row API, so every loaded row gets a new version and the usual
 * type checks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"

#define FIXTURE_FORMAT 1

/* ---------------------------------------------------------------------
 * Dump
 * ------------------------------------------------------------------ */

/* Appends "name":[ rows ] for table t, one row per line, in id order. */
static int dump_table(verso_buf *b, verso_db *db, const verso_table *t)
{
    const char *cols[VERSO__MAX_COLUMNS];
    size_t ncols = 0;
    int vidx = verso_table_version_index(t);
    verso_query q = VERSO_QUERY_INIT;
    verso_iter *it = NULL;
    int rc, step, nrows = 0;
    for (size_t i = 0; i < verso_table_ncolumns(t) && ncols < VERSO__MAX_COLUMNS; i++)
        if ((int)i != vidx)
            cols[ncols++] = verso_table_column_at(t, i)->name;
    q.table = verso_table_name(t);
    q.columns = cols;
    q.ncolumns = ncols;
    if ((rc = verso_json_string(b, q.table, strlen(q.table))) < 0 ||
        (rc = verso_buf_puts(b, ":[")) < 0 || (rc = verso_query_open(&it, db, &q)) < 0)
        goto done;
    while ((step = verso_iter_next(it)) == 1) {
        if ((rc = verso_buf_puts(b, nrows++ ? ",\n" : "\n")) < 0 ||
            (rc = verso_json_iter_row(b, it)) < 0)
            goto done;
    }
    if (step < 0) {
        rc = step;
        goto done;
    }
    rc = verso_buf_puts(b, nrows ? "\n]" : "]");
done:
    if (rc == VERSO_EUTF8)
        verso__err(db, rc, "table %s: a text value is not valid UTF-8", q.table);
    verso_iter_close(it);
    return rc;
}

static int dump_tables(verso_buf *b, verso_db *db, const char *table)
{
    size_t n = verso_db_ntables(db), ndone = 0;
    int rc = verso_buf_puts(b, "{\"verso\":1,\"tables\":{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const verso_table *t = verso_db_table_at(db, i);
        if (table && strcmp(verso_table_name(t), table) != 0)
            continue;
        if ((rc = verso_buf_puts(b, ndone++ ? ",\n" : "\n")) == 0)
            rc = dump_table(b, db, t);
    }
    if (rc == 0)
        rc = verso_buf_puts(b, "\n}}\n");
    return rc;
}

/* All tables are read in one read transaction (one snapshot) unless a
 * transaction is open on the connection already (the caller's write
 * transaction, an open feed), which gives one. */
int verso_fixture_dump(verso_buf *b, verso_db *db, const char *table)
{
    size_t start = b->len;
    bool snapshot = false;
    int rc;
    if (table && !verso_db_table(db, table) && verso__schema_check(db) == 0 &&
        !verso_db_table(db, table)) {
        rc = verso__err(db, VERSO_ENOTFOUND, "no tracked table named %s", table);
        goto done;
    }
    if (sqlite3_get_autocommit(db->sq)) {
        if ((rc = verso__exec(db, "BEGIN")) < 0)
            goto done;
        snapshot = true;
    }
    rc = dump_tables(b, db, table);
done:
    if (snapshot)
        sqlite3_exec(db->sq, "COMMIT", NULL, NULL, NULL);
    if (rc < 0 && b->data) {
        b->len = start;
        b->data[start] = '\0';
    }
    return rc;
}

/* ---------------------------------------------------------------------
 * Load
 * ------------------------------------------------------------------ */

typedef struct loader {
    const cJSON *tables;
    char why[VERSO__ERRLEN];
    int nloaded;
} loader;

/* Removes the version column from (cols, vals) and finds the id value. */
static size_t strip_row(const char **cols, verso_value *vals, size_t n, const verso_table *t,
                        const verso_value **id)
{
    const char *vname = verso_table_column_at(t, (size_t)verso_table_version_index(t))->name;
    const char *iname = verso_table_column_at(t, (size_t)verso_table_id_index(t))->name;
    size_t k = 0;
    *id = NULL;
    for (size_t i = 0; i < n; i++) {
        if (cols[i] == vname || strcmp(cols[i], vname) == 0)
            continue;
        cols[k] = cols[i];
        vals[k] = vals[i];
        if (strcmp(cols[k], iname) == 0 && vals[k].type == VERSO_INT64)
            *id = &vals[k];
        k++;
    }
    return k;
}

/* Upsert: update the row with that id if it exists (the update checks that
 * first, writing nothing otherwise), else insert it with that id. */
static int load_row(verso_db *db, const verso_table *t, const char **cols, verso_value *vals,
                    size_t n)
{
    const verso_value *id;
    const char *name = verso_table_name(t);
    n = strip_row(cols, vals, n, t, &id);
    if (id && id->u.i != 0) {
        int rc = verso_row_update(NULL, db, name, id->u.i, cols, vals, n, 0);
        if (rc != VERSO_ENOTFOUND)
            return rc;
    }
    return verso_row_insert(NULL, NULL, db, name, cols, vals, n);
}

static int load_table(verso_db *db, const cJSON *rows, loader *ld)
{
    const verso_table *t = verso_db_table(db, rows->string);
    int i = 0, rc = 0;
    if (!t) {
        snprintf(ld->why, sizeof ld->why, "table %s: not a tracked table", rows->string);
        return VERSO_ENOTFOUND;
    }
    if (!cJSON_IsArray(rows)) {
        snprintf(ld->why, sizeof ld->why, "table %s: expected an array of rows", rows->string);
        return VERSO_EINVAL;
    }
    for (const cJSON *row = rows->child; row && rc == 0; row = row->next, i++) {
        const char **cols = NULL;
        verso_value *vals = NULL;
        size_t n = 0;
        char why[256];
        rc = verso_json_to_values(&cols, &vals, &n, t, row, why, sizeof why);
        if (rc == 0 && (rc = load_row(db, t, cols, vals, n)) < 0)
            snprintf(why, sizeof why, "%s", verso_db_errmsg(db));
        if (rc < 0)
            snprintf(ld->why, sizeof ld->why, "table %s, row %d: %s", rows->string, i, why);
        ld->nloaded += rc == 0;
        verso_free(cols);
        verso_free(vals);
    }
    return rc;
}

static int load_all(verso_db *db, void *arg)
{
    loader *ld = arg;
    int rc = 0;
    for (const cJSON *rows = ld->tables->child; rows && rc == 0; rows = rows->next)
        rc = load_table(db, rows, ld);
    return rc;
}

/* The document must be {"verso":1,"tables":{...}}. */
static int check_format(const cJSON *root, char *why, size_t whylen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "verso");
    int64_t format = 0;
    if (!cJSON_IsObject(root)) {
        snprintf(why, whylen, "a fixture is a JSON object");
        return VERSO_EINVAL;
    }
    if (!v || verso_json_int64(&format, v) < 0 || format != FIXTURE_FORMAT) {
        snprintf(why, whylen, "not a verso fixture (\"verso\": %d expected)", FIXTURE_FORMAT);
        return VERSO_EINVAL;
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "tables"))) {
        snprintf(why, whylen, "\"tables\" must be an object");
        return VERSO_EINVAL;
    }
    return 0;
}

int verso_fixture_load(verso_db *db, const char *json, size_t len)
{
    verso_json *doc = NULL;
    char perr[160];
    loader ld = {0};
    int rc = verso_json_parse(&doc, json, len, 0, perr, sizeof perr);
    if (rc < 0)
        return verso__err(db, rc, "fixture: %s", perr[0] ? perr : verso_strerror(rc));
    if ((rc = check_format(verso_json_root(doc), ld.why, sizeof ld.why)) < 0)
        goto done;
    if ((rc = verso__schema_check(db)) < 0) { /* reloads only what changed */
        snprintf(ld.why, sizeof ld.why, "%s", verso_db_errmsg(db));
        goto done;
    }
    ld.tables = cJSON_GetObjectItemCaseSensitive(verso_json_root(doc), "tables");
    rc = verso_db_batch(db, load_all, &ld);
    if (rc == VERSO_ESTATE && !ld.why[0])
        snprintf(ld.why, sizeof ld.why, "cannot load inside an open transaction");
done:
    if (rc < 0)
        verso__err(db, rc, "fixture: %s", ld.why[0] ? ld.why : verso_strerror(rc));
    verso_json_free(doc);
    return rc;
}
